package ledgerfmt

import (
	"encoding/base64"
	"strconv"

	"github.com/loglineos/loglineos/internal/jsonstr"
)

// AppendJSON appends the receipt's JSON encoding to dst: the same bytes as
// encoding/json.Marshal, without reflection (the ingest answer carries one
// receipt a span).
func (r *Receipt) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"op":`...)
	dst = jsonstr.Append(dst, r.Op)
	if r.SpanID != "" {
		dst = append(dst, `,"span_id":`...)
		dst = jsonstr.Append(dst, r.SpanID)
	}
	if r.Tenant != "" {
		dst = append(dst, `,"tenant":`...)
		dst = jsonstr.Append(dst, r.Tenant)
	}
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, `,"leaf":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, r.Leaf[:])
	dst = append(dst, `","batch":{"first":`...)
	dst = strconv.AppendUint(dst, r.Batch.First, 10)
	dst = append(dst, `,"size":`...)
	dst = strconv.AppendUint(dst, r.Batch.Size, 10)
	dst = append(dst, `,"root":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, r.Batch.Root[:])
	dst = append(dst, '"')
	if len(r.Batch.Path) > 0 {
		dst = append(dst, `,"path":[`...)
		for i := range r.Batch.Path {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, r.Batch.Path[i][:])
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `},"jti":`...)
	dst = jsonstr.Append(dst, r.JTI)
	dst = append(dst, `,"kid":`...)
	dst = jsonstr.Append(dst, r.KID)
	dst = append(dst, `,"sig":`...)
	if r.Sig == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, r.Sig)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"ts":"`...)
	dst = r.TS.UTC().AppendFormat(dst, TimeLayout)
	return append(dst, `"}`...)
}

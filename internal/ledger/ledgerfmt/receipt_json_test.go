package ledgerfmt

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func FuzzReceiptJSON(f *testing.F) {
	f.Add("ledger.append", "s_1", "t_a", uint64(41), uint64(40), uint64(3), 2, "r_01", "1a2b3c4d", []byte{1, 2, 3}, int64(1759702687214000000))
	f.Add("", "", "", uint64(0), uint64(0), uint64(0), 0, "", "", []byte(nil), int64(0))
	f.Add("<op>&", "\u2028\"\\\n\x01", "\xff\xfe", uint64(1<<63), uint64(7), uint64(9), 20, "\u2029", "é", []byte{}, int64(-1))
	f.Fuzz(func(t *testing.T, op, spanID, tenant string, seq, first, size uint64, pathLen int, jti, kid string, sig []byte, ns int64) {
		r := Receipt{Op: op, SpanID: spanID, Tenant: tenant, Seq: seq, JTI: jti, KID: kid, Sig: sig,
			TS: Timestamp{time.Unix(0, ns).UTC().Truncate(time.Microsecond)}}
		r.Leaf[0], r.Leaf[31] = byte(seq), byte(first)
		r.Batch = BatchRef{First: first, Size: size}
		r.Batch.Root[5] = 9
		for i := range pathLen % 40 {
			var h Hash
			h[i%32] = byte(i)
			r.Batch.Path = append(r.Batch.Path, h)
		}
		want, err := json.Marshal(&r)
		if err != nil {
			return // a time encoding/json cannot write
		}
		if got := r.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON differs from encoding/json:\n got %s\nwant %s", got, want)
		}
	})
}

package export_test

// thirdPartyVerify is a verifier of exports written from docs/exports.md
// alone, as a third party would write it: it uses only the standard
// library, golang.org/x/mod/sumdb/note and transparency-dev/merkle, none of
// the project's code. Keep its imports so.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

type thirdPartyResult struct {
	tenant   string
	from, to uint64
	records  int
	size     uint64
}

func thirdPartyVerify(file []byte, vkey string) (thirdPartyResult, error) {
	var res thirdPartyResult
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return res, err
	}
	// 1. Lines; the last is the trailer, then the file's final newline.
	if !bytes.HasSuffix(file, []byte("\n")) {
		return res, errors.New("no final newline")
	}
	lines := bytes.SplitAfter(file, []byte("\n"))
	lines = lines[:len(lines)-1] // the empty string after the final newline
	if len(lines) < 2 {
		return res, errors.New("want a header and a trailer")
	}
	last := lines[len(lines)-1]
	var trailer struct {
		Manifest string `json:"manifest"`
	}
	if !bytes.HasPrefix(last, []byte(`{"manifest":`)) || json.Unmarshal(last, &trailer) != nil {
		return res, errors.New("the last line is not the trailer")
	}
	// 2. The manifest note and the body's hash.
	m, err := note.Open([]byte(trailer.Manifest), note.VerifierList(verifier))
	if err != nil {
		return res, fmt.Errorf("manifest: %w", err)
	}
	ml := strings.Split(m.Text, "\n")
	if len(ml) != 7 || ml[0] != "logline-export/1" || ml[6] != "" {
		return res, fmt.Errorf("manifest text %q", m.Text)
	}
	field := func(i int, key string) []string {
		f := strings.Fields(ml[i])
		if len(f) == 0 || f[0] != key {
			return nil
		}
		return f[1:]
	}
	tenant, rng, recs, ckl, sum := field(1, "tenant"), field(2, "range"), field(3, "records"), field(4, "checkpoint"), field(5, "sha256")
	if len(tenant) != 1 || len(rng) != 2 || len(recs) != 1 || len(ckl) != 2 || len(sum) != 1 {
		return res, fmt.Errorf("manifest text %q", m.Text)
	}
	body := file[:len(file)-len(last)]
	got := sha256.Sum256(body)
	if hex.EncodeToString(got[:]) != sum[0] {
		return res, errors.New("the file's sha256 is not the manifest's")
	}
	// 3. The header and its checkpoint.
	var head struct {
		Version    int    `json:"logline_export"`
		Tenant     string `json:"tenant"`
		From       uint64 `json:"from"`
		To         uint64 `json:"to"`
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal(lines[0], &head); err != nil || head.Version != 1 {
		return res, fmt.Errorf("header: %v", err)
	}
	c, err := note.Open([]byte(head.Checkpoint), note.VerifierList(verifier))
	if err != nil {
		return res, fmt.Errorf("checkpoint: %w", err)
	}
	cl := strings.Split(c.Text, "\n")
	if len(cl) < 4 {
		return res, errors.New("checkpoint text")
	}
	size, err := strconv.ParseUint(cl[1], 10, 64)
	if err != nil {
		return res, err
	}
	root, err := base64.StdEncoding.DecodeString(cl[2])
	if err != nil {
		return res, err
	}
	if ckl[0] != cl[1] || ckl[1] != cl[2] {
		return res, errors.New("the manifest's checkpoint is not the header's")
	}
	if tenant[0] != head.Tenant || rng[0] != strconv.FormatUint(head.From, 10) || rng[1] != strconv.FormatUint(head.To, 10) || head.To > size {
		return res, errors.New("the header is not the manifest's")
	}
	// 4. The records.
	next := head.From
	records := lines[1 : len(lines)-1]
	for i, line := range records {
		var r struct {
			Seq   uint64          `json:"seq"`
			TS    string          `json:"ts"`
			Leaf  string          `json:"leaf"`
			Span  json.RawMessage `json:"span"`
			Proof []string        `json:"proof"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return res, fmt.Errorf("line %d: %w", i+2, err)
		}
		if r.Seq < next || r.Seq >= head.To {
			return res, fmt.Errorf("line %d: seq %d out of order or range", i+2, r.Seq)
		}
		next = r.Seq + 1
		var sp struct {
			Tenant string `json:"tenant"`
		}
		if err := json.Unmarshal(r.Span, &sp); err != nil || sp.Tenant != head.Tenant {
			return res, fmt.Errorf("line %d: tenant %q", i+2, sp.Tenant)
		}
		input := fmt.Sprintf(`{"seq":%d,"ts":"%s","span":%s}`, r.Seq, r.TS, r.Span)
		leaf := rfc6962.DefaultHasher.HashLeaf([]byte(input))
		if base64.StdEncoding.EncodeToString(leaf) != r.Leaf {
			return res, fmt.Errorf("line %d: leaf", i+2)
		}
		path := make([][]byte, len(r.Proof))
		for j, h := range r.Proof {
			if path[j], err = base64.StdEncoding.DecodeString(h); err != nil {
				return res, fmt.Errorf("line %d: proof: %w", i+2, err)
			}
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Seq, size, leaf, path, root); err != nil {
			return res, fmt.Errorf("line %d: %w", i+2, err)
		}
	}
	// 5. The count.
	if strconv.Itoa(len(records)) != recs[0] {
		return res, errors.New("record count")
	}
	return thirdPartyResult{tenant: head.Tenant, from: head.From, to: head.To, records: len(records), size: size}, nil
}

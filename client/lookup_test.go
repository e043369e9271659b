package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/client"
)

func TestSpanJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   client.Span
		json string
	}{{
		name: "every field",
		in:   sale("t_a", "s_1", "order:1"),
		json: `{"id":"s_1","tenant":"t_a","who":"dan","did":"sale.post","this":"order:1","when":"2025-10-05T22:18:07Z","status":"confirmed","confirmed_by":["pos://register-7"],"data":{"gross":19.9,"items":3}}`,
	}, {
		name: "empty fields are left out",
		in:   client.Span{Tenant: "t_a"},
		json: `{"tenant":"t_a"}`,
	}, {
		name: "fractional seconds and an offset",
		in:   client.Span{ID: "s_2", When: time.Date(2025, 1, 2, 3, 4, 5, 500_000_000, time.FixedZone("", 2*3600))},
		json: `{"id":"s_2","when":"2025-01-02T03:04:05.5+02:00"}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.json {
				t.Errorf("Marshal = %s\nwant      %s", b, tt.json)
			}
			var back client.Span
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.in, back); diff != "" {
				t.Errorf("round trip (-in +out):\n%s", diff)
			}
		})
	}
}

// TestLookups reads back what was ingested, through a base URL with a path
// prefix and with names that need escaping.
func TestLookups(t *testing.T) {
	var rc routeCounter
	ts := startServer(t, serverOpts{wrap: func(h http.Handler) http.Handler {
		// Small pages, so that Thing follows next_cursor.
		paged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/things/") {
				q := r.URL.Query()
				q.Set("limit", "2")
				r.URL.RawQuery = q.Encode()
			}
			h.ServeHTTP(w, r)
		})
		mux := http.NewServeMux()
		mux.Handle("/api/", http.StripPrefix("/api", unversioned(rc.wrap(paged))))
		return mux
	}})
	c := newClient(t, ts.URL+"/api/")
	ctx := testCtx(t)

	odd := sale("t_a", "s_ü/1 x?", "order:ü/2")
	spans := append(sales("t_a", 0, 5), odd, sale("t_b", "s_0", "order:1"))
	res := ingest(t, c, spans...)

	for i, s := range spans {
		rec, err := c.Span(ctx, s.Tenant, s.ID)
		if err != nil {
			t.Fatalf("Span(%s, %s): %v", s.Tenant, s.ID, err)
		}
		if rec.Seq != uint64(i) || rec.Kind != "span" || rec.Leaf != res.Results[i].Receipt.Leaf {
			t.Errorf("Span(%s, %s) = seq %d kind %q leaf %s; want seq %d, the receipt's leaf", s.Tenant, s.ID, rec.Seq, rec.Kind, rec.Leaf, i)
		}
		if err := rec.VerifyLeaf(); err != nil {
			t.Error(err)
		}
		got, err := rec.Span()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s, got); diff != "" {
			t.Errorf("span %s (-sent +stored):\n%s", s.ID, diff)
		}
		r, err := c.Receipt(ctx, s.Tenant, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(res.Results[i].Receipt, r); diff != "" {
			t.Errorf("Receipt(%s) (-ingest +lookup):\n%s", s.ID, diff)
		}
	}

	thing, err := c.Thing(ctx, "t_a", "order:1")
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, r := range thing {
		seqs = append(seqs, r.Seq)
	}
	if diff := cmp.Diff([]uint64{0, 1, 2, 3, 4}, seqs); diff != "" {
		t.Errorf("Thing seqs (-want +got):\n%s", diff)
	}
	if got := rc.count("GET /things/t_a/order:1"); got != 3 {
		t.Errorf("Thing took %d pages, want 3", got)
	}
	if thing, err := c.Thing(ctx, "t_a", "order:ü/2"); err != nil || len(thing) != 1 || thing[0].Seq != 5 {
		t.Errorf("Thing(order:ü/2) = %+v, %v", thing, err)
	}
	if thing, err := c.Thing(ctx, "t_a", "order:none"); err != nil || len(thing) != 0 {
		t.Errorf("Thing(order:none) = %+v, %v; want nothing", thing, err)
	}

	for name, call := range map[string]func() error{
		"Span":    func() error { _, err := c.Span(ctx, "t_a", "s_none"); return err },
		"Receipt": func() error { _, err := c.Receipt(ctx, "t_b", "s_1"); return err },
	} {
		err := call()
		var ae *client.Error
		if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &ae) || ae.Problem.Type != "/problems/not-found" || ae.Problem.RequestID == "" {
			t.Errorf("%s of a missing span: %v; want ErrNotFound with the problem", name, err)
		}
	}

	key, err := c.Key(ctx)
	if err != nil || !strings.HasPrefix(key, "logline.local/ledger+") {
		t.Errorf("Key = %q, %v", key, err)
	}
}

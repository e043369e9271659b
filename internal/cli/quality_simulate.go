package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/cycle"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/gateway"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/backend"
	"github.com/loglineos/loglineos/internal/progress"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/loglineos/loglineos/internal/tenant"
	"github.com/loglineos/loglineos/stdlib"
)

func newQualityCmd(stdio Stdio) *cobra.Command {
	return group("quality", "Dry runs of the neutral cycle", newQualitySimulateCmd(stdio))
}

func newQualitySimulateCmd(stdio Stdio) *cobra.Command {
	var spansFile, policyFile, tenantFile, out, bundleFile, backendName string
	var trust []string
	var closeAtEnd, asJSON, noProgress bool
	cmd := &cobra.Command{
		Use:   "simulate --spans input.ndjson [--policy POLICY] --out result.logline",
		Short: "Run the cycle over a file of spans and report trajectories, scores and candidates",
		Long: `simulate runs the whole neutral cycle (linker, quality score, quality meter)
over the spans of an NDJSON file, through the same code as live derivation,
and writes nothing to any ledger. Spans the contract rejects and duplicates
are skipped, as ingest would, so the result equals what a server derives
after ingesting the same file into an empty ledger (without clock ticks).

It runs the standard bundle, or with --bundle (and --trust, as logline
serve's bundle) a signed bundle's contract, policies, pipeline and
validators. Without --policy it uses the bundle's policies; --policy takes
a .lll file (its policies replace the standard ones by name) or a YAML file
shaped like a tenant file (features: and policies: overrides).
--tenant-config takes a tenant's file (cfg/tenants/<tenant>.yaml or .lll),
checked as the server checks it, and runs under its policy as the server
does (POST /quality/dryrun?tenant=): both name the policy by the same hash.

It prints counts, the score distribution (p50/p95/p99 and, on a terminal, a
histogram), the candidate count, rate and threshold; --out receives the
derived events as NDJSON.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if spansFile == "" || out == "" {
				return usageErr("--spans and --out are required")
			}
			p, err := newReporter(stdio, noProgress)
			if err != nil {
				return err
			}
			b, err := simulatedBundle(bundleFile, trust)
			if err != nil {
				return err
			}
			if policyFile != "" && tenantFile != "" {
				return usageErr("give --policy or --tenant-config, not both")
			}
			base, err := basePolicies(b, policyFile)
			if err != nil {
				return err
			}
			if tenantFile != "" {
				data, err := os.ReadFile(tenantFile)
				if err != nil {
					return usageErr("--tenant-config: %v", err)
				}
				f, err := tenant.ParseFile(tenantFile, data, base)
				if err != nil {
					return badErr("%v", err)
				}
				base = f.Doc
			}
			hash, err := tenant.PolicyHash(base)
			if err != nil {
				return err
			}
			def, err := tenant.ParseConfig(base)
			if err != nil {
				return badErr("policy: %v", err)
			}
			kind, err := backend.ParseKind(backendName)
			if err != nil {
				return usageErr("--backend %s: want eval, wasm or shadow", backendName)
			}
			opts := backend.Options{
				Compile: bundleFile == "",
				OnDivergence: func(d backend.Divergence) {
					fmt.Fprintf(stdio.Err, "logline: divergence: %s\n", d)
				},
			}
			checker, events, err := backend.Open(cmd.Context(), b, kind, opts)
			if err != nil {
				return badErr("--backend %s: %v", kind, err)
			}
			defer checker.Close(context.Background())
			defer events.Close(context.Background())
			spans, rejected, err := readSpans(spansFile, checker, p.Func("reading spans", progress.Bytes))
			p.Clear()
			if err != nil {
				return err
			}
			if n := checker.Stats().Divergences; n > 0 {
				return badErr("--backend shadow: %d divergences between the interpreter and the wasm module (listed above)", n)
			}
			ef, err := cycle.CreateEventFile(out)
			if err != nil {
				return usageErr("--out: %v", err)
			}
			sim := derive.SimConfig{CloseAtEnd: closeAtEnd, OnEvent: ef.Write}
			if p != nil {
				sim.Progress = func(in uint64) { p.Update("deriving", progress.Spans, int64(in), int64(len(spans))) }
			}
			rules := derive.CompileRules(b.Program())
			if kind != backend.Eval {
				rules.CheckEvent = events.CheckEvent // the score's and the meter's validators
			}
			sum, err := cycle.DryRun(spans, def, rules, sim)
			p.Clear()
			if cerr := ef.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if kind != backend.Eval {
				st := events.Stats()
				fmt.Fprintf(stdio.Err, "logline: backend %s: event validators: %d module runs, %d answered by the interpreter, %d divergences\n", kind, st.Runs, st.Fallbacks, st.Divergences)
				if st.Divergences > 0 {
					return badErr("--backend shadow: %d divergences between the interpreter and the wasm module on derived events (listed above)", st.Divergences)
				}
			}
			if asJSON {
				return printJSON(stdio.Out, struct {
					gateway.SummaryJSON
					PolicyHash string `json:"policy_hash"`
					Rejected   int    `json:"rejected"`
				}{gateway.SummaryToJSON(sum, false), hash, rejected})
			}
			printSummary(stdio.Out, sum, rejected, isTerminal(stdio.Out))
			fmt.Fprintf(stdio.Out, "policy: %s\n", hash)
			fmt.Fprintf(stdio.Out, "derived events: %d, written to %s\n", sum.EventCount, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spansFile, "spans", "", "NDJSON file of spans (- for stdin)")
	f.StringVar(&policyFile, "policy", "", ".lll or YAML policy file (default: the standard bundle's policies)")
	f.StringVar(&tenantFile, "tenant-config", "", "a tenant's file (.yaml or .lll): run under its policy, as the server does for the tenant")
	f.StringVar(&out, "out", "", "file to write the derived events to (NDJSON)")
	f.StringVar(&bundleFile, "bundle", "", "signed bundle `FILE` (.lllb) to run instead of the standard bundle")
	f.StringArrayVar(&trust, "trust", nil, "trust the ed25519 public key in `FILE` (PEM) for --bundle; repeatable")
	f.StringVar(&backendName, "backend", string(backend.Eval), "run the spans' contract and the derivation's event validators on eval, wasm (the bundle's module) or shadow (both; a divergence fails the command)")
	f.BoolVar(&closeAtEnd, "close-at-end", false, "close every trajectory still open at the end (one late clock tick)")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	addNoProgressFlag(cmd, &noProgress)
	return cmd
}

// simulatedBundle loads the bundle in file, signed by a key in trust, or
// builds the standard bundle when file is "".
func simulatedBundle(file string, trust []string) (*bundle.Bundle, error) {
	if file == "" {
		if len(trust) > 0 {
			return nil, usageErr("--trust needs --bundle")
		}
		return standardBundle()
	}
	if len(trust) == 0 {
		return nil, usageErr("--bundle needs --trust: only bundles signed by a trusted key run")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, usageErr("--bundle: %v", err)
	}
	b, err := bundle.Load(data, bundle.LoadOptions{TrustedFiles: trust})
	if err != nil {
		return nil, badErr("%s: %v", file, err)
	}
	return b, nil
}

// basePolicies returns the derivation configuration map: the bundle b's,
// with a policy file's overrides.
func basePolicies(b *bundle.Bundle, policyFile string) (map[string]any, error) {
	base := tenant.BasePolicies(b)
	if policyFile == "" {
		return base, nil
	}
	data, err := os.ReadFile(policyFile)
	if err != nil {
		return nil, usageErr("--policy: %v", err)
	}
	if strings.HasSuffix(policyFile, ".lll") {
		srcs := append(stdlib.Sources(), lll.Source{Name: filepath.Base(policyFile), Text: data})
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		lllb, diags, err := bundle.Compile(replaceSources(srcs, filepath.Base(policyFile)), key, bundle.BuildOptions{})
		if err != nil || len(diags) > 0 {
			return nil, badErr("%s: %v", policyFile, firstNonNil(diags.Err(), err))
		}
		pb, err := bundle.Load(lllb, bundle.LoadOptions{Trusted: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}})
		if err != nil {
			return nil, err
		}
		return tenant.BasePolicies(pb), nil
	}
	var doc struct {
		Features map[string]any `yaml:"features"`
		Policies map[string]any `yaml:"policies"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, badErr("%s: %v", policyFile, err)
	}
	over := map[string]any{}
	if doc.Features != nil {
		over["features"] = doc.Features
	}
	if doc.Policies != nil {
		over["policies"] = doc.Policies
	}
	b2, _ := json.Marshal(over) // YAML maps to JSON-shaped maps
	var norm map[string]any
	json.Unmarshal(b2, &norm)
	return tenant.Merge(base, norm), nil
}

// replaceSources drops the standard policies.lll when a policy file is given,
// so that its policies replace the standard ones by name.
func replaceSources(srcs []lll.Source, _ string) []lll.Source {
	var out []lll.Source
	for _, s := range srcs {
		if strings.HasSuffix(s.Name, "policies.lll") {
			continue
		}
		out = append(out, s)
	}
	return out
}

func firstNonNil(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func standardBundle() (*bundle.Bundle, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	data, err := stdlib.Build(key)
	if err != nil {
		return nil, err
	}
	return bundle.Load(data, bundle.LoadOptions{Trusted: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}})
}

// readSpans decodes an NDJSON file of spans, skipping (and counting) those
// the contract rejects, and reports the bytes read (if report is not nil).
func readSpans(name string, checker *backend.Spans, report func(done, total int64)) ([]*span.Span, int, error) {
	f := os.Stdin
	if name != "-" {
		var err error
		if f, err = os.Open(name); err != nil {
			return nil, 0, usageErr("--spans: %v", err)
		}
		defer f.Close()
	}
	sc := bufio.NewScanner(newProgressReader(f, fileSize(f), report))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var spans []*span.Span
	rejected := 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		s, err := span.Parse(line, span.DefaultLimits())
		if err != nil {
			rejected++
			continue
		}
		ok := true
		for _, v := range checker.Validators() {
			if checker.CheckSpan(context.Background(), v, s, nil) != nil {
				ok = false
				break
			}
		}
		if !ok {
			rejected++
			continue
		}
		spans = append(spans, s)
	}
	return spans, rejected, sc.Err()
}

func printSummary(w io.Writer, s derive.Summary, rejected int, histogram bool) {
	fmt.Fprintf(w, "spans: %d (%d rejected by the contract)\n", s.Spans, rejected)
	fmt.Fprintf(w, "trajectories: %d opened, %d closed by timeout, %d by rule, %d evicted, %d still open; %d spans excepted\n",
		s.Trajectories, s.Timeout, s.Rule, s.Evicted, s.Open, s.Excepted)
	fmt.Fprintf(w, "scores: %d, p50 %d, p95 %d, p99 %d\n", s.Scored, s.P50, s.P95, s.P99)
	thr := "none yet"
	if s.Threshold >= 0 {
		thr = fmt.Sprint(s.Threshold)
	}
	fmt.Fprintf(w, "diamond candidates: %d, rate %.2f%%, threshold %s\n", s.Candidates, float64(s.CandidatePPM)/1e4, thr)
	if s.Shed > 0 {
		fmt.Fprintf(w, "shed by guardrails: %d events\n", s.Shed)
	}
	if !histogram || s.Scored == 0 {
		return
	}
	var buckets [10]uint64
	var peak uint64
	for score, n := range s.Histogram {
		b := min(score/10, 9)
		buckets[b] += n
		peak = max(peak, buckets[b])
	}
	for i, n := range buckets {
		bar := strings.Repeat("█", int(n*40/max(peak, 1)))
		hi := i*10 + 9
		if i == 9 {
			hi = 100
		}
		fmt.Fprintf(w, "  %3d-%-3d %-40s %d\n", i*10, hi, bar, n)
	}
}

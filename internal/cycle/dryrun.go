package cycle

import (
	"bufio"
	"os"
	"slices"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/span"
)

// DryRun runs the cycle over spans in memory, through the same engine as
// live derivation (the default configuration def and the bundle's rules,
// nil for the standard bundle's), and writes nothing anywhere. The spans are numbered as an
// empty ledger would number them if they were ingested in this order: a span
// whose (tenant, id) came before is a duplicate and is skipped, as ingest
// would answer it. So, without ticks, the events equal what a server derives
// after ingesting the same spans into an empty ledger.
func DryRun(spans []*span.Span, def derive.TenantConfig, rules *derive.Rules, sim derive.SimConfig) (derive.Summary, error) {
	return derive.Simulate(derive.SpanInputs(slices.Values(spans)), derive.Config{Default: &def, Rules: rules}, sim)
}

// EventFile is a file of derived events in NDJSON, as the derived stream
// serves them: each event's canonical JSON (derive.Event.AppendJSON) on a
// line of its own.
type EventFile struct {
	f    *os.File
	w    *bufio.Writer
	line []byte
}

// CreateEventFile creates the file name, or truncates it, for events.
func CreateEventFile(name string) (*EventFile, error) {
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	return &EventFile{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// Write appends ev to the file. It fits derive.SimConfig.OnEvent.
func (f *EventFile) Write(ev *derive.Event) error {
	f.line = append(ev.AppendJSON(f.line[:0]), '\n')
	_, err := f.w.Write(f.line)
	return err
}

// Close writes what is buffered and closes the file.
func (f *EventFile) Close() error {
	err := f.w.Flush()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	return err
}

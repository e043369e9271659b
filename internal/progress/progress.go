// Package progress shows how far a long command has got, on one line of a
// terminal that each update rewrites in place:
//
//	\r<what>: <done> of <total> <unit> (<pct>%), <rate> <unit>/s, ETA <eta>[, <note>]\033[K
//	\r<what>: <done> <unit>, <rate> <unit>/s[, <note>]\033[K     (total unknown)
//	\r\033[K                                                     (Clear)
//
// for instance
//
//	verifying records: 1.2 GiB of 4.0 GiB (30%), 210.5 MiB/s, ETA 14s
//	reading spans: 120000 spans, 51234 spans/s
//
// (a count of Bytes is written as a size, without the unit's name).
// A stage is what an update names and the unit it counts in; its rate is
// the average since the stage's first update, and the rate and the ETA
// appear from its second drawn update on. An update is drawn at once when
// it starts a stage, otherwise only when Interval has passed since the
// line was last drawn (at most ten a second by default): the others are
// dropped, so a loop may report as often as is cheap for it. A line wider
// than the terminal is cut, since a wrapped line cannot be rewritten.
//
// The reporter prints no summary: Clear leaves the line empty for the
// command's own result. A nil *Reporter shows nothing, which is how a
// command that shows no progress (stderr not a terminal) holds one.
//
// The packages whose loops take long report through a plain callback
// (func(done, total int64)) and know nothing of terminals; Terminal tells
// the command whether its stderr is one.
package progress

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/loglineos/loglineos/internal/bytesize"
)

// DefaultInterval is the least time between two drawn updates of a stage.
const DefaultInterval = 100 * time.Millisecond

// Unit is what a stage counts, as a plural noun ("records", "spans");
// Bytes are written in binary units (bytesize.Short).
type Unit string

// The units the commands count in.
const (
	Bytes   Unit = "bytes"
	Records Unit = "records"
	Spans   Unit = "spans"
)

// The escape that erases from the cursor to the end of the line (ECMA-48
// EL), written after each line (so that a shorter line leaves nothing of a
// longer one) and by Clear.
const eraseLine = "\033[K"

// Config configures a Reporter. A zero Config works.
type Config struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Interval is the least time between two drawn updates of a stage;
	// 0 means DefaultInterval.
	Interval time.Duration
	// Width is the terminal's width in columns: longer lines are cut to
	// Width-1 (the last column would wrap on some terminals). 0 cuts
	// nothing.
	Width int
}

// Reporter draws the progress line on a writer (a terminal's stderr). Its
// methods are safe for concurrent use, and do nothing on a nil Reporter.
type Reporter struct {
	w   io.Writer
	cfg Config

	mu    sync.Mutex
	what  string
	unit  Unit
	note  string
	start time.Time // the stage's first update
	first int64     // done at the stage's first update
	drawn time.Time // when the line was last drawn
	shown bool      // the line holds something Clear must erase
	line  []byte
}

// New returns a Reporter that draws on w.
func New(w io.Writer, cfg Config) *Reporter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	return &Reporter{w: w, cfg: cfg}
}

// Update reports that done of total units of the stage what are done;
// total <= 0 means the total is not known. It draws the line when the
// update starts a stage or Interval has passed since the last drawing.
func (r *Reporter) Update(what string, unit Unit, done, total int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	if what != r.what || unit != r.unit || !r.shown {
		r.what, r.unit, r.start, r.first = what, unit, now, done
	} else if now.Sub(r.drawn) < r.cfg.Interval {
		return
	}
	r.draw(now, done, total)
}

// Func returns a callback that updates the stage what, of the shape the
// long loops take (ledger.VerifyConfig.Progress and the like); nil on a
// nil Reporter, so that the loop need not report at all.
func (r *Reporter) Func(what string, unit Unit) func(done, total int64) {
	if r == nil {
		return nil
	}
	return func(done, total int64) { r.Update(what, unit, done, total) }
}

// SetNote sets a note shown at the end of the line from the next drawing
// on (e.g. "3 requests failed"); "" removes it.
func (r *Reporter) SetNote(note string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.note = note
	r.mu.Unlock()
}

// Clear erases the line, if anything is drawn on it. The next update
// starts its stage afresh.
func (r *Reporter) Clear() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shown {
		io.WriteString(r.w, "\r"+eraseLine)
		r.shown = false
	}
}

// draw writes the line of the stage at done of total.
func (r *Reporter) draw(now time.Time, done, total int64) {
	b := append(r.line[:0], '\r')
	b = append(b, r.what...)
	b = append(b, ": "...)
	b = r.unit.append(b, done)
	if total > 0 {
		b = append(b, " of "...)
		b = r.unit.append(b, total)
	}
	if r.unit != Bytes {
		b = append(b, ' ')
		b = append(b, r.unit...)
	}
	if total > 0 {
		b = fmt.Appendf(b, " (%d%%)", int(min(100, max(0, float64(done)*100/float64(total)))))
	}
	if el := now.Sub(r.start); el > 0 {
		rate := float64(done-r.first) / el.Seconds()
		b = append(b, ", "...)
		b = r.unit.appendRate(b, rate)
		if total > 0 && rate > 0 && done < total {
			eta := time.Duration(float64(total-done) / rate * float64(time.Second))
			b = append(b, ", ETA "...)
			b = append(b, max(eta, time.Second).Round(time.Second).String()...)
		}
	}
	if r.note != "" {
		b = append(b, ", "...)
		b = append(b, r.note...)
	}
	b = cut(b, r.cfg.Width)
	b = append(b, eraseLine...)
	r.line = b
	r.w.Write(b)
	r.drawn, r.shown = now, true
}

// append writes n units: a size for Bytes, a plain number otherwise (the
// unit's name follows the figures).
func (u Unit) append(b []byte, n int64) []byte {
	if u == Bytes {
		return append(b, bytesize.Short(n)...)
	}
	return strconv.AppendInt(b, n, 10)
}

// appendRate writes a rate of units a second.
func (u Unit) appendRate(b []byte, rate float64) []byte {
	if u == Bytes {
		return append(append(b, bytesize.Short(int64(rate))...), "/s"...)
	}
	return fmt.Appendf(b, "%.0f %s/s", rate, u)
}

// cut cuts the line b (starting with '\r') to width-1 characters; width 0
// cuts nothing.
func cut(b []byte, width int) []byte {
	if width <= 0 {
		return b
	}
	n := 0
	for i := 1; i < len(b); {
		_, size := utf8.DecodeRune(b[i:])
		if n++; n == width {
			return b[:i]
		}
		i += size
	}
	return b
}

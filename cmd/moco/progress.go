package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress output convention: progress goes to stderr; on a terminal a
// bar redraws in place with '\r'; anywhere else (a log file, a pipe, CI)
// '\r' would pile every redraw onto one huge line, so the same updates
// come out as an occasional whole line instead.

// progressEvery is how often a non-terminal progress line is printed.
const progressEvery = 5 * time.Second

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressOut returns w itself on a terminal, else a writer that turns
// '\r'-redrawn progress into a line at most every progressEvery (and the
// last state of a bar when it ends with '\n').
func progressOut(w io.Writer) io.Writer {
	if w == nil || isTerminal(w) {
		return w
	}
	return &lineProgress{w: w, every: progressEvery, now: time.Now}
}

// lineProgress is progressOut's writer for non-terminals.
type lineProgress struct {
	mu      sync.Mutex
	w       io.Writer
	every   time.Duration
	now     func() time.Time
	last    time.Time // when a line was last printed
	line    []byte    // the current state of the bar: the text after the last '\r'
	printed bool      // line has been printed as it is
}

func (p *lineProgress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			p.line = append(p.line, b...)
			p.printed = false
			break
		}
		if i > 0 {
			p.line = append(p.line, b[:i]...)
			p.printed = false
		}
		if b[i] == '\n' { // the bar is done: its final state, once
			if !p.printed && len(p.line) > 0 {
				if err := p.emit(); err != nil {
					return n, err
				}
			} else if len(p.line) == 0 {
				if _, err := p.w.Write([]byte{'\n'}); err != nil {
					return n, err
				}
			}
			p.line, p.printed = p.line[:0], false
		} else { // '\r': a redraw starts; show the previous state if it is time
			if err := p.maybeEmit(); err != nil {
				return n, err
			}
			p.line, p.printed = p.line[:0], false
		}
		b = b[i+1:]
	}
	return n, p.maybeEmit()
}

// maybeEmit prints the current line if one is due.
func (p *lineProgress) maybeEmit() error {
	if p.printed || len(p.line) == 0 || (!p.last.IsZero() && p.now().Sub(p.last) < p.every) {
		return nil
	}
	return p.emit()
}

func (p *lineProgress) emit() error {
	p.last = p.now()
	p.printed = true
	_, err := fmt.Fprintf(p.w, "%s\n", strings.TrimRight(string(p.line), " "))
	return err
}

// progressBar draws "label [=====     ] k/n suffix" through progressOut.
type progressBar struct {
	w     io.Writer
	label string
	last  time.Time
	ended bool
}

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: progressOut(w), label: label}
}

// update redraws the bar (at most every 100ms unless done); done ends it.
func (b *progressBar) update(k, total int, suffix string) {
	if b == nil || b.w == nil {
		return
	}
	done := k >= total
	if !done && time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.last = time.Now()
	const width = 30
	fill := 0
	if total > 0 {
		fill = min(width, k*width/total)
	}
	fmt.Fprintf(b.w, "\r%s [%s%s] %d/%d %s", b.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), k, total, suffix)
	if done {
		fmt.Fprintln(b.w)
		b.ended = true
	}
}

// end finishes a bar that stopped early (e.g. interrupted).
func (b *progressBar) end() {
	if b != nil && b.w != nil && !b.last.IsZero() && !b.ended {
		fmt.Fprintln(b.w)
		b.ended = true
	}
}

// stepLine prints a training run's line for each step, "step k/n  FIELDS
// N tok/s  ETA d", redrawn in place on a terminal and one line a step
// anywhere else (through progressOut).
type stepLine struct {
	w      io.Writer // nil: quiet
	term   bool
	steps  int
	first  int // the steps done before this run (a resume); -1 until the first
	tokens int // tokens seen by this run
}

func newStepLine(stderr io.Writer, quiet bool, steps int) *stepLine {
	p := &stepLine{steps: steps, first: -1}
	if !quiet {
		p.w = progressOut(stderr)
		p.term = p.w != nil && isTerminal(p.w)
	}
	return p
}

// step counts step k's tokens and prints its line. elapsed is the run's
// time over all k steps, those before a resume included, so the rate
// counts this run's share of it.
func (p *stepLine) step(k, seen int, elapsed time.Duration, fields string) {
	if p.first < 0 {
		p.first = k - 1
	}
	p.tokens += seen
	if p.w == nil {
		return
	}
	eta := time.Duration(float64(elapsed) / float64(k) * float64(p.steps-k)).Round(time.Second)
	rate := float64(p.tokens) / (elapsed.Seconds() * float64(k-p.first) / float64(k))
	line := fmt.Sprintf("step %d/%d  %s  %.0f tok/s  ETA %s", k, p.steps, fields, rate, eta)
	if p.term {
		fmt.Fprintf(p.w, "\r%s ", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// end finishes the line redrawn on a terminal.
func (p *stepLine) end() {
	if p.term {
		fmt.Fprintln(p.w)
	}
}

package decode

import (
	"io"
	"strings"
	"unicode/utf8"
)

// stopWriter passes text through, holding back any tail that could be the
// start of a stop string, and cuts the text at the first stop string.
type stopWriter struct {
	stops   []string
	w       io.Writer
	pending string
	out     strings.Builder
	stopped bool
	err     error
}

// add appends text and reports whether a stop string was reached.
func (s *stopWriter) add(text string) bool {
	if s.stopped {
		return true
	}
	s.pending += text
	cut := -1
	for _, st := range s.stops {
		if st == "" {
			continue
		}
		if i := strings.Index(s.pending, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		s.write(s.pending[:cut])
		s.pending = ""
		s.stopped = true
		return true
	}
	hold := 0
	for _, st := range s.stops {
		for k := min(len(st)-1, len(s.pending)); k > hold; k-- {
			if strings.HasSuffix(s.pending, st[:k]) {
				hold = k
				break
			}
		}
	}
	// Never split a character: move the cut back to a rune start.
	n := len(s.pending) - hold
	for n > 0 && n < len(s.pending) && !utf8.RuneStart(s.pending[n]) {
		n--
	}
	s.write(s.pending[:n])
	s.pending = s.pending[n:]
	return false
}

func (s *stopWriter) flush() {
	s.write(s.pending)
	s.pending = ""
}

func (s *stopWriter) write(t string) {
	if t == "" {
		return
	}
	s.out.WriteString(t)
	if s.w != nil && s.err == nil {
		_, s.err = io.WriteString(s.w, t)
	}
}

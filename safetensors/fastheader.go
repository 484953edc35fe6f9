package safetensors

import "math"

// fastHeader reads a header in the layout every writer produces (plain
// strings, integer lists, no duplicates) about ten times faster than the
// exact path, which walks encoding/json tokens. ok is false as soon as
// anything departs from that layout; the caller then parses the header
// with the exact path, which says precisely what is wrong. err is set (with
// ok true) only for errors both paths report alike.
func fastHeader(h []byte) (entries []entry, meta map[string]string, err error, ok bool) {
	s := fastScanner{d: h}
	if !s.byte('{') {
		return nil, nil, nil, false
	}
	seen := map[string]struct{}{}
	if s.byte('}') {
		return nil, nil, nil, s.end()
	}
	for {
		key, good := s.str()
		if !good || !s.byte(':') {
			return nil, nil, nil, false
		}
		if _, dup := seen[key]; dup {
			return nil, nil, nil, false
		}
		seen[key] = struct{}{}
		if key == MetadataKey {
			if meta, good = s.metadata(); !good {
				return nil, nil, nil, false
			}
		} else {
			if len(entries) >= MaxTensors {
				return nil, nil, errTooManyTensors, true
			}
			e, good := s.entry(key)
			if !good {
				return nil, nil, nil, false
			}
			if err := checkEntry(&e); err != nil {
				return nil, nil, err, true
			}
			entries = append(entries, e)
		}
		if s.byte(',') {
			continue
		}
		if s.byte('}') && s.end() {
			return entries, meta, nil, true
		}
		return nil, nil, nil, false
	}
}

type fastScanner struct {
	d []byte
	p int
}

func (s *fastScanner) space() {
	for s.p < len(s.d) {
		switch s.d[s.p] {
		case ' ', '\t', '\n', '\r':
			s.p++
		default:
			return
		}
	}
}

// byte consumes c after optional white space.
func (s *fastScanner) byte(c byte) bool {
	s.space()
	if s.p < len(s.d) && s.d[s.p] == c {
		s.p++
		return true
	}
	return false
}

// end reports whether only white space (writers pad the header with spaces
// to align the data) is left.
func (s *fastScanner) end() bool {
	for ; s.p < len(s.d); s.p++ {
		if c := s.d[s.p]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// str reads a string without escapes or control characters (the header is
// valid UTF-8, checked before).
func (s *fastScanner) str() (string, bool) {
	if !s.byte('"') {
		return "", false
	}
	start := s.p
	for ; s.p < len(s.d); s.p++ {
		switch c := s.d[s.p]; {
		case c == '"':
			v := string(s.d[start:s.p])
			s.p++
			return v, true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// uints reads a list of JSON integers in [0, MaxInt64] that fit an int.
func (s *fastScanner) uints(dst []int64) ([]int64, bool) {
	if !s.byte('[') {
		return nil, false
	}
	if s.byte(']') {
		return dst, true
	}
	for {
		s.space()
		start := s.p
		var v int64
		for s.p < len(s.d) && s.d[s.p] >= '0' && s.d[s.p] <= '9' {
			d := int64(s.d[s.p] - '0')
			if v > (math.MaxInt64-d)/10 {
				return nil, false
			}
			v = v*10 + d
			s.p++
		}
		n := s.p - start
		if n == 0 || n > 1 && s.d[start] == '0' || int64(int(v)) != v {
			return nil, false
		}
		dst = append(dst, v)
		if s.byte(',') {
			continue
		}
		if s.byte(']') {
			return dst, true
		}
		return nil, false
	}
}

func (s *fastScanner) entry(name string) (entry, bool) {
	e := entry{name: name}
	if !s.byte('{') {
		return e, false
	}
	var have [3]bool
	var buf [8]int64
	for i := 0; i < 3; i++ {
		k, ok := s.str()
		if !ok || !s.byte(':') {
			return e, false
		}
		switch k {
		case "dtype":
			v, ok := s.str()
			if !ok || have[0] {
				return e, false
			}
			d, err := parseDType(v)
			if err != nil {
				return e, false
			}
			e.dtype, have[0] = d, true
		case "shape":
			dims, ok := s.uints(buf[:0])
			if !ok || have[1] {
				return e, false
			}
			e.shape = make([]int, len(dims))
			for j, d := range dims {
				e.shape[j] = int(d)
			}
			have[1] = true
		case "data_offsets":
			offs, ok := s.uints(buf[:0])
			if !ok || have[2] || len(offs) != 2 {
				return e, false
			}
			e.begin, e.end, have[2] = offs[0], offs[1], true
		default:
			return e, false
		}
		if i < 2 && !s.byte(',') {
			return e, false
		}
	}
	return e, s.byte('}')
}

func (s *fastScanner) metadata() (map[string]string, bool) {
	if !s.byte('{') {
		return nil, false
	}
	m := map[string]string{}
	if s.byte('}') {
		return m, true
	}
	for {
		k, ok := s.str()
		if !ok || !s.byte(':') {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		v, ok := s.str()
		if !ok {
			return nil, false
		}
		m[k] = v
		if s.byte(',') {
			continue
		}
		return m, s.byte('}')
	}
}

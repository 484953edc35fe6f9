package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// A normalizer rewrites the text of one segment before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

type normalizerSeq []normalizer

func (q normalizerSeq) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}

type unicodeForm struct{ f norm.Form }

func (u unicodeForm) normalize(s string) string { return u.f.String(s) }

type lowercase struct{}

func (lowercase) normalize(s string) string {
	// Rust's to_lowercase maps U+0130 to "i̇"; Go's to plain "i".
	if strings.ContainsRune(s, 'İ') {
		s = strings.ReplaceAll(s, "İ", "i\u0307")
	}
	return strings.ToLower(s)
}

type strip struct{ left, right bool }

func (st strip) normalize(s string) string {
	if st.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if st.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

type replace struct {
	pat     finder
	content string
}

func (r replace) normalize(s string) string {
	ms := r.pat.findAll(s, nil)
	if len(ms) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range ms {
		b.WriteString(s[last:m[0]])
		b.WriteString(r.content)
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

type prepend string

func (p prepend) normalize(s string) string {
	if s == "" {
		return s
	}
	return string(p) + s
}

// patternJSON is {"String": "..."} or {"Regex": "..."}.
type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func (p patternJSON) finder() (finder, error) {
	switch {
	case p.String != nil:
		return literal(*p.String), nil
	case p.Regex != nil:
		return compileRegex(*p.Regex)
	}
	return nil, fmt.Errorf("pattern is neither String nor Regex")
}

type normalizerJSON struct {
	Type        string            `json:"type"`
	Normalizers []json.RawMessage `json:"normalizers"`
	Pattern     patternJSON       `json:"pattern"`
	Content     string            `json:"content"`
	Prepend     string            `json:"prepend"`
	Left        bool              `json:"left"`
	Right       bool              `json:"right"`
	Charsmap    *string           `json:"precompiled_charsmap"`

	CleanText    *bool `json:"clean_text"`
	ChineseChars *bool `json:"handle_chinese_chars"`
	StripAccents *bool `json:"strip_accents"`
	Lowercase    *bool `json:"lowercase"`
}

func newNormalizer(raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var j normalizerJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("normalizer: %v", err)
	}
	switch j.Type {
	case "Sequence":
		var q normalizerSeq
		for _, r := range j.Normalizers {
			n, err := newNormalizer(r)
			if err != nil {
				return nil, err
			}
			if n != nil {
				q = append(q, n)
			}
		}
		return q, nil
	case "NFC":
		return unicodeForm{norm.NFC}, nil
	case "NFD":
		return unicodeForm{norm.NFD}, nil
	case "NFKC":
		return unicodeForm{norm.NFKC}, nil
	case "NFKD":
		return unicodeForm{norm.NFKD}, nil
	case "Lowercase":
		return lowercase{}, nil
	case "Strip":
		return strip{j.Left, j.Right}, nil
	case "Replace":
		f, err := j.Pattern.finder()
		if err != nil {
			return nil, fmt.Errorf("normalizer Replace: %v", err)
		}
		return replace{f, j.Content}, nil
	case "Prepend":
		return prepend(j.Prepend), nil
	case "StripAccents":
		return stripAccents{}, nil
	case "BertNormalizer":
		b := bertNormalizer{cleanText: true, chineseChars: true, lowercase: true}
		if j.CleanText != nil {
			b.cleanText = *j.CleanText
		}
		if j.ChineseChars != nil {
			b.chineseChars = *j.ChineseChars
		}
		if j.Lowercase != nil {
			b.lowercase = *j.Lowercase
		}
		b.stripAccents = b.lowercase
		if j.StripAccents != nil {
			b.stripAccents = *j.StripAccents
		}
		return b, nil
	case "Precompiled":
		if j.Charsmap == nil || *j.Charsmap == "" {
			return nil, nil // an empty charsmap normalizes nothing
		}
		return newPrecompiled(*j.Charsmap)
	}
	return nil, fmt.Errorf("normalizer %q is not supported", j.Type)
}

func isNull(raw json.RawMessage) bool {
	s := bytes.TrimSpace(raw)
	return len(s) == 0 || string(s) == "null"
}

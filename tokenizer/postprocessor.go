package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
)

// For a single sequence, every supported post-processor adds fixed ids
// before and after the encoded text, so it reduces to a prefix and a
// suffix.
type postProcessor struct {
	prefix, suffix []int
}

type templatePieceJSON struct {
	SpecialToken *struct {
		ID string `json:"id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID string `json:"id"`
	} `json:"Sequence"`
}

type postProcessorJSON struct {
	Type          string            `json:"type"`
	Processors    []json.RawMessage `json:"processors"`
	Single        json.RawMessage   `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
	Sep *[2]json.RawMessage `json:"sep"`
	Cls *[2]json.RawMessage `json:"cls"`
}

func newPostProcessor(raw json.RawMessage) (postProcessor, error) {
	var pp postProcessor
	if isNull(raw) {
		return pp, nil
	}
	var j postProcessorJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return pp, fmt.Errorf("post_processor: %v", err)
	}
	switch j.Type {
	case "ByteLevel":
		return pp, nil
	case "Sequence":
		for _, r := range j.Processors {
			p, err := newPostProcessor(r)
			if err != nil {
				return pp, err
			}
			// Each processor wraps the result of the ones before it.
			pp.prefix = append(append([]int(nil), p.prefix...), pp.prefix...)
			pp.suffix = append(pp.suffix, p.suffix...)
		}
		return pp, nil
	case "TemplateProcessing":
		var pieces []templatePieceJSON
		var text string
		if err := json.Unmarshal(j.Single, &pieces); err != nil {
			// The single template may also be written as a string: "<s> $A".
			if json.Unmarshal(j.Single, &text) != nil {
				return pp, fmt.Errorf("post_processor TemplateProcessing: single: %v", err)
			}
			pieces = parseTemplateString(text)
		}
		seen := false
		for _, p := range pieces {
			switch {
			case p.Sequence != nil:
				if seen {
					return pp, fmt.Errorf("post_processor TemplateProcessing: single template has more than one sequence")
				}
				seen = true
			case p.SpecialToken != nil:
				st, ok := j.SpecialTokens[p.SpecialToken.ID]
				if !ok {
					return pp, fmt.Errorf("post_processor TemplateProcessing: special token %q is not defined", p.SpecialToken.ID)
				}
				if seen {
					pp.suffix = append(pp.suffix, st.IDs...)
				} else {
					pp.prefix = append(pp.prefix, st.IDs...)
				}
			default:
				return pp, fmt.Errorf("post_processor TemplateProcessing: unknown template piece")
			}
		}
		if !seen {
			return pp, fmt.Errorf("post_processor TemplateProcessing: single template has no sequence")
		}
		return pp, nil
	case "RobertaProcessing", "BertProcessing":
		if j.Sep == nil || j.Cls == nil {
			return pp, fmt.Errorf("post_processor %s: needs sep and cls", j.Type)
		}
		var cls, sep int
		if err := json.Unmarshal(j.Cls[1], &cls); err != nil {
			return pp, fmt.Errorf("post_processor %s: cls: %v", j.Type, err)
		}
		if err := json.Unmarshal(j.Sep[1], &sep); err != nil {
			return pp, fmt.Errorf("post_processor %s: sep: %v", j.Type, err)
		}
		return postProcessor{[]int{cls}, []int{sep}}, nil
	}
	return pp, fmt.Errorf("post_processor %q is not supported", j.Type)
}

// parseTemplateString parses the string form of a template: "$A" or "$0"
// for the sequence, anything else (optionally with ":type_id") a special
// token.
func parseTemplateString(s string) []templatePieceJSON {
	var out []templatePieceJSON
	for _, f := range strings.Fields(s) {
		name := f
		if i := strings.LastIndexByte(f, ':'); i > 0 {
			name = f[:i]
		}
		var p templatePieceJSON
		if len(name) > 0 && name[0] == '$' {
			p.Sequence = &struct {
				ID string `json:"id"`
			}{name}
		} else {
			p.SpecialToken = &struct {
				ID string `json:"id"`
			}{name}
		}
		out = append(out, p)
	}
	return out
}

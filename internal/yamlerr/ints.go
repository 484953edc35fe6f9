package yamlerr

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// CheckInts refuses a number written with a fraction or an exponent where
// the Go value v (a struct, or a pointer to one) wants an integer: yaml
// decodes "limit: 2.5" into an int as 2 without a word. doc is the parsed
// text v was decoded from; keys are matched to fields by their yaml tags,
// through aliases and merge keys ("<<: *defaults"), which decode as the
// values they stand for.
func CheckInts(doc *yaml.Node, v any) error {
	return checkInts(doc, reflect.TypeOf(v), "", 0)
}

// maxAliasDepth bounds the aliases followed within one another: yaml
// refuses an alias to itself when decoding, but a walk of the node tree
// would not stop.
const maxAliasDepth = 64

func checkInts(n *yaml.Node, t reflect.Type, key string, aliases int) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.AliasNode:
		if n.Alias == nil || aliases >= maxAliasDepth {
			return nil
		}
		return checkInts(n.Alias, t, key, aliases+1)
	case n.Kind == yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkInts(c, t, key, aliases); err != nil {
				return err
			}
		}
	case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for _, c := range n.Content {
			if err := checkInts(c, t.Elem(), key, aliases); err != nil {
				return err
			}
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				// The merged mapping (or list of them) fills the
				// same struct.
				if err := checkMerge(val, t, key, aliases); err != nil {
					return err
				}
				continue
			}
			for j := 0; j < t.NumField(); j++ {
				if f := t.Field(j); strings.Split(f.Tag.Get("yaml"), ",")[0] == k.Value {
					if err := checkInts(val, f.Type, k.Value, aliases); err != nil {
						return err
					}
				}
			}
		}
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float":
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return fmt.Errorf("line %d: %s: %s is not an integer", n.Line, key, n.Value)
		}
	}
	return nil
}

// checkMerge checks the value of a merge key: a mapping, an alias of
// one, or a list of those.
func checkMerge(n *yaml.Node, t reflect.Type, key string, aliases int) error {
	if n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			if err := checkInts(c, t, key, aliases); err != nil {
				return err
			}
		}
		return nil
	}
	return checkInts(n, t, key, aliases)
}

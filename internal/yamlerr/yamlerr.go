package yamlerr

import (
	"errors"
	"regexp"
	"strings"
)

var (
	reType  = regexp.MustCompile(` in type [\w.]+`)
	reField = regexp.MustCompile(`field (\S+) not found`)
	reInto  = regexp.MustCompile("cannot unmarshal !!(\\w+) (`[^`]*` )?into [\\w.\\[\\]*]+")
)

// kinds names YAML's tags in words.
var kinds = map[string]string{"seq": "a list", "map": "a mapping", "str": "a string", "int": "an integer",
	"float": "a number", "bool": "true or false", "null": "null"}

// Clean rewrites a decoding error's message, as
//
//	yaml: unmarshal errors:
//	  line 3: field pth not found in type bench.ModelEntry
//
// into "line 3: unknown field "pth"". A nil error stays nil.
func Clean(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg = reType.ReplaceAllString(msg, "")
	msg = reField.ReplaceAllString(msg, `unknown field "$1"`)
	msg = reInto.ReplaceAllStringFunc(msg, func(m string) string {
		sub := reInto.FindStringSubmatch(m)
		kind := kinds[sub[1]]
		if kind == "" {
			kind = sub[1]
		}
		return "cannot unmarshal " + kind + " " + sub[2] + "here"
	})
	return errors.New(strings.ReplaceAll(msg, "\n  ", "; "))
}

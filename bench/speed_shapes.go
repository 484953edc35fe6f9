package bench

import (
	"embed"
	"fmt"
	"sort"
	"strings"
)

// The configs of the model shapes the speed targets are quoted for, as
// published by their authors (config.json), for `moco synth --shape`.
//
//go:embed testdata/smollm2-135m.json testdata/qwen2.5-0.5b.json
var shapeFS embed.FS

var shapeFiles = map[string]string{
	"smollm2-135m": "testdata/smollm2-135m.json",
	"qwen2.5-0.5b": "testdata/qwen2.5-0.5b.json",
}

// ShapeNames lists the shapes ShapeConfig knows.
func ShapeNames() []string {
	names := make([]string, 0, len(shapeFiles))
	for n := range shapeFiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ShapeConfig returns the config.json of a named model shape
// ("smollm2-135m" or "qwen2.5-0.5b").
func ShapeConfig(name string) ([]byte, error) {
	f, ok := shapeFiles[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("unknown shape %q (known: %s)", name, strings.Join(ShapeNames(), ", "))
	}
	return shapeFS.ReadFile(f)
}

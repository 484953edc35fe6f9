package safetensors

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mocolab/moco/internal/testutil"
)

// TestShapeOfStrings: the reference implementation (serde into Vec<usize>)
// rejects a shape or offsets holding strings; so do we.
func TestShapeOfStrings(t *testing.T) {
	for _, h := range []string{
		`{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`,
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":["0",8]}}`,
		`{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}`,
		`{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,8]}}`,
	} {
		if _, err := Parse(image(h, make([]byte, 8))); err == nil || !strings.Contains(err.Error(), "not a non-negative integer") {
			t.Errorf("%s: err = %v, want element not a non-negative integer", h, err)
		}
	}
}

// manyTensors is a header declaring n zero-size tensors.
func manyTensors(n int) []byte {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"model.layers.%d.mlp.weight":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`, i)
	}
	b.WriteString("}")
	return image(b.String(), nil)
}

// TestTooManyTensors: a header of more than MaxTensors tensors (1.4M took
// 17 s and 1 GB before) is refused quickly, and the count it allows is read
// within bounded time and memory.
func TestTooManyTensors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 20 MB header")
	}
	img := manyTensors(MaxTensors + 1)
	err := testutil.Bounded(t, 400<<20, 10*time.Second, func() error { _, err := Parse(img); return err })
	if err == nil || !strings.Contains(err.Error(), "more than 262144 tensors") {
		t.Fatalf("err = %v, want the tensor count limit", err)
	}
	img = manyTensors(MaxTensors)
	if err := testutil.Bounded(t, 400<<20, 10*time.Second, func() error { _, err := Parse(img); return err }); err != nil {
		t.Fatal(err)
	}
}

// TestFastHeaderAgrees: the fast path reads the headers of the table tests
// the way the exact parser does.
func TestFastHeaderAgrees(t *testing.T) {
	for _, h := range []string{
		`{}`, ` { } `, `{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`,
		`{"b":{"shape":[1,2],"data_offsets":[8,16],"dtype":"BF16"}, "a" : {"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   `,
		`{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`,
		`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`,
		`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,4]}}`,
		`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`,
		`{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}`,
		`{"a\u00e9":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`,
	} {
		checkFastHeader(t, []byte(h))
	}
}

func checkFastHeader(t *testing.T, h []byte) {
	t.Helper()
	if !utf8.Valid(h) {
		return // parseHeader refuses it before either path
	}
	fe, fm, ferr, ok := fastHeader(h)
	if !ok {
		return
	}
	ee, em, eerr := exactHeader(h)
	if (ferr == nil) != (eerr == nil) || ferr != nil && ferr.Error() != eerr.Error() {
		t.Fatalf("%q: fast error %v, exact error %v", h, ferr, eerr)
	}
	if ferr == nil && (!reflect.DeepEqual(fe, ee) || !reflect.DeepEqual(fm, em)) {
		t.Fatalf("%q: fast %v %v, exact %v %v", h, fe, fm, ee, em)
	}
}

// FuzzFastHeader compares the fast header path with the exact one.
func FuzzFastHeader(f *testing.F) {
	f.Add([]byte(`{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`))
	f.Add([]byte(`{"a":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}, "b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}  `))
	f.Add([]byte(`{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`))
	f.Fuzz(func(t *testing.T, h []byte) {
		if _, _, err := parseHeader(h); err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
		checkFastHeader(t, h)
	})
}

// TestIndexBounds: an index naming more shards or tensors than any real
// checkpoint is refused before a file is opened.
func TestIndexBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"weight_map":{`)
	for i := 0; i <= maxShards; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"t%d":"model-%05d.safetensors"`, i, i)
	}
	b.WriteString("}}")
	dir := t.TempDir()
	p := filepath.Join(dir, IndexName)
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenIndex(p); err == nil || !strings.Contains(err.Error(), "4097 shards, more than the limit of 4096") {
		t.Errorf("err = %v", err)
	}
}

package safetensors

import (
	"bytes"
	"sort"
	"testing"
)

// FuzzParse feeds arbitrary images to the parser. It must never panic, and
// whatever it accepts must be self-consistent and survive a round trip
// through the writer's encoding.
func FuzzParse(f *testing.F) {
	f.Add(image(`{}`, nil))
	f.Add(image(`{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(image(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"b":{"dtype":"BF16","shape":[],"data_offsets":[2,4]},"c":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 4)))
	f.Add(image(`{"a":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}}  `, nil))
	f.Add(image(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(withLength(1<<40, "{}"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		names := file.Names()
		if !sort.StringsAreSorted(names) || len(names) != len(file.Order()) {
			t.Fatalf("names %q, order %q", names, file.Order())
		}
		var covered int
		var tensors []*Tensor
		for _, n := range file.Order() {
			x, ok := file.Tensor(n)
			if !ok || x.Name != n {
				t.Fatalf("tensor %q listed but not found", n)
			}
			if len(x.Data) != x.NumElements()*x.DType.Size() {
				t.Fatalf("tensor %q: %d bytes for shape %v of %s", n, len(x.Data), x.Shape, x.DType)
			}
			covered += len(x.Data)
			tensors = append(tensors, x)
		}
		if body := len(data) - 8 - int(file.HeaderSize); covered != body {
			t.Fatalf("tensors cover %d bytes of a %d-byte data section", covered, body)
		}
		// Round trip through the writer's encoding.
		headers := make([]Header, len(tensors))
		for i, x := range tensors {
			headers[i] = Header{Name: x.Name, DType: x.DType, Shape: x.Shape}
		}
		prefix, _, err := encodeHeader(headers, file.Metadata)
		if err != nil {
			if _, ok := file.Tensor(""); ok {
				return // the writer refuses empty names; readers accept them
			}
			t.Fatalf("cannot re-encode an accepted header: %v", err)
		}
		img := prefix
		for _, x := range tensors {
			img = append(img, x.Data...)
		}
		again, err := Parse(img)
		if err != nil {
			t.Fatalf("re-encoded image does not parse: %v\n%q", err, prefix)
		}
		if len(again.Names()) != len(names) || len(again.Metadata) != len(file.Metadata) {
			t.Fatalf("round trip changed the tensor or metadata count")
		}
		for k, v := range file.Metadata {
			if again.Metadata[k] != v {
				t.Fatalf("metadata %q: %q became %q", k, v, again.Metadata[k])
			}
		}
		for _, x := range tensors {
			y, ok := again.Tensor(x.Name)
			if !ok || y.DType != x.DType || !equalInts(y.Shape, x.Shape) || !bytes.Equal(y.Data, x.Data) {
				t.Fatalf("tensor %q changed in the round trip", x.Name)
			}
		}
	})
}

// FuzzParseIndex feeds arbitrary index files to the index parser, which
// must never panic and must return a non-empty weight map when it succeeds.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"metadata":{"total_size":8},"weight_map":{"a":"model-00001-of-00002.safetensors"}}`))
	f.Add([]byte(`{"weight_map":{"a":"x","a":"y"}}`))
	f.Add([]byte(`{"weight_map":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := parseIndex(data)
		if err != nil {
			return
		}
		if len(ix.WeightMap) == 0 {
			t.Fatal("accepted an index without tensors")
		}
	})
}

package safetensors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeSharded(t *testing.T, dir string, in []*Tensor, max int64, meta map[string]string) {
	t.Helper()
	headers := make([]Header, len(in))
	for i, x := range in {
		headers[i] = Header{Name: x.Name, DType: x.DType, Shape: x.Shape}
	}
	w, err := CreateSharded(dir, headers, max, meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range in {
		if err := w.Write(x.Name, x.Data); err != nil {
			w.Abort()
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func u8(name string, n int) *Tensor {
	d := make([]byte, n)
	for i := range d {
		d[i] = byte(n + i)
	}
	return &Tensor{Name: name, DType: U8, Shape: []int{n}, Data: d}
}

func TestShardedRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "model")
	// With a 64-byte limit: [a] (a+b would be 80), [b], [c] (over the
	// limit, alone), [d e].
	in := []*Tensor{u8("a", 40), u8("b", 40), u8("c", 100), u8("d", 8), u8("e", 8)}
	writeSharded(t, dir, in, 64, map[string]string{"format": "pt"})

	files := []string{"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
		"model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"}
	if got, want := dirNames(t, dir), strings.Join(files, ",")+","+IndexName; got != want {
		t.Fatalf("folder holds %s, want %s", got, want)
	}
	var ix struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, IndexName))
	if err := json.Unmarshal(b, &ix); err != nil {
		t.Fatal(err)
	}
	if ix.Metadata["total_size"] != float64(196) {
		t.Errorf("total_size %v, want 196", ix.Metadata["total_size"])
	}
	wantMap := map[string]string{"a": files[0], "b": files[1], "c": files[2], "d": files[3], "e": files[3]}
	for k, v := range wantMap {
		if ix.WeightMap[k] != v {
			t.Errorf("weight_map[%s] = %q, want %q", k, ix.WeightMap[k], v)
		}
	}
	if len(ix.WeightMap) != len(wantMap) {
		t.Errorf("weight_map %v, want %v", ix.WeightMap, wantMap)
	}

	resident, err := OpenDirWith(dir, Resident)
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, resident, in)
	if err := resident.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	checkSame(t, src, in)
	sh := src.(*Sharded)
	if len(sh.Files()) != 4 || sh.Files()[3].Metadata["format"] != "pt" {
		t.Errorf("shards %d, last metadata %v", len(sh.Files()), sh.Files()[3].Metadata)
	}

	// Deterministic: the same write elsewhere gives the same bytes.
	dir2 := filepath.Join(t.TempDir(), "model")
	writeSharded(t, dir2, in, 64, map[string]string{"format": "pt"})
	for _, name := range append(files, IndexName) {
		b1, _ := os.ReadFile(filepath.Join(dir, name))
		b2, _ := os.ReadFile(filepath.Join(dir2, name))
		if string(b1) != string(b2) {
			t.Errorf("%s differs between two identical writes", name)
		}
	}
}

func TestShardedSingle(t *testing.T) {
	dir := t.TempDir()
	in := sampleTensors()
	writeSharded(t, dir, in, 0, nil)
	if got := dirNames(t, dir); got != SingleName {
		t.Fatalf("folder holds %s, want only %s", got, SingleName)
	}
	src, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	checkSame(t, src, in)
}

func TestShardedWriterErrors(t *testing.T) {
	dir := t.TempDir()
	in := []*Tensor{u8("a", 4), u8("b", 4), u8("c", 4)}
	headers := []Header{{"a", U8, []int{4}}, {"b", U8, []int{4}}, {"c", U8, []int{4}}}

	// Missing tensor: Close fails, nothing is left behind.
	w, err := CreateSharded(dir, headers, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write("a", in[0].Data)
	w.Write("b", in[1].Data)
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), `only 2 of 3 tensors were written (next missing: "c")`) {
		t.Fatalf("Close: %v", err)
	}
	if got := dirNames(t, dir); got != "" {
		t.Errorf("after a failed Close the folder holds %s", got)
	}

	// Abort midway leaves nothing.
	w, _ = CreateSharded(dir, headers, 4, nil)
	w.Write("a", in[0].Data)
	if err := w.Write("c", in[2].Data); err == nil || !strings.Contains(err.Error(), `got tensor "c", want "b"`) {
		t.Fatalf("out-of-order Write: %v", err)
	}
	w.Abort()
	if got := dirNames(t, dir); got != "" {
		t.Errorf("after Abort the folder holds %s", got)
	}

	// A model.safetensors would shadow new shards.
	os.WriteFile(filepath.Join(dir, SingleName), nil, 0o644)
	if _, err := CreateSharded(dir, headers, 4, nil); err == nil || !strings.Contains(err.Error(), "would shadow a sharded checkpoint") {
		t.Fatalf("CreateSharded over model.safetensors: %v", err)
	}
}

func TestOpenIndexErrors(t *testing.T) {
	dir := t.TempDir()
	writeSharded(t, dir, []*Tensor{u8("a", 4), u8("b", 4)}, 4, nil)
	s1, s2 := "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	tests := []struct {
		name, index, want string
	}{
		{"valid", `{"weight_map":{"a":"` + s1 + `","b":"` + s2 + `"}}`, ""},
		{"subset", `{"metadata":{"total_size":8},"weight_map":{"b":"` + s2 + `"}}`, ""},
		{"missing shard file", `{"weight_map":{"a":"` + s1 + `","b":"model-9.safetensors"}}`, "shard model-9.safetensors is missing"},
		{"tensor not in its shard", `{"weight_map":{"a":"` + s2 + `"}}`, `tensor "a" is mapped to ` + s2 + `, which does not contain it`},
		{"duplicate tensor", `{"weight_map":{"a":"` + s1 + `","a":"` + s2 + `"}}`, `weight_map: duplicate tensor name "a"`},
		{"shard in another folder", `{"weight_map":{"a":"../` + s1 + `"}}`, `shard name "../` + s1 + `" must be a file name in the same folder`},
		{"shard not a string", `{"weight_map":{"a":1}}`, `weight_map: shard of "a" is a number, want a file name`},
		{"empty weight_map", `{"weight_map":{}}`, "index has no tensors in weight_map"},
		{"no weight_map", `{"metadata":{}}`, "index has no tensors in weight_map"},
		{"invalid JSON", `{"weight_map":`, "index: invalid JSON"},
		{"not an object", `[]`, "index is a list, want a JSON object"},
		{"metadata not an object", `{"metadata":3,"weight_map":{"a":"` + s1 + `"}}`, "index: metadata is a number, want an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "test.index.json")
			if err := os.WriteFile(p, []byte(tt.index), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := OpenIndex(p)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("OpenIndex succeeded, want error %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), p+": ") {
				t.Fatalf("error %q\nwant %q after the path", err, tt.want)
			}
		})
	}

	// A corrupt shard is reported with its name.
	os.WriteFile(filepath.Join(dir, s2), []byte{1, 2, 3}, 0o644)
	_, err := OpenIndex(filepath.Join(dir, IndexName))
	if err == nil || !strings.Contains(err.Error(), "shard "+filepath.Join(dir, s2)+": file is 3 bytes") {
		t.Fatalf("corrupt shard: %v", err)
	}
	if src, err := OpenDir(t.TempDir()); src != nil || err == nil || !strings.Contains(err.Error(), "no model.safetensors and no model.safetensors.index.json") {
		t.Fatalf("OpenDir of an empty folder: %v, %v", src, err)
	}
	// A failed OpenDir returns a nil interface, not a typed nil pointer,
	// so callers can test src != nil.
	if src, err := OpenDir(dir); src != nil || err == nil {
		t.Fatalf("OpenDir with a corrupt shard: %#v, %v", src, err)
	}
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, SingleName), nil, 0o644)
	if src, err := OpenDir(broken); src != nil || err == nil || !strings.HasSuffix(err.Error(), "file is empty") {
		t.Fatalf("OpenDir with an empty model.safetensors: %#v, %v", src, err)
	}
}

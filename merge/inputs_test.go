package merge

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/safetensors"
)

// writeModel writes tensors of random bf16 weights (and an empty tensor,
// a scalar and an I64 one) to dir, in shards of shard bytes (0: one file),
// with embedRows rows of 64 in the embeddings.
func writeModel(t *testing.T, dir string, seed uint64, shard int64, embedRows int) {
	writeModelOf(t, safetensors.BF16, dir, seed, shard, embedRows)
}

// writeModelOf is writeModel with the floating-point tensors in dt (BF16
// or F32).
func writeModelOf(t *testing.T, fdt safetensors.DType, dir string, seed uint64, shard int64, embedRows int) {
	t.Helper()
	r := rng{s: seed}
	var ts []*safetensors.Tensor
	add := func(name string, dt safetensors.DType, shape ...int) {
		tn := &safetensors.Tensor{Name: name, DType: dt, Shape: shape}
		tn.Data = make([]byte, tn.NumElements()*dt.Size())
		for i := 0; i+dt.Size() <= len(tn.Data); i += dt.Size() {
			v := float32((r.float64()*2 - 1) * 0.05)
			if dt == safetensors.F32 {
				binary.LittleEndian.PutUint32(tn.Data[i:], math.Float32bits(v))
				continue
			}
			h := safetensors.F32ToBF16(v)
			tn.Data[i], tn.Data[i+1] = byte(h), byte(h>>8)
		}
		ts = append(ts, tn)
	}
	add("model.embed_tokens.weight", fdt, embedRows, 64)
	for l := range 2 {
		p := "model.layers." + string(rune('0'+l)) + "."
		add(p+"mlp.up_proj.weight", fdt, 80, 64)
		add(p+"self_attn.q_proj.weight", fdt, 64, 64)
		add(p+"self_attn.q_proj.bias", fdt, 64)
		add(p+"input_layernorm.weight", fdt, 64)
		add(p+"empty", fdt, 0)
	}
	add("model.norm.weight", fdt, 64)
	add("model.scale", fdt)
	add("model.positions", safetensors.I64, 5)
	hs := make([]safetensors.Header, len(ts))
	for i, tn := range ts {
		hs[i] = safetensors.Header{Name: tn.Name, DType: tn.DType, Shape: tn.Shape}
	}
	w, err := safetensors.CreateSharded(dir, hs, shard, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range ts {
		if err := w.Write(tn.Name, tn.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"num_hidden_layers": 2}`), 0o644)
}

// TestInputReader: every tensor of a single-file and of a sharded model
// that fits the budget is read into the reader's buffers, with the bytes
// of the mapping; tensors over the budget, and sets of tensors a file
// could not be indexed for, are left in place.
func TestInputReader(t *testing.T) {
	for _, shard := range []int64{0, 20000} {
		dir := t.TempDir()
		writeModel(t, dir, 1, shard, 512)
		in, err := OpenModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Src.Close()
		if _, ok := in.Src.(*safetensors.Sharded); ok != (shard > 0) {
			t.Fatalf("shard %d: source %T", shard, in.Src)
		}
		const budget = 60000 // the embeddings (65536 bytes) are over it
		r := newInputReader([]*Input{&in}, budget)
		read := 0
		for _, name := range in.Src.Names() {
			tn, _ := in.Src.Tensor(name)
			got, release, err := r.load([]*safetensors.Tensor{tn})
			if err != nil {
				t.Fatal(err)
			}
			g := got[0]
			if g.Name != tn.Name || g.DType != tn.DType || len(g.Shape) != len(tn.Shape) || !bytes.Equal(g.Data, tn.Data) {
				t.Fatalf("shard %d: %s: loaded tensor differs from the mapping", shard, name)
			}
			inPlace := len(tn.Data) == 0 || &g.Data[0] == &tn.Data[0]
			if over := len(tn.Data) > budget; inPlace != (over || len(tn.Data) == 0) {
				t.Fatalf("shard %d: %s (%d bytes): read in place %v", shard, name, len(tn.Data), inPlace)
			}
			if !inPlace {
				read++
			}
			release()
		}
		if read < 10 {
			t.Fatalf("shard %d: only %d tensors read", shard, read)
		}
		r.close()
		// Two tensors (10240 bytes each) together over the budget stay
		// in place; one alone is read.
		r = newInputReader([]*Input{&in}, 15000)
		a, _ := in.Src.Tensor("model.layers.0.mlp.up_proj.weight")
		b, _ := in.Src.Tensor("model.layers.1.mlp.up_proj.weight")
		got, release, _ := r.load([]*safetensors.Tensor{a, b})
		if &got[0].Data[0] != &a.Data[0] || &got[1].Data[0] != &b.Data[0] {
			t.Fatal("tensors over the budget together were read")
		}
		release()
		if got, release, _ = r.load([]*safetensors.Tensor{a}); &got[0].Data[0] == &a.Data[0] {
			t.Fatal("a tensor within the budget was not read")
		}
		release()
		r.close()
	}
	// Inputs in memory are not indexed.
	m := mem("m", f32t("w", []int{2}, 1, 2))
	if r := newInputReader([]*Input{&m}, 1<<20); r.pool != nil || len(r.locs) != 0 {
		t.Fatal("a memory source was indexed")
	}
}

// openWeighted opens the models in dirs with weight and density 0.5, for
// the WriteFolder tests; they are closed when the test ends.
func openWeighted(t *testing.T, dirs []string) []Input {
	t.Helper()
	var ins []Input
	for _, d := range dirs {
		in, err := OpenModel(d)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Src.Close() })
		in.Params = Params{"weight": Scalar(0.5), "density": Scalar(0.5)}
		ins = append(ins, in)
	}
	return ins
}

// specOf is a merge of ins by method as the WriteFolder tests run it: the
// first input the base, but for the methods that take none, and one
// model for the methods that take one.
func specOf(method string, ins []Input) *Spec {
	s := &Spec{Method: method, Base: &ins[0], Models: ins[1:], Seed: 5}
	switch method {
	case "linear", "multislerp", "karcher":
		s.Base, s.Models = nil, ins
	case "slerp", "arcee_fusion", "nearswap":
		s.Models = ins[1:2]
	}
	if method == "nearswap" {
		s.Params = Params{"t": Scalar(0.01)}
	}
	return s
}

// TestWriteFolderReadMatchesInPlace: merges of models on disk (one of
// them sharded) written with the inputs read by pread (all tensors but
// the embeddings: three layer tensors fit in the embeddings' bytes; the
// embeddings' blocks read from the files by view.block where a pass
// reads them in order, view.read for float32 ones) hold the same bytes
// as with the inputs read in place, through the maps, for bfloat16 and
// float32 models.
func TestWriteFolderReadMatchesInPlace(t *testing.T) {
	for _, dt := range []safetensors.DType{safetensors.BF16, safetensors.F32} {
		t.Run(string(dt), func(t *testing.T) { testWriteFolderReadMatchesInPlace(t, dt) })
	}
}

func testWriteFolderReadMatchesInPlace(t *testing.T, dt safetensors.DType) {
	root := t.TempDir()
	var dirs []string
	for i, shard := range []int64{0, 20000, 0} {
		d := filepath.Join(root, "m"+string(rune('0'+i)))
		writeModelOf(t, dt, d, uint64(i+1), shard, 512)
		dirs = append(dirs, d)
	}
	write := func(method string, off bool) []byte {
		s := specOf(method, openWeighted(t, dirs))
		out := filepath.Join(t.TempDir(), "out")
		readOff = off
		defer func() { readOff = false }()
		if err := WriteFolder(context.Background(), s, out, FolderOptions{Dirs: dirs}); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		b, err := os.ReadFile(filepath.Join(out, safetensors.SingleName))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, method := range []string{"linear", "task_arithmetic", "ties", "dare_ties", "breadcrumbs", "breadcrumbs_ties", "della", "slerp", "nuslerp", "karcher", "model_stock", "sce", "arcee_fusion", "ram", "nearswap"} {
		if !bytes.Equal(write(method, false), write(method, true)) {
			t.Fatalf("%s: output differs with the inputs read by pread", method)
		}
	}
}

// TestMergeReleasesInputs merges three models on disk with their tensors
// read in place and finds, in /proc/self/smaps, that the inputs' maps kept
// under a quarter of their files resident: each tensor's pages were
// released once merged, or once written when copied through, where before
// the whole of each input stayed. (Not nothing: the page cache's large
// folios map a neighbour's pages with the next tensor's, so the tensors
// are 4 MiB.)
func TestMergeReleasesInputs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("pages are released only on Linux")
	}
	root := t.TempDir()
	r := rng{s: 9}
	var dirs []string
	for i := range 3 {
		var ts []*safetensors.Tensor
		for _, name := range []string{"model.embed_tokens.weight", "lm_head.weight", "model.layers.0.mlp.up_proj.weight"} {
			tn := &safetensors.Tensor{Name: name, DType: safetensors.BF16, Shape: []int{2048, 1024}}
			tn.Data = make([]byte, 2*2048*1024)
			for j := 0; j < len(tn.Data); j += 2 {
				h := safetensors.F32ToBF16(float32((r.float64()*2 - 1) * 0.05))
				tn.Data[j], tn.Data[j+1] = byte(h), byte(h>>8)
			}
			ts = append(ts, tn)
		}
		ts = append(ts, &safetensors.Tensor{Name: "model.norm.weight", DType: safetensors.BF16, Shape: []int{1024}, Data: make([]byte, 2048)},
			// Not a float: copied through from the base, by the writer.
			&safetensors.Tensor{Name: "model.ids", DType: safetensors.I32, Shape: []int{1024, 1024}, Data: make([]byte, 4<<20)})
		d := filepath.Join(root, fmt.Sprint("m", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := safetensors.WriteFile(filepath.Join(d, safetensors.SingleName), ts, nil); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "config.json"), []byte(`{"num_hidden_layers": 1}`), 0o644); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	var ins []Input
	for _, d := range dirs {
		in, err := OpenModel(d)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Src.Close()
		in.Params = Params{"weight": Scalar(0.5), "density": Scalar(0.5)}
		ins = append(ins, in)
	}
	readOff = true // every tensor read in place, through the maps
	defer func() { readOff = false }()
	s := &Spec{Method: "ties", Base: &ins[0], Models: ins[1:], Seed: 5}
	if err := WriteFolder(context.Background(), s, filepath.Join(t.TempDir(), "out"), FolderOptions{Dirs: dirs}); err != nil {
		t.Fatal(err)
	}
	for i, in := range ins {
		tn, _ := in.Src.Tensor("lm_head.weight")
		if kb := testutil.ResidentKB(t, unsafe.Pointer(&tn.Data[0])); kb > 16*1024/4 {
			t.Errorf("input %d: %d KiB of its 16 MiB map resident after the merge", i, kb)
		}
	}
}

// TestWriteFolderPiecesMatchWhole: merges written with their large
// tensors sent to the writer in pieces (pieces of 1000 bytes, which
// split chunks, blocks and rows), into a sharded folder, hold the same
// bytes in every file as with every tensor written whole.
func TestWriteFolderPiecesMatchWhole(t *testing.T) {
	root := t.TempDir()
	var dirs []string
	for i := range 3 {
		d := filepath.Join(root, "m"+string(rune('0'+i)))
		writeModel(t, d, uint64(i+11), 0, 1000) // two chunks: the second starts inside a piece
		dirs = append(dirs, d)
	}
	write := func(method string, piece int) map[string][]byte {
		s := specOf(method, openWeighted(t, dirs))
		out := filepath.Join(t.TempDir(), "out")
		defer func(old int) { pieceBytes = old }(pieceBytes)
		pieceBytes = piece
		if err := WriteFolder(context.Background(), s, out, FolderOptions{Dirs: dirs, ShardSize: 30000}); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		files := map[string][]byte{}
		es, err := os.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if b, err := os.ReadFile(filepath.Join(out, e.Name())); err == nil {
				files[e.Name()] = b
			}
		}
		return files
	}
	for _, method := range []string{"linear", "task_arithmetic", "ties", "dare_ties", "breadcrumbs", "della", "slerp", "nuslerp", "karcher", "model_stock", "sce", "arcee_fusion"} {
		sent := piecesSent.Load()
		whole := write(method, 1<<30)
		if piecesSent.Load() != sent {
			t.Fatalf("%s: pieces sent with no tensor over twice their size", method)
		}
		pieces := write(method, 1000)
		if piecesSent.Load() < sent+128+2*10+2*8 { // 1000-byte pieces of the embeddings, up_proj and q_proj
			t.Fatalf("%s: %d pieces sent", method, piecesSent.Load()-sent)
		}
		if len(whole) < 3 || len(pieces) != len(whole) {
			t.Fatalf("%s: %d files in pieces, %d whole", method, len(pieces), len(whole))
		}
		for name, b := range whole {
			if !bytes.Equal(pieces[name], b) {
				t.Fatalf("%s: %s differs when large tensors are written in pieces", method, name)
			}
		}
	}
}

// TestWriteFolderCancelledInPieces: a merge cancelled when the first
// piece of a large tensor is complete stops within the tensor (two
// workers: the blocks they hold are finished, no other is started),
// returns the context's error and leaves nothing behind: no output
// folder, no temporary one. (Cancelled when the first piece was sent, it
// could be too late: pieces go in order, and one worker may finish every
// other block while the first waits for a core.)
func TestWriteFolderCancelledInPieces(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	root := t.TempDir()
	var dirs []string
	for i := range 3 {
		d := filepath.Join(root, "m"+string(rune('0'+i)))
		writeModel(t, d, uint64(i+21), 0, 4000) // 8 blocks, 512 pieces
		dirs = append(dirs, d)
	}
	ins := openWeighted(t, dirs)
	defer func(old int) { pieceBytes = old }(pieceBytes)
	pieceBytes = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pieceDone = cancel
	defer func() { pieceDone = nil }()
	sent0 := piecesSent.Load()
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	s := specOf("ties", ins) // its blocks check the context
	if err := WriteFolder(ctx, s, out, FolderOptions{Dirs: dirs}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if sent := piecesSent.Load() - sent0; sent == 0 || sent >= 512 {
		t.Fatalf("%d pieces sent, want some of the embeddings' 512", sent)
	}
	if es, _ := os.ReadDir(parent); len(es) != 0 {
		t.Fatalf("left behind: %v", es)
	}
}

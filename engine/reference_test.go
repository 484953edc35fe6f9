package engine

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// These tests compare the forward pass with independent implementations:
// llama2.c-equivalent references for the shared tiny models, llama.cpp's
// logits for the architecture fixtures.

func loadModel(t testing.TB, dir string, opts Options) *Model {
	t.Helper()
	m, err := Load(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// nll returns -log softmax(logits)[target], in float64.
func nll(logits []float32, target int) float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	return -(float64(logits[target]) - mx - math.Log(sum))
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// greedy feeds prompt, then appends the argmax token n times.
func greedy(t testing.TB, s *Session, prompt []int, n int) []int {
	t.Helper()
	lg, err := s.Forward(prompt)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for range n {
		id := argmax(lg)
		out = append(out, id)
		if len(out) == n {
			break
		}
		if lg, err = s.Forward([]int{id}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

type greedyRef struct {
	Prompt []int     `json:"prompt_ids_with_bos"`
	NLL    []float64 `json:"nll_per_next_token"`
	Mean   float64   `json:"mean_nll"`
	Greedy []int     `json:"greedy_continuation_ids"`
}

func checkGreedyRef(t *testing.T, m *Model, ref greedyRef) {
	s := m.NewSession(0)
	all, err := s.ForwardAll(ref.Prompt)
	if err != nil {
		t.Fatal(err)
	}
	V := m.Config.VocabSize
	var sum float64
	for i, want := range ref.NLL {
		got := nll(all[i*V:(i+1)*V], ref.Prompt[i+1])
		sum += got
		if math.Abs(got-want) > 1e-4 {
			t.Errorf("NLL of token %d: got %.6f, want %.6f", i+1, got, want)
		}
	}
	if mean := sum / float64(len(ref.NLL)); math.Abs(mean-ref.Mean) > 1e-4 {
		t.Errorf("mean NLL %.6f, want %.6f", mean, ref.Mean)
	}
	got := greedy(t, m.NewSession(0), ref.Prompt, len(ref.Greedy))
	for i := range ref.Greedy {
		if got[i] != ref.Greedy[i] {
			t.Fatalf("greedy ids differ at %d:\n got %v\nwant %v", i, got, ref.Greedy)
		}
	}
}

func TestReferenceGreedy(t *testing.T) {
	for _, name := range []string{"stories260K", "llama2xs"} {
		t.Run(name, func(t *testing.T) {
			dir := testutil.Shared(t, "models/"+name)
			var ref greedyRef
			readJSON(t, filepath.Join(dir, "reference_greedy.json"), &ref)
			checkGreedyRef(t, loadModel(t, dir, Options{}), ref)
		})
	}
}

func TestFusionReferenceSingleModels(t *testing.T) {
	path := testutil.Shared(t, "models/fusion_reference_stories260K_llama2xs.json")
	var ref struct {
		IDs  []int              `json:"ids_with_bos"`
		Mean map[string]float64 `json:"mean_nll"`
	}
	readJSON(t, path, &ref)
	for name, want := range ref.Mean {
		m := loadModel(t, filepath.Join(filepath.Dir(path), name), Options{})
		all, err := m.NewSession(0).ForwardAll(ref.IDs)
		if err != nil {
			t.Fatal(err)
		}
		V := m.Config.VocabSize
		var sum float64
		for i := 1; i < len(ref.IDs); i++ {
			sum += nll(all[(i-1)*V:i*V], ref.IDs[i])
		}
		if got := sum / float64(len(ref.IDs)-1); math.Abs(got-want) > 1e-4 {
			t.Errorf("%s: mean NLL %.6f, want %.6f", name, got, want)
		}
	}
}

func readF32(t testing.TB, path string) []float32 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out
}

// TestArchFixtures compares the logits at every position with llama.cpp's
// for each family's tiny random-weight checkpoint.
func TestArchFixtures(t *testing.T) {
	root := testutil.Shared(t, "fixtures/arch")
	cases := []struct {
		name   string
		logits string
		tol    float64
		argmax bool
	}{
		{"llama", "logits.f32", 1e-3, true},
		{"llama-bf16", "logits.f32", 5e-2, false},
		{"llama-bf16", "logits_f32compute.f32", 1e-5, true},
		{"llama-rope-llama3", "logits.f32", 1e-3, true},
		{"qwen2", "logits.f32", 1e-3, true},
		{"qwen3", "logits.f32", 1e-3, true},
		{"mistral", "logits.f32", 1e-3, true},
		{"gemma2", "logits.f32", 1e-3, true},
		{"gemma3", "logits.f32", 1e-3, true},
		{"olmo2", "logits.f32", 1e-3, true},
		{"phi3", "logits.f32", 1e-3, true},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/"+tc.logits, func(t *testing.T) {
			dir := filepath.Join(root, tc.name)
			var tokens []int
			readJSON(t, filepath.Join(dir, "tokens.json"), &tokens)
			want := readF32(t, filepath.Join(dir, tc.logits))
			m := loadModel(t, dir, Options{})
			got, err := m.NewSession(0).ForwardAll(tokens)
			if err != nil {
				t.Fatal(err)
			}
			checkLogits(t, got, want, m.Config.VocabSize, tc.tol, tc.argmax)
		})
	}
}

// checkLogits compares logits with a reference's, position by position
// (vocab values each): every difference within tol and, when asked, the
// same argmax.
func checkLogits(t *testing.T, got, want []float32, vocab int, tol float64, sameArgmax bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d logits, reference has %d", len(got), len(want))
	}
	var worst float64
	for p := range len(got) / vocab {
		g, w := got[p*vocab:(p+1)*vocab], want[p*vocab:(p+1)*vocab]
		var d float64
		for i := range g {
			d = math.Max(d, math.Abs(float64(g[i]-w[i])))
		}
		worst = math.Max(worst, d)
		if d > tol {
			t.Errorf("position %d: max |diff| %.3g > %.g", p, d, tol)
		}
		if sameArgmax && argmax(g) != argmax(w) {
			t.Errorf("position %d: argmax %d, reference %d", p, argmax(g), argmax(w))
		}
	}
	t.Logf("max |diff| %.3g", worst)
}

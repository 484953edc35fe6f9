package merge

import (
	"math"
	"runtime"
	"sort"
	"testing"
)

func near(t *testing.T, name string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", name, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i])-float64(want[i])) > tol {
			t.Fatalf("%s: got %v, want %v", name, got, want)
		}
	}
}

func TestLinear(t *testing.T) {
	xs := [][]float32{{1, 2}, {3, 6}}
	dst := make([]float32, 2)
	if err := Linear(dst, xs, []float64{1, 3}, true); err != nil {
		t.Fatal(err)
	}
	near(t, "normalized", dst, []float32{2.5, 5}, 1e-6) // (1+9)/4, (2+18)/4
	if err := Linear(dst, xs, []float64{1, 3}, false); err != nil {
		t.Fatal(err)
	}
	near(t, "raw", dst, []float32{10, 20}, 1e-6)
	if err := Linear(dst, xs, []float64{1, -1}, true); err == nil {
		t.Fatal("zero weight sum: no error")
	}
	if err := Linear(dst, [][]float32{{1}}, []float64{1}, true); err == nil {
		t.Fatal("length mismatch: no error")
	}
}

func ones(n int, v float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = v
	}
	return x
}

func add(base []float32, d ...float32) []float32 {
	x := make([]float32, len(d))
	for i := range d {
		x[i] = base[i] + d[i]
	}
	return x
}

func TestTaskMerge(t *testing.T) {
	base := ones(4, 1)
	x1 := add(base, 3, -1, 2, -4)
	x2 := add(base, -1, 2, -2, 1)
	x3 := add(base, 4, 0.5, -3, 1)
	full := []float64{1, 1}
	cases := []struct {
		name string
		xs   [][]float32
		w    []float64
		o    TaskOptions
		want []float32 // as deltas from base
	}{
		{"task_arithmetic", [][]float32{x1, x2}, []float64{0.5, 1}, TaskOptions{Density: full},
			[]float32{0.5, 1.5, -1, -1}},
		{"task_arithmetic lambda", [][]float32{x1, x2}, []float64{0.5, 1}, TaskOptions{Density: full, Lambda: 2},
			[]float32{1, 3, -2, -2}},
		// weighted deltas x1: 3 -1 2 -4, x2: -2 4 -4 2; sums 1 3 -2 -2.
		{"ties sum density 1", [][]float32{x1, x2}, []float64{1, 2},
			TaskOptions{Sparsify: SparsifyMagnitude, Density: full, Consensus: "sum", Normalize: true},
			[]float32{3, 2, -2, -4}},
		// sign counts all tie at 0: + is elected everywhere.
		{"ties count ties elect +", [][]float32{x1, x2}, []float64{1, 2},
			TaskOptions{Sparsify: SparsifyMagnitude, Density: full, Consensus: "count", Normalize: true},
			[]float32{3, 2, 2, 1}},
		{"ties count no normalize", [][]float32{x1, x2}, []float64{1, 2},
			TaskOptions{Sparsify: SparsifyMagnitude, Density: full, Consensus: "count"},
			[]float32{3, 4, 2, 2}},
		// trimmed: x1 -> 3 0 0 -4, x3 -> 4 0 -3 0.
		{"ties density 0.5", [][]float32{x1, x3}, full,
			TaskOptions{Sparsify: SparsifyMagnitude, Density: []float64{0.5, 0.5}, Consensus: "sum", Normalize: true},
			[]float32{3.5, 0, -3, -4}},
		{"ties density 0", [][]float32{x1, x3}, full,
			TaskOptions{Sparsify: SparsifyMagnitude, Density: []float64{0, 0}, Consensus: "sum", Normalize: true},
			[]float32{0, 0, 0, 0}},
		{"sum tie elects +", [][]float32{add(base, 1), add(base, -1)}, full,
			TaskOptions{Density: full, Consensus: "sum", Normalize: true},
			[]float32{1}},
		{"dare density 1 is task arithmetic", [][]float32{x1, x2}, []float64{0.5, 1},
			TaskOptions{Sparsify: SparsifyRandom, Density: full, Rescale: true},
			[]float32{0.5, 1.5, -1, -1}},
		{"dare density 0 is base", [][]float32{x1, x2}, full,
			TaskOptions{Sparsify: SparsifyRandom, Density: []float64{0, 0}, Rescale: true, Consensus: "sum"},
			[]float32{0, 0, 0, 0}},
	}
	for _, c := range cases {
		dst := make([]float32, len(c.want))
		xs := make([][]float32, len(c.xs))
		for i := range xs {
			xs[i] = c.xs[i][:len(c.want)]
		}
		if err := TaskMerge(dst, base[:len(c.want)], xs, c.w, c.o); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		near(t, c.name, dst, add(base, c.want...), 1e-6)
	}
}

func TestTaskMergeErrors(t *testing.T) {
	dst := make([]float32, 2)
	b := []float32{0, 0}
	for name, o := range map[string]TaskOptions{
		"density count": {Density: []float64{1, 1}},
		"density > 1":   {Density: []float64{1.5}},
		"consensus":     {Density: []float64{1}, Consensus: "vote"},
		"sparsify":      {Density: []float64{1}, Sparsify: "nope"},
	} {
		if err := TaskMerge(dst, b, [][]float32{{1, 1}}, []float64{1}, o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestKeepTopKTies(t *testing.T) {
	x := []float32{1, -1, 1, 0.5}
	keepTopK(x, 2)
	near(t, "threshold ties kept in index order", x, []float32{1, -1, 0, 0}, 0)
	y := []float32{-7, 2, 9, -3, 5}
	keepTopK(y, 3)
	near(t, "top 3", y, []float32{-7, 0, 9, 0, 5}, 0)
}

func TestBreadcrumbs(t *testing.T) {
	x := []float32{10, -5, 3, 1, -0.5, 0.2, 4, -2, 0.1, 6}
	keepBand(x, 0.3, 0.1) // drop 10, keep 6, -5, 4
	near(t, "band", x, []float32{0, -5, 0, 0, 0, 0, 4, 0, 0, 6}, 0)
	y := []float32{3, -1, 2}
	keepBand(y, 1, 0.5) // density 1 keeps everything: no outliers dropped
	near(t, "density 1", y, []float32{3, -1, 2}, 0)
	// Through TaskMerge with rescale: as mergekit, to the delta's L1 norm.
	base := make([]float32, 10)
	dst := make([]float32, 10)
	err := TaskMerge(dst, base, [][]float32{{10, -5, 3, 1, -0.5, 0.2, 4, -2, 0.1, 6}}, []float64{1},
		TaskOptions{Sparsify: SparsifyOutliers, Density: []float64{0.5}, Gamma: 0.1, Rescale: true})
	if err != nil {
		t.Fatal(err)
	}
	// drop 10, keep 6 -5 4 3 -2 (L1 20), scaled by 31.8/20.
	near(t, "breadcrumbs rescaled", dst, []float32{0, -7.95, 4.77, 0, 0, 0, 6.36, -3.18, 0, 9.54}, 1e-6)
	// TIES the same: keep 10 6 -5 (L1 21), scaled by 31.8/21.
	err = TaskMerge(dst, base, [][]float32{{10, -5, 3, 1, -0.5, 0.2, 4, -2, 0.1, 6}}, []float64{1},
		TaskOptions{Sparsify: SparsifyMagnitude, Density: []float64{0.3}, Rescale: true})
	if err != nil {
		t.Fatal(err)
	}
	s := 31.8 / 21
	near(t, "ties rescaled", dst, []float32{float32(10 * s), float32(-5 * s), 0, 0, 0, 0, 0, 0, 0, float32(6 * s)}, 1e-5)
}

func TestMagPrune(t *testing.T) {
	// density 0.5, epsilon 0.5 over rows of 3: keep probabilities 0, 0.5, 1
	// by rank, so the smallest of each row always goes and the largest stays.
	x := []float32{1, -3, 2, -9, 4, 0.5}
	r := rng{s: 1}
	magPrune(x, 3, 0.5, 0.5, true, &r)
	if x[0] != 0 || x[1] != -3 || x[5] != 0 || x[3] != -9 {
		t.Fatalf("magprune: %v", x)
	}
	if x[2] != 0 && x[2] != 4 { // kept with p=0.5, rescaled by 2
		t.Fatalf("middle entry %v, want 0 or 4", x[2])
	}
	// As mergekit's della_magprune: density 1 keeps all, 0 none, whatever
	// epsilon.
	y := []float32{1, -3, 2, -9, 4, 0.5}
	magPrune(y, 3, 1, 0.3, true, &r)
	near(t, "density 1", y, []float32{1, -3, 2, -9, 4, 0.5}, 0)
	magPrune(y, 3, 0, 0.3, true, &r)
	near(t, "density 0", y, make([]float32, 6), 0)
}

// TestDareStatistics checks that DARE keeps a density fraction of entries
// and that rescaling by 1/density keeps the expected delta.
func TestDareStatistics(t *testing.T) {
	const n = 1 << 20
	base := make([]float32, n)
	x := ones(n, 2)
	for _, den := range []float64{0.1, 0.3, 0.9} {
		dst := make([]float32, n)
		err := TaskMerge(dst, base, [][]float32{x}, []float64{1},
			TaskOptions{Sparsify: SparsifyRandom, Density: []float64{den}, Rescale: true, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		kept, total := 0, 0.0
		for _, v := range dst {
			if v != 0 {
				kept++
				if math.Abs(float64(v)-2/den) > 1e-5 {
					t.Fatalf("density %v: kept value %v, want %v", den, v, 2/den)
				}
			}
			total += float64(v)
		}
		frac := float64(kept) / n
		sd := math.Sqrt(den * (1 - den) / n)
		if math.Abs(frac-den) > 5*sd {
			t.Errorf("density %v: kept fraction %v (5 sd = %v)", den, frac, 5*sd)
		}
		mean := total / n
		if sdm := 2 * math.Sqrt((1-den)/den/n); math.Abs(mean-2) > 5*sdm {
			t.Errorf("density %v: mean %v, want 2 +- %v", den, mean, 5*sdm)
		}
	}
}

func TestDareDeterministicAcrossThreads(t *testing.T) {
	const n = 5*chunk + 17
	base := make([]float32, n)
	x := ones(n, 1)
	y := ones(n, -0.5)
	run := func() []float32 {
		dst := make([]float32, n)
		o := TaskOptions{Sparsify: SparsifyRandom, Density: []float64{0.5, 0.5}, Rescale: true, Consensus: "sum", Seed: 3}
		if err := TaskMerge(dst, base, [][]float32{x, y}, []float64{1, 1}, o); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	a := run()
	old := runtime.GOMAXPROCS(1)
	b := run()
	runtime.GOMAXPROCS(old)
	near(t, "threads", a, b, 0)
}

func TestDareL1Rescale(t *testing.T) {
	const n = 1000
	base := make([]float32, n)
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	dst := make([]float32, n)
	err := TaskMerge(dst, base, [][]float32{x}, []float64{1},
		TaskOptions{Sparsify: SparsifyRandom, Density: []float64{0.2}, Rescale: true, RescaleL1: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l1(dst), l1(x); math.Abs(got-want) > 1e-3*want {
		t.Fatalf("L1 %v, want %v", got, want)
	}
}

func TestSlerp(t *testing.T) {
	dst := make([]float32, 2)
	if err := Slerp(dst, []float32{1, 0}, []float32{0, 1}, 0.5); err != nil {
		t.Fatal(err)
	}
	s := float32(math.Sqrt2 / 2) // sin(pi/4)/sin(pi/2)
	near(t, "orthogonal", dst, []float32{s, s}, 1e-6)
	if err := Slerp(dst, []float32{2, 0}, []float32{0, 1}, 0); err != nil {
		t.Fatal(err)
	}
	near(t, "t=0", dst, []float32{2, 0}, 1e-6)
	if err := Slerp(dst, []float32{1, 2}, []float32{2, 4}, 0.25); err != nil {
		t.Fatal(err)
	}
	near(t, "parallel falls back to lerp", dst, []float32{1.25, 2.5}, 1e-6)
	// As mergekit's: a zero tensor is not normalized, so its dot with the
	// other is 0, an angle of pi/2.
	if err := Slerp(dst, []float32{0, 0}, []float32{2, -4}, 0.25); err != nil {
		t.Fatal(err)
	}
	s = float32(math.Sin(math.Pi / 8))
	near(t, "zero tensor", dst, []float32{2 * s, -4 * s}, 1e-6)
}

func TestModelStock(t *testing.T) {
	dst := make([]float32, 2)
	base := []float32{0, 0}
	if err := ModelStock(dst, base, [][]float32{{1, 0}, {0, 1}}, 0); err != nil {
		t.Fatal(err)
	}
	near(t, "orthogonal deltas -> base", dst, []float32{0, 0}, 1e-6)
	if err := ModelStock(dst, base, [][]float32{{1, 0}, {1, 1}}, 0); err != nil {
		t.Fatal(err)
	}
	c := 1 / math.Sqrt2
	tt := 2 * c / (1 + c)
	near(t, "45 degrees", dst, []float32{float32(tt), float32(tt * 0.5)}, 1e-6)
	// As mergekit's: the norms' product (here 1.4e-8) counts as 1e-6 at
	// least, so the cosine is 1e-8/1e-6, not 1/sqrt(2).
	if err := ModelStock(dst, base, [][]float32{{1e-4, 0}, {1e-4, 1e-4}}, 0); err != nil {
		t.Fatal(err)
	}
	tt = 2 * 0.01 / (1 + 0.01)
	near(t, "small deltas", dst, []float32{float32(tt * 1e-4), float32(tt * 0.5e-4)}, 1e-12)
	if err := ModelStock(dst, base, [][]float32{{1, 0}}, 0); err == nil {
		t.Fatal("one model: no error")
	}
}

func TestExtrapolate(t *testing.T) {
	dst := make([]float32, 2)
	if err := Extrapolate(dst, []float32{1, 2}, []float32{2, 2}, 0.5); err != nil {
		t.Fatal(err)
	}
	near(t, "expo", dst, []float32{2.5, 2}, 1e-6)
}

// TestKeepBandAgainstSort checks the selection-based breadcrumbs mask
// against a plain stable sort, on data with many tied magnitudes.
func TestKeepBandAgainstSort(t *testing.T) {
	r := rng{s: 5}
	for trial := 0; trial < 50; trial++ {
		n := 1 + int(r.next()%200)
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(int(r.next()%9) - 4) // magnitudes 0..4, many ties
		}
		density, gamma := r.float64(), r.float64()*0.3
		got := append([]float32(nil), x...)
		keepBand(got, density, gamma)

		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return abs32(x[idx[a]]) > abs32(x[idx[b]]) })
		nTop, nKeep := int(gamma*float64(n)), int(density*float64(n))
		if nTop+nKeep > n {
			nTop = n - nKeep
		}
		want := make([]float32, n)
		for _, i := range idx[nTop : nTop+nKeep] {
			want[i] = x[i]
		}
		near(t, "band", got, want, 0)
	}
}

func TestKeepTopKAgainstSort(t *testing.T) {
	r := rng{s: 11}
	for trial := 0; trial < 50; trial++ {
		n := 1 + int(r.next()%300)
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(int(r.next()%7)-3) * 0.5
		}
		k := int(r.next() % uint64(n+1))
		got := append([]float32(nil), x...)
		keepTopK(got, k)
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return abs32(x[idx[a]]) > abs32(x[idx[b]]) })
		want := make([]float32, n)
		for _, i := range idx[:k] {
			want[i] = x[i]
		}
		near(t, "top-k", got, want, 0)
	}
}

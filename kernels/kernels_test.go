package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/x448/float16"
)

// paths runs f once per instruction set this CPU has, then restores the
// start-up choice. The exported kernels are compared against the ref*
// functions of ref.go, which no path changes.
func paths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	start := Impl()
	defer selectPath(start)
	for _, p := range append(simdPaths(), "purego") {
		selectPath(p)
		t.Run(p, f)
		// The candidates calibration may pick instead of the family
		// rule's, where they compute the same results (Calibrate); not
		// under the race detector, whose run has no time for them (they
		// add no concurrency: the same pool and tiles as the rule's).
		for _, k := range knobs() {
			if raceEnabled {
				break
			}
			for i := 1; k.exact && i < len(k.cands); i++ {
				k.use(i)
				t.Run(p+"/"+k.cands[i], f)
			}
			k.use(0)
		}
	}
}

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// randMat returns a random rows x cols matrix of type typ and its weights
// widened to float32. Q8_0 is quantized from float32 (cols a multiple of 32).
func randMat(r *rand.Rand, typ Type, rows, cols int) *Mat {
	f := randVec(r, rows*cols)
	m := &Mat{Rows: rows, Cols: cols, Type: typ}
	switch typ {
	case F32:
		m.F32 = f
	case BF16:
		m.Half = make([]uint16, len(f))
		for i, v := range f {
			m.Half[i] = uint16(math.Float32bits(v) >> 16)
		}
	case F16:
		m.Half = make([]uint16, len(f))
		for i, v := range f {
			m.Half[i] = float16.Fromfloat32(v).Bits()
		}
	case Q8_0:
		m = QuantizeQ8(&Mat{Rows: rows, Cols: cols, Type: F32, F32: f})
	case Q4_0:
		m = QuantizeQ4(&Mat{Rows: rows, Cols: cols, Type: F32, F32: f})
	}
	return m
}

// closeDot reports whether got is within a relative 1e-5 of want, measured
// against the sum of the magnitudes of the products (a dot product can
// cancel, so its own size is no yardstick).
func closeDot(got, want, mag float32) bool {
	return math.Abs(float64(got-want)) <= 1e-5*float64(mag)+1e-30
}

// absMatVec returns sum_j |m[i,j] * x[j]| for every row i.
func absMatVec(m *Mat, x []float32) []float32 {
	out := make([]float32, m.Rows)
	row := make([]float32, m.Cols)
	for i := range out {
		m.Row(row, i)
		for j, w := range row {
			out[i] += float32(math.Abs(float64(w * x[j])))
		}
	}
	return out
}

var types = []Type{F32, BF16, F16, Q8_0, Q4_0}

func TestMatVecMatchesReference(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, typ := range types {
			for _, rows := range []int{0, 1, 3, 4, 5, 7, 9, 17} {
				for _, cols := range []int{0, 1, 5, 16, 31, 32, 33, 64, 95, 100, 576} {
					if typ.quantized() && cols%BlockSize != 0 {
						continue
					}
					m := randMat(r, typ, rows, cols)
					x := randVec(r, cols)
					want := make([]float32, rows)
					refMatVecRows(want, m, x, 0, rows)
					got := make([]float32, rows)
					MatVec(got, m, x)
					mag := absMatVec(m, x)
					for i := range got {
						if !closeDot(got[i], want[i], mag[i]) {
							t.Fatalf("%v %dx%d row %d: got %g, reference %g", typ, rows, cols, i, got[i], want[i])
						}
					}
				}
			}
		}
	})
}

// TestMatMulEqualsMatVec checks that batching does not change a single bit:
// prefill and token-by-token decoding must agree.
func TestMatMulEqualsMatVec(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, typ := range types {
			for _, rows := range []int{1, 4, 5, 8, 13} {
				// 1600 and 1637: rows long enough to be cut into column
				// blocks (kBlock), with a short last block and a tail.
				for _, cols := range []int{1, 32, 33, 64, 100, 160, 1600, 1637} {
					if typ.quantized() && cols%BlockSize != 0 {
						continue
					}
					for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 17} {
						m := randMat(r, typ, rows, cols)
						x := randVec(r, n*cols)
						got := make([]float32, n*rows)
						MatMul(got, m, x, n)
						want := make([]float32, rows)
						for tok := 0; tok < n; tok++ {
							MatVec(want, m, x[tok*cols:(tok+1)*cols])
							for i, w := range want {
								if g := got[tok*rows+i]; math.Float32bits(g) != math.Float32bits(w) {
									t.Fatalf("%v %dx%d n=%d token %d row %d: MatMul %g, MatVec %g", typ, rows, cols, n, tok, i, g, w)
								}
							}
						}
					}
				}
			}
		}
	})
}

// TestDecodeStreamSame holds the decode loops that decodeStream selects
// (kern.mvs) to the several-row ones (kern.mv) bit for bit, whichever the CPU family rule picked: a
// model decodes the same on every CPU of a path.
func TestDecodeStreamSame(t *testing.T) {
	defer func(on bool) { decodeStream = on }(decodeStream)
	defer SetBF16Activations(BF16Activations())
	for _, act := range []bool{false, true} {
		SetBF16Activations(act) // the mode's own kernels (mv512BF16d) where the CPU has them
		t.Run(map[bool]string{false: "exact", true: "bf16act"}[act], testDecodeStreamSame)
	}
}

func testDecodeStreamSame(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, typ := range []Type{F32, BF16, F16, Q8_0} {
			for _, rows := range []int{1, 3, 8, 9, 17, 40} {
				for _, cols := range []int{31, 32, 33, 64, 95, 896, 901, 2048, 2080, 4864} {
					if typ.quantized() && cols%BlockSize != 0 {
						continue
					}
					m := randMat(r, typ, rows, cols)
					x := randVec(r, cols)
					var got [2][]float32
					for i, on := range []bool{false, true} {
						decodeStream = on
						got[i] = make([]float32, rows)
						MatVec(got[i], m, x)
					}
					for i := range got[0] {
						if a, b := got[0][i], got[1][i]; math.Float32bits(a) != math.Float32bits(b) {
							t.Fatalf("%v %dx%d row %d: %g far apart, %g several", typ, rows, cols, i, b, a)
						}
					}
				}
			}
		}
	})
}

// TestMatMulTokenBlocks uses enough tokens that MatMul splits them into
// several cache blocks.
func TestMatMulTokenBlocks(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		const rows, cols, n = 9, 4096, 70 // 32 tokens of 4096 fill a block
		for _, typ := range types {
			m := randMat(r, typ, rows, cols)
			x := randVec(r, n*cols)
			got := make([]float32, n*rows)
			MatMul(got, m, x, n)
			want := make([]float32, n*rows)
			refMatMul(want, m, x, n)
			for tok := 0; tok < n; tok++ {
				mag := absMatVec(m, x[tok*cols:(tok+1)*cols])
				for i := 0; i < rows; i++ {
					if g, w := got[tok*rows+i], want[tok*rows+i]; !closeDot(g, w, mag[i]) {
						t.Fatalf("%v token %d row %d: got %g, reference %g", typ, tok, i, g, w)
					}
				}
			}
		}
	})
}

func TestThreadCountIndependence(t *testing.T) {
	defer SetThreads(0)
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		const rows, n = 203, 6
		// 2600 columns are cut into panels (three of f32, two of bf16).
		for _, tc := range []struct {
			typ  Type
			cols int
			act  bool
		}{{F32, 640, false}, {BF16, 640, false}, {F16, 640, false}, {Q8_0, 640, false}, {Q4_0, 640, false},
			{F32, 2600, false}, {BF16, 2600, false}, {BF16, 2600, true}, {BF16, 640, true}} {
			typ, cols := tc.typ, tc.cols
			SetBF16Activations(tc.act)
			defer SetBF16Activations(false)
			if typ.quantized() && cols%BlockSize != 0 {
				continue
			}
			m := randMat(r, typ, rows, cols)
			x := randVec(r, n*cols)
			var first []float32
			for _, threads := range []int{1, 2, 3, 4, 7} {
				SetThreads(threads)
				if Threads() != threads {
					t.Fatalf("Threads() = %d after SetThreads(%d)", Threads(), threads)
				}
				got := make([]float32, n*rows+rows)
				MatMul(got[:n*rows], m, x, n)
				MatVec(got[n*rows:], m, x[:cols])
				if first == nil {
					first = got
					continue
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(first[i]) {
						t.Fatalf("%v (bf16 activations %v) %d columns: output %d is %g with %d threads, %g with 1", typ, tc.act, cols, i, got[i], threads, first[i])
					}
				}
			}
		}
	})
}

func TestDot(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, n := range []int{0, 1, 7, 31, 32, 33, 64, 100, 1000} {
			a, b := randVec(r, n), randVec(r, n)
			var mag float32
			for i := range a {
				mag += float32(math.Abs(float64(a[i] * b[i])))
			}
			if got, want := Dot(a, b), refDot(a, b); !closeDot(got, want, mag) {
				t.Errorf("n=%d: Dot %g, reference %g", n, got, want)
			}
		}
	})
	if got := Dot([]float32{1, 2, 3}, []float32{4, 5, 6}); got != 32 {
		t.Errorf("Dot(1 2 3, 4 5 6) = %g, want 32", got)
	}
}

func TestAxpy(t *testing.T) {
	y := []float32{1, 2, 3}
	Axpy(2, []float32{1, 1, -1}, y)
	if fmt.Sprint(y) != "[3 4 1]" {
		t.Errorf("Axpy = %v, want [3 4 1]", y)
	}
}

func TestHandValues(t *testing.T) {
	paths(t, func(t *testing.T) {
		// 2x33 matrix, row 0 all ones, row 1 = column index; x = 1.
		m := &Mat{Rows: 2, Cols: 33, Type: F32, F32: make([]float32, 66)}
		x := make([]float32, 33)
		for j := 0; j < 33; j++ {
			m.F32[j] = 1
			m.F32[33+j] = float32(j)
			x[j] = 1
		}
		dst := make([]float32, 2)
		MatVec(dst, m, x)
		if dst[0] != 33 || dst[1] != 528 {
			t.Errorf("MatVec = %v, want [33 528]", dst)
		}
	})
}

func TestParallelCoversOnce(t *testing.T) {
	defer SetThreads(0)
	for _, threads := range []int{1, 2, 3} {
		SetThreads(threads)
		for _, units := range []int{0, 1, 7, 8, 50, 1000} {
			hits := make([]int32, units)
			Parallel(units, 1<<20, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					hits[i]++ // ranges are disjoint, so no two goroutines share an element
				}
			})
			for i, h := range hits {
				if h != 1 {
					t.Fatalf("threads %d units %d: unit %d run %d times", threads, units, i, h)
				}
			}
		}
	}
}

// TestClaimHalvesWhatIsLeft follows one job's chunks, claimed one after
// another: each the threads' share of the units left, rounded up to the
// grain, at least a tailChunks share per thread (derived by hand).
func TestClaimHalvesWhatIsLeft(t *testing.T) {
	for _, c := range []struct {
		units, threads, grain int
		want                  [][2]int
	}{
		// least: ceil(1000/64) = 16.
		{1000, 2, 1, [][2]int{{0, 500}, {500, 750}, {750, 875}, {875, 938}, {938, 969}, {969, 985}, {985, 1000}}},
		// least: ceil(4864/64) = 76 -> 96; shares rounded up to 24.
		{4864, 2, 24, [][2]int{{0, 2448}, {2448, 3672}, {3672, 4272}, {4272, 4584}, {4584, 4728}, {4728, 4824}, {4824, 4864}}},
		// three threads; least: ceil(100/96) = 2.
		{100, 3, 1, [][2]int{{0, 34}, {34, 56}, {56, 71}, {71, 81}, {81, 88}, {88, 92}, {92, 95}, {95, 97}, {97, 99}, {99, 100}}},
	} {
		least := (c.units + c.threads*tailChunks - 1) / (c.threads * tailChunks)
		least = (least + c.grain - 1) / c.grain * c.grain
		j := &job{units: c.units, threads: c.threads, grain: c.grain, least: least}
		var got [][2]int
		for {
			lo, hi, ok := j.claim()
			if !ok {
				break
			}
			got = append(got, [2]int{lo, hi})
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%d units, %d threads, grain %d: chunks %v, want %v", c.units, c.threads, c.grain, got, c.want)
		}
	}
}

// TestParallelKeepsGrain checks that every chunk parallel hands out starts
// on a multiple of the grain and ends on one or at the last unit, and that
// the chunks cover every unit once.
func TestParallelKeepsGrain(t *testing.T) {
	defer SetThreads(0)
	for _, threads := range []int{2, 3} {
		SetThreads(threads)
		for _, units := range []int{24, 25, 1000, 4864, 151936} {
			for _, grain := range []int{1, 4, 24} {
				hits := make([]int32, units)
				var bad atomic.Int32
				parallel(units, 1<<30, grain, func(lo, hi int) {
					if lo%grain != 0 || (hi%grain != 0 && hi != units) {
						bad.Store(1)
					}
					for i := lo; i < hi; i++ {
						hits[i]++
					}
				})
				if bad.Load() != 0 {
					t.Fatalf("threads %d units %d grain %d: a chunk off the grain", threads, units, grain)
				}
				for i, h := range hits {
					if h != 1 {
						t.Fatalf("threads %d units %d grain %d: unit %d run %d times", threads, units, grain, i, h)
					}
				}
			}
		}
	}
}

// TestDecodeBatchMatchesReference holds MatMul on decode batch sizes (the
// 2-row x T-token tiles for half-precision weights) to the pure-Go
// reference on odd shapes: odd row counts (a last row without a pair),
// rows with a tail past the last multiple of 32, and rows long enough to be
// cut into column panels (4900: five panels of 8 tokens).
func TestDecodeBatchMatchesReference(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, typ := range []Type{BF16, F16} {
			for _, sh := range [][2]int{{7, 33}, {13, 100}, {2, 4900}, {31, 1637}} {
				for _, n := range []int{4, 5, 6, 7, 8, 10, 13, 16} {
					rows, cols := sh[0], sh[1]
					m := randMat(r, typ, rows, cols)
					x := randVec(r, n*cols)
					got := make([]float32, n*rows)
					MatMul(got, m, x, n)
					want := make([]float32, n*rows)
					refMatMul(want, m, x, n)
					for tok := 0; tok < n; tok++ {
						mag := absMatVec(m, x[tok*cols:(tok+1)*cols])
						for i := 0; i < rows; i++ {
							if g, w := got[tok*rows+i], want[tok*rows+i]; !closeDot(g, w, mag[i]) {
								t.Fatalf("%v %dx%d n=%d token %d row %d: got %g, reference %g", typ, rows, cols, n, tok, i, g, w)
							}
						}
					}
				}
			}
		}
	})
}

// TestMatMulShared checks that products sharing their activations give
// what MatMul gives each alone, bit for bit: matrices of one type cut among
// the threads together (row counts that are no multiple of the threads'
// grain, so that ranges straddle two matrices), and a mix of types, which
// runs them one by one.
func TestMatMulShared(t *testing.T) {
	defer SetThreads(0)
	defer SetBF16Activations(BF16Activations())
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, threads := range []int{1, 3} {
			SetThreads(threads)
			for _, act := range []bool{false, true} {
				SetBF16Activations(act)
				for _, typ := range types {
					for _, cols := range []int{64, 96, 100, 1600} {
						if typ.quantized() && cols%BlockSize != 0 {
							continue
						}
						for _, n := range []int{1, 3, 4, 8, 13, 17} {
							ms := []*Mat{randMat(r, typ, 61, cols), randMat(r, typ, 13, cols), randMat(r, typ, 0, cols), randMat(r, typ, 29, cols)}
							if typ == F16 {
								ms[1] = randMat(r, BF16, 13, cols) // a mix
							}
							if ms[2].Type != typ { // the quantizers leave an empty matrix F32
								ms[2] = &Mat{Cols: cols, Type: typ}
							}
							x := randVec(r, n*cols)
							var ps []Product
							for _, m := range ms {
								ps = append(ps, Product{make([]float32, n*m.Rows), m})
							}
							MatMulShared(x, n, ps...)
							for i, p := range ps {
								want := make([]float32, n*p.M.Rows)
								MatMul(want, p.M, x, n)
								for j := range want {
									if math.Float32bits(p.Dst[j]) != math.Float32bits(want[j]) {
										t.Fatalf("%v bf16act %v cols %d n=%d threads %d: product %d element %d: %g, MatMul %g", typ, act, cols, n, threads, i, j, p.Dst[j], want[j])
									}
								}
							}
						}
					}
				}
			}
		}
	})
}

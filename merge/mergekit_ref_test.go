package merge

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mocolab/moco/safetensors"
)

// The tests in this file hold moco's merges to mergekit's own code rather
// than to re-readings of it: testdata/mergekit_ref holds inputs and the
// outputs of mergekit's merge methods on them, written by gen.py (see its
// header for the mergekit commit and how it ran), and each case runs the
// same method with the same parameters through Spec.Merge. They need
// neither Python nor ../shared.

const refDir = "testdata/mergekit_ref"

// refCase is one case of cases.json, in mergekit's terms.
type refCase struct {
	Name        string           `json:"name"`
	Method      string           `json:"method"`
	Base        string           `json:"base"`
	Models      []string         `json:"models"`
	Weights     []float64        `json:"weights"`
	Params      map[string]any   `json:"params"`
	ModelParams []map[string]any `json:"model_params"`
	Tensors     []string         `json:"tensors"`
}

type refMagPrune struct {
	Name    string   `json:"name"`
	Model   string   `json:"model"`
	Density float64  `json:"density"`
	Epsilon float64  `json:"epsilon"`
	Tensors []string `json:"tensors"`
}

type refData struct {
	Commit   string        `json:"mergekit_commit"`
	Cases    []refCase     `json:"cases"`
	MagPrune []refMagPrune `json:"magprune"`
	in, out  safetensors.Source
}

func loadRef(t *testing.T) *refData {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(refDir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r refData
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		src  *safetensors.Source
	}{{"inputs.safetensors", &r.in}, {"outputs.safetensors", &r.out}} {
		s, err := safetensors.Open(filepath.Join(refDir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		*f.src = s
	}
	return &r
}

// refParams converts mergekit parameters (booleans included) to moco's.
func refParams(t *testing.T, m map[string]any) Params {
	t.Helper()
	p := Params{}
	for k, v := range m {
		switch v := v.(type) {
		case float64:
			p[k] = Scalar(v)
		case bool:
			p[k] = Scalar(b2f(v))
		default:
			t.Fatalf("parameter %s: %T", k, v)
		}
	}
	return p
}

// input returns model name of the reference inputs, its tensors named as
// in the cases (w2d, w1d, n1d, z1d, h3d, h1d, u1d).
func (r *refData) input(t *testing.T, name string, tensors []string) Input {
	t.Helper()
	var ts []*safetensors.Tensor
	for _, tn := range tensors {
		x, ok := r.in.Tensor(name + "." + tn)
		if !ok {
			t.Fatalf("no input %s.%s", name, tn)
		}
		y := *x
		y.Name = tn
		ts = append(ts, &y)
	}
	return Input{Name: name, Src: safetensors.NewMemSource(ts)}
}

// spec builds moco's Spec for c, as Config.Open would from the same
// mergekit configuration.
func (r *refData) spec(t *testing.T, c refCase) *Spec {
	t.Helper()
	s := &Spec{Method: c.Method, Params: refParams(t, c.Params), OutDType: safetensors.F32, RequireParams: true}
	for i, name := range c.Models {
		in := r.input(t, name, c.Tensors)
		in.Params = Params{}
		if c.Weights != nil {
			in.Params["weight"] = Scalar(c.Weights[i])
		}
		if c.ModelParams != nil {
			for k, v := range refParams(t, c.ModelParams[i]) {
				in.Params[k] = v
			}
		}
		s.Models = append(s.Models, in)
	}
	if c.Base != "" {
		b := r.input(t, c.Base, c.Tensors)
		s.Base = &b
	}
	return s
}

// refTol bounds the difference from mergekit, relative to the tensor's
// largest output magnitude. mergekit computes in float32 (torch; numpy for
// slerp), moco in float32 for the element-wise arithmetic of the
// task-vector methods and in float64 for reductions and the spherical
// methods, rounding once to float32. Each output is then a few roundings
// of float32 (2^-24 relative each) away from the other, plus mergekit's
// float32 reductions over at most 3072 elements (pairwise in torch: about
// log2(3072) roundings at worst). 1e-6 is 16 float32 rounding units of the
// largest output; the differences seen are at most 2.7 units (see the
// test's log with -v). A wrong parameter, selection or sign moves outputs
// by a fraction of an input grid step (1/64, 1/16; 2^-16 in n1d and three
// rows of w2d, against outputs up to about 1 there), far above it.
const refTol = 1e-6

// refSkip lists the cases where moco deliberately differs from mergekit,
// with the reason.
var refSkip = map[string]string{
	"breadcrumbs_ntop0": "mergekit keeps indices[n_bot:-n_top] of the ascending sort, which is empty when " +
		"n_top = int(gamma*n) is 0 (gamma*n < 1: here 0.01*64): the whole delta is dropped; moco keeps the " +
		"density band (see doc.go)",
}

func setGlobal(key string, v float64) func(*Spec) {
	return func(s *Spec) { s.Params[key] = Scalar(v) }
}

func setModel(i int, key string, v float64) func(*Spec) {
	return func(s *Spec) { s.Models[i].Params[key] = Scalar(v) }
}

// scaleModel multiplies model i's tensors by f: the nudge of a method
// that has no parameter (arcee_fusion).
func scaleModel(i int, f float32) func(*Spec) {
	return func(s *Spec) {
		src := s.Models[i].Src
		var ts []*safetensors.Tensor
		for _, name := range src.Names() {
			x, _ := src.Tensor(name)
			v, err := x.F32()
			if err != nil {
				panic(err) // the reference inputs are F32
			}
			y := make([]float32, len(v))
			for j := range v {
				y[j] = v[j] * f
			}
			ts = append(ts, f32t(name, x.Shape, y...))
		}
		s.Models[i].Src = safetensors.NewMemSource(ts)
	}
}

// refPerturb changes one parameter of each case a little: the comparison
// must then fail, which shows that refTol cannot hide a wrong parameter.
var refPerturb = map[string]func(*Spec){
	"linear":                  setModel(0, "weight", 0.76),
	"linear_raw":              setGlobal("normalize", 1),
	"task_arithmetic":         setGlobal("lambda", 0.81),
	"task_arithmetic_norm":    setGlobal("normalize", 0),
	"ties":                    setModel(2, "density", 0.31),
	"ties_nonorm":             setGlobal("normalize", 1),
	"ties_rescale":            setGlobal("rescale", 0),
	"breadcrumbs":             setGlobal("gamma", 0.045),
	"breadcrumbs_ties":        setGlobal("gamma", 0.032),
	"breadcrumbs_rescale":     setGlobal("rescale", 0),
	"breadcrumbs_overlap":     setGlobal("density", 0.96),
	"breadcrumbs_ntop0":       setGlobal("density", 0.49),
	"dare_ties_density1":      setGlobal("lambda", 1.09),
	"dare_linear_density1":    setGlobal("normalize", 0),
	"della_density1":          setModel(1, "weight", 0.55),
	"slerp":                   setGlobal("t", 0.301),
	"slerp_near":              setGlobal("t", 0.651),
	"nuslerp_flat":            setModel(1, "weight", 3.05),
	"nuslerp_rows":            setGlobal("nuslerp_flatten", 1),
	"nuslerp_cols_base":       setGlobal("nuslerp_row_wise", 0),
	"nuslerp_flat_base":       setModel(0, "weight", 2.05),
	"multislerp":              setModel(2, "weight", 0.31),
	"multislerp_base_raw":     setGlobal("normalize_weights", 1),
	"karcher":                 setGlobal("max_iter", 0),
	"karcher_base":            setGlobal("max_iter", 0),
	"model_stock":             setGlobal("filter_wise", 1),
	"model_stock_filter_wise": setGlobal("filter_wise", 0),
	"sce":                     setGlobal("select_topk", 0.31),
	"sce_all":                 setGlobal("select_topk", 0.99),
	"passthrough":             setModel(0, "scale", 0.71),
	"arcee_fusion":            scaleModel(0, 1.001),
	"arcee_fusion_m2":         scaleModel(0, 1.001),
	"arcee_fusion_m3":         scaleModel(0, 1.001),
	"nearswap":                setGlobal("t", 0.202),
	"nearswap_fine":           setGlobal("t", 3.2e-5),
	"nearswap_micro":          setGlobal("t", 5.05e-7),
	"ram":                     setGlobal("epsilon", 1.6e-5),  // n1d's deltas of one step, 2^-16, drop out
	"ram_eps":                 setGlobal("epsilon", 0.124),   // deltas of 2/16 take part
	"ram_eps_fine":            setGlobal("epsilon", 3.02e-5), // n1d's deltas of two steps take part
	"ramplus_tl":              setGlobal("alpha", 0.21),      // every ratio is clamped to alpha
	"ramplus_tl_sparse":       setGlobal("r", 0.51),
}

func TestMergekitReference(t *testing.T) {
	r := loadRef(t)
	for _, c := range r.Cases {
		t.Run(c.Name, func(t *testing.T) {
			perturb, ok := refPerturb[c.Name]
			if !ok {
				t.Fatalf("case %s has no perturbation in refPerturb", c.Name)
			}
			if why, ok := refSkip[c.Name]; ok {
				t.Skip(why)
			}
			errs, err := r.compare(t, c, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, tn := range c.Tensors {
				e := errs[tn]
				t.Logf("%s: max error %.3g of max |x| (%.3g absolute)", tn, e.rel, e.abs)
				if e.rel > refTol {
					t.Errorf("%s: differs from mergekit %.7s by %.3g of max |x| at [%d]", tn, r.Commit, e.rel, e.at)
				}
			}
			errs, err = r.compare(t, c, perturb)
			if err != nil {
				t.Fatalf("perturbed: %v", err)
			}
			worst := 0.0
			for _, e := range errs {
				worst = max(worst, e.rel)
			}
			t.Logf("perturbed: max error %.3g of max |x|", worst)
			if worst <= refTol {
				t.Errorf("perturbed parameter: still within %g of mergekit", refTol)
			}
		})
	}
}

type refErr struct {
	abs, rel float64
	at       int
}

// compare runs case c through moco (after perturb, when not nil) and
// returns the largest error of each tensor.
func (r *refData) compare(t *testing.T, c refCase, perturb func(*Spec)) (map[string]refErr, error) {
	t.Helper()
	s := r.spec(t, c)
	if perturb != nil {
		perturb(s)
	}
	got, err := s.MergeToMemory(context.Background())
	if err != nil {
		return nil, err
	}
	errs := map[string]refErr{}
	for _, tn := range c.Tensors {
		want := values(t, r.out, c.Name+"."+tn)
		g := values(t, got, tn)
		if len(g) != len(want) {
			return nil, fmt.Errorf("%s: %d values, want %d", tn, len(g), len(want))
		}
		var scale float64
		for _, v := range want {
			scale = max(scale, math.Abs(float64(v)))
		}
		if scale == 0 {
			scale = 1 // an output of zeros (a base of zeros kept): absolute errors
		}
		var e refErr
		for i := range g {
			d := math.Abs(float64(g[i]) - float64(want[i]))
			if math.IsNaN(d) {
				d = math.Inf(1)
			}
			if d > e.abs {
				e.abs, e.at = d, i
			}
		}
		e.rel = e.abs / scale
		errs[tn] = e
	}
	return errs, nil
}

// TestMergekitMagPruneP compares DELLA's keep probability of each entry
// (by its magnitude's rank in its row, ties in index order) with those
// mergekit's della_magprune passes to torch.bernoulli. The draws
// themselves are torch's and cannot match.
func TestMergekitMagPruneP(t *testing.T) {
	r := loadRef(t)
	for _, c := range r.MagPrune {
		for _, tn := range c.Tensors {
			t.Run(c.Name+"/"+tn, func(t *testing.T) {
				x, b := values(t, r.in, c.Model+"."+tn), values(t, r.in, "base."+tn)
				want := values(t, r.out, c.Name+"."+tn)
				tensor, _ := r.in.Tensor("base." + tn)
				cols := tensor.Shape[len(tensor.Shape)-1]
				check := func(density, epsilon float64) float64 {
					m := newMagPruner(cols, density, epsilon, false)
					var worst float64
					for off := 0; off < len(x); off += cols {
						row := make([]float32, cols)
						for j := range row {
							row[j] = x[off+j] - b[off+j]
						}
						for rank, v := range m.sortRow(row) {
							j := int(uint32(v) &^ signBit)
							worst = max(worst, math.Abs(m.p[rank]-float64(want[off+j])))
						}
					}
					return worst
				}
				// mergekit's probabilities are float32: (density-epsilon)
				// + rank/(cols-1)*2*epsilon, each step rounded.
				const tol = 1e-6
				if e := check(c.Density, c.Epsilon); e > tol {
					t.Errorf("keep probabilities differ from mergekit's by %.3g", e)
				} else {
					t.Logf("max error %.3g", e)
				}
				if e := check(c.Density, c.Epsilon*1.01); e <= tol {
					t.Errorf("perturbed epsilon: still within %g (%.3g)", tol, e)
				}
			})
		}
	}
}

package merge

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"unsafe"
)

// Param is a merge parameter as mergekit writes it: a constant, a gradient
// (a list of values spread evenly over the layers and linearly interpolated
// between), or a list of filtered values (the first filter that is a
// substring of the tensor name wins; an entry with no filter is the default).
type Param struct {
	Values  []float64 // one value: constant; more: gradient over layers
	Filters []FilteredParam
}

// FilteredParam is one entry of a filtered parameter list.
type FilteredParam struct {
	Filter string // substring of the tensor name; "" matches everything
	Values []float64
}

// Params maps parameter names (weight, density, t, lambda, ...) to values.
type Params map[string]Param

// Scalar returns a constant parameter.
func Scalar(v float64) Param { return Param{Values: []float64{v}} }

// At evaluates p for a tensor at layer (-1 when it belongs to no layer) of a
// model with nLayers layers, as mergekit does for a merge of whole models:
// a gradient is evaluated at layer/(nLayers-1) (at 1 for a single layer);
// tensors outside the layers (embeddings, final norm, head) take its first
// value.
func (p Param) At(tensor string, layer, nLayers int) (float64, bool) {
	t := 0.0
	if layer >= 0 {
		t = gradientPos(layer, nLayers)
	}
	return p.AtPos(tensor, t)
}

// AtPos evaluates p for a tensor at position t in [0, 1] of a gradient
// (mergekit's evaluate_setting): with values v_0..v_m, at x = t*m it
// interpolates linearly between v_floor(x) and the next.
func (p Param) AtPos(tensor string, t float64) (float64, bool) {
	vals := p.Values
	for _, f := range p.Filters {
		if f.Filter == "" || f.Filter == "*" || strings.Contains(tensor, f.Filter) {
			vals = f.Values
			break
		}
	}
	switch len(vals) {
	case 0:
		return 0, false
	case 1:
		return vals[0], true
	}
	x := t * float64(len(vals)-1)
	i := int(math.Floor(x))
	if i >= len(vals)-1 {
		return vals[len(vals)-1], true
	}
	f := x - float64(i)
	return vals[i]*(1-f) + vals[i+1]*f, true
}

var layerRE = regexp.MustCompile(`\.layers\.(\d+)\.`)

// layerOf returns the layer index in a tensor name, or -1.
func layerOf(name string) int {
	m := layerRE.FindStringSubmatch(name)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// countLayers returns 1 + the largest layer index among names.
func countLayers(names []string) int {
	n := 0
	for _, s := range names {
		if l := layerOf(s); l+1 > n {
			n = l + 1
		}
	}
	return n
}

// f32Bytes reinterprets x as bytes (little-endian hosts, as safetensors).
func f32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

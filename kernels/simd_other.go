//go:build purego || (!amd64 && !arm64)

package kernels

// Without assembly the reference runs everywhere.

func simdPaths() []string { return nil }

func selectPath(string) {}

func amxMatMul(dst []float32, m *Mat, x []float32, n int) bool { return false }

func amxTakes(m *Mat, n int) bool { return false }

func amxQ8Applies(m *Mat, n int) bool { return false }

func amxQ8MatMul(dst []float32, m *Mat, a *q8Acts, n int) {}

func choices() []Choice {
	why := "no assembly for " + cpuInfo.Arch + " (or the purego build tag): the pure-Go reference"
	var c []Choice
	for _, k := range []string{"f32/bf16/f16 decode", "bf16/f16 decode batch (exact)", "bf16 prefill (exact)", "bf16 activation mode", "q8_0", "q4_0", "quantize at load"} {
		c = append(c, Choice{k, "purego", why})
	}
	return c
}

package engine

import "math"

// rope holds the rotary embedding's inverse frequencies, one per rotated
// pair of a head, after rope_scaling. Pairs are (i, i+dim/2), Hugging
// Face's rotate_half layout.
type rope struct {
	dim     int       // rotated dimensions per head (even)
	base    float64   // rope_theta
	invFreq []float64 // dim/2 frequencies
	// scale multiplies cos and sin (YaRN's attention factor; else 1).
	scale float64
	// dynamic, when set, recomputes the frequencies past the original
	// context (rope_scaling "dynamic", NTK-aware).
	dynamic *RopeScaling
	// long, when set, replaces invFreq from position longFrom on
	// (rope_scaling "longrope").
	long     []float64
	longFrom int
}

func newRope(base float64, dim int, s *RopeScaling) rope {
	r := rope{dim: dim, base: base, invFreq: make([]float64, dim/2), scale: 1}
	for i := range r.invFreq {
		r.invFreq[i] = math.Pow(base, -float64(2*i)/float64(dim))
	}
	if s == nil {
		return r
	}
	switch s.Type {
	case "linear":
		// Positions divided by the factor: the same as dividing frequencies.
		for i := range r.invFreq {
			r.invFreq[i] /= s.Factor
		}
	case "dynamic":
		r.dynamic = s
	case "llama3":
		// Long wavelengths are slowed by the factor, short ones kept, and
		// the band between interpolates smoothly.
		orig := float64(s.OriginalMaxPositions)
		lowWave, highWave := orig/s.LowFreqFactor, orig/s.HighFreqFactor
		for i, f := range r.invFreq {
			wave := 2 * math.Pi / f
			switch {
			case wave < highWave:
			case wave > lowWave:
				r.invFreq[i] = f / s.Factor
			default:
				smooth := (orig/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				r.invFreq[i] = (1-smooth)*f/s.Factor + smooth*f
			}
		}
	case "longrope":
		// Each pair's wavelength is stretched by its factor: the short
		// ones within the original context, the long ones beyond.
		r.scale = s.AttentionFactor
		r.long, r.longFrom = make([]float64, dim/2), s.OriginalMaxPositions
		for i, f := range r.invFreq {
			r.invFreq[i], r.long[i] = f/s.ShortFactor[i], f/s.LongFactor[i]
		}
	case "yarn":
		r.scale = s.AttentionFactor
		if r.scale == 0 {
			r.scale = 1
			if s.Factor > 1 {
				r.scale = 0.1*math.Log(s.Factor) + 1
			}
		}
		// Dimensions that turn fewer than beta_slow times over the original
		// context are interpolated, those turning more than beta_fast times
		// extrapolated, with a linear ramp between.
		corr := func(rot float64) float64 {
			return float64(dim) * math.Log(float64(s.OriginalMaxPositions)/(rot*2*math.Pi)) / (2 * math.Log(base))
		}
		lo := max(math.Floor(corr(s.BetaFast)), 0)
		hi := min(math.Ceil(corr(s.BetaSlow)), float64(dim-1))
		if lo == hi {
			hi += 0.001
		}
		for i, f := range r.invFreq {
			ramp := min(max((float64(i)-lo)/(hi-lo), 0), 1)
			extra := 1 - ramp // weight of the unscaled frequency
			r.invFreq[i] = f/s.Factor*(1-extra) + f*extra
		}
	}
	return r
}

// table writes cos and sin of every pair's angle at position pos (dim/2
// values each).
func (r *rope) table(cos, sin []float32, pos int) {
	inv := r.invFreq
	if d := r.dynamic; d != nil && pos+1 > d.OriginalMaxPositions {
		// NTK-aware: grow the base with the sequence length. Each position
		// uses its own length, so batched and incremental decoding agree.
		n := float64(pos + 1)
		base := r.base * math.Pow(d.Factor*n/float64(d.OriginalMaxPositions)-(d.Factor-1), float64(r.dim)/float64(r.dim-2))
		for i := range cos[:r.dim/2] {
			a := float64(pos) * math.Pow(base, -float64(2*i)/float64(r.dim))
			cos[i], sin[i] = float32(r.scale*math.Cos(a)), float32(r.scale*math.Sin(a))
		}
		return
	}
	if r.long != nil && pos >= r.longFrom {
		// Each position picks its factors, as for dynamic. Hugging Face
		// picks them per forward call (a prompt longer than the original
		// context is rotated with the long ones from its first token),
		// llama.cpp by the context size; within the original context all
		// three agree.
		inv = r.long
	}
	for i, f := range inv {
		a := float64(pos) * f
		cos[i], sin[i] = float32(r.scale*math.Cos(a)), float32(r.scale*math.Sin(a))
	}
}

// rotate applies the rotation to the first 2*len(cos) values of one head.
func rotate(x, cos, sin []float32) {
	h := len(cos)
	for i := range h {
		a, b := x[i], x[i+h]
		x[i] = a*cos[i] - b*sin[i]
		x[i+h] = b*cos[i] + a*sin[i]
	}
}

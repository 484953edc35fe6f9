// Package decode turns next-token distributions into text: sampling (greedy,
// temperature, top-k, top-p, min-p), the single-model generation loop with
// stop conditions and streaming, and the lockstep loop in which several
// same-vocabulary models advance together while a Combiner picks each token.
package decode

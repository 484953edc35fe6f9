package decode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
)

// scoreChunk bounds the positions fed per ForwardAll, so scoring a long
// text never holds more than scoreChunk rows of logits per model.
const scoreChunk = 256

// NLL scores ids under the models' combined next-token distribution (comb
// nil: the first model alone): it returns the summed negative
// log-likelihood of ids[1:], each given its prefix, with the log-softmax
// taken in float64, and the number of predicted tokens. Combiners that read
// hidden states (Co-LLM) are not supported here.
func NLL(sessions []Session, comb Combiner, vocab int, ids []int) (sum float64, n int, err error) {
	return NLLFrom(sessions, comb, vocab, ids, 1)
}

// NLLFrom is NLL counting only the predictions of ids[from:] (from >= 1),
// e.g. an answer after its prompt.
func NLLFrom(sessions []Session, comb Combiner, vocab int, ids []int, from int) (sum float64, n int, err error) {
	return NLLFromContext(context.Background(), sessions, comb, vocab, ids, from)
}

// NLLFromContext is NLLFrom, stopping with ctx's error when ctx is done
// (checked before each chunk of forward passes).
func NLLFromContext(ctx context.Context, sessions []Session, comb Combiner, vocab int, ids []int, from int) (sum float64, n int, err error) {
	if len(sessions) == 0 {
		return 0, 0, ErrNoSessions
	}
	if len(ids) < 2 {
		return 0, 0, errors.New("need at least two tokens to score (BOS and one more)")
	}
	if from < 1 || from >= len(ids) {
		return 0, 0, fmt.Errorf("scoring from token %d of %d: nothing to score", from, len(ids))
	}
	if r, ok := comb.(Resetter); ok {
		r.Reset()
	}
	for _, s := range sessions {
		s.Reset()
	}
	rows := make([][]float32, len(sessions))
	logits := make([][]float32, len(sessions))
	var buf []float32
	st := Step{Logits: logits, sessions: sessions}
	in := ids[:len(ids)-1]
	for lo := 0; lo < len(in); lo += scoreChunk {
		chunk := in[lo:min(lo+scoreChunk, len(in))]
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		for i, s := range sessions {
			if rows[i], err = s.ForwardAll(chunk); err != nil {
				return 0, 0, fmt.Errorf("model %d: %w", i, err)
			}
		}
		for t := range chunk {
			for i, r := range rows {
				stride := len(r) / len(chunk)
				v := vocab
				if v <= 0 || v > stride {
					v = stride
				}
				logits[i] = r[t*stride : t*stride+v]
			}
			scores := logits[0]
			if comb != nil {
				if len(buf) != len(scores) {
					buf = make([]float32, len(scores))
				}
				st.Index, st.Tokens, st.Defer, st.Confidence = lo+t, ids[:lo+t+1], math.NaN(), math.NaN()
				if err := comb.Combine(buf, &st); err != nil {
					return 0, 0, err
				}
				scores = buf
			}
			next := ids[lo+t+1]
			if next < 0 || next >= len(scores) {
				return 0, 0, fmt.Errorf("token id %d outside the vocabulary of %d", next, len(scores))
			}
			if lo+t+1 < from {
				continue
			}
			sum -= LogSoftmaxAt(scores, next)
			n++
		}
	}
	return sum, n, nil
}

// RankByNLL scores each model alone on the texts (token ids, BOS first) and
// returns the model indexes from the lowest mean NLL per predicted token to
// the highest, with each model's mean NLL. When from is not nil, only the
// tokens of texts[i][from[i]:] count (the answers of prompt+answer texts:
// models fine-tuned with the prompt masked are not scored on prompts).
// MoCo's contrastive decoding uses the best as base, the next ones as
// experts and the worst as anti-experts (DefaultContrastive).
func RankByNLL(sessions []Session, vocab int, texts [][]int, from []int) (order []int, mean []float64, err error) {
	return RankByNLLContext(context.Background(), sessions, vocab, texts, from)
}

// RankByNLLContext is RankByNLL, stopping with ctx's error when ctx is done.
func RankByNLLContext(ctx context.Context, sessions []Session, vocab int, texts [][]int, from []int) (order []int, mean []float64, err error) {
	if from != nil && len(from) != len(texts) {
		return nil, nil, fmt.Errorf("%d start positions for %d texts", len(from), len(texts))
	}
	mean = make([]float64, len(sessions))
	for i, s := range sessions {
		var sum float64
		var n int
		for k, ids := range texts {
			f := 1
			if from != nil {
				f = from[k]
			}
			ls, ln, err := NLLFromContext(ctx, []Session{s}, nil, vocab, ids, f)
			if err != nil {
				return nil, nil, fmt.Errorf("model %d: %w", i, err)
			}
			sum += ls
			n += ln
		}
		if n == 0 {
			return nil, nil, errors.New("no tokens to rank the models on")
		}
		mean[i] = sum / float64(n)
	}
	order = make([]int, len(sessions))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case mean[a] < mean[b]:
			return -1
		case mean[a] > mean[b]:
			return 1
		}
		return 0
	})
	return order, mean, nil
}

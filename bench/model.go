package bench

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

// Greedy returns a Generator that decodes greedily with one model: the
// prompt is encoded with special tokens (BOS), generation stops at an EOS
// token, at maxNew tokens or at the context limit, and the text is decoded
// without special tokens. A prompt too long for the context keeps its last
// tokens (after BOS), leaving room for maxNew new ones. The argmax runs
// over the tokenizer's vocabulary (padded output rows beyond it name no
// token), as every decode loop does.
func Greedy(m *engine.Model, tok *tokenizer.Tokenizer, maxNew int) Generator {
	return GreedyContext(context.Background(), m, tok, maxNew)
}

// GreedyContext is Greedy that stops generating, with ctx's error, when
// ctx is done (checked before every token).
func GreedyContext(ctx context.Context, m *engine.Model, tok *tokenizer.Tokenizer, maxNew int) Generator {
	eos := map[int]bool{}
	for _, id := range decode.EOSIDs(tok, m) {
		eos[id] = true
	}
	vocab := greedyVocab(m, tok)
	return func(prompt string) (string, error) {
		s := m.NewSession(0)
		ids, err := greedyPrompt(tok, prompt, s.MaxSeq(), maxNew)
		if err != nil {
			return "", err
		}
		logits, err := s.Forward(ids)
		if err != nil {
			return "", err
		}
		var out []int
		for len(out) < maxNew && s.Pos() < s.MaxSeq() {
			if err := ctx.Err(); err != nil {
				return "", err
			}
			next := argmax(logits[:vocab])
			if eos[next] {
				break
			}
			out = append(out, next)
			if len(out) == maxNew {
				break // the last token needs no forward pass
			}
			if logits, err = s.Forward([]int{next}); err != nil {
				return "", err
			}
		}
		return tok.Decode(out, true), nil
	}
}

// greedyVocab is the part of the logits greedy decoding chooses from: the
// tokenizer's vocabulary, within the model's output rows.
func greedyVocab(m *engine.Model, tok *tokenizer.Tokenizer) int {
	if n := tok.VocabSize(); n > 0 {
		return min(n, m.Config.VocabSize)
	}
	return m.Config.VocabSize
}

// greedyPrompt encodes a prompt with special tokens and fits it in a
// context of limit positions with room for maxNew new tokens.
func greedyPrompt(tok *tokenizer.Tokenizer, prompt string, limit, maxNew int) ([]int, error) {
	ids, err := tok.Encode(prompt, true)
	if err != nil {
		return nil, err
	}
	ids = fitPrompt(ids, limit-maxNew, tok.BOS())
	if len(ids) == 0 {
		return nil, fmt.Errorf("no room for a prompt in a context of %d with %d new tokens", limit, maxNew)
	}
	return ids, nil
}

// GreedyBatch is GreedyContext over many prompts decoded together: one
// decode.Batcher steps up to batch sequences at once (<= 0: the batcher's
// default), each answer equal to GreedyContext's for its prompt (the same
// prompt fitting, EOS ids, vocabulary and length bound; the batch's
// logits equal a session's). Cancelling ctx stops every sequence at the
// next step.
func GreedyBatch(m *engine.Model, tok *tokenizer.Tokenizer, maxNew, batch int) BatchGenerator {
	return func(ctx context.Context, prompts []string, done func(int, string, error)) error {
		limit := m.ContextSize()
		b := decode.NewBatcher(m, tok, decode.BatcherConfig{
			Batch: engine.BatchOptions{MaxSeqs: batch}, MaxQueue: len(prompts), Context: limit,
			EOS: decode.EOSIDs(tok, m),
		})
		defer b.Close()
		var wg sync.WaitGroup
		for i, p := range prompts {
			ids, err := greedyPrompt(tok, p, limit, maxNew)
			if err != nil {
				done(i, "", err)
				continue
			}
			wg.Go(func() {
				res, err := b.Generate(ctx, decode.BatchRequest{Prompt: ids, MaxTokens: maxNew})
				if err != nil && ctx.Err() != nil {
					return
				}
				// The batcher's streamed text is the decoding of its tokens;
				// decode them whole as GreedyContext does.
				done(i, tok.Decode(res.Tokens, true), err)
			})
		}
		wg.Wait()
		return ctx.Err()
	}
}

// fitPrompt keeps a prompt within room tokens by dropping its oldest
// tokens (the question and options come last), keeping a leading BOS.
func fitPrompt(ids []int, room, bos int) []int {
	if len(ids) <= room {
		return ids
	}
	if room <= 1 {
		return nil
	}
	if bos >= 0 && ids[0] == bos {
		return append([]int{bos}, ids[len(ids)-room+1:]...)
	}
	return ids[len(ids)-room:]
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

// NLLOptions controls MeanNLL.
type NLLOptions struct {
	Options
	// AnswerPrefix goes between the prompt and the reference answer
	// (" " for the skills sets: "A: 1081").
	AnswerPrefix string
	// AppendEOS scores the end-of-sequence token after the answer too.
	AppendEOS bool
}

// MeanNLL is a cheap score that needs no generation: the mean negative log
// likelihood per token of the reference answers given their prompts (lower
// is better). Multiple-choice references are the option letters.
func MeanNLL(m *engine.Model, tok *tokenizer.Tokenizer, ds *Dataset, split string, o NLLOptions) (float64, error) {
	v, _, err := MeanNLLContext(context.Background(), m, tok, ds, split, o)
	return v, err
}

// MeanNLLContext is MeanNLL that stops when ctx is done, checked before
// each item; it also returns the number of items scored. When interrupted
// it returns the mean over the items scored so far with ctx's error.
func MeanNLLContext(ctx context.Context, m *engine.Model, tok *tokenizer.Tokenizer, ds *Dataset, split string, o NLLOptions) (float64, int, error) {
	return meanNLL(ctx, tok, ds, split, o, m.Config.EOS, m.ContextSize(), func(ids []int, from int) (float64, int, error) {
		logits, err := m.NewSession(0).ForwardAll(ids)
		if err != nil {
			return 0, 0, err
		}
		var sum float64
		v := m.Config.VocabSize
		for j, id := range ids[from:] {
			sum += nll(logits[(from-1+j)*v:(from+j)*v], id)
		}
		return sum, len(ids) - from, nil
	})
}

// MethodNLL is MeanNLLContext for a collaboration method that scores
// tokens (collab.CanScore): the reference answers' mean NLL per token
// under the method's combined distribution, with eos (the first model's
// end-of-sequence token, if any) after each answer when o.AppendEOS is
// set.
func MethodNLL(ctx context.Context, ts collab.TokenScorer, eos []int, ds *Dataset, split string, o NLLOptions) (float64, int, error) {
	return meanNLL(ctx, ts.Tokenizer(), ds, split, o, eos, ts.ContextSize(), func(ids []int, from int) (float64, int, error) {
		return ts.NLLFrom(ctx, ids, from)
	})
}

// meanNLL is the loop of MeanNLLContext and MethodNLL: for each item o
// picks, the prompt and the answer (o.AnswerPrefix, the reference, then
// eos[0] when o.AppendEOS is set and there is one) are encoded and score
// gives the answer's summed NLL and token count; items with an empty
// prompt or answer, or longer than maxSeq tokens, are skipped.
func meanNLL(ctx context.Context, tok *tokenizer.Tokenizer, ds *Dataset, split string, o NLLOptions, eos []int, maxSeq int, score func(ids []int, from int) (float64, int, error)) (float64, int, error) {
	if !o.AppendEOS {
		eos = nil
	}
	eos = eos[:min(len(eos), 1)]
	items, err := ds.Split(split)
	if err != nil {
		return 0, 0, err
	}
	items = o.Pick(items)
	prompt := o.Prompt
	if prompt == nil {
		prompt = BuildPrompt
	}
	refs := make([]string, len(items))
	for i, it := range items {
		if refs[i], err = ReferenceText(ds.TaskType, it); err != nil {
			return 0, 0, fmt.Errorf("%s: likelihood scoring needs one reference text per item: %w", ds.Name, err)
		}
	}
	var sum float64
	count, scored := 0, 0
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			if count == 0 {
				return 0, 0, err
			}
			return sum / float64(count), scored, err
		}
		if o.Progress != nil && i > 0 {
			o.Progress(i, len(items), 0)
		}
		p, err := tok.Encode(prompt(ds.TaskType, it), true)
		if err != nil {
			return 0, 0, err
		}
		a, err := tok.Encode(o.AnswerPrefix+refs[i], false)
		if err != nil {
			return 0, 0, err
		}
		a = append(a, eos...)
		if len(a) == 0 || len(p) == 0 || len(p)+len(a) > maxSeq {
			continue
		}
		s, k, err := score(append(p, a...), len(p))
		if err != nil {
			return 0, 0, err
		}
		sum += s
		count += k
		scored++
	}
	if o.Progress != nil {
		o.Progress(len(items), len(items), 0)
	}
	if count == 0 {
		return 0, 0, fmt.Errorf("%s: no scorable items", ds.Name)
	}
	return sum / float64(count), scored, nil
}

// nll is -log softmax(row)[id], computed stably in float64.
func nll(row []float32, id int) float64 {
	mx := float64(row[0])
	for _, v := range row {
		mx = math.Max(mx, float64(v))
	}
	var z float64
	for _, v := range row {
		z += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(z) - float64(row[id])
}

// Metric names a dev score for the search methods.
const (
	MetricAccuracy = "accuracy" // generate and score (higher is better)
	MetricNLL      = "nll"      // minus the mean NLL of references (higher is better)
)

// DevScorer returns a function that builds a model from any weights (e.g. an
// in-memory merge candidate) with the given config, and scores it on a
// split: accuracy, or minus the mean NLL, so that higher is always better.
// The scoring stops within a candidate, with ctx's error (never a partial
// score), when ctx is done: before each item, and before each generated
// token.
func DevScorer(ctx context.Context, cfg *engine.Config, tok *tokenizer.Tokenizer, ds *Dataset, split, metric string, o NLLOptions, maxNew int) func(src safetensors.Source) (float64, error) {
	return func(src safetensors.Source) (float64, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		m, err := engine.New(cfg, src, engine.Options{})
		if err != nil {
			return 0, err
		}
		defer m.Close()
		switch metric {
		case MetricNLL:
			v, _, err := MeanNLLContext(ctx, m, tok, ds, split, o)
			if err != nil {
				return 0, err
			}
			return -v, nil
		case MetricAccuracy, "":
			r, err := EvaluateContext(ctx, ds, split, o.Options, GreedyContext(ctx, m, tok, maxNew))
			if err != nil {
				return 0, err
			}
			return r.Accuracy, nil
		}
		return 0, fmt.Errorf("unknown metric %q (want accuracy or nll)", metric)
	}
}

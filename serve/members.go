package serve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/tokenizer"
)

// batchedGen is a served model as a pool member of recipes: the local
// model (whose weights and sessions the logit-level methods use, and whose
// Embed and LogLikelihood the routers use) with Generate answered by the
// model's batcher, so that the requests of text-level methods (debate,
// voting, ...) share the batch with everything else the server runs.
type batchedGen struct {
	*collab.Local
	b *decode.Batcher
}

// Generate answers the requests concurrently in the batch. As
// collab.Local does, a prompt too long for the context keeps its last
// tokens (and its BOS), and a request without MaxTokens may use the rest of
// the context, but at least a quarter of it.
func (g *batchedGen) Generate(ctx context.Context, reqs []collab.Request) ([]collab.Response, error) {
	out := make([]collab.Response, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() { out[i], errs[i] = g.one(ctx, r) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", g.Name(), err)
	}
	return out, nil
}

func (g *batchedGen) one(ctx context.Context, r collab.Request) (collab.Response, error) {
	ids, err := encodeRequest(g.Tok, r)
	if err != nil {
		return collab.Response{}, err
	}
	ids, maxNew := fitPrompt(ids, g.b.Context(), r.MaxTokens, g.Tok.BOS())
	top := r.TopP
	if top == 0 {
		top = 1
	}
	res, err := g.b.Generate(ctx, decode.BatchRequest{Prompt: ids, MaxTokens: maxNew, Stop: r.Stop,
		Sampler: decode.SamplerConfig{Temperature: r.Temperature, TopP: top, Seed: r.Seed}})
	if err != nil {
		return collab.Response{}, err
	}
	n := int64(len(ids) + len(res.Tokens))
	return collab.Response{Text: res.Text, PromptTokens: len(ids), CompletionTokens: len(res.Tokens),
		ForwardTokens: n, FLOPs: 2 * float64(g.Params) * float64(n)}, nil
}

// encodeRequest renders and encodes a request as collab.Local does: the
// chat template for messages (BOS not added again when the template wrote
// it), the prompt with the tokenizer's special tokens otherwise.
func encodeRequest(tok *tokenizer.Tokenizer, r collab.Request) ([]int, error) {
	text, special := r.Prompt, true
	if len(r.Messages) > 0 {
		var err error
		if text, err = collab.RenderMessages(tok, r.Messages); err != nil {
			return nil, err
		}
		if bos := tok.BOS(); tok.Chat != nil && bos >= 0 && strings.HasPrefix(text, tok.TokenString(bos)) {
			special = false
		}
	}
	ids, err := tok.Encode(text, special)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		bos := tok.BOS()
		if bos < 0 {
			return nil, errors.New("empty prompt and the tokenizer has no BOS token to start from")
		}
		ids = []int{bos}
	}
	return ids, nil
}

// fitPrompt keeps a prompt and maxNew new tokens within limit positions,
// with collab.Local's rule: without maxNew the rest of the context, but at
// least a quarter of it; a maxNew that does not fit is cut to the rest, but
// not below half the context; a prompt too long for what remains keeps its
// last tokens, and its first when that is BOS.
func fitPrompt(ids []int, limit, maxNew, bos int) ([]int, int) {
	switch {
	case maxNew <= 0:
		maxNew = max(limit-len(ids), limit/4)
	case len(ids)+maxNew > limit && maxNew > limit/2:
		maxNew = max(limit-len(ids), limit/2)
	}
	maxNew = max(1, min(maxNew, limit-1))
	room := limit - maxNew
	if len(ids) <= room {
		return ids, maxNew
	}
	if bos >= 0 && ids[0] == bos {
		return append([]int{bos}, ids[len(ids)-room+1:]...), maxNew
	}
	return ids[len(ids)-room:], maxNew
}

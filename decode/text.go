package decode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// RunFunc is a token loop: Lockstep.RunContext, Speculative.RunContext and
// Mentor.RunContext have this shape. It generates from prompt, calling emit
// for each token until emit returns false or ctx is done, and returns the
// generated tokens.
type RunFunc func(ctx context.Context, prompt []int, emit func(Token) bool) ([]int, error)

// Generator turns a token loop into text generation: it encodes the prompt
// (BOS added as the tokenizer config says), streams the decoded text (never
// a split UTF-8 character) and stops at the first stop string, whose text is
// never emitted.
type Generator struct {
	Tok  *tokenizer.Tokenizer
	Run  RunFunc
	Stop []string
	// RawPrompt skips the tokenizer's special tokens (BOS) when encoding.
	RawPrompt bool
	// Chat renders the prompt as a user message with the tokenizer's chat
	// template first.
	Chat bool
	// Continue makes the text continue the prompt, as BatchRequest.Continue
	// does: a SentencePiece model's first word keeps its space. Not with
	// Chat, whose answer starts a message of its own.
	Continue bool
	// ModelConfig is the generating model's config (the first model's in a
	// collaboration); may be nil. An empty prompt starts from its
	// bos_token_id when the tokenizer has no BOS token (StartID).
	ModelConfig *engine.Config
}

// Generate writes the continuation of prompt to w as it is produced (w may
// be nil) and returns it.
func (g *Generator) Generate(prompt string, w io.Writer) (string, error) {
	return g.GenerateContext(context.Background(), prompt, w, nil)
}

// GenerateContext is Generate with cancellation and a per-token callback:
// onToken (may be nil) sees every generated token, its id, source and
// log-probability (Token.LogProb); returning false ends the generation
// after that token. When ctx is done the loop stops before
// its next forward pass and the text so far is returned with ctx's error.
func (g *Generator) GenerateContext(ctx context.Context, prompt string, w io.Writer, onToken func(Token) bool) (string, error) {
	ids, err := g.Encode(prompt)
	if err != nil {
		return "", err
	}
	return g.GenerateIDsContext(ctx, ids, w, onToken)
}

// Encode turns a prompt into the ids Generate starts from.
func (g *Generator) Encode(prompt string) ([]int, error) {
	special := !g.RawPrompt
	if g.Chat {
		var err error
		if prompt, err = ChatPrompt(g.Tok, prompt); err != nil {
			return nil, err
		}
		// Templates usually write the BOS text themselves.
		if bos := g.Tok.BOS(); bos >= 0 && strings.HasPrefix(prompt, g.Tok.TokenString(bos)) {
			special = false
		}
	}
	ids, err := g.Tok.Encode(prompt, special)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		bos, err := StartID(g.Tok, g.ModelConfig)
		if err != nil {
			return nil, err
		}
		ids = []int{bos}
	}
	return ids, nil
}

// StartID is the token that generation from an empty prompt starts from:
// the tokenizer's BOS token, else the model's bos_token_id (cfg.BOS: from
// config.json, else generation_config.json; cfg may be nil). Qwen2, Qwen2.5
// and Qwen3 tokenizers name no BOS token while their configs do, and
// Hugging Face's generate(), given no input ids, starts from
// generation_config.bos_token_id whatever the tokenizer says (moco keeps
// the tokenizer's first, as it always has). With neither there is nothing
// to start from, and StartID says so.
//
// llama.cpp differs for such models: it starts an empty prompt from BOS
// only where the vocabulary adds BOS to prompts (add_bos_token), so
// llama-cli refuses a Qwen model's empty prompt ("input is empty") and
// llama-server answers it with an empty completion.
func StartID(tok *tokenizer.Tokenizer, cfg *engine.Config) (int, error) {
	if bos := tok.BOS(); bos >= 0 {
		return bos, nil
	}
	if cfg != nil && cfg.BOS >= 0 {
		return cfg.BOS, nil
	}
	return -1, errors.New("empty prompt and the model has no BOS token to start from (neither its tokenizer nor its config names one)")
}

// GenerateIDs is Generate for an already encoded prompt.
func (g *Generator) GenerateIDs(ids []int, w io.Writer) (string, error) {
	return g.GenerateIDsContext(context.Background(), ids, w, nil)
}

// GenerateIDsContext is GenerateContext for an already encoded prompt.
func (g *Generator) GenerateIDsContext(ctx context.Context, ids []int, w io.Writer, onToken func(Token) bool) (string, error) {
	st := &stopWriter{stops: g.Stop, w: w}
	stream := g.Tok.NewStream(true)
	lead := newTextLead(ids, g.Continue && !g.Chat)
	n := 0 // tokens generated
	var werr error
	_, err := g.Run(ctx, ids, func(tok Token) bool {
		more := onToken == nil || onToken(tok)
		lead.first(g.Tok, n, tok.ID)
		n++
		if st.add(lead.text(stream.Add(tok.ID))) {
			return false
		}
		werr = st.err
		return more && werr == nil
	})
	if !st.stopped {
		// Also when interrupted: the text held back (a possible start of
		// a stop string, an unfinished character) is part of what came.
		st.add(lead.rest(stream.Flush()))
		st.flush()
	}
	if err == nil {
		err = st.err
	}
	return st.out.String(), err
}

// Func returns g as a function from prompt to continuation, the shape the
// evaluation harness runs every method through.
func (g *Generator) Func() func(prompt string) (string, error) {
	return func(prompt string) (string, error) { return g.Generate(prompt, nil) }
}

// SharedVocab checks that the tokenizers are identical (vocabulary map,
// merges, added tokens) and that every model has an output row for each
// token, and returns the shared vocabulary size: the tokenizer's, so that
// models with padded embedding matrices still combine.
func SharedVocab(models []*engine.Model, toks []*tokenizer.Tokenizer, names []string) (int, error) {
	if len(models) == 0 || len(models) != len(toks) {
		return 0, fmt.Errorf("%d models and %d tokenizers", len(models), len(toks))
	}
	name := func(i int) string {
		if i < len(names) && names[i] != "" {
			return names[i]
		}
		return fmt.Sprintf("model %d", i)
	}
	for i := 1; i < len(toks); i++ {
		if err := toks[0].Compare(toks[i]); err != nil {
			return 0, fmt.Errorf("%s and %s do not share a vocabulary, so they cannot be combined token by token: %w", name(0), name(i), err)
		}
	}
	v := toks[0].VocabSize()
	for i, m := range models {
		if m.Config.VocabSize < v {
			return 0, fmt.Errorf("%s has %d output rows but its tokenizer has %d tokens", name(i), m.Config.VocabSize, v)
		}
	}
	return v, nil
}

// EOSIDs is the union of the tokenizer's EOS ids and each model config's
// (config.json and generation_config.json).
func EOSIDs(tok *tokenizer.Tokenizer, models ...*engine.Model) []int {
	ids := slices.Clone(tok.EOS())
	for _, m := range models {
		for _, id := range m.Config.EOS {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// WordStarts marks the tokens that begin a new word: those whose text
// starts with a space or a word-boundary marker (SentencePiece's ▁,
// byte-level BPE's Ġ and Ċ, byte-fallback spaces), and special tokens.
func WordStarts(tok *tokenizer.Tokenizer) []bool {
	ws := make([]bool, tok.VocabSize())
	for id := range ws {
		s := tok.TokenString(id)
		ws[id] = tok.IsSpecial(id) || s == "" ||
			strings.HasPrefix(s, "▁") || strings.HasPrefix(s, "Ġ") || strings.HasPrefix(s, "Ċ") ||
			strings.HasPrefix(s, " ") || strings.HasPrefix(s, "\n") || strings.HasPrefix(s, "\t") ||
			s == "<0x20>" || s == "<0x0A>" || s == "<0x09>"
	}
	return ws
}

// ChatPrompt renders prompt as one user message with the tokenizer's chat
// template and the generation prompt appended.
func ChatPrompt(tok *tokenizer.Tokenizer, prompt string) (string, error) {
	if tok.ChatErr != nil {
		return "", fmt.Errorf("the model's chat template cannot be used: %w", tok.ChatErr)
	}
	if tok.Chat == nil {
		return "", errors.New("the model has no chat template (tokenizer_config.json has no chat_template); drop --chat")
	}
	msgs := []map[string]any{{"role": "user", "content": prompt}}
	return tok.Chat.Render(msgs, tokenizer.ChatOptions{AddGenerationPrompt: true})
}

// contextLimit is the number of positions a default session of m holds.
func contextLimit(m *engine.Model) int { return m.ContextSize() }

// The engine's sessions drive every loop in this package.
var _ Session = (*engine.Session)(nil)

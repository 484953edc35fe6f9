package decode_test

import (
	"fmt"
	"log"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/stories260k"
	"github.com/mocolab/moco/safetensors"
	"github.com/mocolab/moco/tokenizer"
)

// embedded loads the default model that ships inside moco, in f32 or
// quantized to q8_0, so the examples need no files.
func embedded(quant string) (*engine.Model, *tokenizer.Tokenizer) {
	cfg, err := engine.ParseConfig(stories260k.Config)
	if err != nil {
		log.Fatal(err)
	}
	src, err := safetensors.Parse(stories260k.Weights)
	if err != nil {
		log.Fatal(err)
	}
	m, err := engine.New(cfg, src, engine.Options{Quant: quant})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.New(stories260k.Tokenizer, stories260k.TokenizerConfig)
	if err != nil {
		log.Fatal(err)
	}
	return m, tok
}

// Fuse two models by averaging their logits at every step. Here the two
// are the default model in f32 and quantized to 8 bits; any models with the
// same tokenizer work the same way.
func Example_fusion() {
	a, tok := embedded("")
	b, _ := embedded("q8_0")
	fused := &decode.Lockstep{
		Sessions:  []decode.Session{a.NewSession(0), b.NewSession(0)},
		Combiner:  &decode.Fusion{Mode: decode.LogitMean},
		Vocab:     tok.VocabSize(),
		EOS:       tok.EOS(),
		MaxTokens: 20,
	}
	prompt, _ := tok.Encode("Once upon a time", true)
	ids, err := fused.Run(prompt, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Decode(ids, true))
	// Output: , there was a little girl named Lily. She loved to play outsid
}

// Nudging: the nudger writes the first word, then the base model writes
// and the nudger takes over the words the base is unsure of. A custom rule is a few lines with CombinerFunc.
func Example_nudging() {
	base, tok := embedded("q8_0")
	nudger, _ := embedded("")
	nudge := &decode.Nudging{Base: 0, Nudger: 1, Gamma: decode.DefaultGamma, WordStart: decode.WordStarts(tok)}
	sources := map[string]int{}
	l := &decode.Lockstep{
		Sessions:  []decode.Session{base.NewSession(0), nudger.NewSession(0)},
		Combiner:  nudge,
		Vocab:     tok.VocabSize(),
		EOS:       tok.EOS(),
		MaxTokens: 20,
		Trace:     func(s decode.TraceStep) { sources[s.Source]++ },
	}
	prompt, _ := tok.Encode("Tom and his dog", true)
	ids, err := l.Run(prompt, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Decode(ids, true))
	fmt.Printf("%d tokens from the base, %d from the nudger\n", sources["base"], sources["nudger"])
	// Output:
	// , Max, who lived in a big house. They liked
	// 4 tokens from the base, 16 from the nudger
}

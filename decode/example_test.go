package decode_test

import (
	"fmt"
	"log"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/embedded"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/tokenizer"
)

// embeddedModel loads the default model that ships inside moco, in f32 or
// quantized to q8_0, so the examples need no files; engine.Load and
// tokenizer.Load read a model folder instead.
func embeddedModel(quant string) (*engine.Model, *tokenizer.Tokenizer) {
	m, tok, err := embedded.Load(engine.Options{Quant: quant})
	if err != nil {
		log.Fatal(err)
	}
	return m, tok
}

// Fuse two models by averaging their logits at every step. Here the two
// are the default model in f32 and quantized to 8 bits; any models with the
// same tokenizer work the same way.
func Example_fusion() {
	a, tok := embeddedModel("")
	b, _ := embeddedModel("q8_0")
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
	base, tok := embeddedModel("q8_0")
	nudger, _ := embeddedModel("")
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

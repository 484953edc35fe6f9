package embedded_test

import (
	"fmt"
	"log"
	"slices"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/embedded"
	"github.com/mocolab/moco/engine"
)

// Greedy decoding by hand with the engine: the prompt goes in as one
// batch, each chosen token is fed back alone, and generation stops at an
// end-of-sequence token or after 12 tokens. Replace embedded.Load with
// engine.Load(dir, ...) and tokenizer.Load(dir) for a model folder.
func Example() {
	m, tok, err := embedded.Load(engine.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	sess := m.NewSession(0) // one sequence; not safe for concurrent use
	ids, err := tok.Encode("Once upon a time", true)
	if err != nil {
		log.Fatal(err)
	}
	logits, err := sess.Forward(ids)
	var out []int
	for len(out) < 12 && err == nil {
		next := decode.Argmax(logits)
		if slices.Contains(tok.EOS(), next) || slices.Contains(m.Config.EOS, next) {
			break
		}
		out = append(out, next)
		logits, err = sess.Forward([]int{next})
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Decode(out, true))
	// The text agrees with reference_greedy.json of ../shared/models/stories260K
	// (an independent implementation): "..., there was a little girl named Lily.
	// She loved to play outside in the park."

	// Output: , there was a little girl named Lily. She
}

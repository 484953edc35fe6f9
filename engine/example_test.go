package engine_test

import (
	"fmt"
	"log"

	"github.com/mocolab/moco/embedded"
	"github.com/mocolab/moco/engine"
)

// Greedy decoding with the model embedded in moco: the prompt goes in as
// one batch, then each chosen token is fed back alone. engine.Load(dir,
// engine.Options{}) loads a model folder the same way.
func Example() {
	m, _, err := embedded.Load(engine.Options{})
	if err != nil {
		log.Fatal(err)
	}
	s := m.NewSession(0)
	// "Once upon a time, there was a little girl named Lily." after BOS.
	prompt := []int{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317}
	logits, err := s.Forward(prompt)
	if err != nil {
		log.Fatal(err)
	}
	for range 8 {
		best := 0
		for id, v := range logits {
			if v > logits[best] {
				best = id
			}
		}
		fmt.Print(best, " ")
		if logits, err = s.Forward([]int{best}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("at position", s.Pos())
	// The model continues with the rest of reference_greedy.json's prompt,
	// " She loved to play outside in the park."

	// Output: 426 338 401 396 267 337 410 408 at position 23
}

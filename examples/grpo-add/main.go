// Command grpo-add writes GRPO prompts for the skills family's addition
// task: fresh problems in the format of skills_add.json ("Q: 509+572=\nA:",
// operands 0-999), leaving out every prompt of the dataset's dev and test
// splits, one {"prompt", "answer"} line each (the answer the exact-match
// scorer compares with).
//
//	go run ./examples/grpo-add -dataset ../shared/datasets/skills_add.json -n 3000 > add.jsonl
//	moco train grpo --model ../shared/models/skills-base --data add.jsonl --out grpo-adapter \
//	    --num-generations 8 --batch-size 32 --max-completion-length 8 --steps 150 --lr 3e-3 --warmup 10
//	moco merge --method lora --base ../shared/models/skills-base -m grpo-adapter --out grpo-model
//	moco eval -m grpo-model --dataset ../shared/datasets/skills_add.json --max-tokens 8
//
// Measured (2-core AMD EPYC, shared): with the commands above (3000
// problems, seed 1; β 0.04, ε 0.2, loss "grpo", temperature 1), greedy
// exact match of skills-base on the 200 test items went from 0.595 to
// 0.655 (training --seed 1; 31 items fixed, 19 broken, McNemar p 0.12)
// and to 0.68 (--seed 2; 30 fixed, 13 broken, p 0.014); on the first 100
// items 0.59 to 0.67 and 0.69 (the PyTorch-trained SFT adapter
// skills-lora-add: 0.88). The mean sampled reward went from 0.42-0.43
// over the first 25 steps to 0.45-0.50 over the last 25; 150 steps took
// 2-3 minutes on a quiet machine. 60 steps at
// lr 2e-3 on other problems gave 0.65.
//
// It uses only the standard library.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"strconv"
)

func main() {
	dataset := flag.String("dataset", "", "skills_add.json: its dev and test prompts are never drawn")
	n := flag.Int("n", 3000, "problems to draw")
	seed := flag.Uint64("seed", 1, "seed of the problems")
	flag.Parse()
	if *dataset == "" {
		log.Fatal("-dataset is required")
	}
	if err := run(*dataset, *n, *seed, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// Item is one GRPO line.
type Item struct {
	Prompt string `json:"prompt"`
	Answer string `json:"answer"`
}

func run(dataset string, n int, seed uint64, w io.Writer) error {
	b, err := os.ReadFile(dataset)
	if err != nil {
		return err
	}
	var ds struct{ Dev, Test []struct{ Input string } }
	if err := json.Unmarshal(b, &ds); err != nil {
		return fmt.Errorf("%s: %w", dataset, err)
	}
	held := map[string]bool{}
	for _, it := range append(ds.Dev, ds.Test...) {
		held[it.Input] = true
	}
	if len(held) == 0 {
		return fmt.Errorf("%s: no dev or test items", dataset)
	}
	if n > 1000*1000-len(held) {
		return fmt.Errorf("-n %d: only %d problems are not dataset items", n, 1000*1000-len(held))
	}
	rng := rand.New(rand.NewPCG(seed, 0x6790))
	seen := map[string]bool{}
	enc := json.NewEncoder(w)
	for len(seen) < n {
		a, c := rng.IntN(1000), rng.IntN(1000)
		p := fmt.Sprintf("Q: %d+%d=\nA:", a, c)
		if held[p] || seen[p] {
			continue
		}
		seen[p] = true
		if err := enc.Encode(Item{Prompt: p, Answer: strconv.Itoa(a + c)}); err != nil {
			return err
		}
	}
	return nil
}

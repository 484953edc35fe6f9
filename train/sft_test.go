package train

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

func TestReadSFTErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"prompt":"a","completion":"b"}` + "\n{oops\n", "line 2"},
		{`{"prompt":"a"}`, "line 1: want"},
		{`{"messages":[]}`, "line 1: messages: no assistant turn"},
		{`{"messages":[{"role":"bot","content":"x"}]}`, "line 1: messages[0]: role"},
		{`{"messages":"hi"}`, "line 1"},
		{"\n\n", "no examples"},
		{`{"prompt":1,"completion":"b"}`, "line 1"},
	} {
		if _, err := ReadSFT(strings.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
	}
	ex, err := ReadSFT(strings.NewReader("\n" + `{"prompt":"Q: 1+2=\nA:","completion":" 3"}` + "\n"))
	if err != nil || len(ex) != 1 || ex[0].Completion != " 3" {
		t.Fatalf("%v %v", ex, err)
	}
}

func FuzzReadSFT(f *testing.F) {
	f.Add(`{"prompt":"a","completion":"b"}`)
	f.Add("{\n")
	f.Fuzz(func(t *testing.T, s string) {
		ex, err := ReadSFT(strings.NewReader(s))
		if err == nil && len(ex) == 0 {
			t.Fatal("no error and no examples")
		}
	})
}

// TestSFTLearns runs a few LoRA SFT steps on addition examples and checks
// that the loss falls, and that the same seed reproduces the run exactly.
func TestSFTLearns(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 16 steps on skills-base")
	}
	dir := testutil.Shared(t, "models/skills-base")
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var data []Example
	for a := 100; a < 140; a++ {
		b := (a * 37) % 900
		data = append(data, Example{Prompt: fmt.Sprintf("Q: %d+%d=\nA:", a, b), Completion: fmt.Sprintf(" %d", a+b)})
	}
	cfg := SFTConfig{Steps: 8, BatchSize: 4, LR: 3e-3, MaxGradNorm: 1, Seed: 1, Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "down_proj"}}
	run := func() []Step {
		m, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, hist, err := SFT(context.Background(), m, tok, data, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return hist
	}
	h1, h2 := run(), run()
	for i := range h1 {
		if h1[i].Loss != h2[i].Loss {
			t.Fatalf("step %d: loss %v then %v with the same seed", i+1, h1[i].Loss, h2[i].Loss)
		}
	}
	first, last := (h1[0].Loss+h1[1].Loss)/2, (h1[6].Loss+h1[7].Loss)/2
	if last >= first {
		t.Fatalf("loss did not fall: %v", h1)
	}
	t.Logf("loss %.4f -> %.4f over %d steps", first, last, len(h1))
}

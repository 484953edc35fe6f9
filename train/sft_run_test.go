package train

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

func addData(n int) []Example {
	var data []Example
	for a := 100; a < 100+n; a++ {
		b := (a * 37) % 900
		data = append(data, Example{Prompt: fmt.Sprintf("Q: %d+%d=\nA:", a, b), Completion: fmt.Sprintf(" %d", a+b)})
	}
	return data
}

func skills(t *testing.T) (string, *tokenizer.Tokenizer) {
	t.Helper()
	dir := testutil.Shared(t, "models/skills-base")
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, tok
}

func loadModel(t *testing.T, dir string) *Model[float32] {
	t.Helper()
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func adapterBytes(t *testing.T, lo *LoRA[float32], m *Model[float32]) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := SaveLoRA(dir, lo, m, "base"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSFTResume checks that a run stopped (by its context, between
// checkpoints) and resumed from its last checkpoint ends with the same
// adapter bytes and losses as the run that never stopped, with LoRA
// dropout and gradient accumulation on so that every random stream and
// the optimizer's state must be carried over.
func TestSFTResume(t *testing.T) {
	dir, tok := skills(t)
	data := addData(24)
	cfg := SFTConfig{Steps: 6, BatchSize: 2, GradAccum: 2, LR: 3e-3, Warmup: 1, WeightDecay: 0.01, MaxGradNorm: 1, Seed: 3,
		Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "down_proj"}, Dropout: 0.1, SaveEvery: 2}

	cfg.CheckpointDir = t.TempDir()
	m := loadModel(t, dir)
	lo, straight, err := SFT(context.Background(), m, tok, data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := adapterBytes(t, lo, m)

	// Stop after step 3: the stop itself writes checkpoint-3.
	cfg.CheckpointDir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	m = loadModel(t, dir)
	_, _, err = SFT(ctx, m, tok, data, cfg, func(s Step) {
		if s.Step == 3 {
			cancel()
		}
	})
	if err == nil {
		t.Fatal("a cancelled run reported no error")
	}
	cfg.Resume = latestCheckpointIs(t, cfg.CheckpointDir, "checkpoint-3")
	m = loadModel(t, dir)
	lo, resumed, err := SFT(context.Background(), m, tok, data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := adapterBytes(t, lo, m); !bytes.Equal(got, want) {
		t.Fatal("resumed run's adapter differs from the straight run's")
	}
	if len(resumed) != len(straight) {
		t.Fatalf("history of %d steps, want %d", len(resumed), len(straight))
	}
	for i := range straight {
		if resumed[i].Loss != straight[i].Loss || resumed[i].Norm != straight[i].Norm {
			t.Fatalf("step %d: loss %v norm %v, straight run %v %v", i+1, resumed[i].Loss, resumed[i].Norm, straight[i].Loss, straight[i].Norm)
		}
	}

	// A changed setting is refused, naming it.
	cfg.LR = 1e-3
	if _, _, err := SFT(context.Background(), loadModel(t, dir), tok, data, cfg, nil); err == nil || !strings.Contains(err.Error(), "lr was") {
		t.Fatalf("resume with another lr: %v", err)
	}
}

// TestSFTNaNStops injects NaN weights after step 3: step 4's loss is NaN,
// the run stops with an error naming it, and checkpoint-2, written
// before, holds the same bytes as an unbroken run's.
func TestSFTNaNStops(t *testing.T) {
	dir, tok := skills(t)
	data := addData(16)
	cfg := SFTConfig{Steps: 4, BatchSize: 2, LR: 3e-3, MaxGradNorm: 1, Seed: 1, Rank: 2, Alpha: 4, Targets: []string{"q_proj"}, SaveEvery: 2}
	cfg.CheckpointDir = t.TempDir()
	good := cfg.CheckpointDir
	if _, _, err := SFT(context.Background(), loadModel(t, dir), tok, data, cfg, nil); err != nil {
		t.Fatal(err)
	}
	cfg.CheckpointDir = t.TempDir()
	m := loadModel(t, dir)
	_, hist, err := SFT(context.Background(), m, tok, data, cfg, func(s Step) {
		if s.Step == 3 {
			for i := range m.Params["model.norm.weight"] {
				m.Params["model.norm.weight"][i] = float32(math.NaN())
			}
		}
	})
	if err == nil || !strings.Contains(err.Error(), "step 4: loss NaN") || !strings.Contains(err.Error(), "last checkpoint: step 2") {
		t.Fatalf("error %v, want step 4's NaN loss named", err)
	}
	if len(hist) != 3 {
		t.Fatalf("history of %d steps, want 3", len(hist))
	}
	for _, f := range []string{"params.safetensors", "optimizer.safetensors"} {
		a, err1 := os.ReadFile(filepath.Join(good, "checkpoint-2", f))
		b, err2 := os.ReadFile(filepath.Join(cfg.CheckpointDir, "checkpoint-2", f))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("checkpoint-2/%s differs from the unbroken run's (%v, %v)", f, err1, err2)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.CheckpointDir, "checkpoint-4")); err == nil {
		t.Fatal("a checkpoint was written after the NaN")
	}
}

// TestGradAccum checks that 2 micro-batches of 2 make the same steps, bit
// for bit, as batches of 4.
func TestGradAccum(t *testing.T) {
	dir, tok := skills(t)
	data := addData(16)
	cfg := SFTConfig{Steps: 2, BatchSize: 4, LR: 3e-3, MaxGradNorm: 1, Seed: 1, Rank: 2, Alpha: 4, Targets: []string{"v_proj"}}
	_, a, err := SFT(context.Background(), loadModel(t, dir), tok, data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BatchSize, cfg.GradAccum = 2, 2
	_, b, err := SFT(context.Background(), loadModel(t, dir), tok, data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i].Loss != b[i].Loss || a[i].Norm != b[i].Norm || a[i].Seen != b[i].Seen {
			t.Fatalf("step %d: %+v vs %+v", i+1, a[i], b[i])
		}
	}
}

// TestTruncate checks the length limit: refused by default, cut with a
// warning under Truncate (the label of the last kept position dropped, as
// Hugging Face's truncation of input_ids and labels does).
func TestTruncate(t *testing.T) {
	dir, tok := skills(t)
	m := loadModel(t, dir)
	data := []Example{{Prompt: "Q: 1+2=\nA:", Completion: " 3"}, {Prompt: "Q: 10+20=\nA:", Completion: " 30 and some more text"}}
	full, _, err := Tokenize(tok, data[1])
	if err != nil {
		t.Fatal(err)
	}
	cfg := SFTConfig{MaxLength: 16}
	if _, err := PrepareSFT(m, tok, data, cfg); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("example 2: %d tokens", len(full))) {
		t.Fatalf("error %v, want example 2 refused", err)
	}
	var warned string
	cfg.Truncate, cfg.Warn = true, func(s string) { warned = s }
	seqs, err := PrepareSFT(m, tok, data, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warned, "truncated 1 of 2 examples to 16 tokens") {
		t.Fatalf("warning %q", warned)
	}
	s := seqs[1]
	if len(s.Tokens) != 16 || s.Targets[15] != -100 || s.Targets[14] != full[15] {
		t.Fatalf("truncated to %v / %v", s.Tokens, s.Targets)
	}
	// A prompt that fills the limit leaves nothing to learn: dropped.
	cfg.MaxLength = 4
	if seqs, err = PrepareSFT(m, tok, data, cfg); err == nil {
		t.Fatalf("%d sequences with no response token, want an error", len(seqs))
	}
}

// TestTokenizeChat renders a conversation with a ChatML template and
// checks the tokens against the hand-written rendering and the scored
// tokens against the assistant turns (content and <|im_end|>\n).
func TestTokenizeChat(t *testing.T) {
	_, tok := skills(t)
	if _, _, err := TokenizeChat(tok, []Message{{"user", "hi"}, {"assistant", "yo"}}); err == nil || !strings.Contains(err.Error(), "no chat template") {
		t.Fatalf("skills-base has no template: error %v", err)
	}
	ct, err := tokenizer.LoadChatTemplate([]byte(`{"chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"}`))
	if err != nil {
		t.Fatal(err)
	}
	tok.Chat = ct
	msgs := []Message{{"system", "add"}, {"user", "1+2"}, {"assistant", "3"}, {"user", "2+2"}, {"assistant", "4"}, {"user", "bye"}}
	tokens, targets, err := TokenizeChat(tok, msgs)
	if err != nil {
		t.Fatal(err)
	}
	text := "<|im_start|>system\nadd<|im_end|>\n<|im_start|>user\n1+2<|im_end|>\n<|im_start|>assistant\n3<|im_end|>\n<|im_start|>user\n2+2<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
	want, err := tok.Encode(text, true)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tokens) != fmt.Sprint(want) {
		t.Fatalf("tokens\n%v\nwant (the whole rendering encoded)\n%v", tokens, want)
	}
	var scored []int
	for _, y := range targets {
		if y >= 0 {
			scored = append(scored, y)
		}
	}
	if got := tok.Decode(scored, false); got != "3<|im_end|>\n4<|im_end|>\n" {
		t.Fatalf("scored %q", got)
	}
}

// TestFullSFT trains every weight for a few steps and writes a model
// folder that the engine loads and whose logits match the trained model's.
func TestFullSFT(t *testing.T) {
	if testing.Short() {
		t.Skip("full fine-tuning of skills-base")
	}
	dir, tok := skills(t)
	m := loadModel(t, dir)
	before := append([]float32(nil), m.Params["model.layers.0.mlp.up_proj.weight"]...)
	data := addData(16)
	seqs, err := PrepareSFT(m, tok, data, SFTConfig{})
	if err != nil {
		t.Fatal(err)
	}
	evalLoss := func() float64 {
		var s float64
		for _, q := range seqs {
			l, _ := m.Loss(q.Tokens, q.Targets, nil)
			s += l
		}
		return s / float64(len(seqs))
	}
	l0 := evalLoss()
	cfg := SFTConfig{Steps: 4, BatchSize: 8, LR: 1e-4, MaxGradNorm: 1, Seed: 1, Full: true}
	lo, _, err := SFT(context.Background(), m, tok, data, cfg, nil)
	if err != nil || lo != nil {
		t.Fatal(lo, err)
	}
	if l1 := evalLoss(); l1 >= l0 {
		t.Fatalf("training-set loss %v -> %v, did not fall", l0, l1)
	} else {
		t.Logf("training-set loss %v -> %v", l0, l1)
	}
	if fmt.Sprint(before) == fmt.Sprint(m.Params["model.layers.0.mlp.up_proj.weight"]) {
		t.Fatal("weights unchanged")
	}
	out := t.TempDir()
	if err := SaveModel(out, m, dir); err != nil {
		t.Fatal(err)
	}
	em, err := engine.Load(out, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	tokens := []int{256, 81, 58, 32, 49, 43, 50, 61}
	want, err := em.NewSession(len(tokens)).ForwardAll(tokens)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Forward(tokens).Logits
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-3 {
			t.Fatalf("logit %d: engine on the saved folder %v, trained model %v", i, want[i], got[i])
		}
	}
}

// latestCheckpointIs returns dir's latest checkpoint, failing the test
// unless it is the one named want.
func latestCheckpointIs(t *testing.T, dir, want string) string {
	t.Helper()
	last, err := LatestCheckpoint(dir)
	if err != nil || filepath.Base(last) != want {
		t.Fatalf("latest checkpoint %q, %v; want %s", last, err, want)
	}
	return last
}

// TestTokenizeAsTRL checks prompt/completion tokenization against TRL's
// rule on stories260K (SentencePiece: every text encoded on its own gets
// a "▁" in front): prompt + completion + "</s>" encoded whole, the
// sequence scored from the prompt's own token count (BOS included) on.
// SFT keeps the whole's tokens; DPO the prompt's tokens followed by the
// whole's after as many, the same when the prompt's tokens are a prefix.
// TokenizeSplit, collab's methods' encoding, keeps the split.
func TestTokenizeAsTRL(t *testing.T) {
	tok, err := tokenizer.Load(testutil.Shared(t, "models/stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	enc := func(s string) []int {
		t.Helper()
		ids, err := tok.Encode(s, true)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	// From the tokenizer: "Q: 2+2=" is BOS 1, 410 473 467 410 479 496 479
	// 64; "4" alone is "▁" 410, "4" 484; after the prompt "4" is 484; EOS
	// is 2.
	if got := fmt.Sprint(enc("Q: 2+2="), enc("Q: 2+2=4</s>")); got != "[1 410 473 467 410 479 496 479 64] [1 410 473 467 410 479 496 479 64 484 2]" {
		t.Fatalf("stories260K encodes %s", got)
	}
	const m = -100
	ex := Example{Prompt: "Q: 2+2=", Completion: "4"}
	tokens, targets, err := Tokenize(tok, ex)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(tokens, targets), "[1 410 473 467 410 479 496 479 64 484 2] "+fmt.Sprint([]int{m, m, m, m, m, m, m, m, 484, 2, m}); got != want {
		t.Errorf("Tokenize: %s, want TRL's %s", got, want)
	}
	c, r, err := TokenizePair(tok, Pair{Prompt: ex.Prompt, Chosen: "4", Rejected: "5</s>"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(c), fmt.Sprint(Seq{tokens, targets}); got != want {
		t.Errorf("TokenizePair chosen: %s, want %s", got, want)
	}
	// A completion that ends with the EOS text gets no second one.
	rt := enc("Q: 2+2=5</s>")
	if rt[len(rt)-2] == 410 || rt[len(rt)-1] != 2 || fmt.Sprint(r.Tokens) != fmt.Sprint(rt) || fmt.Sprint(r.Targets[8:]) != fmt.Sprint([]int{rt[9], 2, m}) {
		t.Errorf("TokenizePair rejected: %v %v, want %v scored from 9", r.Tokens, r.Targets, rt)
	}
	tokens, targets, err = TokenizeSplit(tok, ex)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(tokens, targets), "[1 410 473 467 410 479 496 479 64 410 484 2] "+fmt.Sprint([]int{m, m, m, m, m, m, m, m, 410, 484, 2, m}); got != want {
		t.Errorf("TokenizeSplit: %s, want %s", got, want)
	}

	// "ti" + "me" merge: the prompt's 6 tokens are not a prefix of the
	// whole's. TRL's SFT scores the whole from its 7th token; its DPO
	// keeps the prompt's 6 tokens and the whole's from its 7th.
	ex = Example{Prompt: "Once upon a ti", Completion: "me there was a cat"}
	p, whole := enc(ex.Prompt), enc(ex.Prompt+ex.Completion+"</s>")
	if len(p) != 6 || hasPrefix(whole, p) || len(whole) <= 7 {
		t.Fatalf("stories260K encodes %v and %v: want a 6-token prompt not a prefix", p, whole)
	}
	tokens, targets, err = Tokenize(tok, ex)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int, len(whole))
	for i := range want {
		want[i] = m
		if i >= 5 && i+1 < len(whole) {
			want[i] = whole[i+1]
		}
	}
	if fmt.Sprint(tokens, targets) != fmt.Sprint(whole, want) {
		t.Errorf("Tokenize: %v %v, want %v %v", tokens, targets, whole, want)
	}
	c, _, err = TokenizePair(tok, Pair{Prompt: ex.Prompt, Chosen: ex.Completion, Rejected: "me"})
	if err == nil || !strings.Contains(err.Error(), "rejected: the completion adds no token") {
		t.Errorf("a rejected completion with no token of its own: error %v", err)
	}
	c, _, err = TokenizePair(tok, Pair{Prompt: ex.Prompt, Chosen: ex.Completion, Rejected: ex.Completion})
	if err != nil {
		t.Fatal(err)
	}
	dpo := append(append([]int(nil), p...), whole[6:]...)
	if fmt.Sprint(c.Tokens, c.Targets) != fmt.Sprint(dpo, want[:len(dpo)]) {
		t.Errorf("TokenizePair: %v %v, want %v %v", c.Tokens, c.Targets, dpo, want)
	}
	var warned string
	if _, err := PrepareSFT(&Model[float32]{Config: &engine.Config{MaxPositions: 512}}, tok, []Example{ex}, SFTConfig{Warn: func(s string) { warned = s }}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warned, "1 of 1 examples: the prompt's tokens are not a prefix") {
		t.Errorf("warning %q", warned)
	}
}

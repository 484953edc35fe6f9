package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mocolab/moco/embedded"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testmodel"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// TestGenerateEmptyPrompt: an empty --prompt, given as such, generates
// from the BOS token alone, as llama.cpp does; greedy, the text is the
// engine's own greedy continuation of BOS.
func TestGenerateEmptyPrompt(t *testing.T) {
	const n = 24
	out, errs, code := moco(t, "generate", "-p", "", "--temp", "0", "-n", "24")
	if code != 0 {
		t.Fatalf("-p '': exit %d, stderr %q", code, errs)
	}
	m, tok, err := embedded.Load(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const bos = 1 // <s> of stories260K's vocabulary
	_, want := testmodel.GreedyFrom(t, m, tok, append(m.Config.EOS, tok.EOS()...), bos, n)
	if out != want+"\n" {
		t.Errorf("-p '' printed %q, want %q", out, want+"\n")
	}
	// An empty --file is the same prompt.
	f := filepath.Join(t.TempDir(), "empty.txt")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, errs, _ := moco(t, "generate", "-f", f, "--temp", "0", "-n", "24"); got != out {
		t.Errorf("empty --file printed %q (stderr %q), want %q", got, errs, out)
	}
	// No --prompt at all is still a usage error, and an empty one still
	// conflicts with --file.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"generate", "-n", "1"}, "--prompt (or --file) is required"},
		{[]string{"generate", "-p", "", "-f", f, "-n", "1"}, "give --prompt or --file, not both"},
	} {
		if _, errs, code := moco(t, tc.args...); code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}

// TestGenerateEmptyPromptConfigBOS: a model whose tokenizer has no BOS
// token but whose config.json has a bos_token_id (Qwen2, Qwen3) starts an
// empty prompt from that id, as Hugging Face's generate() does; greedy,
// the text is the engine's own greedy continuation of it.
func TestGenerateEmptyPromptConfigBOS(t *testing.T) {
	const n = 24
	dir := testutil.NoBOSStories260K(t, true) // config.json's bos_token_id is 1
	out, errs, code := moco(t, "generate", "-m", dir, "-p", "", "--temp", "0", "-n", "24")
	if code != 0 {
		t.Fatalf("-p '': exit %d, stderr %q", code, errs)
	}
	const bos = 1
	m, tok := testmodel.LoadNoBOS(t, dir, bos)
	_, want := testmodel.GreedyFrom(t, m, tok, append(m.Config.EOS, tok.EOS()...), bos, n)
	if out != want+"\n" {
		t.Errorf("-p '' printed %q, want %q", out, want+"\n")
	}
}

// TestGenerateEmptyPromptNoBOS: a model with no BOS token, in its
// tokenizer or its config, has nothing to start an empty prompt from, and
// says so; with --chat the empty prompt is an empty user message, which
// the template turns into text, so it generates: the engine's greedy
// continuation of that text.
func TestGenerateEmptyPromptNoBOS(t *testing.T) {
	dir := testutil.Stories260K(t, map[string][]byte{
		"config.json": testutil.Stories260KConfigWithout(t, "bos_token_id"),
		"tokenizer_config.json": []byte(`{"add_bos_token": false, "bos_token": null, "eos_token": "</s>",
			"chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"}`),
	})
	_, errs, code := moco(t, "generate", "-m", dir, "-p", "", "--temp", "0", "-n", "4")
	if code != 1 || !strings.Contains(errs, "no BOS token to start from") {
		t.Errorf("-p '' without a BOS token: exit %d, stderr %q; want exit 1 and no BOS token to start from", code, errs)
	}
	if _, errs, code := moco(t, "generate", "-m", dir, "-p", "Once", "--temp", "0", "-n", "4"); code != 0 {
		t.Errorf("-p Once without a BOS token: exit %d, stderr %q", code, errs)
	}

	const n = 16
	out, errs, code := moco(t, "generate", "-m", dir, "--chat", "-p", "", "--temp", "0", "-n", "16")
	if code != 0 {
		t.Fatalf("--chat -p '': exit %d, stderr %q", code, errs)
	}
	m, err := engine.Load(dir, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tok.Encode("user: \nassistant:", false) // the template, rendered by hand
	if err != nil || len(ids) == 0 || slices.Contains(ids, 1) {
		t.Fatalf("the rendered template encodes to %v, %v", ids, err)
	}
	gen := testutil.Greedy(t, m.NewSession(0), append(m.Config.EOS, tok.EOS()...), ids, n)
	// A chat answer is a text of its own, not a continuation.
	if want := tok.Decode(gen, true) + "\n"; len(gen) == 0 || out != want {
		t.Errorf("--chat -p '' printed %q, want %q (tokens %v)", out, want, gen)
	}
}

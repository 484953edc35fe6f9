package serve

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mocolab/moco/internal/testmodel"
	"github.com/mocolab/moco/internal/testutil"
)

// TestEmptyPromptConfigBOS: a completion of "" from a model whose
// tokenizer has no BOS token starts from config.json's bos_token_id, as
// Hugging Face's generate() does: greedy, its text is the engine's argmax
// loop from that id, decoded as the whole sequence, for the model and for
// recipes over it (a lockstep batch and a method's own sessions). A model
// with no bos_token_id either refuses it.
func TestEmptyPromptConfigBOS(t *testing.T) {
	const bos, n = 1, 12
	dir, none := testutil.NoBOSStories260K(t, true), testutil.NoBOSStories260K(t, false)
	c, err := ParseConfig([]byte(fmt.Sprintf(`
models:
  - {id: a, path: %q}
  - {id: twin, path: %q}
  - {id: none, path: %q}
recipes:
  - {id: fusion-self, method: fusion, models: [a, twin]}
  - {id: spec-self, method: speculative, models: [a, twin], params: {draft_tokens: 3}}
`, dir, dir, none)), "")
	if err != nil {
		t.Fatal(err)
	}
	_, ts := serveConfig(t, c, BuildOptions{})

	m, tok := testmodel.LoadNoBOS(t, dir, bos)
	gen, want := testmodel.GreedyFrom(t, m, tok, m.Config.EOS, bos, n)

	body := fmt.Sprintf(`{"model": %%q, "prompt": "", "max_tokens": %d, "temperature": 0}`, len(gen))
	for _, model := range []string{"a", "fusion-self", "spec-self"} {
		code, out := post(t, ts.URL+"/v1/completions", fmt.Sprintf(body, model))
		if code != 200 {
			t.Errorf("%s: status %d, %v", model, code, out)
			continue
		}
		if got := choiceText(t, out, false); got != want {
			t.Errorf("%s: completion of \"\" is %q, want %q", model, got, want)
		}
		if u, _ := out["usage"].(map[string]any); u["prompt_tokens"] != 1.0 {
			t.Errorf("%s: usage %v, want 1 prompt token", model, out["usage"])
		}
	}
	code, out := post(t, ts.URL+"/v1/completions", fmt.Sprintf(body, "none"))
	if e, _ := out["error"].(map[string]any); code != 400 || !strings.Contains(fmt.Sprint(e["message"]), "no BOS token to start from") {
		t.Errorf("no BOS anywhere: status %d, %v; want 400 and no BOS token to start from", code, out)
	}
}

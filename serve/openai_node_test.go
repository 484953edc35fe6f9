package serve

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/testutil"
	"github.com/mocolab/moco/tokenizer"
)

// The official openai npm package as a client nobody here wrote: a chat
// completion, a streamed completion, a streamed chat, a collaboration
// recipe, the model list and an error, against the test server.
const openaiScript = `
import OpenAI from 'openai';
const client = new OpenAI({ baseURL: process.env.MOCO_BASE + '/v1', apiKey: 'test-key', maxRetries: 0 });
const out = {};
const chat = await client.chat.completions.create({ model: 'a', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 20, temperature: 0 });
out.chat = chat.choices[0].message.content;
out.chatFinish = chat.choices[0].finish_reason;
out.completionTokens = chat.usage.completion_tokens;
const stream = await client.completions.create({ model: 'a', prompt: 'Once upon a time', max_tokens: 20, temperature: 0, stream: true });
out.streamed = '';
for await (const ch of stream) out.streamed += ch.choices[0]?.text ?? '';
const cstream = await client.chat.completions.create({ model: 'a', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 20, temperature: 0, stream: true });
out.chatStreamed = '';
for await (const ch of cstream) out.chatStreamed += ch.choices[0]?.delta?.content ?? '';
const recipe = await client.chat.completions.create({ model: 'fusion-ab', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 20, temperature: 0 });
out.recipe = recipe.choices[0].message.content;
out.models = (await client.models.list()).data.map((m) => m.id);
try {
  await client.completions.create({ model: 'nope', prompt: 'x' });
} catch (e) {
  out.errStatus = e.status;
  out.errCode = e.code;
}
console.log(JSON.stringify(out));
`

// openaiPackage installs the openai npm package once into the user cache
// and returns the folder holding node_modules, or skips the test.
func openaiPackage(t *testing.T) string {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: skipping the test with the official openai npm client", tool)
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "moco-test-openai-npm")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai", "package.json")); err == nil {
		return dir
	}
	tmp, err := os.MkdirTemp(cache, "moco-test-openai-npm-")
	if err != nil {
		t.Skipf("no folder to install the openai npm package into: %v", err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--silent", "openai@^4")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("npm install openai failed (offline?), skipping the test with the official client: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
		t.Skipf("cannot keep the installed package: %v", err)
	}
	return dir
}

func TestOpenAINodeClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the test that runs the official openai npm client")
	}
	dirA := testutil.Shared(t, "models/stories260K")
	dirB := testutil.Shared(t, "models/llama2xs")
	pkg := openaiPackage(t)
	_, ts := newTestServer(t, BuildOptions{Server: Options{APIKey: "test-key"}})
	script := filepath.Join(pkg, "moco_test.mjs")
	if err := os.WriteFile(script, []byte(openaiScript), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = pkg
	cmd.Env = append(os.Environ(), "MOCO_BASE="+ts.URL)
	raw, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	var out struct {
		Chat, ChatFinish, Streamed, ChatStreamed, Recipe string
		CompletionTokens                                 int
		Models                                           []string
		ErrStatus                                        int
		ErrCode                                          string
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("node printed %q: %v", raw, err)
	}
	want := single(t, dirA, "Once upon a time", 20, nil)
	if out.Chat != want || out.Streamed != want || out.ChatStreamed != want || out.ChatFinish != "length" || out.CompletionTokens != 20 {
		t.Errorf("openai client: %+v\nwant text %q", out, want)
	}
	fusion := referenceFusion(t, dirA, dirB, "Once upon a time", 20)
	if out.Recipe != fusion {
		t.Errorf("fusion-ab through the openai client: %q, want %q", out.Recipe, fusion)
	}
	if strings.Join(out.Models, ",") != "a,b,fusion-ab,spec-a" || out.ErrStatus != 404 || out.ErrCode != "model_not_found" {
		t.Errorf("models %v, error %d %q", out.Models, out.ErrStatus, out.ErrCode)
	}
}

// referenceFusion is the greedy logit-mean fusion of two models through
// decode directly.
func referenceFusion(t *testing.T, dirA, dirB, prompt string, maxTokens int) string {
	var models []*engine.Model
	var toks []*tokenizer.Tokenizer
	for _, d := range []string{dirA, dirB} {
		m, err := engine.Load(d, engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		tok, err := tokenizer.Load(d)
		if err != nil {
			t.Fatal(err)
		}
		models, toks = append(models, m), append(toks, tok)
	}
	c, err := decode.NewMethod(models, toks, decode.MethodConfig{Method: "fusion", MaxTokens: maxTokens})
	if err != nil {
		t.Fatal(err)
	}
	text, err := c.Generate(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/collab/extract"
	"github.com/mocolab/moco/decode"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/atomicfile"
)

// registryMethod reports whether name is a method this file runs: one
// registered in collab's registry that is not one of decode's token loops
// (those keep their own flags in collab.go).
func registryMethod(name string) bool {
	for _, m := range decode.Methods {
		if m == name {
			return false
		}
	}
	_, ok := collab.Lookup(name)
	return ok
}

// registryList is one line for each of the registry's API- and
// text-level methods: name, level and summary, in aligned columns.
func registryList() string {
	var specs []collab.Spec
	width := 0
	for _, s := range collab.Specs() {
		if s.Level == collab.LevelAPI || s.Level == collab.LevelText {
			specs = append(specs, s)
			width = max(width, len(s.Name))
		}
	}
	var b strings.Builder
	for _, s := range specs {
		fmt.Fprintf(&b, "  %-*s  %-4s  %s\n", width, s.Name, s.Level, s.Summary)
	}
	return b.String()
}

// registryUsage lists the registry's API- and text-level methods.
func registryUsage() string {
	var b strings.Builder
	b.WriteString(`Usage: moco collab METHOD -m MODEL -m MODEL [...] --prompt TEXT [flags]

MODEL is a model folder, or an OpenAI-compatible endpoint written
http(s)://HOST[:PORT][/v1]#MODEL_NAME (its API key in the variable named by
--api-key-env). Methods over whole texts and routes:
`)
	b.WriteString(registryList())
	b.WriteString(`
Method parameters (see the collab package's *Params types for each
method's names and MoCo defaults) are given with --param NAME=VALUE (VALUE
is JSON, or else a string; repeat), --params FILE.json, or these shortcuts:
--rounds, --summarizer, --tie, --structure, --task-type, --dev-scores.`)
	return b.String()
}

func runRegistryCollab(method string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("collab "+method, stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, registryUsage())
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	models := fs.StringArrayP("model", "m", nil, "model folder or endpoint URL#MODEL (repeat; order matters where the method gives roles)")
	prompt := fs.StringP("prompt", "p", "", "the question; "+escapeHelp)
	promptFile := fs.StringP("file", "f", "", "read the question from this file, as is")
	maxTokens := fs.IntP("max-tokens", "n", 512, "most tokens each model call generates (MoCo: 512)")
	temperature := fs.Float64("temperature", 0.7, "sampling temperature of every model call; 0 is greedy (MoCo: 0.7)")
	topP := fs.Float64("top-p", 0.9, "nucleus sampling of every model call (MoCo: 0.9)")
	seed := new(uint64)
	addSeedFlag(fs, seed, "random seed of every model call: the same seed gives the same answer (default: a random one, printed on stderr and by --json)")
	stop := fs.StringArray("stop", nil, "stop each call before this text (repeat); "+escapeHelp)
	noEscape := fs.Bool("no-escape", false, `take --prompt and --stop literally`)
	taskType := fs.String("task-type", "", "MoCo task type for answer extraction: exact_match, multiple_choice, f1_match")
	choices := fs.StringArray("choice", nil, "multiple choice: an option's text, in label order A, B, ... (repeat)")
	params := fs.StringArray("param", nil, "method parameter NAME=VALUE, VALUE as JSON or a plain string (repeat)")
	paramsFile := fs.String("params", "", "method parameters from a JSON object file")
	rounds := fs.Int("rounds", 0, "rounds of exchange (debate, feedback, structure; default: 3, as MoCo)")
	summarizer := fs.String("summarizer", "", "model (name or index) that writes the final answer")
	tie := fs.String("tie", "", "majority vote: first or dev; slm-mux: dev-based, model-order or random")
	structure := fs.String("structure", "", "structure: chain, tree, star, circle, complete, other")
	devScores := fs.Float64Slice("dev-scores", nil, "each model's dev score, for methods that pick the best model")
	keyEnv := fs.String("api-key-env", "", "environment variable holding the endpoints' API key (e.g. OPENAI_API_KEY)")
	timeout := fs.Duration("timeout", 0, "per-attempt timeout of endpoint requests (default 120s)")
	threads := fs.Int("threads", 0, "compute threads of local models (0: all cores)")
	trace := fs.String("trace", "", "write every exchange as a JSON line to this file")
	asJSON := fs.Bool("json", false, "print a JSON object with the answer, costs and trace")
	setRange(fs, "max-tokens", atLeast(1))
	setRange(fs, "temperature", atLeast(0))
	setRange(fs, "top-p", above(0, 1))
	setRange(fs, "rounds", atLeast(1))
	setRange(fs, "threads", between(0, float64(maxThreads())).withNote("0: all cores"))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if len(*models) == 0 {
		return usagef("give the pool with -m MODEL (repeat)")
	}
	text := *prompt
	switch {
	case *promptFile != "" && *prompt != "":
		return usagef("give --prompt or --file, not both")
	case *promptFile != "":
		b, err := os.ReadFile(*promptFile)
		if err != nil {
			return err
		}
		text = string(b)
	case text == "":
		return usagef("--prompt or --file is required")
	case !*noEscape:
		text = unescape(text)
	}
	if !*noEscape {
		for i, s := range *stop {
			(*stop)[i] = unescape(s)
		}
	}
	p := collab.Params{}
	if *paramsFile != "" {
		b, err := os.ReadFile(*paramsFile)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return usagef("--params %s: %v", *paramsFile, err)
		}
	}
	for _, kv := range *params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usagef("--param wants NAME=VALUE, got %q", kv)
		}
		var val any
		if err := json.Unmarshal([]byte(v), &val); err != nil {
			val = v
		}
		p[k] = val
	}
	fromFlag := map[string]string{} // parameter name: the shortcut flag that set it
	if fs.Changed("rounds") {
		k := "rounds"
		if method == "structure" {
			k = "num_rounds"
		}
		p[k], fromFlag[k] = *rounds, "rounds"
	}
	shortcut := map[string]struct {
		flag string
		val  any
	}{
		"summarizer": {"summarizer", *summarizer}, "tie": {"tie", *tie},
		"structure_type": {"structure", *structure}, "dev_scores": {"dev-scores", *devScores},
	}
	for k, s := range shortcut {
		if fs.Changed(s.flag) {
			p[k], fromFlag[k] = s.val, s.flag
		}
	}
	if fs.Changed("task-type") && method != "majority-vote" {
		p["task_type"], fromFlag["task_type"] = *taskType, "task-type"
	}
	ctx, stopSig := signalContext()
	defer stopSig()
	pool, closeAll, err := collab.OpenPool(*models, collab.PoolOptions{
		Engine: engine.Options{Threads: *threads}, KeyEnv: *keyEnv, Timeout: *timeout,
	})
	if err != nil {
		return err
	}
	defer closeAll()
	start := time.Now()
	m, err := collab.New(ctx, method, pool, p)
	var unknown *collab.UnknownParamError
	if errors.As(err, &unknown) && fromFlag[unknown.Name] != "" {
		return usagef("--%s does not apply to %s (it has no %s parameter)", fromFlag[unknown.Name], method, unknown.Name)
	}
	if err != nil {
		return interrupted(ctx, err)
	}
	if !seedGiven(fs) {
		// Also for greedy requests: a method may sample anyway (slm-mux's
		// k samples per model).
		*seed = randomSeed()
	}
	req := collab.Request{Prompt: text, MaxTokens: *maxTokens, Temperature: *temperature, TopP: *topP, Seed: *seed, Stop: *stop}
	req.Task.Type = *taskType
	for i, c := range *choices {
		req.Task.Choices = append(req.Task.Choices, extract.Choice{Label: string(rune('A' + i)), Text: c})
	}
	res, err := m.Generate(ctx, []collab.Request{req})
	if err != nil {
		return interrupted(ctx, err)
	}
	r := res[0]
	if *trace != "" {
		if err := writeTrace(*trace, r.Trace); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "%s: %d model calls, %d prompt + %d generated tokens, %.3g FLOPs, %.1fs, seed %d\n",
		method, modelCalls(r.Trace, pool), r.PromptTokens, r.CompletionTokens, r.FLOPs, time.Since(start).Seconds(), *seed)
	if *asJSON {
		names := make([]string, len(pool))
		for i, mb := range pool {
			names[i] = mb.Name
		}
		return json.NewEncoder(stdout).Encode(map[string]any{
			"method": method, "models": names, "prompt": text, "text": r.Text, "seed": *seed,
			"prompt_tokens": r.PromptTokens, "completion_tokens": r.CompletionTokens,
			"forward_tokens": r.ForwardTokens, "flops": r.FLOPs, "finish": r.Finish, "trace": r.Trace,
		})
	}
	_, err = fmt.Fprintln(stdout, r.Text)
	return err
}

// writeTrace writes events as JSON lines, atomically (a temporary file
// renamed into place).
func writeTrace(path string, events []collab.Event) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(path, b.Bytes())
}

// collabMethodNames lists every method moco collab runs, but "single".
// modelCalls counts the trace's events spoken by a model of the pool; the
// others (a vote, a route) are the method's own steps.
func modelCalls(trace []collab.Event, pool []collab.Member) int {
	n := 0
	for _, e := range trace {
		for _, m := range pool {
			if e.From == m.Name {
				n++
				break
			}
		}
	}
	return n
}

func collabMethodNames() []string {
	var names []string
	for _, s := range collab.Specs() {
		if s.Name != "single" && s.Level != collab.LevelWeight && s.Level != collab.LevelTraining {
			names = append(names, s.Name)
		}
	}
	return names
}

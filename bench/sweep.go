package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/collab/extract"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/internal/atomicfile"
)

// ResultLine is one line of a sweep's results: one method on one item.
type ResultLine struct {
	Method    string   `json:"method"` // the row label (a model's name for single)
	Name      string   `json:"name"`   // the method's registry name
	Level     string   `json:"level"`
	Models    []string `json:"models"`
	Dataset   string   `json:"dataset"`
	Domain    string   `json:"domain,omitempty"`
	Split     string   `json:"split"`
	TaskType  string   `json:"task_type"`
	Metric    string   `json:"metric"`
	Index     int      `json:"index"` // the item's position in its split
	ID        string   `json:"id"`
	Category  string   `json:"category,omitempty"` // Stratum: for per-category breakdowns
	Group     string   `json:"group,omitempty"`    // culturebench's question_id: scored all-or-nothing
	Prompt    string   `json:"prompt"`
	Output    string   `json:"output"`
	Extracted string   `json:"extracted"`
	Score     float64  `json:"score"`
	Note      string   `json:"note,omitempty"`
	TokensIn  int      `json:"tokens_in"`
	TokensOut int      `json:"tokens_out"`
	// ForwardTokens counts every token any model ran a forward pass over
	// (prompts included); FLOPs is 2 x parameters x those tokens.
	ForwardTokens int64          `json:"forward_tokens"`
	FLOPs         float64        `json:"flops"`
	WallS         float64        `json:"wall_s,omitempty"`
	Trace         []collab.Event `json:"trace,omitempty"`
}

// key identifies a line for resuming and merging.
func (r *ResultLine) key() string {
	return r.Method + "\x00" + r.Dataset + "\x00" + r.Split + "\x00" + r.ID
}

// SweepOptions controls one run of a sweep.
type SweepOptions struct {
	Out           string // results file (JSON lines); resumed when it exists
	Shard, Shards int    // run only the items of shard Shard of Shards (0 of 1: all)
	Limit         int    // > 0: overrides every dataset's limit
	Workers       int    // items at once; 0: the config's, else one per core
	// Progress is called after every item (and once at the start).
	Progress func(SweepProgress)
	// Notice receives one-line notices: refused datasets, resumed items.
	Notice func(string)
}

// SweepProgress is the state of a running sweep.
type SweepProgress struct {
	Done, Total int // items of this run (resumed ones not counted)
	Resumed     int // items found done in the results file
	Elapsed     time.Duration
	Methods     []MethodProgress
}

// MethodProgress counts one method's items.
type MethodProgress struct {
	Label       string
	Done, Total int
}

// SweepSummary is what a run did.
type SweepSummary struct {
	Ran, Resumed int
	Refused      []string // "dataset: reason"
	ConfigHash   string
}

// ShardOf assigns a (method, dataset, item) to one of n shards by hash, so
// every shard process agrees without talking to the others.
func ShardOf(method, dataset, id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(method + "\x00" + dataset + "\x00" + id))
	return int(h.Sum64() % uint64(n))
}

// itemSeed is the sampling seed of one request: the sweep's seed mixed
// with the method, dataset and item, so it does not depend on shards,
// workers or order.
func itemSeed(seed uint64, method, dataset, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(strconv.FormatUint(seed, 10) + "\x00" + method + "\x00" + dataset + "\x00" + id))
	return h.Sum64()
}

// methodRun is one row of the sweep: a method over some pool members.
type methodRun struct {
	label, name string
	level       collab.Level
	models      []string
	params      collab.Params
	entry       int // index in the config's methods
}

// expandMethods turns the config's methods into rows: "single" without
// models runs each pool member alone.
func expandMethods(c *SweepConfig) []methodRun {
	var out []methodRun
	for i, m := range c.Methods {
		spec, _ := collab.Lookup(m.Name)
		if m.Name == "single" && len(m.Models) == 0 {
			for _, pm := range c.Models {
				out = append(out, methodRun{label: pm.Name, name: "single", level: spec.Level, models: []string{pm.Name}, params: m.Params, entry: i})
			}
			continue
		}
		models := m.Models
		if len(models) == 0 {
			for _, pm := range c.Models {
				models = append(models, pm.Name)
			}
		}
		out = append(out, methodRun{label: m.Label, name: m.Name, level: spec.Level, models: models, params: m.Params, entry: i})
	}
	return out
}

type sweepTask struct {
	m, d  int // indices into runs and datasets
	index int
	item  Item
}

type metaFile struct {
	ConfigHash string `json:"config_hash"`
	Config     string `json:"config"`
	// Shard ("i/n"; absent for a whole run) and Items, the lines the run
	// holds when complete, let a merge tell a missing or unfinished shard.
	Shard string `json:"shard,omitempty"`
	Items *int   `json:"items,omitempty"`
}

// RunSweep runs a sweep: every method on every item of every dataset
// (this shard's share, minus the items already in the results file),
// appending one ResultLine per item to o.Out as it goes. Datasets that
// cannot be scored here (no judge, no python3) are refused with a notice.
// A complete run rewrites the file in canonical order (CanonicalSort);
// an interrupted one leaves every finished line in place for the next run.
// Models are loaded only after everything that can be checked is.
func RunSweep(ctx context.Context, c *SweepConfig, dss []*Dataset, o SweepOptions) (*SweepSummary, error) {
	if o.Shards <= 0 {
		o.Shards = 1
	}
	if o.Shard < 0 || o.Shard >= o.Shards {
		return nil, fmt.Errorf("shard %d of %d", o.Shard, o.Shards)
	}
	if o.Out == "" {
		return nil, fmt.Errorf("no results file")
	}
	notice := o.Notice
	if notice == nil {
		notice = func(string) {}
	}
	unlock, err := lockResults(o.Out)
	if err != nil {
		return nil, err
	}
	defer unlock()
	sum := &SweepSummary{ConfigHash: c.Hash()}
	if err := checkMeta(o.Out, c, sum.ConfigHash); err != nil {
		return nil, err
	}
	done, err := readDone(o.Out)
	if err != nil {
		return nil, err
	}

	// The judge is a model: load it only when some dataset needs it, and
	// after the cheap checks.
	var judge *Judge
	var closers []io.Closer
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i].Close()
		}
	}()
	opts := engine.Options{Threads: c.Threads, Quant: c.Quant, ContextSize: c.CtxSize}
	code := CodeOptions{}
	if c.CodeTimeout != "" {
		code.Timeout, _ = time.ParseDuration(c.CodeTimeout)
	}
	runs := expandMethods(c)
	scorers := make([]Scorer, len(dss))
	var tasks []sweepTask
	perMethod := make([]int, len(runs))
	for di, d := range dss {
		e := c.Datasets[di]
		so := ScorerOptions{Dataset: e.Name, Prompt: e.Prompt, Code: code, KeywordRule: c.NoncomplianceKeywords}
		if c.Judge != "" && judgeTasks[d.TaskType] {
			if judge == nil {
				l, err := collab.LoadLocal(c.Judge, opts)
				if err != nil {
					return nil, fmt.Errorf("%s: judge: %w", c.File, err)
				}
				closers = append(closers, l)
				judge = &Judge{Gen: l}
			}
			so.Judge = judge
		}
		s, err := NewScorer(d.TaskType, so)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, e.Name) {
				msg = e.Name + ": " + msg
			}
			sum.Refused = append(sum.Refused, msg)
			notice("refused " + msg)
			continue
		}
		scorers[di] = s
		items, _ := d.Split(e.Split)
		limit := e.Limit
		if o.Limit > 0 {
			limit = o.Limit
		}
		chosen := Sample(items, limit, c.Seed)
		pos := map[string]int{}
		for i, it := range items {
			pos[it.ID] = i
		}
		for mi, r := range runs {
			for _, it := range chosen {
				if ShardOf(r.label, e.Name, it.ID, o.Shards) != o.Shard {
					continue
				}
				if done[r.label+"\x00"+e.Name+"\x00"+e.Split+"\x00"+it.ID] {
					sum.Resumed++
					continue
				}
				tasks = append(tasks, sweepTask{m: mi, d: di, index: pos[it.ID], item: it})
				perMethod[mi]++
			}
		}
	}
	for _, t := range tasks {
		if e := c.Datasets[t.d]; e.Split == "dev" && devNeeds(runs[t.m]).any() {
			r := runs[t.m]
			return nil, fmt.Errorf("%s: methods[%d] (%s) learns from the dev split, and datasets[%d] (%s) evaluates the dev split: evaluate it on test", c.File, r.entry, r.label, t.d, e.Name)
		}
	}
	if sum.Resumed > 0 {
		notice(fmt.Sprintf("resuming: %d items already in %s", sum.Resumed, o.Out))
	}
	m := metaFile{ConfigHash: sum.ConfigHash, Config: c.File, Items: new(int)}
	*m.Items = sum.Resumed + len(tasks)
	if o.Shards > 1 {
		m.Shard = fmt.Sprintf("%d/%d", o.Shard, o.Shards)
	}
	if err := writeMeta(o.Out, m); err != nil {
		return nil, err
	}
	if len(tasks) == 0 {
		return sum, CanonicalizeFile(o.Out)
	}

	// Load the pool members the remaining rows use, then build each row's
	// method once (merges happen here, once per sweep).
	need := map[string]bool{}
	for mi, r := range runs {
		if perMethod[mi] > 0 {
			for _, m := range r.models {
				need[m] = true
			}
		}
	}
	members := map[string]collab.Member{}
	for _, pm := range c.Models {
		if !need[pm.Name] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		m, closeFn, err := loadMember(pm, opts)
		if err != nil {
			return nil, fmt.Errorf("models: %s: %w", pm.Name, err)
		}
		closers = append(closers, closerFunc(closeFn))
		members[pm.Name] = m
	}
	// A method that learns from dev data is built per dataset, from that
	// dataset's dev split (sweepdev.go); the others once for the sweep.
	dev := &devPrep{c: c, dss: dss, scorers: scorers, dir: o.Out + ".dev", sets: map[int]*devSet{}}
	needDS := make([]map[int]bool, len(runs))
	for _, t := range tasks {
		if needDS[t.m] == nil {
			needDS[t.m] = map[int]bool{}
		}
		needDS[t.m][t.d] = true
	}
	methods := make([][]collab.Method, len(runs))
	for mi, r := range runs {
		if perMethod[mi] == 0 {
			continue
		}
		methods[mi] = make([]collab.Method, len(dss))
		perDataset := devNeeds(r).any()
		var shared collab.Method
		for di := range dss {
			if !needDS[mi][di] {
				continue
			}
			if shared != nil {
				methods[mi][di] = shared
				continue
			}
			pool := make([]collab.Member, len(r.models))
			for i, n := range r.models {
				pool[i] = members[n]
			}
			params := collab.Params{}
			for k, v := range r.params {
				params[k] = v
			}
			if r.level == collab.LevelWeight {
				if _, ok := params["cache_dir"]; !ok {
					params["cache_dir"] = filepath.Join(filepath.Dir(o.Out), "merges")
				}
			}
			if perDataset {
				var err error
				pool, params, err = dev.prepare(ctx, r, di, pool, params)
				if err != nil {
					if ctx.Err() != nil {
						return sum, ctx.Err()
					}
					return nil, fmt.Errorf("%s: methods[%d] (%s) on %s: %w", c.File, r.entry, r.label, c.Datasets[di].Name, err)
				}
			}
			built := time.Now()
			m, err := collab.New(ctx, r.name, pool, params)
			if err != nil {
				if ctx.Err() != nil {
					return sum, ctx.Err()
				}
				return nil, fmt.Errorf("%s: methods[%d] (%s): %w", c.File, r.entry, r.label, err)
			}
			if perDataset {
				notice(fmt.Sprintf("%s: learned from the dev split of %s in %.1fs", r.label, c.Datasets[di].Name, time.Since(built).Seconds()))
			}
			if cl, ok := m.(io.Closer); ok {
				closers = append(closers, cl)
			}
			methods[mi][di] = m
			if !perDataset {
				shared = m
			}
		}
	}

	f, err := openAppend(o.Out)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	prog := SweepProgress{Total: len(tasks), Resumed: sum.Resumed}
	for mi, r := range runs {
		if perMethod[mi] > 0 {
			prog.Methods = append(prog.Methods, MethodProgress{Label: r.label, Total: perMethod[mi]})
		}
	}
	slot := map[int]int{}
	for mi := range runs {
		if perMethod[mi] > 0 {
			slot[mi] = len(slot)
		}
	}
	start := time.Now()
	var mu sync.Mutex
	if o.Progress != nil {
		o.Progress(prog)
	}
	workers := o.Workers
	if workers <= 0 {
		workers = c.Workers
	}
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan sweepTask)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range next {
				line, err := runItem(ctx, c, runs[t.m], methods[t.m][t.d], dss[t.d], c.Datasets[t.d], scorers[t.d], t)
				if err != nil {
					cancel(err)
					continue
				}
				b, _ := json.Marshal(line)
				mu.Lock()
				_, werr := f.Write(append(b, '\n'))
				if werr != nil {
					mu.Unlock()
					cancel(werr)
					continue
				}
				sum.Ran++
				prog.Done++
				prog.Methods[slot[t.m]].Done++
				prog.Elapsed = time.Since(start)
				if o.Progress != nil {
					o.Progress(prog)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, t := range tasks {
		select {
		case next <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return sum, err
	}
	if err := f.Close(); err != nil {
		return sum, err
	}
	return sum, CanonicalizeFile(o.Out)
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// judgeTasks are the task types a configured judge grades.
var judgeTasks = map[string]bool{RewardModelTask: true, NoncomplianceTask: true}

// runItem generates and scores one item.
func runItem(ctx context.Context, c *SweepConfig, r methodRun, m collab.Method, d *Dataset, e DatasetEntry, s Scorer, t sweepTask) (*ResultLine, error) {
	start := time.Now()
	if d.TaskType == MultipleChoiceTask && e.ChoiceScoring == ChoiceLoglik {
		return runItemLoglik(ctx, c, r, m, d, e, s, t, start)
	}
	req := buildRequest(c, r.label, d, e, s, t.item)
	prompt := s.Prompt(t.item)
	out, err := m.Generate(ctx, []collab.Request{req})
	if err != nil {
		return nil, fmt.Errorf("%s on %s item %s: %w", r.label, e.Name, t.item.ID, err)
	}
	if len(out) != 1 {
		return nil, fmt.Errorf("%s: %d responses to one request", r.label, len(out))
	}
	resp := out[0]
	sc, err := s.Score(ctx, t.item, resp.Text)
	if err != nil {
		return nil, fmt.Errorf("scoring %s item %s: %w", e.Name, t.item.ID, err)
	}
	line := &ResultLine{
		Method: r.label, Name: r.name, Level: string(r.level), Models: r.models, Dataset: e.Name, Domain: e.Domain,
		Split: e.Split, TaskType: d.TaskType, Metric: s.Metric(), Index: t.index, ID: t.item.ID,
		Category: Stratum(t.item), Prompt: prompt, Output: resp.Text, Extracted: sc.Extracted,
		Score: sc.Score, Note: sc.Note, TokensIn: resp.PromptTokens, TokensOut: resp.CompletionTokens,
		ForwardTokens: resp.ForwardTokens, FLOPs: resp.FLOPs, Trace: resp.Trace,
	}
	if e.Name == "culturebench" {
		line.Group = rawString(t.item, "question_id")
	}
	if c.TimingOn() {
		line.WallS = time.Since(start).Seconds()
	}
	return line, nil
}

// runItemLoglik scores a multiple-choice item by the options'
// log-likelihoods under the method (choice_scoring: loglik).
func runItemLoglik(ctx context.Context, c *SweepConfig, r methodRun, m collab.Method, d *Dataset, e DatasetEntry, s Scorer, t sweepTask, start time.Time) (*ResultLine, error) {
	sc, ok := m.(collab.Scorer)
	if !ok {
		return nil, fmt.Errorf("%s on %s: choice_scoring loglik needs a method that gives text a likelihood (single, fusion, contrastive, nudging, weight-level); %s generates text only", r.label, e.Name, r.name)
	}
	label, lls, tokens, err := ChoiceByLikelihood(ctx, sc, t.item)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", r.label, e.Name, err)
	}
	text := ""
	for _, ch := range t.item.Choices {
		if ch.Label == label {
			text = ch.Text
		}
	}
	line := &ResultLine{
		Method: r.label, Name: r.name, Level: string(r.level), Models: r.models, Dataset: e.Name, Domain: e.Domain,
		Split: e.Split, TaskType: d.TaskType, Metric: "accuracy (log-likelihood)", Index: t.index, ID: t.item.ID,
		Category: Stratum(t.item), Prompt: LoglikPrompt(t.item), Output: text, Extracted: label,
		Note: likelihoodNote(t.item, lls), TokensIn: tokens,
	}
	if label == Reference(MultipleChoiceTask, t.item) {
		line.Score = 1
	}
	if e.Name == "culturebench" {
		line.Group = rawString(t.item, "question_id")
	}
	if c.TimingOn() {
		line.WallS = time.Since(start).Seconds()
	}
	return line, nil
}

// buildRequest is the request a sweep sends for an item: the scorer's
// prompt (as a user message in chat mode) with the generation settings of
// the config and dataset entry, seeded per (method label, dataset, item).
func buildRequest(c *SweepConfig, label string, d *Dataset, e DatasetEntry, s Scorer, it Item) collab.Request {
	prompt := s.Prompt(it)
	req := collab.Request{
		MaxTokens:   c.Generation.MaxTokens,
		Temperature: c.Generation.Temperature,
		TopP:        c.Generation.TopP,
		Stop:        c.Generation.Stop,
		Seed:        itemSeed(c.Seed, label, e.Name, it.ID),
	}
	if e.MaxTokens > 0 {
		req.MaxTokens = e.MaxTokens
	}
	if req.MaxTokens == 0 {
		req.MaxTokens = 256
	}
	if e.Stop != nil {
		req.Stop = e.Stop
	}
	req.Task = extract.Task{Type: d.TaskType}
	for _, ch := range it.Choices {
		req.Task.Choices = append(req.Task.Choices, extract.Choice{Label: ch.Label, Text: ch.Text})
	}
	if c.Generation.Chat {
		req.Messages = []collab.Message{{Role: "user", Content: prompt}}
	} else {
		req.Prompt = prompt
	}
	return req
}

// checkMeta refuses to resume a results file made with a different config.
// A meta file with no results beside it (a run that failed or was stopped
// before its first item, such as one refused for a bad method) protects
// nothing: the new run replaces it.
func checkMeta(out string, c *SweepConfig, hash string) error {
	b, err := os.ReadFile(out + ".meta.json")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var m metaFile
	if json.Unmarshal(b, &m) != nil {
		return fmt.Errorf("%s.meta.json: unreadable; remove it (and %s) to start over", out, out)
	}
	if st, err := os.Stat(out); m.ConfigHash != hash && (errors.Is(err, os.ErrNotExist) || err == nil && st.Size() == 0) {
		return nil
	}
	if m.ConfigHash != hash {
		return fmt.Errorf("%s was made with a different configuration (%s, hash %s; now %s): use another output file, or remove it to start over", out, m.Config, m.ConfigHash, hash)
	}
	return nil
}

func writeMeta(out string, m metaFile) error {
	b, _ := json.MarshalIndent(m, "", " ")
	return writeAtomic(out+".meta.json", append(b, '\n'))
}

// readDone reads the keys of the complete lines of a results file and cuts
// off a partial last line (a run killed mid-write).
func readDone(path string) (map[string]bool, error) {
	done := map[string]bool{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, err
	}
	good := 0
	for off := 0; off < len(b); {
		nl := bytes.IndexByte(b[off:], '\n')
		if nl < 0 {
			break // no newline: a partial line
		}
		// Blank lines (files joined by hand) are skipped, as ReadResults
		// skips them.
		if line := b[off : off+nl]; len(bytes.TrimSpace(line)) > 0 {
			var r ResultLine
			if err := json.Unmarshal(line, &r); err != nil {
				return nil, fmt.Errorf("%s: line at byte %d is not a result: %v", path, off, err)
			}
			done[r.key()] = true
		}
		off += nl + 1
		good = off
	}
	if good < len(b) {
		if err := os.Truncate(path, int64(good)); err != nil {
			return nil, err
		}
	}
	return done, nil
}

func openAppend(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// writeAtomic writes a file through a temporary file and a rename,
// making its folder first.
func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b)
}

// ReadResults reads a results file's lines (a partial last line, from a
// killed run, is ignored).
func ReadResults(path string) ([]ResultLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readResults(f, path)
}

// readResults is ReadResults on r, its errors naming path.
func readResults(r io.Reader, path string) ([]ResultLine, error) {
	var out []ResultLine
	rd := bufio.NewReaderSize(r, 1<<20)
	for n := 1; ; n++ {
		b, err := rd.ReadBytes('\n')
		if len(b) > 0 && b[len(b)-1] == '\n' {
			if t := bytes.TrimSpace(b); len(t) > 0 {
				var r ResultLine
				if err := json.Unmarshal(t, &r); err != nil {
					return nil, fmt.Errorf("%s: line %d: %v", path, n, err)
				}
				out = append(out, r)
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// CanonicalSort orders lines by level (report order), method, dataset,
// split and item position, so that any run, resumed or sharded, writes the
// same file for the same results.
func CanonicalSort(lines []ResultLine) {
	rank := map[string]int{}
	for i, l := range collab.Levels {
		rank[string(l)] = i
	}
	sort.SliceStable(lines, func(i, j int) bool {
		a, b := &lines[i], &lines[j]
		if a.Level != b.Level {
			return rank[a.Level] < rank[b.Level]
		}
		if a.Method != b.Method {
			return a.Method < b.Method
		}
		if a.Dataset != b.Dataset {
			return a.Dataset < b.Dataset
		}
		if a.Split != b.Split {
			return a.Split < b.Split
		}
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		return a.ID < b.ID
	})
}

// WriteResults writes lines in canonical order, atomically.
func WriteResults(path string, lines []ResultLine) error {
	CanonicalSort(lines)
	var buf bytes.Buffer
	for i := range lines {
		b, err := json.Marshal(&lines[i])
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return writeAtomic(path, buf.Bytes())
}

// CanonicalizeFile rewrites a results file in canonical order.
func CanonicalizeFile(path string) error {
	lines, err := ReadResults(path)
	if errors.Is(err, os.ErrNotExist) {
		return writeAtomic(path, nil)
	}
	if err != nil {
		return err
	}
	return WriteResults(path, lines)
}

// MergeResults combines shard files into one: every line once (a line
// present in two files must be identical in both, apart from wall time),
// in canonical order. Each file is read once (inputs may be pipes). When
// the meta files beside the inputs show the merge incomplete (see
// CheckMergeInputs), incomplete is called with the problems before
// anything is written: an error from it stops the merge and is returned;
// nil merges anyway. A nil incomplete stops every incomplete merge. A
// merge is refused while a sweep or another merge writes out.
func MergeResults(out string, inputs []string, incomplete func(error) error) (int, error) {
	// RunSweep's lock: the rewrite would drop the lines a running sweep
	// appends to out meanwhile, and two merges would race to write it.
	unlock, err := lockResults(out)
	if err != nil {
		return 0, err
	}
	defer unlock()
	ins, err := readMergeInputs(inputs)
	if err != nil {
		return 0, err
	}
	problems := checkMerge(ins)
	if problems != nil {
		if incomplete == nil {
			return 0, problems
		}
		if err := incomplete(problems); err != nil {
			return 0, err
		}
	}
	seen := map[string]ResultLine{}
	var all []ResultLine
	for _, in := range ins {
		for _, l := range in.lines {
			k := l.key()
			if prev, ok := seen[k]; ok {
				if !sameResult(prev, l) {
					return 0, fmt.Errorf("%s: %s on %s item %s differs from an earlier file's line", in.path, l.Method, l.Dataset, l.ID)
				}
				continue
			}
			seen[k] = l
			all = append(all, l)
		}
	}
	if err := WriteResults(out, all); err != nil {
		return 0, err
	}
	return len(all), writeMergedMeta(out, ins, problems == nil, len(all))
}

// writeMergedMeta writes the meta of a merge that holds one configuration's
// run whole, checked complete, as that run's own meta would be (no shard;
// every item), so that a later merge can check the merged file too. Any
// other merge (incomplete, unchecked, or of several configurations) gets
// none, and an earlier meta beside out, which would describe other
// results, is removed.
func writeMergedMeta(out string, ins []mergeInput, complete bool, items int) error {
	var m *metaFile
	if complete {
		for _, in := range ins {
			if m == nil {
				m = &metaFile{ConfigHash: in.meta.ConfigHash, Config: in.meta.Config, Items: &items}
			} else if in.meta.ConfigHash != m.ConfigHash {
				m = nil
				break
			}
		}
	}
	if m == nil {
		if err := os.Remove(out + ".meta.json"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return writeMeta(out, *m)
}

// mergeInput is one results file of a merge, read once: its lines and the
// meta file beside it (nil when there is none).
type mergeInput struct {
	path  string
	lines []ResultLine
	meta  *metaFile
	bad   string // why the meta file beside it cannot be read, if it cannot
}

// readMergeInputs reads the results files of a merge and their meta
// files, each once.
func readMergeInputs(inputs []string) ([]mergeInput, error) {
	ins := make([]mergeInput, len(inputs))
	for i, in := range inputs {
		ins[i].path = in
		b, err := os.ReadFile(in + ".meta.json")
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			ins[i].bad = err.Error()
		default:
			var m metaFile
			if json.Unmarshal(b, &m) != nil {
				ins[i].bad = fmt.Sprintf("%s.meta.json: unreadable", in)
				break
			}
			if m.Shard != "" {
				if _, _, err := ParseShard(m.Shard); err != nil {
					ins[i].bad = fmt.Sprintf("%s.meta.json: %v", in, err)
					break
				}
			}
			ins[i].meta = &m
		}
		if ins[i].lines, err = ReadResults(in); err != nil {
			return nil, err
		}
	}
	return ins, nil
}

// CheckMergeInputs says what a merge of results files would lack, from the
// meta files the sweep (and a complete merge) writes beside them: a file
// with fewer lines than its run makes (an unfinished run or shard), shards
// of a sharded run missing from inputs, and files it cannot check: those
// without a meta (results made elsewhere, or an incomplete merge), with one
// written before moco recorded shards and item counts (named as such, and
// not also as a missing shard: its lines tell the shards it holds), or
// with one it cannot read. nil: nothing missing; a results file that
// cannot be read is an error too.
func CheckMergeInputs(inputs []string) error {
	ins, err := readMergeInputs(inputs)
	if err != nil {
		return err
	}
	return checkMerge(ins)
}

// checkMerge is CheckMergeInputs on files read.
func checkMerge(ins []mergeInput) error {
	var problems, noMeta, oldMeta []string
	have := map[string]map[int]bool{} // config hash and shard count -> shards given
	whole := map[string]bool{}        // config hashes of whole runs (or merges of one) given
	var old []mergeInput              // files with an older moco's meta
	for _, in := range ins {
		if in.bad != "" {
			problems = append(problems, in.bad)
		}
		m := in.meta
		if m == nil {
			if in.bad == "" {
				noMeta = append(noMeta, in.path)
			}
			continue
		}
		if m.Items == nil {
			oldMeta = append(oldMeta, in.path)
			old = append(old, in)
		} else if m.Shard == "" {
			whole[m.ConfigHash] = true
		}
		if m.Items != nil {
			keys := map[string]bool{}
			for i := range in.lines {
				keys[in.lines[i].key()] = true
			}
			if len(keys) < *m.Items {
				problems = append(problems, fmt.Sprintf("%s holds %d of its run's %d items (unfinished: run it again to resume)", in.path, len(keys), *m.Items))
			}
		}
		if m.Shard != "" {
			i, n, _ := ParseShard(m.Shard) // checked as read
			k := m.ConfigHash + " " + strconv.Itoa(n)
			if have[k] == nil {
				have[k] = map[int]bool{}
			}
			have[k][i] = true
		}
	}
	for _, k := range sortedKeys(have) {
		hash, ns, _ := strings.Cut(k, " ")
		if whole[hash] {
			continue // the whole run holds every shard's items
		}
		n, _ := strconv.Atoi(ns)
		// An older moco's meta names no shard, but its lines are each in
		// one: those shards were given, and the file is reported below as
		// unchecked, not as missing too. (One with no lines stays unplaced.)
		for _, in := range old {
			if in.meta.ConfigHash == hash {
				for _, l := range in.lines {
					have[k][ShardOf(l.Method, l.Dataset, l.ID, n)] = true
				}
			}
		}
		var missing []string
		for i := 0; i < n; i++ {
			if !have[k][i] {
				missing = append(missing, fmt.Sprintf("%d/%d", i, n))
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("the run with config hash %s has %d shards; not given: %s", hash, n, strings.Join(missing, ", ")))
		}
	}
	if len(noMeta) > 0 {
		problems = append(problems, "no .meta.json, so completeness cannot be checked (results made elsewhere, or an incomplete merge): "+strings.Join(noMeta, ", "))
	}
	if len(oldMeta) > 0 {
		problems = append(problems, "an older moco's .meta.json, without shard and item counts, so completeness cannot be checked (rerun the sweep command that made it: it records them and runs only what is missing): "+strings.Join(oldMeta, ", "))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// sameResult reports whether two lines for one item agree, apart from
// wall time.
func sameResult(a, b ResultLine) bool {
	a.WallS, b.WallS = 0, 0
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// ParseShard reads "i/n" (0-based i).
func ParseShard(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("shard %q: want i/n with 0 <= i < n (e.g. 0/4)", s)
	}
	return i, n, nil
}

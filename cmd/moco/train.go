package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/mocolab/moco/internal/atomicfile"
	"github.com/mocolab/moco/tokenizer"
	"github.com/mocolab/moco/train"
)

func init() {
	register(&command{
		name:    "train",
		summary: "fine-tune LoRA adapters: train sft|dpo|grpo (PEFT adapter out)",
		run:     runTrain,
	})
}

func runTrain(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "grpo" {
		return runTrainGRPO(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "dpo" {
		return runTrainDPO(args[1:], stdout, stderr)
	}
	if len(args) > 0 && isHelpFlag(args[0]) {
		fmt.Fprintln(stderr, "Usage: moco train sft|dpo|grpo -m DIR --data FILE.jsonl --out ADAPTER_DIR [flags]")
		fmt.Fprintln(stderr, "  sft   supervised fine-tuning (LoRA, or --full)")
		fmt.Fprintln(stderr, "  dpo   direct preference optimisation on chosen/rejected pairs (LoRA)")
		fmt.Fprintln(stderr, "  grpo  group relative policy optimisation with a task type's scorer as reward (LoRA)")
		fmt.Fprintln(stderr, "Run 'moco train sft --help' (or dpo, grpo) for the flags.")
		return nil
	}
	if len(args) == 0 || args[0] != "sft" {
		return usagef("usage: moco train sft|dpo|grpo -m DIR --data FILE.jsonl --out ADAPTER_DIR [flags]")
	}
	return runTrainSFT(args[1:], stdout, stderr)
}

// fullLR is --lr's default with --full: TRL's SFTConfig's learning_rate.
// Every weight moving at the LoRA default (3e-3) took skills-base's loss
// from 0.125 to 5.59 in one step.
const fullLR = 2e-5

func runTrainSFT(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train sft", stderr)
	model := fs.StringP("model", "m", "", "base model folder (Llama family; kept frozen unless --full)")
	data := fs.String("data", "", "JSONL in TRL's SFT forms: prompt and completion, or messages (chat template applied, loss on assistant turns)")
	out := fs.String("out", "", "adapter folder to write (PEFT format); with --full, a model folder")
	rank := fs.Int("lora-r", 8, "LoRA rank")
	alpha := fs.Float64("lora-alpha", 16, "LoRA alpha (scale alpha/r)")
	dropout := fs.Float64("lora-dropout", 0, "LoRA dropout on the adapters' input while training (PEFT's lora_dropout)")
	targets := fs.String("lora-targets", "q_proj,v_proj,down_proj", "comma-separated modules: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
	full := fs.Bool("full", false, "full fine-tuning: train every weight (small models) and write a model folder (safetensors, F32) instead of an adapter")
	steps := fs.Int("steps", 300, "optimizer steps")
	batch := fs.Int("batch-size", 64, "examples per micro-batch (drawn with the seed)")
	accum := fs.Int("grad-accum", 1, "micro-batches per optimizer step (the step's gradient is the token-weighted mean over batch-size x grad-accum examples)")
	lr := fs.Float64("lr", 3e-3, "peak learning rate (AdamW; with --full the default is 2e-5, TRL's SFTConfig's)")
	warmup := fs.Int("warmup", 0, "linear warm-up steps before cosine decay")
	wd := fs.Float64("weight-decay", 0.0, "AdamW weight decay (with --full not on the norm weights, as TRL's Trainer groups them)")
	clip := fs.Float64("max-grad-norm", 1, "gradient clipping (global L2 norm)")
	seed := fs.Uint64("seed", 1, "seed of the adapter init, the batch draws and the dropout masks")
	maxLen := fs.Int("max-length", 0, "most tokens per example (0: the model's max_position_embeddings)")
	truncate := fs.Bool("truncate", false, "cut examples longer than the limit (with a warning) instead of refusing the data (the default)")
	ck := checkpointFlags(fs)
	lossCSV := fs.String("loss-csv", "", "write step,loss,lr,tokens,grad_norm,seconds here (default OUT/loss.csv; the loss is plotted beside it in a .svg of the same name)")
	quiet := fs.BoolP("quiet", "q", false, "no progress")
	asJSON := fs.Bool("json", false, "print a JSON summary on stdout")
	loopRanges(fs)
	setRange(fs, "lora-dropout", between(0, 0.99))
	setRange(fs, "max-length", atLeast(0))
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco train sft -m DIR --data FILE.jsonl --out ADAPTER_DIR [--steps 300] [flags]")
		fmt.Fprintln(stderr, "Supervised fine-tuning of LoRA adapters (or, with --full, every weight); the loss is on the completion (prompt-completion lines) or the assistant turns (messages lines).")
		fmt.Fprintln(stderr, "Prompt + completion is tokenized whole, as TRL. Unlike TRL: messages score the assistant turns only (TRL's assistant_only_loss=True, not its default), each span tokenized apart;")
		fmt.Fprintln(stderr, "batches are drawn with replacement; the learning rate decays by a cosine (TRL's default: linear).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *data == "" || *out == "" {
		return usagef("train sft: --model, --data and --out are required")
	}
	if *full && !fs.Changed("lr") {
		*lr = fullLR
	}
	examples, m, tok, err := loadTraining(*model, *data, *out, ck, train.ReadSFT)
	if err != nil {
		return err
	}
	csvPath, svgPath := lossPaths(*lossCSV, *out)
	ckpt, err := ck.resumeFrom(*out, outWrites{full: *full, src: *model, logs: []string{csvPath, svgPath}},
		func(s string) { fmt.Fprintln(stderr, "moco train sft:", s) })
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	prog := newStepLine(stderr, *quiet, *steps)
	cfg := train.SFTConfig{Steps: *steps, BatchSize: *batch, GradAccum: *accum, Warmup: *warmup, LR: *lr, WeightDecay: *wd, MaxGradNorm: *clip,
		Seed: *seed, Rank: *rank, Alpha: *alpha, Dropout: *dropout, Targets: strings.Split(*targets, ","), Full: *full,
		MaxLength: *maxLen, Truncate: *truncate, SaveEvery: *ck.saveEvery, CheckpointDir: *out, Resume: ckpt,
		Warn: func(s string) { fmt.Fprintln(stderr, "moco train sft: warning:", s) }}
	lo, hist, err := train.SFT(ctx, m, tok, examples, cfg, func(s train.Step) {
		prog.step(s.Step, s.Seen, s.Time, fmt.Sprintf("loss %.4f  lr %.2e", s.Loss, s.LR))
	})
	prog.end()
	if len(hist) > 0 && (lo != nil || *full) {
		// Keep what was trained, even when stopped early (signal or NaN).
		base, _ := filepath.Abs(*model)
		var serr error
		if *full {
			serr = train.SaveModel(*out, m, *model)
		} else {
			serr = train.SaveLoRA(*out, lo, m, base)
		}
		if serr != nil {
			return serr
		}
		if werr := writeLossCSV(csvPath, hist); werr != nil {
			return werr
		}
		if werr := writeLossSVG(svgPath, hist); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		last := hist[len(hist)-1]
		return json.NewEncoder(stdout).Encode(map[string]any{"out": *out, "steps": len(hist), "loss": last.Loss, "seconds": last.Time.Seconds()})
	}
	return nil
}

// ckFlags are the output and checkpoint flags that train sft, dpo and
// grpo share.
type ckFlags struct {
	saveEvery *int
	resume    *string
	force     *bool
}

// loopRanges sets the ranges of the flags sft, dpo and grpo share.
func loopRanges(fs *pflag.FlagSet) {
	setRange(fs, "lora-r", atLeast(1))
	setRange(fs, "lora-alpha", above(0, math.Inf(1)))
	setRange(fs, "steps", atLeast(1))
	setRange(fs, "batch-size", atLeast(1))
	setRange(fs, "grad-accum", atLeast(1))
	setRange(fs, "lr", above(0, 10))
	setRange(fs, "warmup", atLeast(0))
	setRange(fs, "weight-decay", atLeast(0))
	setRange(fs, "max-grad-norm", atLeast(0).withNote("0: no clipping, as in TRL"))
}

// checkpointFlags adds --save-every, --resume and --force to fs.
func checkpointFlags(fs *pflag.FlagSet) ckFlags {
	c := ckFlags{
		saveEvery: fs.Int("save-every", 0, "write OUT/checkpoint-STEP every N steps, and when interrupted (weights, optimizer state, random streams); 0: none"),
		resume:    fs.String("resume", "", "continue bit for bit from a checkpoint folder (with no value: the latest under --out); the base model, settings and data must be the run's"),
		force:     fs.Bool("force", false, "write into a non-empty --out, starting over: an earlier run's files are replaced, and those the new run does not write removed first (its checkpoint-STEP folders, the other kind's LoRA adapter or --full model files, another source model's tokenizer files, another command's loss.csv, loss.svg or reward.svg; files moco does not write stay); with --resume nothing is removed; without either, --out must be empty or absent"),
	}
	fs.Lookup("resume").NoOptDefVal = "latest"
	setRange(fs, "save-every", atLeast(0))
	return c
}

// checkOut refuses an --out that holds anything, unless the run resumes
// (its checkpoints are there) or is forced: a new run would replace an
// earlier adapter, or mix its files with another's.
func (c ckFlags) checkOut(out string) error {
	if *c.force || *c.resume != "" {
		return nil
	}
	st, err := os.Stat(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("--out %s is a file", out)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("--out %s is not empty: choose another folder, --resume to continue the run saved there, or --force to write into it", out)
	}
	return nil
}

// outWrites is what a run writes into --out: a model folder copied from
// src when full, else an adapter, and its logs and plots (paths, which
// --loss-csv may put elsewhere).
type outWrites struct {
	full bool
	src  string
	logs []string
}

// trainLogs are the names of the logs and plots train sft, dpo and grpo
// write into --out: loss.csv (without --loss-csv), beside it sft's and
// dpo's loss.svg, and grpo's reward.svg.
var trainLogs = []string{"loss.csv", "loss.svg", "reward.svg"}

// resumeFrom is the checkpoint folder --resume names ("" for none): with
// no value, the latest under out. A run forced into out without --resume
// starts over: the checkpoint-STEP folders of the earlier run there are
// removed first, or they would sit beside the new run's, and --resume
// would take the highest STEP of either; so are the files of the earlier
// run's output that w does not replace (the other kind's adapter or model
// folder, the tokenizer files of another source model, the logs of
// another command), which would describe another run. notice names what
// was removed.
func (c ckFlags) resumeFrom(out string, w outWrites, notice func(string)) (string, error) {
	switch *c.resume {
	case "":
		if !*c.force {
			return "", nil
		}
		removed, err := train.RemoveCheckpoints(out)
		if err == nil {
			var files []string
			files, err = train.RemoveOtherOutputs(out, w.src, w.full)
			removed = append(removed, files...)
		}
		if err == nil {
			var logs []string
			logs, err = removeOtherLogs(out, w.logs)
			removed = append(removed, logs...)
		}
		if len(removed) > 0 {
			notice(fmt.Sprintf("--force: removed the earlier run's %s from %s", strings.Join(removed, ", "), out))
		}
		return "", err
	case "latest":
		dir, err := train.LatestCheckpoint(out)
		if err != nil {
			return "", fmt.Errorf("--resume: %w", err)
		}
		return dir, nil
	}
	return *c.resume, nil
}

// removeOtherLogs removes from out the files of trainLogs that are not
// among the paths a new run writes, returning their names. Other names
// are left alone, a log --loss-csv put in out included: moco cannot tell
// it from a file of the user's.
func removeOtherLogs(out string, writes []string) ([]string, error) {
	var stale []string
	for _, name := range trainLogs {
		path := filepath.Join(out, name)
		if !slices.ContainsFunc(writes, func(w string) bool { return samePath(w, path) }) {
			stale = append(stale, name)
		}
	}
	return train.RemoveFiles(out, stale)
}

// samePath reports whether the paths a and b name the same file, which
// need not exist yet: their base names are equal and their folders are
// one folder (however each is spelled).
func samePath(a, b string) bool {
	if filepath.Base(a) != filepath.Base(b) {
		return false
	}
	da, err := os.Stat(filepath.Dir(a))
	if err != nil {
		return false
	}
	db, err := os.Stat(filepath.Dir(b))
	return err == nil && os.SameFile(da, db)
}

// lossPaths are where sft and dpo write their log (--loss-csv, by default
// OUT/loss.csv) and its plot, beside it with the extension .svg.
func lossPaths(lossCSV, out string) (csv, svg string) {
	if lossCSV == "" {
		lossCSV = filepath.Join(out, "loss.csv")
	}
	return lossCSV, strings.TrimSuffix(lossCSV, filepath.Ext(lossCSV)) + ".svg"
}

// writeLossCSV writes the loss curve as CSV, atomically.
func writeLossCSV(path string, hist []train.Step) error {
	var b strings.Builder
	b.WriteString("step,loss,lr,tokens,grad_norm,seconds\n")
	for _, s := range hist {
		fmt.Fprintf(&b, "%d,%.6f,%.6g,%d,%.6f,%.3f\n", s.Step, s.Loss, s.LR, s.Tokens, s.Norm, s.Time.Seconds())
	}
	return atomicfile.WriteFile(path, []byte(b.String()))
}

// writeLossSVG plots the loss against the step (and its running mean over
// a tenth of the run, when there are enough steps) with gonum/plot, as an
// SVG file written atomically.
func writeLossSVG(path string, hist []train.Step) error {
	return writeCurveSVG(path, "training loss", "loss", hist)
}

// writeCurveSVG plots hist's Loss field under a title and y label.
func writeCurveSVG(path, title, ylabel string, hist []train.Step) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = ylabel
	pts := make(plotter.XYs, len(hist))
	for i, s := range hist {
		pts[i] = plotter.XY{X: float64(s.Step), Y: s.Loss}
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	line.Color = color.RGBA{R: 70, G: 110, B: 180, A: 255}
	p.Add(line)
	if w := len(hist) / 10; w >= 2 {
		mean := make(plotter.XYs, 0, len(hist))
		var sum float64
		for i, s := range hist {
			sum += s.Loss
			if i >= w {
				sum -= hist[i-w].Loss
			}
			if i >= w-1 {
				mean = append(mean, plotter.XY{X: float64(s.Step), Y: sum / float64(w)})
			}
		}
		ml, err := plotter.NewLine(mean)
		if err != nil {
			return err
		}
		ml.Color = color.RGBA{R: 200, G: 60, B: 40, A: 255}
		ml.Width = vg.Points(1.5)
		p.Add(ml)
		p.Legend.Add(ylabel, line)
		p.Legend.Add(fmt.Sprintf("mean of %d steps", w), ml)
		p.Legend.Top = true
	}
	wt, err := p.WriterTo(vg.Points(480), vg.Points(300), "svg")
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b.Bytes())
}

// loadTraining reads a training data file with read (errors name the file
// and line), then the model and its tokenizer: data first, so a bad file
// is reported before any weights load.
func loadTraining[T any](model, data, out string, ck ckFlags, read func(io.Reader) ([]T, error)) ([]T, *train.Model[float32], *tokenizer.Tokenizer, error) {
	// The adapter (or, with --full, the model) written into the model's
	// own folder would mix with its files or overwrite its weights.
	if a, err := os.Stat(model); err == nil {
		if b, err := os.Stat(out); err == nil && os.SameFile(a, b) {
			return nil, nil, nil, fmt.Errorf("the output folder is the model folder %s: choose another --out", model)
		}
	}
	if err := ck.checkOut(out); err != nil {
		return nil, nil, nil, err
	}
	f, err := os.Open(data)
	if err != nil {
		return nil, nil, nil, err
	}
	items, err := read(f)
	f.Close()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", data, err)
	}
	m, err := train.Load(model)
	if err != nil {
		return nil, nil, nil, err
	}
	tok, err := tokenizer.Load(model)
	if err != nil {
		return nil, nil, nil, err
	}
	return items, m, tok, nil
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	if len(args) == 0 || args[0] != "sft" {
		return usagef("usage: moco train sft|dpo|grpo --model DIR --data FILE.jsonl --out ADAPTER_DIR [flags]")
	}
	fs := newFlags("train sft", stderr)
	model := fs.String("model", "", "base model folder (Llama family, kept frozen)")
	data := fs.String("data", "", "JSONL with TRL's prompt and completion fields")
	out := fs.String("out", "", "adapter folder to write (PEFT format)")
	rank := fs.Int("lora-r", 8, "LoRA rank")
	alpha := fs.Float64("lora-alpha", 16, "LoRA alpha (scale alpha/r)")
	targets := fs.String("lora-targets", "q_proj,v_proj,down_proj", "comma-separated modules: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
	steps := fs.Int("steps", 300, "optimizer steps")
	batch := fs.Int("batch-size", 64, "examples per step (drawn with the seed)")
	lr := fs.Float64("lr", 3e-3, "peak learning rate (AdamW)")
	warmup := fs.Int("warmup", 0, "linear warm-up steps before cosine decay")
	wd := fs.Float64("weight-decay", 0.0, "AdamW weight decay")
	clip := fs.Float64("max-grad-norm", 1, "gradient clipping (global L2 norm)")
	seed := fs.Uint64("seed", 1, "seed of the adapter init and the batch draws")
	lossCSV := fs.String("loss-csv", "", "write step,loss,lr,tokens,grad_norm,seconds here (default OUT/loss.csv)")
	quiet := fs.BoolP("quiet", "q", false, "no progress")
	asJSON := fs.Bool("json", false, "print a JSON summary on stdout")
	setRange(fs, "lr", between(0, 10))
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *model == "" || *data == "" || *out == "" {
		return usagef("train sft: --model, --data and --out are required")
	}
	if *rank <= 0 || *steps <= 0 || *batch <= 0 || *warmup < 0 {
		return usagef("train sft: --lora-r, --steps and --batch-size must be positive, --warmup not negative")
	}
	f, err := os.Open(*data)
	if err != nil {
		return err
	}
	examples, err := train.ReadSFT(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", *data, err)
	}
	m, err := train.Load(*model)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(*model)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	prog := progressOut(stderr)
	if *quiet {
		prog = nil
	}
	term := prog != nil && isTerminal(prog)
	cfg := train.SFTConfig{Steps: *steps, BatchSize: *batch, Warmup: *warmup, LR: *lr, WeightDecay: *wd, MaxGradNorm: *clip,
		Seed: *seed, Rank: *rank, Alpha: *alpha, Targets: strings.Split(*targets, ",")}
	var tokens int
	lo, hist, err := train.SFT(ctx, m, tok, examples, cfg, func(s train.Step) {
		tokens += s.Seen
		if prog == nil {
			return
		}
		eta := time.Duration(float64(s.Time) / float64(s.Step) * float64(*steps-s.Step)).Round(time.Second)
		line := fmt.Sprintf("step %d/%d  loss %.4f  lr %.2e  %.0f tok/s  ETA %s", s.Step, *steps, s.Loss, s.LR, float64(tokens)/s.Time.Seconds(), eta)
		if term {
			fmt.Fprintf(prog, "\r%s ", line)
		} else {
			fmt.Fprintln(prog, line)
		}
	})
	if term {
		fmt.Fprintln(prog)
	}
	if lo != nil && len(hist) > 0 {
		// Keep what was trained, even when stopped early (signal or NaN).
		base, _ := filepath.Abs(*model)
		if serr := train.SaveLoRA(*out, lo, m, base); serr != nil {
			return serr
		}
		csvPath := *lossCSV
		if csvPath == "" {
			csvPath = filepath.Join(*out, "loss.csv")
		}
		var b strings.Builder
		b.WriteString("step,loss,lr,tokens,grad_norm,seconds\n")
		for _, s := range hist {
			fmt.Fprintf(&b, "%d,%.6f,%.6g,%d,%.6f,%.3f\n", s.Step, s.Loss, s.LR, s.Tokens, s.Norm, s.Time.Seconds())
		}
		tmp := csvPath + ".tmp"
		if werr := os.WriteFile(tmp, []byte(b.String()), 0o644); werr != nil {
			return werr
		}
		if werr := os.Rename(tmp, csvPath); werr != nil {
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

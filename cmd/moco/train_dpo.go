package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"

	"github.com/mocolab/moco/internal/atomicfile"
	"github.com/mocolab/moco/train"
)

// runTrainDPO is `moco train dpo`: LoRA DPO against the frozen base.
func runTrainDPO(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train dpo", stderr)
	model := fs.StringP("model", "m", "", "base model folder (Llama family, kept frozen; also the reference model)")
	data := fs.String("data", "", "JSONL with TRL's prompt, chosen and rejected fields")
	out := fs.String("out", "", "adapter folder to write (PEFT format)")
	beta := fs.Float64("beta", 0.1, "DPO β: strength of the KL tie to the reference (TRL's default 0.1)")
	rpo := fs.Float64("rpo-alpha", 0, "add RPO's term: this times the token-mean NLL of the chosen completions (TRL's rpo_alpha; 0: plain DPO)")
	rank := fs.Int("lora-r", 8, "LoRA rank")
	alpha := fs.Float64("lora-alpha", 16, "LoRA alpha (scale alpha/r)")
	dropout := fs.Float64("lora-dropout", 0, "LoRA dropout on the adapters' input in the policy's forward passes (PEFT's lora_dropout)")
	targets := fs.String("lora-targets", "q_proj,v_proj,down_proj", "comma-separated modules: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
	steps := fs.Int("steps", 300, "optimizer steps")
	batch := fs.Int("batch-size", 64, "preference pairs per micro-batch (drawn with the seed)")
	accum := fs.Int("grad-accum", 1, "micro-batches per optimizer step (the step's loss is the mean over batch-size x grad-accum pairs)")
	lr := fs.Float64("lr", 3e-3, "peak learning rate (AdamW)")
	warmup := fs.Int("warmup", 0, "linear warm-up steps before cosine decay")
	wd := fs.Float64("weight-decay", 0.0, "AdamW weight decay")
	clip := fs.Float64("max-grad-norm", 1, "gradient clipping (global L2 norm)")
	seed := fs.Uint64("seed", 1, "seed of the adapter init, the batch draws and the dropout masks")
	maxLen := fs.Int("max-length", 0, "most tokens per prompt + completion (0: the model's max_position_embeddings); longer pairs are refused")
	ck := checkpointFlags(fs)
	lossCSV := fs.String("loss-csv", "", "write the per-step log here (default OUT/loss.csv; a .svg plot of the loss is written beside it): step,loss,lr,tokens,grad_norm,seconds and TRL's rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies, logps/chosen, logps/rejected, nll_loss")
	quiet := fs.BoolP("quiet", "q", false, "no progress")
	asJSON := fs.Bool("json", false, "print a JSON summary on stdout")
	loopRanges(fs)
	setRange(fs, "beta", above(0, math.Inf(1)))
	setRange(fs, "rpo-alpha", atLeast(0))
	setRange(fs, "lora-dropout", between(0, 0.99))
	setRange(fs, "max-length", atLeast(0))
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco train dpo -m DIR --data FILE.jsonl --out ADAPTER_DIR [--beta 0.1] [flags]")
		fmt.Fprintln(stderr, "Sigmoid DPO (Rafailov et al.; TRL's default loss) on LoRA adapters; the reference is the base with the adapters off.")
		fmt.Fprintln(stderr, "Sequences are BOS + prompt + completion + EOS, tokenized whole as TRL; log-probabilities are summed over completion and EOS.")
		fmt.Fprintln(stderr, "Unlike TRL: pairs are drawn with replacement;")
		fmt.Fprintln(stderr, "the learning rate decays by a cosine (TRL's default: linear); --lora-dropout is applied (TRL's disable_dropout zeroes it);")
		fmt.Fprintln(stderr, "--rpo-alpha is TRL 0.x's rpo_alpha (TRL 1.x: loss_type [sigmoid, sft] with loss_weights [1, alpha]).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *data == "" || *out == "" {
		return usagef("train dpo: --model, --data and --out are required")
	}
	pairs, m, tok, err := loadTraining(*model, *data, *out, ck, train.ReadDPO)
	if err != nil {
		return err
	}
	csvPath, svgPath := lossPaths(*lossCSV, *out)
	ckpt, err := ck.resumeFrom(*out, outWrites{logs: []string{csvPath, svgPath}}, func(s string) { fmt.Fprintln(stderr, "moco train dpo:", s) })
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	prog := newStepLine(stderr, *quiet, *steps)
	cfg := train.DPOConfig{Beta: *beta, RPOAlpha: *rpo, SFTConfig: train.SFTConfig{Steps: *steps, BatchSize: *batch, Warmup: *warmup, LR: *lr,
		WeightDecay: *wd, MaxGradNorm: *clip, Seed: *seed, Rank: *rank, Alpha: *alpha, Targets: strings.Split(*targets, ","),
		Dropout: *dropout, GradAccum: *accum, MaxLength: *maxLen, SaveEvery: *ck.saveEvery, CheckpointDir: *out, Resume: ckpt,
		Warn: func(s string) { fmt.Fprintln(stderr, "moco train dpo: warning:", s) }}}
	lo, hist, err := train.DPO(ctx, m, tok, pairs, cfg, func(s train.DPOStep) {
		prog.step(s.Step.Step, s.Seen, s.Time, fmt.Sprintf("loss %.4f  margin %.3f  acc %.2f  lr %.2e", s.Loss, s.Margin, s.Accuracy, s.LR))
	})
	prog.end()
	if lo != nil && len(hist) > 0 {
		// Keep what was trained, even when stopped early (signal or NaN).
		base, _ := filepath.Abs(*model)
		if serr := train.SaveLoRA(*out, lo, m, base); serr != nil {
			return serr
		}
		if werr := writeDPOLog(csvPath, hist); werr != nil {
			return werr
		}
		steps := make([]train.Step, len(hist))
		for i, s := range hist {
			steps[i] = s.Step
		}
		if werr := writeCurveSVG(svgPath, "DPO loss", "loss", steps); werr != nil {
			return werr
		}
	}
	if err != nil {
		return interrupted(ctx, err)
	}
	if *asJSON {
		last := hist[len(hist)-1]
		return json.NewEncoder(stdout).Encode(map[string]any{"out": *out, "steps": len(hist), "loss": last.Loss,
			"margin": last.Margin, "accuracy": last.Accuracy, "seconds": last.Time.Seconds()})
	}
	return nil
}

// writeDPOLog writes the step log as CSV (atomically: a temporary file
// renamed into place).
func writeDPOLog(path string, hist []train.DPOStep) error {
	var b strings.Builder
	b.WriteString("step,loss,lr,tokens,grad_norm,seconds,rewards/chosen,rewards/rejected,rewards/margins,rewards/accuracies,logps/chosen,logps/rejected,nll_loss\n")
	for _, s := range hist {
		fmt.Fprintf(&b, "%d,%.6f,%.6g,%d,%.6f,%.3f,%.6f,%.6f,%.6f,%.4f,%.4f,%.4f,%.6f\n", s.Step.Step, s.Loss, s.LR, s.Tokens, s.Norm, s.Time.Seconds(),
			s.RewardChosen, s.RewardRejected, s.Margin, s.Accuracy, s.LogpChosen, s.LogpRejected, s.NLL)
	}
	return atomicfile.WriteFile(path, []byte(b.String()))
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/internal/atomicfile"
	"github.com/mocolab/moco/train"
)

// runTrainGRPO is `moco train grpo`: LoRA GRPO with the reward of an
// evaluation scorer (train cannot import bench; the reward is built here).
func runTrainGRPO(args []string, stdout, stderr io.Writer) error {
	d := train.DefaultGRPOConfig()
	fs := newFlags("train grpo", stderr)
	model := fs.StringP("model", "m", "", "base model folder (Llama family, kept frozen; the reference of the KL term)")
	data := fs.String("data", "", "JSONL with a prompt and a reference answer per line")
	out := fs.String("out", "", "adapter folder to write (PEFT format)")
	taskType := fs.String("task-type", bench.ExactMatchTask, "reward: the evaluation scorer of this task type reads the completion against the answer ("+strings.Join(bench.TaskTypes(), ", ")+"; those needing a judge are refused)")
	gens := fs.Int("num-generations", d.NumGenerations, "completions sampled per prompt (a group)")
	maxComp := fs.Int("max-completion-length", d.MaxCompletion, "most tokens sampled per completion (TRL's default 256; 512 on its main branch since July 2026; a few suffice for short answers)")
	temp := fs.Float64("temperature", d.Temperature, "sampling temperature (the loss reads logits/temperature, as TRL; TRL's default 1 since 0.18, 0.9 before)")
	beta := fs.Float64("beta", d.Beta, "weight of the k3 KL to the reference, the base without adapters (DeepSeekMath 0.04; TRL now 0)")
	eps := fs.Float64("epsilon", d.Epsilon, "clip range of the probability ratio: [1-epsilon, 1+epsilon-high]")
	epsHigh := fs.Float64("epsilon-high", 0, "upper clip (0: --epsilon; DAPO uses 0.28)")
	lossType := fs.String("loss-type", d.LossType, "token reduction: grpo (per-sequence mean, DeepSeekMath), bnpo or dapo (mean over the batch's tokens), dr_grpo (sum / (batch x max completion length))")
	scale := fs.Bool("scale-rewards", d.ScaleRewards, "divide group-centred rewards by the group's std + 1e-4 (false: Dr. GRPO)")
	iters := fs.Int("num-iterations", d.NumIterations, "optimizer steps per sampled batch (mu; ratios leave 1 from the second)")
	init := fs.String("adapter", "", "start from this PEFT adapter instead of a fresh one (--lora-* then unused)")
	rank := fs.Int("lora-r", d.Rank, "LoRA rank")
	alpha := fs.Float64("lora-alpha", d.Alpha, "LoRA alpha (scale alpha/r)")
	dropout := fs.Float64("lora-dropout", 0, "LoRA dropout on the adapters' input in the loss's forward pass (PEFT's lora_dropout; sampling runs without)")
	targets := fs.String("lora-targets", strings.Join(d.Targets, ","), "comma-separated modules: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
	steps := fs.Int("steps", d.Steps, "optimizer steps")
	batch := fs.Int("batch-size", d.BatchSize, "completions per micro-batch (a multiple of --num-generations: batch/num-generations prompts)")
	accum := fs.Int("grad-accum", 1, "micro-batches per optimizer step: a step samples batch-size x grad-accum completions at once and reduces their loss as TRL does under accumulation")
	lr := fs.Float64("lr", d.LR, "peak learning rate (AdamW; TRL's 1e-6 is for full fine-tuning of large models)")
	warmup := fs.Int("warmup", 0, "linear warm-up steps before cosine decay")
	wd := fs.Float64("weight-decay", 0.0, "AdamW weight decay")
	clip := fs.Float64("max-grad-norm", d.MaxGradNorm, "gradient clipping (global L2 norm)")
	seed := fs.Uint64("seed", d.Seed, "seed of the adapter init, the prompt order and the sampling")
	ck := checkpointFlags(fs)
	lossCSV := fs.String("loss-csv", "", "write the per-step record here (default OUT/loss.csv; OUT/reward.svg plots the mean reward)")
	quiet := fs.BoolP("quiet", "q", false, "no progress")
	asJSON := fs.Bool("json", false, "print a JSON summary on stdout")
	loopRanges(fs)
	setRange(fs, "num-generations", atLeast(2))
	setRange(fs, "max-completion-length", atLeast(1))
	setRange(fs, "num-iterations", atLeast(1))
	setRange(fs, "temperature", above(0, 100))
	setRange(fs, "beta", atLeast(0))
	setRange(fs, "epsilon", between(0, 1))
	setRange(fs, "epsilon-high", atLeast(0))
	setRange(fs, "lora-dropout", between(0, 0.99))
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco train grpo -m DIR --data FILE.jsonl --out ADAPTER_DIR [--task-type exact_match] [flags]")
		fmt.Fprintln(stderr, "GRPO (Shao et al., computed as TRL's GRPOTrainer; defaults DeepSeekMath's) on LoRA adapters: groups of sampled completions, rewarded by the task type's scorer.")
		fmt.Fprintln(stderr, "Unlike TRL's default schedule (linear), the learning rate decays by a cosine after the warm-up.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *data == "" || *out == "" {
		return usagef("train grpo: --model, --data and --out are required")
	}
	if *batch%*gens != 0 {
		return usagef("train grpo: --batch-size (%d) must be a multiple of --num-generations (%d)", *batch, *gens)
	}
	switch *lossType {
	case "grpo", "bnpo", "dapo", "dr_grpo":
	default:
		return usagef("train grpo: --loss-type %q: want grpo, bnpo, dapo or dr_grpo", *lossType)
	}
	scorer, err := bench.NewScorer(*taskType, bench.ScorerOptions{Prompt: "raw"})
	if err != nil {
		return usagef("train grpo: --task-type: %v", err)
	}
	examples, m, tok, err := loadTraining(*model, *data, *out, ck, train.ReadGRPO)
	if err != nil {
		return err
	}
	csvPath, svgPath := *lossCSV, filepath.Join(*out, "reward.svg")
	if csvPath == "" {
		csvPath = filepath.Join(*out, "loss.csv")
	}
	ckpt, err := ck.resumeFrom(*out, outWrites{logs: []string{csvPath, svgPath}}, func(s string) { fmt.Fprintln(stderr, "moco train grpo:", s) })
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	cfg := train.GRPOConfig{Steps: *steps, BatchSize: *batch, NumGenerations: *gens, MaxCompletion: *maxComp, NumIterations: *iters,
		Warmup: *warmup, LR: *lr, WeightDecay: *wd, MaxGradNorm: *clip, Temperature: *temp, Beta: *beta, Epsilon: *eps,
		EpsilonHigh: *epsHigh, LossType: *lossType, ScaleRewards: *scale, Seed: *seed, Rank: *rank, Alpha: *alpha,
		Targets: strings.Split(*targets, ","), Dropout: *dropout, GradAccum: *accum, SaveEvery: *ck.saveEvery, CheckpointDir: *out, Resume: ckpt,
		Warn: func(s string) { fmt.Fprintln(stderr, "moco train grpo: warning:", s) }}
	if *init != "" {
		if cfg.Adapter, err = train.LoadLoRA(*init, m); err != nil {
			return err
		}
	}
	reward := scorerReward(ctx, scorer)
	prog := newStepLine(stderr, *quiet, *steps)
	lo, hist, err := train.GRPO(ctx, m, tok, examples, reward, cfg, func(s train.GRPOStep) {
		prog.step(s.Step, s.Seen, s.Time, fmt.Sprintf("loss %.4f  reward %.3f  kl %.4f  len %.1f  lr %.2e", s.Loss, s.Reward, s.KL, s.CompletionLen, s.LR))
	})
	prog.end()
	if lo != nil && len(hist) > 0 {
		// Keep what was trained, even when stopped early (signal or NaN).
		base, _ := filepath.Abs(*model)
		if serr := train.SaveLoRA(*out, lo, m, base); serr != nil {
			return serr
		}
		if werr := writeGRPOCSV(csvPath, hist); werr != nil {
			return werr
		}
		if werr := writeRewardSVG(svgPath, hist); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		first, last := hist[0], hist[len(hist)-1]
		return json.NewEncoder(stdout).Encode(map[string]any{"out": *out, "steps": len(hist), "loss": last.Loss,
			"reward_first": first.Reward, "reward_last": last.Reward, "kl": last.KL, "seconds": last.Time.Seconds()})
	}
	return nil
}

// scorerReward turns an evaluation scorer into a GRPO reward: the prompt
// is the item's input (and question), the answer its reference.
func scorerReward(ctx context.Context, s bench.Scorer) train.Reward {
	return func(prompt, completion, answer string) (float64, error) {
		it := bench.Item{Input: prompt, Question: prompt, Output: answer, Answer: answer}
		sc, err := s.Score(ctx, it, completion)
		return sc.Score, err
	}
}

// writeGRPOCSV writes the loss curve with the reward columns, atomically.
func writeGRPOCSV(path string, hist []train.GRPOStep) error {
	var b strings.Builder
	b.WriteString("step,loss,reward,reward_std,kl,clip_ratio,completion_len,lr,tokens,grad_norm,seconds\n")
	for _, s := range hist {
		fmt.Fprintf(&b, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.3f,%.6g,%d,%.6f,%.3f\n", s.Step, s.Loss, s.Reward, s.RewardStd,
			s.KL, s.ClipRatio, s.CompletionLen, s.LR, s.Tokens, s.Norm, s.Time.Seconds())
	}
	return atomicfile.WriteFile(path, []byte(b.String()))
}

// writeRewardSVG plots the batch's mean reward against the step, with its
// running mean over a tenth of the run, through writeLossSVG's plotter.
func writeRewardSVG(path string, hist []train.GRPOStep) error {
	steps := make([]train.Step, len(hist))
	for i, s := range hist {
		steps[i] = train.Step{Step: s.Step, Loss: s.Reward}
	}
	return writeCurveSVG(path, "GRPO: mean reward of the sampled completions", "reward", steps)
}

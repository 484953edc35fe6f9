// Package merge combines checkpoints at the weight level: the merge methods
// of mergekit and the weight-level methods of the MoCo paper, plus the
// dev-scored searches over merges.
//
// # Methods
//
// A Spec names a method, the models (each an Input over a
// safetensors.Source, usually memory-mapped), an optional base and
// parameters, which follow mergekit's names and defaults:
//
//	linear            sum w_i x_i, divided by sum w_i (normalize, default true)
//	task_arithmetic   base + lambda * sum w_i (x_i - base)
//	ties              deltas trimmed to density by magnitude, sign elected by the
//	                  weighted sum, disjoint merge; normalize default true
//	dare_linear       deltas dropped with probability 1-density and rescaled by 1/density
//	dare_ties         the same, with TIES's sign election; rescale_l1=1 rescales
//	                  to the delta's L1 norm instead (mergekit's rescale_norm: l1)
//	breadcrumbs(_ties) drop the largest gamma fraction, keep the next density fraction
//	della(_linear)    MagPrune: keep probability density-epsilon..density+epsilon by
//	                  magnitude rank within each row, rescaled by its inverse;
//	                  density 1 (the default) keeps all
//	slerp             spherical interpolation base -> model by t, per tensor;
//	                  linear for near-parallel tensors
//	nuslerp           slerp of two models with t = w2/(w1+w2), of their task
//	                  vectors with a base; per row/column unless nuslerp_flatten
//	multislerp        barycentric slerp of any number of models (weights), via
//	                  the tangent space at their mean; task vectors with a base
//	karcher           Riemannian (Karcher) mean of the directions, equal weights,
//	                  scaled by the mean norm (the base counts as a model)
//	sce               task vectors: top select_topk by variance, weights by mean
//	                  square, sign election, weighted mean of the agreeing ones
//	model_stock       t*mean(x_i) + (1-t)*base with t from the mean pairwise cosine
//	                  (mergekit's: the norms' product counted as 1e-6 at least)
//	passthrough       one model's tensors (times its scale): with slices, layer
//	                  stacking (frankenmerges)
//	expo              ExPO: target + alpha*(target - source) (base = source)
//	arcee_fusion      base + one model's delta where its importance, |delta| times
//	                  the KL divergence of the row's softmaxes, is at least
//	                  median + 1.5*IQR of the tensor's importances; no parameters
//	nearswap          base moved toward one model by t/|base - model| clamped to
//	                  [0, 1] (the difference 1e-6 at least): fully where they are
//	                  within t; t is required
//	ram               Reinforced Agent Merging: deltas of |delta| > epsilon (1e-5);
//	                  where one model's is, kept; where several, averaged
//	ramplus_tl        ram with each model's unique entries scaled by
//	                  1 + r*clamp(shared/unique, 0, alpha) (r 0.1, alpha 0.2),
//	                  its counts of shared and unique entries in the tensor
//
// arcee_fusion's quantile q is the sorted importances' entry at index
// int(q*(n-1)), as mergekit's, but over every entry: mergekit sorts a
// random sample of 1e6 entries (torch.randperm) of a larger tensor, so its
// mask there changes from run to run, while moco's is exact and
// deterministic. moco also sums the KL divergences in float64 (mergekit in
// float32, which for deltas near float32's resolution of the softmax,
// such as a fine-tune's of a norm vector, is mostly rounding; the masks
// differ there). ramplus_tl divides by max(unique, epsilon) as mergekit
// does; where epsilon <= 0 and a model equals the base in a tensor,
// mergekit divides 0 by 0 and the whole tensor comes out NaN, while moco
// skips that model's scale, which has no unique entry to act on.
// Embeddings whose vocabularies differ merge on their common leading rows
// with TruncateVocab, as with every method (mergekit's arcee_fusion takes
// the common submatrix; its nearswap and ram do not rectify them).
//
// DARE's and DELLA's rescale (on by default) is their papers' and their
// reference code's: survivors divided by their keep probability. mergekit
// did the same before its v0.1.0 (February 2025); since then its rescale: true
// restores each delta's L1 norm over the whole tensor instead, which is
// rescale_l1=1 here. A mergekit configuration of dare_* or della* therefore
// gives results in distribution like mergekit's before v0.1.0; add
// rescale_l1: 1 to its parameters for those of mergekit now. TIES's and
// breadcrumbs' rescale (off by default) restores each delta's L1 norm, as
// mergekit's always has.
//
// Breadcrumbs drops int(gamma*n) outliers of a tensor of n entries. Where
// that is 0 (n < 1/gamma: under 100 entries at the default 0.01), mergekit
// drops the whole delta instead (it keeps indices[n_bot:-n_top] of the
// sorted entries, an empty slice for n_top = 0); moco keeps the density
// fraction.
//
// Parameters a method does not read are errors (MethodParams lists them).
// mergekit requires slerp's and nearswap's t and the weight of each model
// (besides the base) of linear, the task-vector methods, nuslerp and
// multislerp; a configuration (Config.Open, Spec.RequireParams) without
// one is an error, as in mergekit, while a Spec built in Go defaults
// slerp's t to 0.5 and weights to 1 (nearswap needs t, and nuslerp and
// multislerp every weight, either way). Every method needs at least one
// model besides the base (where mergekit, given none, returns the base).
// Slices (mergekit's slices: with sources and layer_range) build the
// output's layers from layer ranges of the models, one slice after the
// other; num_hidden_layers of the output follows. Gradients are evaluated
// as mergekit does: at k/(n-1) for layer k of a slice of n layers (1 for a
// one-layer slice), and at 0 for tensors outside the layers.
//
// Parameters are constants, per-layer gradients (lists interpolated over
// the layers) or lists filtered by tensor-name substrings (see Param), read
// from mergekit YAML (ParseConfig) or set in Go.
//
// # Streaming
//
// Spec.Merge produces the output one tensor at a time. Element-wise methods
// (linear, task_arithmetic, dare_*, expo, nearswap, ram; ramplus_tl after
// a pass counting each model's shared and unique entries) stream each
// tensor through in chunks of 32K elements, reading the inputs in place from their memory
// maps and writing the output dtype directly, in parallel. The methods that
// rank deltas (ties, breadcrumbs, della, and rescale_l1) stream too, in
// blocks of whole rows on all cores: an exact, linear-time top-k selection
// (a sampled bracket, one counting pass and a quickselect; radix passes
// when the bracket misses) and DELLA's per-row ranks by a stable radix
// sort, bit-identical to the whole-tensor sort-based definitions.
// arcee_fusion streams in blocks of whole rows too: the rows' KL
// divergences, two radix passes over the importances for the three
// quantiles, then the output. slerp, nuslerp, multislerp, karcher and
// model_stock combine their inputs (or task vectors) with coefficients
// that only their norms and dot products decide: one streaming pass sums
// the Gram matrix (per tensor, row or column), a second writes the
// combination, as close to the whole-tensor functions as rounding allows.
// sce streams too: its variances across the models are computed again in
// each pass, radix passes select the top-k of them, one pass sums each
// model's weight (in eight lanes per block, not one sequential sum) and
// one writes the output; two bfloat16 models and their base are read in
// place, as TIES's band sum reads two bfloat16 models. DARE's
// random stream is derived from (seed, tensor name, model, chunk), so a
// merge is reproducible whatever the number of threads. WriteFolder sends
// a merged tensor of more than 16 MB to the writer in 8 MB pieces as they
// are complete, rather than hold it whole, and writes
// a complete model folder atomically (safetensors.OutDir: a temporary folder
// named after the process, renamed into place; never over a file or a
// non-model folder); MergeToMemory returns a Source for
// scoring candidates without touching the disk.
//
// # Searches
//
// GreedySoup, ExPO (pair, worst_to_best, topk_bottomk, alpha search),
// DareTiesSearch (particle swarm over softmax weights), ModelSwarms
// (particle swarm in weight space) and LoraHub (the paper's search over
// adapter weights: from zero, L1 penalty 0.05, bounds 1.5, 40 candidates,
// with a (1+1)-ES in place of nevergrad's NGOpt) take a Scorer: a function that scores a candidate's
// weights on a dev set. This package never runs a model; bench.DevScorer
// provides one over the engine.
//
// ApplyLoRA merges PEFT LoRA adapters into a base model (W += alpha/r * B@A),
// composing several as sum w_i A_i and sum w_i B_i.
package merge

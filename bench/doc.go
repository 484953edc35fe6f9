// Package bench evaluates models and methods: it loads datasets in the MoCo
// JSON format ({dataset, task_type, dev, test}), builds prompts, scores
// generations, and measures speed.
//
// LoadDataset refuses a file with an item that could only be scored as
// wrong (no prompt, answer or test, an answer not among the options, an
// option label that is not a letter or digit), naming it, where MoCo runs
// it: of MoCo's own
// sets, tablemwp_multiple_choice (56 dev and 47 test items label their
// fourth option "id") and math (a null answer in 7 dev and 5 test items).
//
// Every MoCo task type has a Scorer (NewScorer; RegisterScorer adds new
// ones): exact_match reads the answer from \boxed{...} or \box{...} (nested
// braces), an answer phrase, or the last line (a minus sign after the
// phrase stays with the answer, which MoCo's pattern strips), and compares numbers by value
// (1,000 = 1000.0, \frac{1}{2} = 0.5, 50% = 50), math after LaTeX
// normalisation, and words after SQuAD normalisation (MoCo's rule);
// multiple_choice reads an option letter, never defaulting to one (an
// unreadable answer is wrong, never "A"); f1_match is SQuAD token F1, best
// over a gold list (popqa's JSON-string alias lists, read as JSON: MoCo
// splits them at every comma, which cuts aliases such as "South Dakota,
// United States" in two and changes the gold set of 72 of popqa's 1000 test
// items and 55 of its 1000 dev items); coding runs the item's
// check(candidate) test in python3 with resource limits, an audit hook that
// refuses sockets and new processes, its own temporary folder and process
// group, bounded output, and (Linux) its own network namespace, and passes
// only if the program then runs to its end (it writes a token drawn for the
// run after check returns: MoCo takes exit status 0 as a pass, so an answer
// that calls os._exit(0) or sys.exit(0) passes every test there);
// noncompliance asks a Judge, or without one applies MoCo's keyword rule;
// reward_model needs a Judge (MoCo uses a reward model) and is refused
// without one; generation_diversity is 1 - BLEU against the references
// (MoCo: 1 - RoBERTa embedding similarity), and 0 for an output with no
// words, which BLEU alone would rate perfectly diverse (Distinct and
// SelfBLEU are there for reports). Aggregate applies MoCo's
// dataset rules (culturebench's all-items-of-a-question grouping).
//
// RunSweep runs a SweepConfig (models x methods x datasets, methods built
// through collab.New, LoRA adapters applied to their bases) with a pool of
// workers, appending one ResultLine per (method, dataset, item) to a JSON
// lines file as items finish; it resumes from that file, runs one shard of
// the items (ShardOf) when asked, and rewrites the file in canonical order
// when complete, so resumed and sharded-then-merged (MergeResults) runs give
// the same bytes (CheckMergeInputs finds, from the meta file beside each
// results file, shards missing from a merge or unfinished, and files it
// cannot check). BuildReport turns results into the MoCo paper's Table 1
// layout, collaborative emergence and cost per item (Markdown, CSV, and SVG
// charts through gonum/plot); a score on fewer of a dataset's items than
// the results hold (a partial run) is marked, with its n. ScoreOutputs scores outputs made elsewhere.
//
// Evaluate runs a prompt-to-text function over a split, scored by the
// exact-match and multiple-choice rules or, with Options.Scorer, by any
// task type's Scorer (EvaluateBatch decodes many items at once); Greedy
// builds one over an engine
// model, MeanNLL scores the reference answers' likelihood without
// generating, and DevScorer turns either into the dev score the merge
// searches need.
package bench

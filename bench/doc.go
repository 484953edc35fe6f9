// Package bench evaluates models and methods: it loads datasets in the MoCo
// JSON format ({dataset, task_type, dev, test}), builds prompts, generates
// answers and scores them, and measures speed.
//
// Evaluate runs any Generator (a function from prompt to text) over a
// split: exact_match answers are extracted from \boxed{...} (nested braces),
// "answer is ...", or the last line, normalized and compared as numbers when
// both sides are numbers; multiple_choice answers are option letters found
// without defaulting to any letter (an unreadable answer is wrong, never
// "A"). Greedy builds a Generator over an engine model, MeanNLL scores the
// reference answers' likelihood without generating, and Scorer turns either
// into the dev score the merge searches need.
package bench

// Package bench evaluates models and methods: it loads datasets in the MoCo
// JSON format, builds prompts, scores answers (exact match, multiple choice,
// F1, code) and measures speed.
package bench

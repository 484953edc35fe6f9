//go:build race

package tokenizer

// raceEnabled reports a -race build, where loading the 262k-token Gemma
// vocabulary takes ten seconds.
const raceEnabled = true

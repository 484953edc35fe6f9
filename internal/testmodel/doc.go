// Package testmodel holds the test helpers that need a loaded model and
// its tokenizer: loading both from a folder, and the engine's own greedy
// continuation of a start token as ids and as text. It is apart from
// testutil because the engine's own tests import testutil, which
// therefore cannot import the engine.
package testmodel

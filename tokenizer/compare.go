package tokenizer

import "fmt"

// Compare reports whether o has the same vocabulary as t: the same model
// vocabulary (string -> id), the same merges in the same order and the same
// added tokens. It returns nil when they are identical, else an error naming
// the first difference. Models that decode in lockstep must agree here.
func (t *Tokenizer) Compare(o *Tokenizer) error {
	if ka, kb := modelKind(t.model), modelKind(o.model); ka != kb {
		return fmt.Errorf("models differ: %s and %s", ka, kb)
	}
	if na, nb := t.model.vocabLen(), o.model.vocabLen(); na != nb {
		return fmt.Errorf("vocabulary sizes differ: %d and %d", na, nb)
	}
	ta, tb := t.model.idTokens(), o.model.idTokens()
	for id := 0; id < max(len(ta), len(tb)); id++ {
		x, y := tokenAt(ta, id), tokenAt(tb, id)
		if x != y {
			return fmt.Errorf("vocabulary differs at id %d: %q and %q", id, x, y)
		}
	}
	if err := compareModels(t.model, o.model); err != nil {
		return err
	}
	if len(t.added) != len(o.added) {
		return fmt.Errorf("added token counts differ: %d and %d", len(t.added), len(o.added))
	}
	for i := range t.added {
		if t.added[i] != o.added[i] {
			return fmt.Errorf("added token %d differs: %+v and %+v", i, t.added[i], o.added[i])
		}
	}
	return nil
}

// compareModels compares what is particular to a model kind: BPE merges.
func compareModels(x, y model) error {
	a, ok1 := x.(*bpe)
	b, ok2 := y.(*bpe)
	if !ok1 || !ok2 {
		return nil
	}
	if len(a.mergeAB) != len(b.mergeAB) {
		return fmt.Errorf("merge counts differ: %d and %d", len(a.mergeAB), len(b.mergeAB))
	}
	for i := range a.mergeAB {
		if a.mergeAB[i] != b.mergeAB[i] {
			x, y := a.mergeAB[i], b.mergeAB[i]
			return fmt.Errorf("merge %d differs: %q %q and %q %q", i, a.tokens[x[0]], a.tokens[x[1]], b.tokens[y[0]], b.tokens[y[1]])
		}
	}
	return nil
}

func tokenAt(toks []string, id int) string {
	if id < len(toks) {
		return toks[id]
	}
	return ""
}

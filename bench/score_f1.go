package bench

import (
	"context"
	"encoding/json"
	"strings"
)

// TokenF1 is SQuAD's token-level F1 between a prediction and one gold
// answer after NormalizeSQuAD: both empty is 1, one empty is 0.
func TokenF1(pred, gold string) float64 {
	p := strings.Fields(NormalizeSQuAD(pred))
	g := strings.Fields(NormalizeSQuAD(gold))
	if len(p) == 0 && len(g) == 0 {
		return 1
	}
	if len(p) == 0 || len(g) == 0 {
		return 0
	}
	count := map[string]int{}
	for _, w := range g {
		count[w]++
	}
	common := 0
	for _, w := range p {
		if count[w] > 0 {
			count[w]--
			common++
		}
	}
	if common == 0 {
		return 0
	}
	prec := float64(common) / float64(len(p))
	rec := float64(common) / float64(len(g))
	return 2 * prec * rec / (prec + rec)
}

// GoldAnswers returns an item's gold answers. popqa stores a list of
// aliases as a JSON string ("[\"Toulon\", \"Tolon\"]"), read as JSON so that
// an alias with a comma ("Paris, France") stays whole, where MoCo splits
// the string at every comma; a JSON array field is read too; anything else
// is one answer.
func GoldAnswers(it Item) []string {
	ref := it.Output
	if ref == "" {
		ref = it.Answer
	}
	if raw, ok := it.Raw["output"]; ok {
		var list []string
		if json.Unmarshal(raw, &list) == nil && len(list) > 0 {
			return list
		}
	}
	if t := strings.TrimSpace(ref); strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
		var list []string
		if json.Unmarshal([]byte(t), &list) == nil && len(list) > 0 {
			return list
		}
		// MoCo's fallback for lists that are not valid JSON (single quotes):
		// strip brackets and quotes, split at commas.
		t = strings.NewReplacer("[", "", "]", "", `"`, "", "'", "").Replace(t)
		var out []string
		for _, s := range strings.Split(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return []string{ref}
}

type f1Scorer struct{ o ScorerOptions }

func (f1Scorer) Metric() string          { return "f1" }
func (s f1Scorer) Prompt(it Item) string { return boxPrompt(s.o, it) }

// Score is the best token F1 of the extracted answer over the gold list.
func (f1Scorer) Score(_ context.Context, it Item, g string) (Scored, error) {
	pred := ExtractAnswer(g)
	best := 0.0
	for _, gold := range GoldAnswers(it) {
		if f := TokenF1(pred, gold); f > best {
			best = f
		}
	}
	return Scored{Extracted: pred, Score: best}, nil
}

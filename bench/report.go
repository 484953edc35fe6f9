package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/mocolab/moco/collab"
)

// Report is what `moco sweep report` computes from a results file: the
// MoCo paper's Table 1 (every method against the best single model of the
// pool, per dataset and domain), collaborative emergence (Figure 4), and
// cost per method (Table 4).
type Report struct {
	Datasets []string          // in first-seen order
	Domains  []string          // domain names, for the average columns
	DomainOf map[string]string // dataset -> domain ("" when none given)
	Rows     []ReportRow       // singles first, then by level, then name
	// BestSingle is the best single model's score per dataset.
	BestSingle map[string]float64
	// Full is how many distinct items of each dataset the report holds, over
	// all methods; a row's N below it (a partial or interrupted run) is
	// scored on other items than the rest of its column.
	Full map[string]int
	// Wins and Settings count (method, dataset) settings of non-single
	// methods, and those where the method beats the best single model.
	Wins, Settings int
	Categories     []CategoryScore
	// Diversity is, for generation_diversity datasets, the judge-free
	// diversity of each method's generations taken together.
	Diversity []DiversityScore
}

// DiversityScore measures one method's generations on one dataset as a
// set: distinct-1 and distinct-2 (distinct n-grams over all n-grams) and
// self-BLEU (mean BLEU-4 of each generation against the others; lower is
// more diverse).
type DiversityScore struct {
	Method, Dataset                string
	N                              int
	Distinct1, Distinct2, SelfBLEU float64
}

// ReportRow is one method's line of the tables.
type ReportRow struct {
	Method string
	Name   string // the registry name ("single" for one model)
	Level  string
	Models []string
	Score  map[string]float64 // per dataset
	N      map[string]int     // items per dataset
	// Emergence per dataset: among items no single model solves (score 1),
	// the share this method solves; Hard is how many such items there are.
	Emergence map[string]float64
	Hard      map[string]int
	// Cost per item, averaged over every item of every dataset.
	TokensOut, ForwardTokens, FLOPs, WallS float64
	Items                                  int
}

// CategoryScore is one method's score on one category of a dataset.
type CategoryScore struct {
	Method, Dataset, Category string
	N                         int
	Score                     float64
}

// BuildReport computes the report from result lines.
func BuildReport(lines []ResultLine) (*Report, error) {
	if len(lines) == 0 {
		return nil, fmt.Errorf("no results")
	}
	lines, err := uniqueLines(lines)
	if err != nil {
		return nil, err
	}
	lines = splitColumns(lines)
	rep := &Report{DomainOf: map[string]string{}, BestSingle: map[string]float64{}, Full: map[string]int{}}
	ids := map[string]map[string]bool{} // dataset -> item ids
	type cell struct {
		items  []Item
		scores []float64
		lines  []*ResultLine
	}
	cells := map[[2]string]*cell{}
	rows := map[string]*ReportRow{}
	seenDS := map[string]bool{}
	for i := range lines {
		l := &lines[i]
		if !seenDS[l.Dataset] {
			seenDS[l.Dataset] = true
			rep.Datasets = append(rep.Datasets, l.Dataset)
		}
		if l.Domain != "" {
			rep.DomainOf[l.Dataset] = l.Domain
		}
		if ids[l.Dataset] == nil {
			ids[l.Dataset] = map[string]bool{}
		}
		ids[l.Dataset][l.ID] = true
		r := rows[l.Method]
		if r == nil {
			r = &ReportRow{Method: l.Method, Name: l.Name, Level: l.Level, Models: l.Models, Score: map[string]float64{}, N: map[string]int{},
				Emergence: map[string]float64{}, Hard: map[string]int{}}
			rows[l.Method] = r
		}
		r.TokensOut += float64(l.TokensOut)
		r.ForwardTokens += float64(l.ForwardTokens)
		r.FLOPs += l.FLOPs
		r.WallS += l.WallS
		r.Items++
		k := [2]string{l.Method, l.Dataset}
		c := cells[k]
		if c == nil {
			c = &cell{}
			cells[k] = c
		}
		it := Item{ID: l.ID}
		if l.Group != "" {
			it.Raw = map[string]json.RawMessage{"question_id": json.RawMessage(strconv.Quote(l.Group))}
		}
		c.items = append(c.items, it)
		c.scores = append(c.scores, l.Score)
		c.lines = append(c.lines, l)
	}
	for _, m := range sortedKeys(rows) {
		for _, d := range rep.Datasets {
			c := cells[[2]string{m, d}]
			if c == nil || c.lines[0].TaskType != DiversityTask {
				continue
			}
			var texts []string
			for _, l := range c.lines {
				texts = append(texts, l.Output)
			}
			rep.Diversity = append(rep.Diversity, DiversityScore{Method: m, Dataset: d, N: len(texts),
				Distinct1: Distinct(texts, 1), Distinct2: Distinct(texts, 2), SelfBLEU: SelfBLEU(texts)})
		}
	}
	for d, m := range ids {
		rep.Full[d] = len(m)
	}
	// Scores per cell; grouped scores (culturebench) are rewritten in place.
	solvedBy := map[string]map[string]bool{} // dataset/id -> single models solving it
	for k, c := range cells {
		name := k[1]
		if len(c.items) > 0 && c.items[0].Raw != nil {
			name = "culturebench" // the group rule
		}
		r := rows[k[0]]
		r.Score[k[1]] = Aggregate(name, c.items, c.scores)
		r.N[k[1]] = len(c.items)
		if r.Level == string(collab.LevelSingle) {
			for i, l := range c.lines {
				key := l.Dataset + "\x00" + l.ID
				if solvedBy[key] == nil {
					solvedBy[key] = map[string]bool{}
				}
				solvedBy[key][l.Method] = c.scores[i] >= 1
			}
		}
	}
	var singles []*ReportRow
	for _, r := range rows {
		if r.Level == string(collab.LevelSingle) {
			singles = append(singles, r)
		}
		rep.Rows = append(rep.Rows, *r)
	}
	for _, d := range rep.Datasets {
		best := math.Inf(-1)
		for _, s := range singles {
			if v, ok := s.Score[d]; ok && v > best {
				best = v
			}
		}
		if !math.IsInf(best, -1) {
			rep.BestSingle[d] = best
		}
	}
	// Emergence: items every single model was run on and none solved.
	for i := range rep.Rows {
		r := &rep.Rows[i]
		if r.Level == string(collab.LevelSingle) || len(singles) == 0 {
			continue
		}
		for _, d := range rep.Datasets {
			c := cells[[2]string{r.Method, d}]
			if c == nil {
				continue
			}
			hard, won := 0, 0
			for j, l := range c.lines {
				by := solvedBy[d+"\x00"+l.ID]
				if len(by) < len(singles) {
					continue // not every single model ran this item
				}
				any := false
				for _, v := range by {
					any = any || v
				}
				if any {
					continue
				}
				hard++
				if c.scores[j] >= 1 {
					won++
				}
			}
			r.Hard[d] = hard
			if hard > 0 {
				r.Emergence[d] = float64(won) / float64(hard)
			}
		}
		for _, d := range rep.Datasets {
			b, ok := rep.BestSingle[d]
			v, has := r.Score[d]
			if ok && has {
				rep.Settings++
				if v > b+1e-12 {
					rep.Wins++
				}
			}
		}
	}
	rank := map[string]int{}
	for i, l := range collab.Levels {
		rank[string(l)] = i
	}
	sort.SliceStable(rep.Rows, func(i, j int) bool {
		a, b := rep.Rows[i], rep.Rows[j]
		if a.Level != b.Level {
			return rank[a.Level] < rank[b.Level]
		}
		return a.Method < b.Method
	})
	doms := map[string]bool{}
	for _, d := range rep.Datasets {
		if dom := rep.DomainOf[d]; dom != "" && !doms[dom] {
			doms[dom] = true
			rep.Domains = append(rep.Domains, dom)
		}
	}
	// Per category.
	type ck struct{ m, d, c string }
	cat := map[ck][2]float64{}
	var order []ck
	for i := range lines {
		l := &lines[i]
		k := ck{l.Method, l.Dataset, l.Category}
		v, ok := cat[k]
		if !ok {
			order = append(order, k)
		}
		cat[k] = [2]float64{v[0] + 1, v[1] + l.Score}
	}
	for _, k := range order {
		v := cat[k]
		rep.Categories = append(rep.Categories, CategoryScore{Method: k.m, Dataset: k.d, Category: k.c, N: int(v[0]), Score: v[1] / v[0]})
	}
	return rep, nil
}

// uniqueLines drops repeated lines for one item (overlapping files, such
// as a merged file given with one of its shards), which would otherwise
// count twice; two lines for one item that disagree are an error.
func uniqueLines(lines []ResultLine) ([]ResultLine, error) {
	seen := make(map[string]int, len(lines))
	out := make([]ResultLine, 0, len(lines))
	for _, l := range lines {
		if j, ok := seen[l.key()]; ok {
			if !sameResult(out[j], l) {
				return nil, fmt.Errorf("%s on %s %s item %s has two different results", l.Method, l.Dataset, l.Split, l.ID)
			}
			continue
		}
		seen[l.key()] = len(out)
		out = append(out, l)
	}
	return out, nil
}

// splitColumns gives a dataset evaluated on more than one split (a sweep
// may list it on dev and on test) a column per split, "name (split)", so
// that their items are not scored as one set. Lines are copied when
// renamed.
func splitColumns(lines []ResultLine) []ResultLine {
	splits := map[string]map[string]bool{}
	for i := range lines {
		l := &lines[i]
		if splits[l.Dataset] == nil {
			splits[l.Dataset] = map[string]bool{}
		}
		splits[l.Dataset][l.Split] = true
	}
	var out []ResultLine
	for i, l := range lines {
		if len(splits[l.Dataset]) < 2 {
			continue
		}
		if out == nil {
			out = append([]ResultLine(nil), lines...)
		}
		out[i].Dataset = l.Dataset + " (" + l.Split + ")"
	}
	if out == nil {
		return lines
	}
	return out
}

// Columns are the table's columns: datasets, then one average per domain,
// then the overall average.
func (rep *Report) Columns() []string {
	cols := append([]string(nil), rep.Datasets...)
	for _, d := range rep.Domains {
		cols = append(cols, "avg "+d)
	}
	return append(cols, "avg")
}

// value returns a row's score in a column and whether it has one; averages
// need every dataset of their domain.
func (rep *Report) value(r *ReportRow, col string) (float64, bool) {
	if v, ok := r.Score[col]; ok {
		return v, true
	}
	var ds []string
	switch {
	case col == "avg":
		ds = rep.Datasets
	case strings.HasPrefix(col, "avg "):
		for _, d := range rep.Datasets {
			if rep.DomainOf[d] == col[4:] {
				ds = append(ds, d)
			}
		}
	default:
		return 0, false
	}
	s := 0.0
	for _, d := range ds {
		v, ok := r.Score[d]
		if !ok {
			return 0, false
		}
		s += v
	}
	return s / float64(len(ds)), len(ds) > 0
}

// partial says whether a row's value in a column rests on fewer items of a
// dataset than the report holds.
func (rep *Report) partial(r *ReportRow, col string) bool {
	for _, d := range rep.Datasets {
		in := d == col || col == "avg" || strings.HasPrefix(col, "avg ") && rep.DomainOf[d] == col[4:]
		if n, ok := r.N[d]; in && ok && n < rep.Full[d] {
			return true
		}
	}
	return false
}

// bestSingleValue is the best single model's score in a column: per
// dataset the best single; for averages the best single model's average
// (one model, as the paper compares with one model).
func (rep *Report) bestSingleValue(col string) (float64, bool) {
	if v, ok := rep.BestSingle[col]; ok {
		return v, true
	}
	best, found := math.Inf(-1), false
	for i := range rep.Rows {
		r := &rep.Rows[i]
		if r.Level != string(collab.LevelSingle) {
			continue
		}
		if v, ok := rep.value(r, col); ok && v > best {
			best, found = v, true
		}
	}
	return best, found
}

func pct(v float64) string { return fmt.Sprintf("%.1f", 100*v) }

// Markdown writes the three tables.
func (rep *Report) Markdown(w io.Writer) error {
	cols := rep.Columns()
	best := map[string]float64{}
	for _, c := range cols {
		best[c] = math.Inf(-1)
		for i := range rep.Rows {
			if v, ok := rep.value(&rep.Rows[i], c); ok && v > best[c] {
				best[c] = v
			}
		}
	}
	var b strings.Builder
	b.WriteString("| level | method | " + strings.Join(cols, " | ") + " |\n|---|---|" + strings.Repeat("---:|", len(cols)) + "\n")
	for i := range rep.Rows {
		r := &rep.Rows[i]
		fmt.Fprintf(&b, "| %s | %s |", r.Level, r.Method)
		for _, c := range cols {
			v, ok := rep.value(r, c)
			if !ok {
				b.WriteString(" – |")
				continue
			}
			s := pct(v)
			if r.Level != string(collab.LevelSingle) {
				if bs, ok := rep.bestSingleValue(c); ok {
					s += fmt.Sprintf(" (%+.1f)", 100*(v-bs))
				}
			}
			if v >= best[c]-1e-12 {
				s = "**" + s + "**"
			}
			if rep.partial(r, c) {
				s += "†"
			}
			fmt.Fprintf(&b, " %s |", s)
		}
		b.WriteString("\n")
	}
	if rep.Settings > 0 {
		fmt.Fprintf(&b, "\nCollaboration beats the best single model in %d of %d (method, dataset) settings (%.0f%%).\n",
			rep.Wins, rep.Settings, 100*float64(rep.Wins)/float64(rep.Settings))
	}
	b.WriteString("\nScores ×100; in brackets the difference from the best single model of the pool; best of each column in bold.\n")
	var short []string
	for i := range rep.Rows {
		r := &rep.Rows[i]
		for _, d := range rep.Datasets {
			if n, ok := r.N[d]; ok && n < rep.Full[d] {
				short = append(short, fmt.Sprintf("%s on %s, n = %d of %d", r.Method, d, n, rep.Full[d]))
			}
		}
	}
	if len(short) > 0 {
		b.WriteString("† Scored on fewer items than the dataset has in these results, so not comparable with the rest of its column: " + strings.Join(short, "; ") + ".\n")
	}

	b.WriteString("\n**Collaborative emergence**: among items no single model solves, the share the method solves (items in brackets).\n\n")
	b.WriteString("| method | " + strings.Join(rep.Datasets, " | ") + " |\n|---|" + strings.Repeat("---:|", len(rep.Datasets)) + "\n")
	for i := range rep.Rows {
		r := &rep.Rows[i]
		if r.Level == string(collab.LevelSingle) {
			continue
		}
		fmt.Fprintf(&b, "| %s |", r.Method)
		for _, d := range rep.Datasets {
			if h, ok := r.Hard[d]; ok && h > 0 {
				fmt.Fprintf(&b, " %s (%d) |", pct(r.Emergence[d]), h)
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	if len(rep.Diversity) > 0 {
		b.WriteString("\n**Diversity of the generations** (generation_diversity sets, judge-free): distinct-n over all of a method's generations, self-BLEU among them (lower is more diverse).\n\n")
		b.WriteString("| method | dataset | items | distinct-1 | distinct-2 | self-BLEU |\n|---|---|---:|---:|---:|---:|\n")
		for _, d := range rep.Diversity {
			fmt.Fprintf(&b, "| %s | %s | %d | %.3f | %.3f | %.3f |\n", d.Method, d.Dataset, d.N, d.Distinct1, d.Distinct2, d.SelfBLEU)
		}
	}
	b.WriteString("\n**Cost per item** (FLOPs = 2 × parameters × tokens through a forward pass):\n\n")
	b.WriteString("| method | items | generated tokens | forward tokens | GFLOPs | wall s |\n|---|---:|---:|---:|---:|---:|\n")
	for i := range rep.Rows {
		r := &rep.Rows[i]
		n := float64(max(1, r.Items))
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.1f | %.4g | %.3f |\n", r.Method, r.Items, r.TokensOut/n, r.ForwardTokens/n, r.FLOPs/n/1e9, r.WallS/n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// CSV writes the Table 1 layout: one row per method, per column the score
// and its difference from the best single model; then emergence and cost
// columns per method; then per dataset the items the method was scored on
// and the items the results hold (fewer: a partial run).
func (rep *Report) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cols := rep.Columns()
	head := []string{"level", "method", "models"}
	for _, c := range cols {
		head = append(head, c, c+" diff")
	}
	for _, d := range rep.Datasets {
		head = append(head, d+" emergence", d+" unsolved items")
	}
	head = append(head, "items", "tokens_out/item", "forward_tokens/item", "flops/item", "wall_s/item")
	for _, d := range rep.Datasets {
		head = append(head, d+" items", d+" items in results")
	}
	cw.Write(head)
	f := func(v float64) string { return fmt.Sprintf("%.6g", v) }
	for i := range rep.Rows {
		r := &rep.Rows[i]
		rec := []string{r.Level, r.Method, strings.Join(r.Models, "+")}
		for _, c := range cols {
			v, ok := rep.value(r, c)
			bs, okb := rep.bestSingleValue(c)
			switch {
			case !ok:
				rec = append(rec, "", "")
			case !okb:
				rec = append(rec, f(v), "")
			default:
				rec = append(rec, f(v), f(v-bs))
			}
		}
		for _, d := range rep.Datasets {
			if h, ok := r.Hard[d]; ok && r.Level != string(collab.LevelSingle) {
				rec = append(rec, f(r.Emergence[d]), fmt.Sprint(h))
			} else {
				rec = append(rec, "", "")
			}
		}
		n := float64(max(1, r.Items))
		rec = append(rec, fmt.Sprint(r.Items), f(r.TokensOut/n), f(r.ForwardTokens/n), f(r.FLOPs/n), f(r.WallS/n))
		// A method's items against the dataset's (a partial run has fewer).
		for _, d := range rep.Datasets {
			if n, ok := r.N[d]; ok {
				rec = append(rec, fmt.Sprint(n), fmt.Sprint(rep.Full[d]))
			} else {
				rec = append(rec, "", "")
			}
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// CategoriesCSV writes the per-category breakdown.
func (rep *Report) CategoriesCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"method", "dataset", "category", "items", "score"})
	for _, c := range rep.Categories {
		cw.Write([]string{c.Method, c.Dataset, c.Category, fmt.Sprint(c.N), fmt.Sprintf("%.6g", c.Score)})
	}
	cw.Flush()
	return cw.Error()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

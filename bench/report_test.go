package bench

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func reportLines() []ResultLine {
	var lines []ResultLine
	add := func(method, level, ds string, scores []float64, tokens int) {
		for i, s := range scores {
			lines = append(lines, ResultLine{Method: method, Name: map[bool]string{true: "single", false: "fusion"}[level == "single"],
				Level: level, Models: []string{"A", "B"}[:1+map[bool]int{true: 0, false: 1}[level == "single"]],
				Dataset: ds, ID: string(rune('a' + i)), Index: i, Score: s, TokensOut: tokens, ForwardTokens: int64(2 * tokens),
				FLOPs: 1e9, WallS: 0.5, Category: "c" + string(rune('0'+i%2))})
		}
	}
	add("A", "single", "d1", []float64{1, 1, 0, 0}, 4)
	add("B", "single", "d1", []float64{1, 0, 0, 0}, 4)
	add("M", "logit", "d1", []float64{1, 1, 1, 0}, 8)
	add("A", "single", "d2", []float64{0, 0, 0, 0}, 4)
	add("B", "single", "d2", []float64{1, 1, 0, 0}, 4)
	add("M", "logit", "d2", []float64{1, 0, 0, 0}, 8)
	return lines
}

// TestReport checks the tables against figures worked out by hand.
func TestReport(t *testing.T) {
	rep, err := BuildReport(reportLines())
	if err != nil {
		t.Fatal(err)
	}
	if rep.BestSingle["d1"] != 0.5 || rep.BestSingle["d2"] != 0.5 {
		t.Errorf("best single %v", rep.BestSingle)
	}
	if rep.Wins != 1 || rep.Settings != 2 {
		t.Errorf("wins %d of %d, want 1 of 2", rep.Wins, rep.Settings)
	}
	var m *ReportRow
	for i := range rep.Rows {
		if rep.Rows[i].Method == "M" {
			m = &rep.Rows[i]
		}
	}
	if m == nil || rep.Rows[len(rep.Rows)-1].Method != "M" {
		t.Fatalf("rows %+v: singles first", rep.Rows)
	}
	// Emergence: d1 items c, d are unsolved by A and B; M solves c. d2: c, d; M solves neither.
	if m.Hard["d1"] != 2 || m.Emergence["d1"] != 0.5 || m.Hard["d2"] != 2 || m.Emergence["d2"] != 0 {
		t.Errorf("emergence %v %v", m.Hard, m.Emergence)
	}
	if m.TokensOut/float64(m.Items) != 8 || m.Items != 8 {
		t.Errorf("cost %+v", m)
	}
	markdownHas(t, rep,
		"| logit | M | **75.0 (+25.0)** | 25.0 (-25.0) | **50.0 (+12.5)** |", // avg: best single is B's 37.5
		"| single | A | 50.0 | 0.0 | 25.0 |",
		"1 of 2 (method, dataset) settings (50%)",
		"| M | 50.0 (2) | 0.0 (2) |",
		"| M | 8 | 8.0 | 16.0 | 1 | 0.500 |",
	)
	recs := csvRecords(t, rep, 4)
	if recs[0][3] != "d1" || recs[3][1] != "M" || recs[3][3] != "0.75" || recs[3][4] != "0.25" {
		t.Errorf("CSV rows %q / %q", recs[0], recs[3])
	}
	var cat bytes.Buffer
	rep.CategoriesCSV(&cat)
	if !strings.Contains(cat.String(), "M,d1,c0,2,1\n") || !strings.Contains(cat.String(), "M,d1,c1,2,0.5\n") {
		t.Errorf("categories:\n%s", cat.String())
	}
	dir := t.TempDir()
	charts, err := rep.Charts(dir)
	if err != nil || len(charts) != 2 {
		t.Fatalf("charts %v %v", charts, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "bars-d1.svg"))
	if !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("best single model")) {
		t.Errorf("bar chart is not an SVG with the best-single line")
	}
}

// TestReportPartial: a method run on part of a dataset (an interrupted or
// partial results file) is marked, with its n, not shown as comparable.
func TestReportPartial(t *testing.T) {
	var lines []ResultLine
	for _, l := range reportLines() {
		if l.Method == "M" && l.Dataset == "d1" && l.Index >= 2 {
			continue // M ran 2 of d1's 4 items
		}
		lines = append(lines, l)
	}
	rep, err := BuildReport(lines)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Full["d1"] != 4 || rep.Full["d2"] != 4 {
		t.Errorf("full counts %v", rep.Full)
	}
	markdownHas(t, rep,
		"| logit | M | **100.0 (+50.0)**† | 25.0 (-25.0) | **62.5 (+25.0)**† |", // d2 is whole
		"| single | A | 50.0 | 0.0 | 25.0 |",
		"† Scored on fewer items than the dataset has in these results, so not comparable with the rest of its column: M on d1, n = 2 of 4.",
	)
	recs := csvRecords(t, rep, 4)
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	if m := recs[3]; m[1] != "M" || m[col["d1 items"]] != "2" || m[col["d1 items in results"]] != "4" || m[col["d2 items"]] != "4" {
		t.Errorf("CSV row %q under %q", recs[3], recs[0])
	}
	// A whole file has no mark.
	full, _ := BuildReport(reportLines())
	if md := markdownHas(t, full); strings.Contains(md, "†") {
		t.Errorf("a complete report is marked partial:\n%s", md)
	}
}

// markdownHas checks that rep's Markdown holds each of wants, and returns it.
func markdownHas(t *testing.T, rep *Report, wants ...string) string {
	t.Helper()
	var md bytes.Buffer
	rep.Markdown(&md)
	for _, want := range wants {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md.String())
		}
	}
	return md.String()
}

// csvRecords reads rep's CSV back, which must have rows records.
func csvRecords(t *testing.T, rep *Report, rows int) [][]string {
	t.Helper()
	var c bytes.Buffer
	rep.CSV(&c)
	recs, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(recs) != rows {
		t.Fatalf("CSV: %v %d rows", err, len(recs))
	}
	return recs
}

// TestReportGroups: culturebench's items of one question_id count as one
// verdict, as MoCo scores them.
func TestReportGroups(t *testing.T) {
	lines := []ResultLine{
		{Method: "A", Level: "single", Dataset: "culturebench", ID: "0", Group: "q1", Score: 1},
		{Method: "A", Level: "single", Dataset: "culturebench", ID: "1", Group: "q1", Score: 0},
		{Method: "A", Level: "single", Dataset: "culturebench", ID: "2", Group: "q2", Score: 1},
		{Method: "A", Level: "single", Dataset: "culturebench", ID: "3", Group: "q2", Score: 1},
	}
	rep, err := BuildReport(lines)
	if err != nil {
		t.Fatal(err)
	}
	if v := rep.Rows[0].Score["culturebench"]; math.Abs(v-0.5) > 1e-12 {
		t.Errorf("grouped score %v, want 0.5", v)
	}
}

// TestReportSplits: a dataset evaluated on dev and on test is two columns,
// not one set of items.
func TestReportSplits(t *testing.T) {
	lines := []ResultLine{
		{Method: "A", Level: "single", Dataset: "d", Split: "test", ID: "0", Score: 1},
		{Method: "A", Level: "single", Dataset: "d", Split: "test", ID: "1", Score: 1},
		{Method: "A", Level: "single", Dataset: "d", Split: "dev", ID: "2", Score: 0},
	}
	rep, err := BuildReport(lines)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rep.Datasets, ","); got != "d (test),d (dev)" {
		t.Fatalf("columns %q", got)
	}
	if s := rep.Rows[0].Score; s["d (test)"] != 1 || s["d (dev)"] != 0 {
		t.Errorf("scores %v", s)
	}
	if lines[2].Dataset != "d" {
		t.Errorf("the caller's lines were changed: %+v", lines[2])
	}
}

// TestReportRepeats: a line given twice (overlapping files) counts once;
// two different results for one item are an error.
func TestReportRepeats(t *testing.T) {
	lines := append(reportLines(), reportLines()...)
	lines[len(lines)-1].WallS = 9
	rep, err := BuildReport(lines)
	if err != nil {
		t.Fatal(err)
	}
	if m := rep.Rows[len(rep.Rows)-1]; m.Items != 8 || m.N["d1"] != 4 || m.Score["d1"] != 0.75 {
		t.Errorf("repeated lines: %+v", m)
	}
	lines[len(lines)-1].Score = 1 - lines[len(lines)-1].Score
	if _, err := BuildReport(lines); err == nil || !strings.Contains(err.Error(), "two different results") {
		t.Errorf("conflicting lines: %v", err)
	}
}

// TestReportDiversity: distinct-n and self-BLEU over a method's
// generations on a generation_diversity set, hand-derived: two copies of
// "the same words here" have 4 distinct words of 8 (0.5), 3 distinct
// bigrams of 6 (0.5) and self-BLEU 1; the other method's two disjoint
// texts have distinct-1 and -2 of 1 and self-BLEU 0.
func TestReportDiversity(t *testing.T) {
	lines := []ResultLine{
		{Method: "A", Level: "single", Dataset: "div", TaskType: DiversityTask, ID: "0", Output: "the same words here"},
		{Method: "A", Level: "single", Dataset: "div", TaskType: DiversityTask, ID: "1", Output: "the same words here"},
		{Method: "B", Level: "text", Dataset: "div", TaskType: DiversityTask, ID: "0", Output: "one two three four"},
		{Method: "B", Level: "text", Dataset: "div", TaskType: DiversityTask, ID: "1", Output: "five six seven eight"},
		{Method: "A", Level: "single", Dataset: "em", TaskType: ExactMatchTask, ID: "0", Output: "x"},
	}
	rep, err := BuildReport(lines)
	if err != nil {
		t.Fatal(err)
	}
	want := []DiversityScore{{"A", "div", 2, 0.5, 0.5, 1}, {"B", "div", 2, 1, 1, 0}}
	if len(rep.Diversity) != len(want) {
		t.Fatalf("diversity %+v", rep.Diversity)
	}
	for i, w := range want {
		g := rep.Diversity[i]
		if g.Method != w.Method || g.Dataset != w.Dataset || g.N != w.N || math.Abs(g.Distinct1-w.Distinct1) > 1e-12 ||
			math.Abs(g.Distinct2-w.Distinct2) > 1e-12 || math.Abs(g.SelfBLEU-w.SelfBLEU) > 1e-12 {
			t.Errorf("diversity[%d] = %+v, want %+v", i, g, w)
		}
	}
	var b strings.Builder
	if err := rep.Markdown(&b); err != nil || !strings.Contains(b.String(), "self-BLEU") {
		t.Errorf("markdown lacks the diversity table: %v", err)
	}
}

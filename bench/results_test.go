package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReport reads arbitrary bytes as a results file and builds and
// writes the report of what it accepts (moco sweep report): no input may
// panic.
func FuzzReport(f *testing.F) {
	f.Add([]byte(`{"method":"a","name":"single","level":"single","dataset":"d","id":"1","score":1}
{"method":"b","name":"vote","level":"text","dataset":"d","id":"1","score":0,"category":"x"}
{"method":"b","name":"vote","level":"text","dataset":"d","id":"2","score":1,"domain":"m"}
`))
	f.Add([]byte(`{"method":"a","name":"single","level":"single","dataset":"c","task_type":"generation_diversity","id":"1","output":"a b c","group":"g"}
{"method":"a","name":"single","level":"single","dataset":"c","task_type":"generation_diversity","id":"2","output":"a b d","group":"g"}
partial`))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := readResults(bytes.NewReader(data), "results.jsonl")
		if err != nil {
			return
		}
		rep, err := BuildReport(lines)
		if err != nil {
			return
		}
		for _, write := range []func(io.Writer) error{rep.Markdown, rep.CSV, rep.CategoriesCSV} {
			if err := write(io.Discard); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzReadPredictions reads arbitrary bytes as a predictions file (moco
// score): no input may panic, and what is accepted maps each id to its
// output once.
func FuzzReadPredictions(f *testing.F) {
	f.Add([]byte("{\"id\": 1, \"output\": \"a\"}\n\n{\"id\": \"x\", \"output\": \"\"}\n"))
	f.Add([]byte(`{"id": null, "output": "a"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ReadPredictions(bytes.NewReader(data))
		if err != nil {
			return
		}
		if _, ok := got[""]; ok {
			t.Fatalf("an empty id was accepted: %q", data)
		}
	})
}

// TestReadDone: resuming reads the complete lines of a results file,
// skipping blank ones as ReadResults does, and cuts off a partial last
// line.
func TestReadDone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	whole := "{\"method\":\"a\",\"dataset\":\"d\",\"split\":\"test\",\"id\":\"1\"}\n\n  \n{\"method\":\"a\",\"dataset\":\"d\",\"split\":\"test\",\"id\":\"2\"}\n"
	if err := os.WriteFile(path, []byte(whole+`{"method":"a","dat`), 0o644); err != nil {
		t.Fatal(err)
	}
	done, err := readDone(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 2 || !done["a\x00d\x00test\x001"] || !done["a\x00d\x00test\x002"] {
		t.Errorf("done = %v", done)
	}
	if b, _ := os.ReadFile(path); string(b) != whole {
		t.Errorf("file after: %q", b)
	}
	if lines, err := ReadResults(path); err != nil || len(lines) != 2 {
		t.Errorf("ReadResults: %d lines, %v", len(lines), err)
	}
}

// TestCheckMergeInputs: the meta files beside shard results tell a merge
// which shards are missing and which are unfinished.
func TestCheckMergeInputs(t *testing.T) {
	dir := t.TempDir()
	shard := func(i, n, items, have int) string {
		p := filepath.Join(dir, fmt.Sprintf("s%d.jsonl", i))
		var lines []ResultLine
		for j := 0; j < have; j++ {
			lines = append(lines, ResultLine{Method: "m", Dataset: "d", Split: "test", ID: fmt.Sprintf("%d-%d", i, j)})
		}
		if err := WriteResults(p, lines); err != nil {
			t.Fatal(err)
		}
		m := metaFile{ConfigHash: "h", Items: &items}
		if n > 1 {
			m.Shard = fmt.Sprintf("%d/%d", i, n)
		}
		if err := writeMeta(p, m); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s0, s1, s2 := shard(0, 3, 2, 2), shard(1, 3, 2, 1), shard(2, 3, 3, 3)
	err := CheckMergeInputs([]string{s0, s1})
	if err == nil || !strings.Contains(err.Error(), "s1.jsonl holds 1 of its run's 2 items") || !strings.Contains(err.Error(), "has 3 shards; not given: 2/3") {
		t.Errorf("2 of 3 shards, one unfinished: %v", err)
	}
	shard(1, 3, 2, 2)
	if err := CheckMergeInputs([]string{s2, s0, s1}); err != nil {
		t.Errorf("every shard, complete: %v", err)
	}
	// No meta (results made elsewhere), or an older moco's (no shard, no
	// item count): it cannot be checked, which the merge must say, naming
	// the file, rather than pass it as complete.
	bare := filepath.Join(dir, "bare.jsonl")
	if err := WriteResults(bare, nil); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old.jsonl")
	if err := WriteResults(old, []ResultLine{{Method: "m", Dataset: "d", Split: "test", ID: "x"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old+".meta.json", []byte(`{"config_hash": "h0", "config": "c.yaml"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	err = CheckMergeInputs([]string{bare, s0, old, s1, s2})
	if err == nil || !strings.Contains(err.Error(), "no .meta.json, so completeness cannot be checked (results made elsewhere, or an incomplete merge): "+bare) ||
		!strings.Contains(err.Error(), "an older moco's .meta.json, without shard and item counts") || !strings.HasSuffix(err.Error(), ": "+old) {
		t.Errorf("a file without a meta and one with an older moco's: %v", err)
	}
}

// TestCheckMergeOldShard: a shard written by an older moco (a meta with
// only the config hash) beside current shards of its run is reported once,
// as unchecked, not also as a shard not given: its lines say which shard
// it is. A shard truly missing is still named.
func TestCheckMergeOldShard(t *testing.T) {
	dir := t.TempDir()
	write := func(name, meta string, ids ...string) string {
		p := filepath.Join(dir, name)
		var b strings.Builder
		for _, id := range ids {
			fmt.Fprintf(&b, `{"method":"m","dataset":"d","split":"test","id":"%s"}`+"\n", id)
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+".meta.json", []byte(meta), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Ids by shard of 3, from FNV-1a of "m\x00d\x00id" worked out apart
	// from ShardOf: 0 and 3 in shard 0, 1 and 6 in 1, 2 and 4 in 2.
	for id, want := range map[string]int{"0": 0, "3": 0, "1": 1, "6": 1, "2": 2, "4": 2} {
		if got := ShardOf("m", "d", id, 3); got != want {
			t.Fatalf("ShardOf(m, d, %s, 3) = %d, want %d", id, got, want)
		}
	}
	s0 := write("s0.jsonl", `{"config_hash": "h", "config": "c.yaml", "shard": "0/3", "items": 2}`, "0", "3")
	s1 := write("s1.jsonl", `{"config_hash": "h", "config": "c.yaml"}`, "1", "6")
	s2 := write("s2.jsonl", `{"config_hash": "h", "config": "c.yaml", "shard": "2/3", "items": 2}`, "2", "4")
	const unchecked = "an older moco's .meta.json, without shard and item counts, so completeness cannot be checked (rerun the sweep command that made it: it records them and runs only what is missing): "
	err := CheckMergeInputs([]string{s0, s1, s2})
	if want := unchecked + s1; err == nil || err.Error() != want {
		t.Errorf("every shard, 1/3 an older moco's:\n got %v\nwant %s", err, want)
	}
	err = CheckMergeInputs([]string{s1, s0})
	if want := "the run with config hash h has 3 shards; not given: 2/3; " + unchecked + s1; err == nil || err.Error() != want {
		t.Errorf("2/3 not given, 1/3 an older moco's:\n got %v\nwant %s", err, want)
	}
}

// TestMergeResultsMeta: a complete merge of one run writes the meta that
// run would have written whole, so that the merged file can be checked
// when merged again; an incomplete merge writes none, and removes an
// earlier one beside its output, which would describe other results.
func TestMergeResultsMeta(t *testing.T) {
	dir := t.TempDir()
	shard := func(i, n int) string {
		p := filepath.Join(dir, fmt.Sprintf("s%d.jsonl", i))
		lines := []ResultLine{{Method: "m", Dataset: "d", Split: "test", ID: fmt.Sprint(i)}}
		if err := WriteResults(p, lines); err != nil {
			t.Fatal(err)
		}
		items := 1
		if err := writeMeta(p, metaFile{ConfigHash: "h", Config: "c.yaml", Shard: fmt.Sprintf("%d/%d", i, n), Items: &items}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s0, s1 := shard(0, 2), shard(1, 2)
	out := filepath.Join(dir, "merged.jsonl")
	if n, err := MergeResults(out, []string{s0, s1}, nil); err != nil || n != 2 {
		t.Fatalf("complete merge: %d lines, %v", n, err)
	}
	b, err := os.ReadFile(out + ".meta.json")
	if err != nil {
		t.Fatal(err)
	}
	var m metaFile
	if json.Unmarshal(b, &m) != nil || m.ConfigHash != "h" || m.Config != "c.yaml" || m.Shard != "" || m.Items == nil || *m.Items != 2 {
		t.Errorf("merged meta: %s", b)
	}
	if err := CheckMergeInputs([]string{out, s1}); err != nil {
		t.Errorf("the merged file merged again: %v", err)
	}
	var warned error
	if _, err := MergeResults(out, []string{s0}, func(p error) error { warned = p; return nil }); err != nil || warned == nil {
		t.Fatalf("partial merge: %v, problems %v", err, warned)
	}
	if _, err := os.Stat(out + ".meta.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a partial merge left a meta beside its output: %v", err)
	}
	if _, err := MergeResults(filepath.Join(dir, "x.jsonl"), []string{s0}, nil); err == nil || !strings.Contains(err.Error(), "not given: 1/2") {
		t.Errorf("a partial merge with no incomplete func: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused merge wrote its output: %v", err)
	}
}

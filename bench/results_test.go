package bench

import (
	"bytes"
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
	// No meta (results made elsewhere, or by an older moco): nothing to check.
	bare := filepath.Join(dir, "bare.jsonl")
	if err := WriteResults(bare, nil); err != nil {
		t.Fatal(err)
	}
	if err := CheckMergeInputs([]string{bare, s0, s1, s2}); err != nil {
		t.Errorf("a file without a meta: %v", err)
	}
}

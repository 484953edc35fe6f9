package bench

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
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

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/mocolab/moco/embedded"
	"github.com/mocolab/moco/tokenizer"
)

func init() {
	register(&command{
		name:    "tokenize",
		summary: `encode JSON lines {"text": ...} from stdin to {"ids": [...]}`,
		run:     runTokenize,
	})
	register(&command{
		name:    "detokenize",
		summary: `decode JSON lines {"ids": [...]} from stdin to {"text": ...}`,
		run:     runDetokenize,
	})
}

// loadTokenizer loads the tokenizer of a model folder (a folder holding
// only tokenizer.json and tokenizer_config.json will do), or the embedded
// default when dir is "".
func loadTokenizer(dir string) (*tokenizer.Tokenizer, error) {
	if dir == "" {
		return embedded.Tokenizer()
	}
	return tokenizer.Load(dir)
}

func runTokenize(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("tokenize", stderr)
	model := fs.StringP("model", "m", "", "model or tokenizer folder (default: the embedded stories260K)")
	special := fs.Bool("special", false, "add the special tokens (BOS/EOS) the tokenizer config asks for")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: moco tokenize [--model DIR] [--special] < lines of {"text": ...}`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	tk, err := loadTokenizer(*model)
	if err != nil {
		return err
	}
	return eachRecord(stdin, stdout, func(n int, raw json.RawMessage) (any, error) {
		var in struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(raw, &in); err != nil || in.Text == nil {
			return nil, fmt.Errorf("record %d: want an object with a string \"text\"", n)
		}
		ids, err := tk.Encode(*in.Text, *special)
		if err != nil {
			return nil, fmt.Errorf("record %d: %v", n, err)
		}
		if ids == nil {
			ids = []int{}
		}
		return struct {
			IDs []int `json:"ids"`
		}{ids}, nil
	})
}

func runDetokenize(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("detokenize", stderr)
	model := fs.StringP("model", "m", "", "model or tokenizer folder (default: the embedded stories260K)")
	skip := fs.Bool("skip-special", false, "leave special tokens out of the text")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: moco detokenize [--model DIR] [--skip-special] < lines of {"ids": [...]}`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	tk, err := loadTokenizer(*model)
	if err != nil {
		return err
	}
	return eachRecord(stdin, stdout, func(n int, raw json.RawMessage) (any, error) {
		var in struct {
			IDs *[]int `json:"ids"`
		}
		if err := json.Unmarshal(raw, &in); err != nil || in.IDs == nil {
			return nil, fmt.Errorf("record %d: want an object with an integer list \"ids\"", n)
		}
		for _, id := range *in.IDs {
			if id < 0 || id >= tk.VocabSize() {
				return nil, fmt.Errorf("record %d: id %d is outside the vocabulary (size %d)", n, id, tk.VocabSize())
			}
		}
		return struct {
			Text string `json:"text"`
		}{tk.Decode(*in.IDs, *skip)}, nil
	})
}

// eachRecord reads a stream of JSON values from r, and writes what f
// returns for each as one JSON line, flushed at once so that the command
// works interactively in a pipe.
func eachRecord(r io.Reader, w io.Writer, f func(n int, raw json.RawMessage) (any, error)) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for n := 1; ; n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return bw.Flush()
			}
			bw.Flush()
			return fmt.Errorf("record %d: invalid JSON: %v", n, err)
		}
		out, err := f(n, raw)
		if err != nil {
			bw.Flush()
			return err
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
}

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mocolab/moco/bench"
	"github.com/mocolab/moco/internal/atomicfile"
)

func runSweepReport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sweep report", stderr)
	outDir := fs.String("out-dir", "", "also write table.md, table.csv, categories.csv and SVG charts here")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moco sweep report RESULTS.jsonl... [--out-dir DIR]")
		fmt.Fprintln(stderr, "Prints the Table 1 layout (methods by level vs the best single model), collaborative emergence and cost per item as Markdown.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("give one or more results files")
	}
	var lines []bench.ResultLine
	for _, p := range fs.Args() {
		l, err := bench.ReadResults(p)
		if err != nil {
			return err
		}
		lines = append(lines, l...)
	}
	rep, err := bench.BuildReport(lines)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md); err != nil {
		return err
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			return err
		}
		var tab, cat bytes.Buffer
		if err := rep.CSV(&tab); err != nil {
			return err
		}
		if err := rep.CategoriesCSV(&cat); err != nil {
			return err
		}
		for name, b := range map[string][]byte{"table.md": md.Bytes(), "table.csv": tab.Bytes(), "categories.csv": cat.Bytes()} {
			if err := atomicfile.WriteFile(filepath.Join(*outDir, name), b); err != nil {
				return err
			}
		}
	}
	// The table first: a chart that cannot be drawn does not lose it.
	if _, err := stdout.Write(md.Bytes()); err != nil {
		return err
	}
	if *outDir != "" {
		charts, err := rep.Charts(*outDir)
		if err != nil {
			return fmt.Errorf("charts: %w (the tables are written)", err)
		}
		fmt.Fprintf(stderr, "moco sweep report: wrote table.md, table.csv, categories.csv and %d charts to %s\n", len(charts), *outDir)
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mocolab/moco/collab"
	"github.com/mocolab/moco/engine"
	"github.com/mocolab/moco/kernels"
)

// A command is one subcommand of moco. Each lives in its own file and
// registers itself in init, so subcommands can be added independently.
type command struct {
	name    string
	summary string
	// run parses args (everything after the subcommand name) and does the work.
	run func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// usageError marks errors caused by bad command-line input.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// runMain is main without the process exit, so tests can call it.
func runMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "moco: unknown command %q (run 'moco help' for the list)\n", args[0])
		return 2
	}
	if runsModels[c.name] && !slices.ContainsFunc(args[1:], isHelpFlag) {
		if err := kernels.Calibrate(context.Background()); err != nil {
			fmt.Fprintf(stderr, "moco %s: %v\n", c.name, err)
			return 2 // a bad MOCO_CALIBRATE
		}
	}
	if err := c.run(args[1:], stdin, stdout, stderr); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		if code, ok := reportSignal(stderr, c.name, err); ok {
			return code // 130 (SIGINT) or 143 (SIGTERM): see signals.go
		}
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(stderr, "moco %s: interrupted\n", c.name)
			return 130 // as a shell reports a SIGINT
		}
		msg := oneLine(err.Error())
		if errors.Is(err, engine.ErrContextFull) {
			msg += " (set the context size with --ctx-size/-c)"
		}
		fmt.Fprintf(stderr, "moco %s: %s\n", c.name, msg)
		var ue usageError
		if errors.As(err, &ue) || errors.Is(err, collab.ErrInput) {
			return 2 // a bad flag, or a method, pool or parameters collab refuses
		}
		return 1
	}
	return 0
}

// runsModels lists the commands that load models. Before they run, the
// kernels settle the choices their CPU family rules leave open
// (kernels.Calibrate: a few milliseconds on a machine's first start, then
// read from the user's cache folder; MOCO_CALIBRATE=off skips it, force
// measures again). Commands that only read or write files never pay for it.
var runsModels = map[string]bool{
	"bench": true, "collab": true, "eval": true, "generate": true, "logits": true,
	"perplexity": true, "serve": true, "sweep": true, "train": true,
}

func isHelpFlag(a string) bool { return a == "-h" || a == "--help" }

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "moco: run, combine and merge language models on the CPU")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: moco COMMAND [flags]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'moco COMMAND --help' for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("moco "+name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	// Commands with more to say set their own; this keeps every --help's
	// first line in one form, not pflag's "Usage of moco NAME:".
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: moco %s [flags]\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if err := checkRanges(fs); err != nil {
		return err
	}
	return checkModelRefs(fs)
}

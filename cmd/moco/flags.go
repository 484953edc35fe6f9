package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// This file holds the conventions every command shares: the valid range of
// each numeric flag (checked by parseFlags, one message per flag naming it
// and its range, exit code 2), the escape rule of text flags, and the flags
// that mean the same in every command (--threads/-t, --ctx-size/-c).

// numRange is the set of values a numeric flag accepts. NaN and infinities
// are always refused.
type numRange struct {
	lo, hi         float64 // bounds; ±Inf: none on that side
	loOpen, hiOpen bool    // the bound itself is excluded
	note           string  // what special values mean, e.g. "0: all cores"
}

// between is the closed range [lo, hi].
func between(lo, hi float64) numRange { return numRange{lo: lo, hi: hi} }

// atLeast is [lo, +Inf).
func atLeast(lo float64) numRange { return numRange{lo: lo, hi: math.Inf(1)} }

// above is (lo, hi]: the lower bound excluded, e.g. a learning rate.
func above(lo, hi float64) numRange { return numRange{lo: lo, hi: hi, loOpen: true} }

// withNote adds the meaning of special values to the range's message.
func (r numRange) withNote(note string) numRange { r.note = note; return r }

func (r numRange) contains(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	if v < r.lo || (r.loOpen && v == r.lo) {
		return false
	}
	return v < r.hi || (!r.hiOpen && v == r.hi)
}

// describe says the range in words: "an integer in [0, 8] (0: all cores)".
func (r numRange) describe(integer bool) string {
	kind := "a number"
	if integer {
		kind = "an integer"
	}
	s := kind + " " + r.bounds()
	if r.note != "" {
		s += " (" + r.note + ")"
	}
	return s
}

// bounds is the range alone: "in [0, 1]", ">= 1" or "> 0".
func (r numRange) bounds() string {
	switch {
	case math.IsInf(r.hi, 1) && r.loOpen:
		return "> " + fmtNum(r.lo)
	case math.IsInf(r.hi, 1):
		return ">= " + fmtNum(r.lo)
	}
	open, closeB := "[", "]"
	if r.loOpen {
		open = "("
	}
	if r.hiOpen {
		closeB = ")"
	}
	return "in " + open + fmtNum(r.lo) + ", " + fmtNum(r.hi) + closeB
}

func fmtNum(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// aliasFlags makes each long name of aliases (alias: flag) set that flag.
func aliasFlags(fs *pflag.FlagSet, aliases map[string]string) {
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if to, ok := aliases[name]; ok {
			return pflag.NormalizedName(to)
		}
		return pflag.NormalizedName(name)
	})
}

// rangeKey is the flag annotation that holds a numRange.
const rangeKey = "moco/range"

// setRange declares the values the numeric flag name accepts: parseFlags
// refuses others with a usage error naming the flag and the range, and
// --help shows the range after the flag's description. It panics on an
// unknown flag, a programming error.
func setRange(fs *pflag.FlagSet, name string, r numRange) {
	f := fs.Lookup(name)
	if f == nil {
		panic("setRange: no flag --" + name)
	}
	if _, ok := f.Annotations[rangeKey]; ok {
		// A second range would replace the first and repeat the note.
		panic("setRange: --" + name + " has a range already")
	}
	loOpen, hiOpen := "0", "0"
	if r.loOpen {
		loOpen = "1"
	}
	if r.hiOpen {
		hiOpen = "1"
	}
	fs.SetAnnotation(name, rangeKey, []string{fmtNum(r.lo), fmtNum(r.hi), loOpen, hiOpen, r.note})
	if r.note != "" {
		// The note joins the bounds; a usage text that ends with it
		// already would show it twice.
		f.Usage = strings.TrimSuffix(f.Usage, " ("+r.note+")")
		f.Usage += " (" + r.note + "; " + r.bounds() + ")"
	} else {
		f.Usage += " (" + r.bounds() + ")"
	}
}

func rangeOf(f *pflag.Flag) (numRange, bool) {
	a, ok := f.Annotations[rangeKey]
	if !ok || len(a) != 5 {
		return numRange{}, false
	}
	lo, _ := strconv.ParseFloat(a[0], 64)
	hi, _ := strconv.ParseFloat(a[1], 64)
	return numRange{lo: lo, hi: hi, loOpen: a[2] == "1", hiOpen: a[3] == "1", note: a[4]}, true
}

func isIntFlag(f *pflag.Flag) bool {
	t := f.Value.Type()
	return strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint")
}

// checkRanges checks every flag given on the command line that has a
// range, and returns one usage error listing each bad flag once.
func checkRanges(fs *pflag.FlagSet) error {
	var msgs []string
	fs.Visit(func(f *pflag.Flag) { // only the flags that were set
		r, ok := rangeOf(f)
		if !ok {
			return
		}
		vals, err := flagValues(f)
		if err != nil {
			msgs = append(msgs, fmt.Sprintf("--%s: %v", f.Name, err))
			return
		}
		for _, v := range vals {
			if !r.contains(v) {
				msgs = append(msgs, fmt.Sprintf("--%s %s: want %s", f.Name, fmtNum(v), r.describe(isIntFlag(f))))
				return
			}
		}
	})
	if len(msgs) == 0 {
		return nil
	}
	return usageError{strings.Join(msgs, "\n")}
}

// checkModelRefs refuses a model flag (--model/-m, --base, --judge) given
// as MODEL+LORA, mergekit's reference to a model with a LoRA adapter merged
// in: only merge configurations read it, and elsewhere the path would fail
// later as a missing tokenizer or config. It says where the syntax works.
func checkModelRefs(fs *pflag.FlagSet) error {
	var err error
	fs.Visit(func(f *pflag.Flag) {
		if err != nil || (f.Name != "model" && f.Name != "base" && f.Name != "judge") {
			return
		}
		refs := []string{f.Value.String()}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			refs = sv.GetSlice()
		}
		for _, ref := range refs {
			if model, lora, ok := loraRef(ref); ok {
				err = usagef("--%s %s: MODEL+LORA works in merge configurations only (moco merge CONFIG.yaml OUT); to use the model with the adapter merged in, write it first: moco merge --method lora --base %s -m %s --out DIR",
					f.Name, ref, model, lora)
				return
			}
		}
	})
	return err
}

// loraRef splits ref at its last "+" when ref is no file or folder but
// MODEL+LORA, LORA a PEFT adapter folder.
func loraRef(ref string) (model, lora string, ok bool) {
	i := strings.LastIndex(ref, "+")
	if i <= 0 {
		return "", "", false
	}
	if _, err := os.Stat(ref); err == nil {
		return "", "", false
	}
	if _, err := os.Stat(filepath.Join(ref[i+1:], "adapter_config.json")); err != nil {
		return "", "", false
	}
	return ref[:i], ref[i+1:], true
}

// flagValues reads a numeric flag's values (one, or a slice's elements).
func flagValues(f *pflag.Flag) ([]float64, error) {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		var out []float64
		for _, s := range sv.GetSlice() {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	v, err := strconv.ParseFloat(f.Value.String(), 64)
	if err != nil {
		return nil, err
	}
	return []float64{v}, nil
}

// maxThreads is the most compute threads a command accepts: the cores this
// process may run on. More threads than cores only add contention.
func maxThreads() int { return max(1, runtime.NumCPU()) }

// addThreadsFlag adds --threads/-t, llama.cpp's name for the same thing.
func addThreadsFlag(fs *pflag.FlagSet, p *int) {
	fs.IntVarP(p, "threads", "t", 0, "compute threads")
	setRange(fs, "threads", between(0, float64(maxThreads())).withNote("0: all cores"))
}

// maxContext bounds --ctx-size: far beyond any model's positions, but low
// enough that the attention rows of one head still index with an int32.
const maxContext = 1 << 24

// addCtxSizeFlag adds --ctx-size/-c, llama.cpp's name for the positions a
// session holds.
func addCtxSizeFlag(fs *pflag.FlagSet, p *int) {
	fs.IntVarP(p, "ctx-size", "c", 0, "positions a sequence may hold, prompt included; the KV cache grows as needed")
	setRange(fs, "ctx-size", between(0, maxContext).withNote("0: the model's max_position_embeddings"))
}

// escapeHelp is the escape rule, for the --help of flags that follow it.
const escapeHelp = `\n \r \t \' \" \\ and \xHH are escapes, as in llama.cpp (--no-escape: literal)`

// unescape processes the escapes of a text flag as llama.cpp does for its
// prompts and stop strings: \n, \r, \t, \', \", \\ and \xHH (two hex
// digits) become the characters; any other backslash is kept as typed.
// Every command applies this one rule to the text flags whose help says
// so, unless --no-escape is given; text read from files is never changed.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '\'', '"', '\\':
			b.WriteByte(c)
		case 'x':
			if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
				b.WriteByte(byte(v))
				i += 2
				continue
			}
			b.WriteString(`\x`)
		default:
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unescapeAll applies unescape to each string unless literal is set.
func unescapeAll(ss []string, literal bool) []string {
	if literal || ss == nil {
		return ss
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = unescape(s)
	}
	return out
}

// seedValue is a -s/--seed flag: a non-negative seed, or -1 for a random
// one (llama.cpp's spelling), the same as giving none.
type seedValue struct {
	v      *uint64
	random bool
}

// addSeedFlag defines -s/--seed on fs, stored in v.
func addSeedFlag(fs *pflag.FlagSet, v *uint64, usage string) {
	fs.VarP(&seedValue{v: v}, "seed", "s", usage+"; -1: a random one, as when not given")
}

// seedGiven reports whether fs's --seed was given as a seed (not -1).
func seedGiven(fs *pflag.FlagSet) bool {
	f := fs.Lookup("seed")
	return f != nil && f.Changed && !f.Value.(*seedValue).random
}

func (s *seedValue) String() string {
	if s.random {
		return "-1"
	}
	return strconv.FormatUint(*s.v, 10)
}

func (s *seedValue) Set(x string) error {
	if x == "-1" {
		s.random = true
		return nil
	}
	v, err := strconv.ParseUint(x, 0, 64)
	if err != nil {
		return errors.New("must be a non-negative integer, or -1 for a random seed")
	}
	*s.v, s.random = v, false
	return nil
}

func (s *seedValue) Type() string { return "uint64" }

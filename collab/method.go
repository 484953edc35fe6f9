package collab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/mocolab/moco/collab/extract"
)

// Level is the level of the MoCo taxonomy a method works at.
type Level string

// The levels, in the order reports list them. Single is one model alone,
// the baseline every method is compared with.
const (
	LevelSingle   Level = "single"
	LevelAPI      Level = "api"
	LevelText     Level = "text"
	LevelLogit    Level = "logit"
	LevelWeight   Level = "weight"
	LevelTraining Level = "training"
)

// Levels lists the levels in report order.
var Levels = []Level{LevelSingle, LevelAPI, LevelText, LevelLogit, LevelWeight, LevelTraining}

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"` // "system", "user" or "assistant"
	Content string `json:"content"`
}

// Request is one prompt to answer, with its own sampling settings.
type Request struct {
	// Prompt is sent as it is; when Messages is non-empty it is ignored and
	// the model's chat template renders Messages instead.
	Prompt   string
	Messages []Message

	MaxTokens   int     // 0: the method's default
	Temperature float64 // 0: greedy
	TopP        float64 // 0 or 1: off
	Seed        uint64
	Stop        []string // generation ends before the first of these

	// Task says what kind of answer is wanted (MoCo task type and, for
	// multiple choice, the options), for methods that compare answers:
	// majority vote counts extract.Key(Task, text). The zero value uses the
	// method's task_type parameter.
	Task extract.Task
}

// Response is the answer to one Request, with what it cost.
type Response struct {
	Text string
	// Token counts: the prompt as the answering model saw it, the tokens
	// generated, and every token any model ran a forward pass over
	// (prompts included), the basis of the cost report.
	PromptTokens, CompletionTokens int
	ForwardTokens                  int64
	// FLOPs is 2 x parameters x tokens summed over the models that ran,
	// as in the MoCo paper's cost table; 0 when unknown (remote models).
	FLOPs float64
	// Finish says why the answer's text ended, as OpenAI's finish_reason:
	// "stop" (end of text or a stop string), "length" (MaxTokens ran
	// out), or what a remote endpoint said; "" when the method cannot
	// tell (an answer no single call wrote).
	Finish string
	// Trace records the exchanges a method made, in order; nil when the
	// method has none to report.
	Trace []Event
}

// Event is one exchange in a method's trace: who said what to whom.
type Event struct {
	Round int    `json:"round"`
	Step  string `json:"step"`           // the method's name for the step: "answer", "critique", "vote", "route", ...
	From  string `json:"from"`           // the model that spoke
	To    string `json:"to,omitempty"`   // the model spoken to, if one
	Input string `json:"input"`          // the prompt it was given
	Text  string `json:"text"`           // what it said
	Note  string `json:"note,omitempty"` // extracted answer, score, choice
	// Finish is the call's finish reason (Response.Finish); empty for the
	// method's own steps.
	Finish string `json:"finish,omitempty"`
}

// Generator answers batches of requests: a local model, a remote endpoint,
// or a method over others. Generate returns one Response per Request in
// order, or an error; implementations document whether they are safe for
// concurrent use.
type Generator interface {
	Name() string
	Generate(ctx context.Context, reqs []Request) ([]Response, error)
}

// Method is a collaboration method built over a pool. It is itself a
// Generator, so methods compose, the sweep scores them like single models,
// and the server serves them as model ids.
type Method interface {
	Generator
	Level() Level
}

// Member is one model of a pool. Gen is always set; Dir is set for local
// model folders (weight-level methods merge from it) and Local for models
// loaded in this process (logit-level methods need their sessions). What
// Local holds is up to the package that loads it; methods type-assert.
type Member struct {
	Name  string
	Dir   string
	Gen   Generator
	Local any
}

// Params holds a method's parameters as read from a config file or flags:
// JSON-like values by name. Decode moves them into a typed struct.
type Params map[string]any

// Decode fills dst (a pointer to a struct with json tags) from p; a key
// dst has no field for is an error naming it, so typos never pass silently.
func (p Params) Decode(dst any) error {
	raw, err := json.Marshal(map[string]any(p))
	if err != nil {
		return inputErrorf("parameters: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		// encoding/json has no error type for an unknown field; its
		// message is the documented form "json: unknown field \"NAME\"".
		if q, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			if name, uerr := strconv.Unquote(q); uerr == nil {
				err = &UnknownParamError{Name: name}
			}
		}
		return inputErrorf("parameters: %w", err)
	}
	return nil
}

// UnknownParamError is Params.Decode's error for a parameter the method
// has no field for; a front end that fills parameters from its own flags
// can name the flag instead.
type UnknownParamError struct{ Name string }

func (e *UnknownParamError) Error() string { return fmt.Sprintf("unknown field %q", e.Name) }

// ErrInput marks errors caused by what the caller asked for rather than by
// a failure while working: an unknown method, a pool of the wrong size,
// bad parameters, models a method cannot use. errors.Is(err, ErrInput)
// tells them apart (the CLI exits 2 for them, as for a bad flag).
var ErrInput = errors.New("invalid input")

// inputError is an error about the caller's input; see ErrInput.
type inputError struct{ err error }

func (e inputError) Error() string        { return e.err.Error() }
func (e inputError) Unwrap() error        { return e.err }
func (e inputError) Is(target error) bool { return target == ErrInput }

// inputErrorf is fmt.Errorf marked as an input error.
func inputErrorf(format string, args ...any) error {
	return inputError{fmt.Errorf(format, args...)}
}

// Spec describes a method to the registry: how many models it takes and
// how to build it. New receives the whole pool and the method's parameters;
// it should check them and fail before doing expensive work.
type Spec struct {
	Name      string
	Level     Level
	Summary   string // one line for help listings
	MinModels int
	MaxModels int // 0: no limit
	// Dev: the method learns from a dataset's dev split, read from the
	// file named by its "dev" parameter (DevConfig: dev, dev_n,
	// dev_max_tokens, dev_temperature, dev_stop). A sweep fills "dev" in,
	// per dataset, with a file holding only that dataset's dev split, so
	// the method never sees a test item.
	Dev bool
	// DevScores: the method reads a "dev_scores" parameter (one dev score
	// per pool model, to pick its judge, summariser, router or tie
	// breaker). A sweep fills it in, per dataset, with each model's dev
	// accuracy.
	DevScores bool
	New       func(ctx context.Context, pool []Member, p Params) (Method, error)
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Spec{}
)

// Register adds a method under spec.Name; the CLI, the sweep and the server
// all build methods through this one registry. It panics on a duplicate or
// incomplete spec, as http.Handle does, since that is a programming error.
func Register(spec Spec) {
	if spec.Name == "" || spec.New == nil || spec.Level == "" {
		panic("collab: Register needs a name, a level and a constructor")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[spec.Name]; dup {
		panic("collab: method " + spec.Name + " registered twice")
	}
	registry[spec.Name] = spec
}

// Lookup returns the spec registered under name.
func Lookup(name string) (Spec, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	s, ok := registry[name]
	return s, ok
}

// Specs returns every registered spec, by level in report order, then name.
func Specs() []Spec {
	registryMu.RLock()
	out := make([]Spec, 0, len(registry))
	for _, s := range registry {
		out = append(out, s)
	}
	registryMu.RUnlock()
	rank := map[Level]int{}
	for i, l := range Levels {
		rank[l] = i
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Level != out[j].Level {
			return rank[out[i].Level] < rank[out[j].Level]
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// New builds the method name over pool with params p, checking the pool
// size against the spec first.
func New(ctx context.Context, name string, pool []Member, p Params) (Method, error) {
	spec, ok := Lookup(name)
	if !ok {
		var names []string
		for _, s := range Specs() {
			names = append(names, s.Name)
		}
		return nil, inputErrorf("unknown method %q (known: %s)", name, strings.Join(names, ", "))
	}
	if len(pool) == 0 {
		return nil, inputErrorf("%s: the pool is empty", name)
	}
	if len(pool) < spec.MinModels {
		return nil, inputErrorf("%s needs at least %d models, the pool has %d", name, spec.MinModels, len(pool))
	}
	if spec.MaxModels > 0 && len(pool) > spec.MaxModels {
		return nil, inputErrorf("%s takes at most %d models, the pool has %d", name, spec.MaxModels, len(pool))
	}
	return spec.New(ctx, pool, p)
}

package collab

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

type echo struct{ name string }

func (e echo) Name() string { return e.name }
func (e echo) Level() Level { return LevelSingle }
func (e echo) Generate(_ context.Context, reqs []Request) ([]Response, error) {
	out := make([]Response, len(reqs))
	for i, r := range reqs {
		out[i] = Response{Text: e.name + ":" + r.Prompt}
	}
	return out, nil
}

// registerEcho registers test-echo once, however often TestRegistry runs
// (go test -count=2 ran it twice: Register panics on a duplicate).
var registerEcho sync.Once

func TestRegistry(t *testing.T) {
	registerEcho.Do(func() {
		Register(Spec{Name: "test-echo", Level: LevelText, MinModels: 2, MaxModels: 3,
			New: func(_ context.Context, pool []Member, p Params) (Method, error) {
				var cfg struct {
					Rounds int `json:"rounds"`
				}
				if err := p.Decode(&cfg); err != nil {
					return nil, err
				}
				return echo{name: pool[0].Name}, nil
			}})
	})
	one := []Member{{Name: "a", Gen: echo{"a"}}}
	two := append(one, Member{Name: "b", Gen: echo{"b"}})
	four := append(two, two...)
	for _, tc := range []struct {
		name   string
		pool   []Member
		params Params
		err    string
	}{
		{"nope", two, nil, `unknown method "nope"`},
		{"test-echo", nil, nil, "pool is empty"},
		{"test-echo", one, nil, "at least 2 models"},
		{"test-echo", four, nil, "at most 3 models"},
		{"test-echo", two, Params{"rouds": 2}, `unknown field "rouds"`},
		{"test-echo", two, Params{"rounds": 2}, ""},
	} {
		m, err := New(context.Background(), tc.name, tc.pool, tc.params)
		if tc.err == "" {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			res, _ := m.Generate(context.Background(), []Request{{Prompt: "x"}})
			if res[0].Text != "a:x" {
				t.Fatalf("got %q", res[0].Text)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s with %d models, %v: error %v, want %q", tc.name, len(tc.pool), tc.params, err, tc.err)
		}
		if !errors.Is(err, ErrInput) {
			t.Errorf("%s: %v is not marked as an input error", tc.name, err)
		}
		var unknown *UnknownParamError
		if errors.As(err, &unknown) != (tc.params["rouds"] != nil) || unknown != nil && unknown.Name != "rouds" {
			t.Errorf("%s: %v: UnknownParamError %+v, want one naming rouds exactly when it was given", tc.name, err, unknown)
		}
	}
	found := false
	for _, s := range Specs() {
		found = found || s.Name == "test-echo"
	}
	if !found {
		t.Fatal("Specs does not list the registered method")
	}
}

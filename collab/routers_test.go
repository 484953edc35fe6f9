package collab

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// skillGen is a fake model that solves one kind of question ("add" or
// "rev") and exposes a two-number embedding of a text: whether it holds
// "+" and whether it holds "rev".
type skillGen struct {
	name, skill string
	calls       int
}

func (s *skillGen) Name() string { return s.name }
func (s *skillGen) Generate(_ context.Context, reqs []Request) ([]Response, error) {
	out := make([]Response, len(reqs))
	for i, r := range reqs {
		s.calls++
		p := r.Prompt
		ans := "wrong"
		if strings.Contains(p, "+") == (s.skill == "add") {
			ans = "right"
		}
		out[i] = Response{Text: ans}
	}
	return out, nil
}

func (s *skillGen) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := []float32{0, 0, 0}
		if strings.Contains(t, "right") {
			v[2] = 1
		}
		if strings.Contains(t, "+") {
			v[0] = 1
		}
		if strings.Contains(t, "rev") {
			v[1] = 1
		}
		// a little spread so the standardisation has variance
		v[0] += float32(len(t)%3) * 0.01
		out[i] = v
	}
	return out, nil
}

func writeDevSet(t *testing.T) string {
	var dev []map[string]string
	for i := range 12 {
		if i%2 == 0 {
			dev = append(dev, map[string]string{"id": "a", "input": strings.Repeat("x", i) + "1+2", "output": "right"})
		} else {
			dev = append(dev, map[string]string{"id": "r", "input": strings.Repeat("y", i) + "rev abc", "output": "right"})
		}
	}
	b, _ := json.Marshal(map[string]any{"dataset": "toy", "task_type": "exact_match", "dev": dev, "test": dev[:1]})
	p := filepath.Join(t.TempDir(), "toy.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTrainedAndGraphRouters(t *testing.T) {
	dev := writeDevSet(t)
	for _, method := range []string{"trained-router", "graph-router"} {
		add, rev := &skillGen{name: "adder", skill: "add"}, &skillGen{name: "reverser", skill: "rev"}
		pool := []Member{{Name: "reverser", Gen: rev}, {Name: "adder", Gen: add}}
		params := Params{"dev": dev, "dev_max_tokens": 8}
		if method == "graph-router" {
			params["k"] = 3
		}
		m, err := New(context.Background(), method, pool, params)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if add.calls != 12 || rev.calls != 12 {
			t.Errorf("%s: dev calls %d and %d, want 12 each", method, add.calls, rev.calls)
		}
		r := m.(*Router)
		if r.DevAccuracy[0] != 0.5 || r.DevAccuracy[1] != 0.5 {
			t.Errorf("%s: dev accuracy %v", method, r.DevAccuracy)
		}
		for _, tc := range []struct {
			prompt string
			want   int
		}{{"zz 4+5", 1}, {"rev hello", 0}, {"q 7+7", 1}} {
			got, err := r.Route(context.Background(), Request{Prompt: tc.prompt})
			if err != nil || got != tc.want {
				t.Errorf("%s: %q routed to %d (%v), want %d", method, tc.prompt, got, err, tc.want)
			}
		}
		res, err := m.Generate(context.Background(), []Request{{Prompt: "1+1"}})
		if err != nil || res[0].Text != "right" {
			t.Fatalf("%s: %v %v", method, res, err)
		}
		if tr := res[0].Trace; len(tr) != 2 || tr[0].Step != "route" || tr[0].Text != "adder" || tr[1].From != "adder" {
			t.Errorf("%s: trace %+v", method, tr)
		}
	}
	// Bad input.
	pool := []Member{{Name: "a", Gen: &scripted{name: "a", reply: tag}}, {Name: "b", Gen: &scripted{name: "b", reply: tag}}}
	for _, tc := range []struct {
		method string
		params Params
		err    string
	}{
		{"trained-router", nil, "give the dev parameter"},
		{"trained-router", Params{"dev": dev}, "needs an encoder with hidden states"},
		{"trained-router", Params{"dev": filepath.Join(t.TempDir(), "none.json")}, "no such file"},
		{"graph-router", Params{"dev": dev, "alpha": 1.5}, "alpha in (0, 1)"},
		{"prompt-routing", Params{"model_descriptions": []string{"x"}}, "one model description per model"},
	} {
		if _, err := New(context.Background(), tc.method, pool, tc.params); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s %v: error %v, want %q", tc.method, tc.params, err, tc.err)
		}
	}
}

// TestLabelPropagation checks the iteration against the closed form
// (1-alpha) (I - alpha S)^-1 Y, solved by Gaussian elimination.
func TestLabelPropagation(t *testing.T) {
	w := [][]float64{{0, 1, 0.5, 0}, {1, 0, 0, 0.2}, {0.5, 0, 0, 1}, {0, 0.2, 1, 0}}
	y := [][]float64{{1, 0}, {0, 0}, {0, 1}, {0, 0}}
	alpha := 0.8
	f := LabelPropagation(w, y, alpha)
	n := len(w)
	deg := make([]float64, n)
	for i := range w {
		for _, v := range w[i] {
			deg[i] += v
		}
	}
	for c := 0; c < 2; c++ {
		a := make([][]float64, n)
		for i := range a {
			a[i] = make([]float64, n+1)
			for j := range w {
				a[i][j] = -alpha * w[i][j] / math.Sqrt(deg[i]*deg[j])
			}
			a[i][i] += 1
			a[i][n] = (1 - alpha) * y[i][c]
		}
		for p := 0; p < n; p++ {
			for r := p + 1; r < n; r++ {
				k := a[r][p] / a[p][p]
				for j := p; j <= n; j++ {
					a[r][j] -= k * a[p][j]
				}
			}
		}
		x := make([]float64, n)
		for i := n - 1; i >= 0; i-- {
			s := a[i][n]
			for j := i + 1; j < n; j++ {
				s -= a[i][j] * x[j]
			}
			x[i] = s / a[i][i]
		}
		for i := range x {
			if math.Abs(x[i]-f[i][c]) > 1e-8 {
				t.Errorf("F[%d][%d] = %v, closed form %v", i, c, f[i][c], x[i])
			}
		}
	}
}

func TestPromptRouting(t *testing.T) {
	pool, gens := scriptedPool(func(name, p string) (string, error) {
		if strings.Contains(p, "best suited") {
			return "Model 2, clearly.", nil
		}
		return name + " answers", nil
	}, "A", "B", "C")
	m, err := New(context.Background(), "prompt-routing", pool, Params{"model_descriptions": []string{"maths", "words", "code"}, "router": "C"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{{Prompt: "Reverse abc"}})
	if err != nil || res[0].Text != "B answers" {
		t.Fatalf("%v %v", res, err)
	}
	if want := routingPrompt("Reverse abc", []string{"maths", "words", "code"}); len(gens[2].log) != 1 || gens[2].log[0] != want {
		t.Errorf("router asked %q", gens[2].log)
	}
	for _, tc := range []struct {
		text string
		want int
	}{{"3", 2}, {"1 or 2", 1}, {"none", -1}, {"12", 1}} {
		if got := parseRoute(tc.text, 3); got != tc.want {
			t.Errorf("parseRoute(%q) = %d, want %d", tc.text, got, tc.want)
		}
	}
}

// failing wraps a skillGen that starts failing when fail is set, after
// the router has trained on its dev answers.
type failing struct {
	*skillGen
	fail bool
}

func (f *failing) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	if f.fail {
		return nil, errors.New("connection reset by peer")
	}
	return f.skillGen.Generate(ctx, reqs)
}

// TestRoutersReportFailures: a routed-to model that fails (or a model
// that fails on the dev set) fails the request with its name; the router
// does not fall back to another model silently.
func TestRoutersReportFailures(t *testing.T) {
	dev := writeDevSet(t)
	for _, method := range []string{"trained-router", "graph-router"} {
		add := &failing{skillGen: &skillGen{name: "adder", skill: "add"}}
		pool := []Member{{Name: "reverser", Gen: &skillGen{name: "reverser", skill: "rev"}}, {Name: "adder", Gen: add}}
		params := Params{"dev": dev, "dev_max_tokens": 8, "encoder": "reverser"}
		m, err := New(context.Background(), method, pool, params)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		add.fail = true
		if _, err := m.Generate(context.Background(), []Request{{Prompt: "1+1"}}); err == nil || !strings.Contains(err.Error(), "adder failed: connection reset by peer") {
			t.Errorf("%s routed to a failing model: %v", method, err)
		}
		if _, err := New(context.Background(), method, pool, params); err == nil || !strings.Contains(err.Error(), "adder failed: connection reset by peer") {
			t.Errorf("%s with a model failing on dev: %v", method, err)
		}
	}
}

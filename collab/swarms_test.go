package collab

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestSwarmsGraph(t *testing.T) {
	pool, gens := scriptedPool(tag, "A", "B", "C", "D")
	// A -> C, B -> C, C -> D: A and B start, C is in the middle, D ends.
	m, err := New(context.Background(), "heterogeneous-swarms", pool, Params{"graph": [][]int{{0, 0, 1, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}, {0, 0, 0, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{{Prompt: "Q?"}})
	if err != nil {
		t.Fatal(err)
	}
	// The role prompts, written out by hand from MoCo's instructions.
	want := [][]string{
		{"Answer the following question.\nQ?"},
		{"Answer the following question.\nQ?"},
		{"Answer the following question. Earlier responses are given to help you; ignore any that are wrong or unhelpful.\n" +
			"Response from node 1: A(q)\n\nResponse from node 2: B(q)\n\nQ?"},
		{"Answer the following question. Earlier responses are given to help you; ignore any that are wrong or unhelpful. Give a final answer.\n" +
			"Response from node 3: C(q)\n\nQ?"},
	}
	for i, g := range gens {
		if !reflect.DeepEqual(g.log, want[i]) {
			t.Errorf("%s asked %q, want %q", g.name, g.log, want[i])
		}
	}
	if res[0].Text != "D(q)" {
		t.Errorf("answer %q", res[0].Text)
	}
	var steps []string
	for _, e := range res[0].Trace {
		steps = append(steps, e.Step+":"+e.From)
	}
	if w := []string{"graph:heterogeneous-swarms", "start:A", "start:B", "middle:C", "end:D"}; !reflect.DeepEqual(steps, w) ||
		res[0].Trace[0].Text != "A -> C, B -> C, C -> D" {
		t.Errorf("trace %v, graph %q", steps, res[0].Trace[0].Text)
	}
	for _, tc := range []struct {
		graph [][]int
		err   string
	}{
		{[][]int{{0, 1, 0}, {0, 0, 1}, {1, 0, 0}}, "has a cycle"},
		{[][]int{{1, 0, 0}, {0, 0, 0}, {0, 0, 0}}, "feeds itself"},
		{[][]int{{0, 1}, {0, 0}}, "2 rows for 3 models"},
	} {
		if _, err := New(context.Background(), "heterogeneous-swarms", pool[:3], Params{"graph": tc.graph}); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: error %v, want %q", tc.graph, err, tc.err)
		}
	}
	if o, err := TopoOrder([][]int{{0, 0, 0}, {1, 0, 0}, {1, 1, 0}}); err != nil || !reflect.DeepEqual(o, []int{2, 1, 0}) {
		t.Errorf("order %v %v", o, err)
	}
}

// swarmsOracle is testdata/swarms_oracle.json, written by MoCo's own
// graph_decode and NumericSwarm (testdata/swarms_oracle.py).
type swarmsOracle struct {
	GDecode []struct {
		W     [][]float64
		Adj   [][]int
		Order []int
	}
	Swarm struct {
		Pos0, Vel0 [][]float64
		Steps      []struct {
			Scores     []float64
			Stop       bool
			Pos        [][]float64
			Best       []float64
			StepLength float64 `json:"step_length"`
		}
	}
}

func TestSwarmsMatchMoCo(t *testing.T) {
	b, err := os.ReadFile("testdata/swarms_oracle.json")
	if err != nil {
		t.Fatal(err)
	}
	var o swarmsOracle
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	for _, c := range o.GDecode {
		adj := gDecode(c.W, 0, nil)
		if !reflect.DeepEqual(adj, c.Adj) {
			t.Errorf("G-Decode of %v: %v, MoCo %v", c.W, adj, c.Adj)
		}
		if order, err := TopoOrder(adj); err != nil || order[len(order)-1] != c.Order[len(c.Order)-1] {
			t.Errorf("end node of %v: %v (%v), MoCo %v", adj, order, err, c.Order)
		}
	}
	no, yes := false, true
	q := SwarmsParams{Population: 3, Inertia: 0.2, Cognitive: 0.3, Social: 0.4, Repel: 0.05, RepelTerm: &yes,
		StepLength: 0.5, StepLengthFactor: 0.95, MinStepLength: 0.1, Patience: 5, RestartPatience: 10, WeightRandomness: &no}
	s := newNumericSwarm(q, 4, rand.New(rand.NewPCG(1, 2)))
	for i := range s.pos {
		s.pos[i], s.vel[i], s.best[i] = o.Swarm.Pos0[i], o.Swarm.Vel0[i], o.Swarm.Pos0[i]
	}
	for k, st := range o.Swarm.Steps {
		if stop := s.update(st.Scores); stop != st.Stop {
			t.Fatalf("update %d: stop %v, MoCo %v", k, stop, st.Stop)
		}
		close := func(a, b []float64) bool {
			for d := range a {
				if math.Abs(a[d]-b[d]) > 1e-9 {
					return false
				}
			}
			return len(a) == len(b)
		}
		for i := range s.pos {
			if !close(s.pos[i], st.Pos[i]) {
				t.Errorf("update %d particle %d: %v, MoCo %v", k, i, s.pos[i], st.Pos[i])
			}
		}
		if !close(s.gBest, st.Best) || math.Abs(s.step-st.StepLength) > 1e-12 {
			t.Errorf("update %d: global best %v step %v, MoCo %v %v", k, s.gBest, s.step, st.Best, st.StepLength)
		}
	}
}

// TestSwarmsSearch: a pool where the chain in pool order ends with the
// model that is always wrong. The search must find a graph whose end
// role goes to a model that answers right (the solver, or the judge with
// the solver among its parents): roles are searched, not only edges.
func TestSwarmsSearch(t *testing.T) {
	dev := writeDevSet(t)
	reply := func(name, p string) (string, error) {
		switch name {
		case "solver":
			return "right", nil
		case "judge":
			if strings.Contains(p, ": right") {
				return "right", nil
			}
		}
		return "wrong", nil
	}
	pool, _ := scriptedPool(reply, "judge", "solver", "wrong")
	chain, err := New(context.Background(), "heterogeneous-swarms", pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := chain.Generate(context.Background(), []Request{{Prompt: "1+1"}}); r[0].Text != "wrong" {
		t.Fatalf("the default chain answered %q", r[0].Text)
	}
	for _, topP := range []float64{0, 0.7} {
		m, err := New(context.Background(), "heterogeneous-swarms", pool, Params{"dev": dev, "seed": 3, "graph_top_p": topP})
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Generate(context.Background(), []Request{{Prompt: "1+1"}})
		if err != nil {
			t.Fatal(err)
		}
		tr := res[0].Trace
		if res[0].Text != "right" || tr[len(tr)-1].From == "wrong" {
			t.Errorf("top-p %v: searched graph %q answered %q", topP, tr[0].Text, res[0].Text)
		}
	}
	for _, c := range []struct {
		p   Params
		err string
	}{
		{Params{"dev": dev, "population": 0}, "must be at least 1"},
		{Params{"dev": dev, "graph_top_p": 1.5}, "graph_top_p must be in [0, 1]"},
		{Params{"dev": dev, "starting_velocity_mode": "fast"}, "random or zero"},
		{Params{"dev": dev, "graph": [][]int{{0, 1, 0}, {0, 0, 0}, {0, 0, 0}}}, "not both"},
	} {
		if _, err := New(context.Background(), "heterogeneous-swarms", pool, c.p); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%v: %v, want %q", c.p, err, c.err)
		}
	}
}

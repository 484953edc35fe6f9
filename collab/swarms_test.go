package collab

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestSwarmsGraph(t *testing.T) {
	pool, gens := scriptedPool(tag, "A", "B", "C")
	// A -> C, B -> C: C answers last, seeing A's and B's answers.
	m, err := New(context.Background(), "heterogeneous-swarms", pool, Params{"graph": [][]int{{0, 0, 1}, {0, 0, 1}, {0, 0, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{{Prompt: "Q?"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{swarmPrompt("Q?", []string{"A(q)", "B(q)"})}; !reflect.DeepEqual(gens[2].log, want) || res[0].Text != "C(q)" {
		t.Errorf("C asked %q, answered %q", gens[2].log, res[0].Text)
	}
	for _, tc := range []struct {
		graph [][]int
		err   string
	}{
		{[][]int{{0, 1, 0}, {0, 0, 1}, {1, 0, 0}}, "has a cycle"},
		{[][]int{{1, 0, 0}, {0, 0, 0}, {0, 0, 0}}, "feeds itself"},
		{[][]int{{0, 1}, {0, 0}}, "2 rows for 3 models"},
	} {
		if _, err := New(context.Background(), "heterogeneous-swarms", pool, Params{"graph": tc.graph}); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: error %v, want %q", tc.graph, err, tc.err)
		}
	}
	if o, err := TopoOrder([][]int{{0, 0, 0}, {1, 0, 0}, {1, 1, 0}}); err != nil || !reflect.DeepEqual(o, []int{2, 1, 0}) {
		t.Errorf("order %v %v", o, err)
	}
}

func TestSwarmsSearch(t *testing.T) {
	dev := writeDevSet(t)
	add, rev := &skillGen{name: "adder", skill: "add"}, &skillGen{name: "reverser", skill: "rev"}
	pool := []Member{{Name: "reverser", Gen: rev}, {Name: "adder", Gen: add}}
	m, err := New(context.Background(), "heterogeneous-swarms", pool, Params{"dev": dev, "particles": 4, "max_iterations": 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Generate(context.Background(), []Request{{Prompt: "1+1"}}); err != nil {
		t.Fatal(err)
	}
	adj, order := decodeParticle([]float64{0, 0.9, 0.2, 0, 0.1, 0.8}, 2)
	if !reflect.DeepEqual(adj, [][]int{{0, 0}, {0, 0}}) || !reflect.DeepEqual(order, []int{1, 0}) {
		t.Errorf("decoded %v %v", adj, order)
	}
	adj, _ = decodeParticle([]float64{0, 0.9, 0.2, 0, 0.8, 0.1}, 2)
	if !reflect.DeepEqual(adj, [][]int{{0, 1}, {0, 0}}) {
		t.Errorf("decoded %v", adj)
	}
}

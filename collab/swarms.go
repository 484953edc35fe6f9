package collab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/mocolab/moco/collab/extract"
)

// SwarmsParams configures heterogeneous swarms (#14, MoCo's
// text_heterogeneous_swarms): the models form a directed acyclic graph;
// a model without parents answers the question, a model with parents
// answers seeing its parents' answers, in topological order, and the last
// model of that order gives the final answer.
//
// The graph is either given (Graph[i][j] = 1: model j sees model i's
// answer; a cycle is an error) or searched on the dev set with particle
// swarm optimisation: a particle is an n x n matrix of edge weights and n
// node priorities in [0, 1]; it decodes to the DAG whose order sorts the
// priorities (highest first) and whose edges are the forward pairs of
// weight above 0.5; its fitness is the DAG's dev accuracy. Without either
// the graph is the chain 0 -> 1 -> ... MoCo's defaults: 3 iterations.
type SwarmsParams struct {
	Graph [][]int `json:"graph"`
	DevConfig
	Particles     int     `json:"particles"`      // default 8
	MaxIterations int     `json:"max_iterations"` // default 3 (MoCo)
	Inertia       float64 `json:"inertia"`        // default 0.5
	Cognitive     float64 `json:"cognitive"`      // default 1
	Social        float64 `json:"social"`         // default 1
	Seed          uint64  `json:"seed"`
}

func init() {
	Register(Spec{Name: "heterogeneous-swarms", Level: LevelText, MinModels: 2,
		Summary: "models answer along a DAG (given, or searched with PSO on dev)",
		New:     newSwarms})
}

// TopoOrder returns an order of the nodes in which every edge goes
// forward (lowest index first among the ready nodes), or an error naming
// a node on a cycle.
func TopoOrder(adj [][]int) ([]int, error) {
	n := len(adj)
	in := make([]int, n)
	for i := range adj {
		if len(adj[i]) != n {
			return nil, inputErrorf("graph row %d has %d entries for %d models", i, len(adj[i]), n)
		}
		for j, v := range adj[i] {
			if v != 0 && v != 1 {
				return nil, inputErrorf("graph[%d][%d] is %d; entries are 0 or 1", i, j, v)
			}
			if v == 1 && i == j {
				return nil, inputErrorf("the graph has a cycle: model %d feeds itself", i)
			}
			in[j] += v
		}
	}
	var order []int
	done := make([]bool, n)
	for len(order) < n {
		next := -1
		for i := range n {
			if !done[i] && in[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			for i := range n {
				if !done[i] {
					return nil, inputErrorf("the graph has a cycle through model %d: heterogeneous swarms needs a DAG", i)
				}
			}
		}
		done[next] = true
		order = append(order, next)
		for j, v := range adj[next] {
			in[j] -= v
		}
	}
	return order, nil
}

func swarmPrompt(q string, parents []string) string {
	return "You are one of several AI assistants answering a question in turn. The assistants before you answered:\n\n" +
		bullets(parents) + "\nQuestion: " + q + "\n\nUsing their answers where they help, give your own answer to the question."
}

// runDAG answers one request along the graph.
func runDAG(x *exchange, adj [][]int, order []int) (string, error) {
	q := question(x.req)
	out := make([]string, len(adj))
	for step, j := range order {
		var parents []string
		for _, i := range order[:step] {
			if adj[i][j] == 1 {
				parents = append(parents, out[i])
			}
		}
		c := call{Member: j, Orig: true}
		if len(parents) > 0 {
			c = call{Member: j, Prompt: swarmPrompt(q, parents)}
		}
		t, err := x.ask(step+1, "node", []call{c})
		if err != nil {
			return "", err
		}
		out[j] = t[0]
	}
	return out[order[len(order)-1]], nil
}

// decodeParticle turns edge weights and priorities into a DAG.
func decodeParticle(pos []float64, n int) ([][]int, []int) {
	prio := pos[n*n:]
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return prio[order[a]] > prio[order[b]] })
	rank := make([]int, n)
	for r, i := range order {
		rank[i] = r
	}
	adj := make([][]int, n)
	for i := range adj {
		adj[i] = make([]int, n)
		for j := range adj[i] {
			if rank[i] < rank[j] && pos[i*n+j] > 0.5 {
				adj[i][j] = 1
			}
		}
	}
	return adj, order
}

func newSwarms(ctx context.Context, pool []Member, p Params) (Method, error) {
	q := SwarmsParams{Particles: 8, MaxIterations: 3, Inertia: 0.5, Cognitive: 1, Social: 1}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("heterogeneous-swarms: %w", err)
	}
	n := len(pool)
	var adj [][]int
	var order []int
	switch {
	case q.Graph != nil && q.Dev != "":
		return nil, inputErrorf("heterogeneous-swarms: give a graph or a dev set to search one on, not both")
	case q.Graph != nil:
		if len(q.Graph) != n {
			return nil, inputErrorf("heterogeneous-swarms: the graph has %d rows for %d models", len(q.Graph), n)
		}
		var err error
		if order, err = TopoOrder(q.Graph); err != nil {
			return nil, fmt.Errorf("heterogeneous-swarms: %w", err)
		}
		adj = q.Graph
	case q.Dev != "":
		if q.Particles < 1 || q.MaxIterations < 1 {
			return nil, inputErrorf("heterogeneous-swarms: particles and max_iterations must be at least 1")
		}
		items, err := q.DevConfig.load("heterogeneous-swarms")
		if err != nil {
			return nil, err
		}
		if adj, order, err = searchSwarm(ctx, pool, items, q); err != nil {
			return nil, err
		}
	default:
		adj = make([][]int, n)
		for i := range adj {
			adj[i] = make([]int, n)
			if i+1 < n {
				adj[i][i+1] = 1
			}
			order = append(order, i)
		}
	}
	m := &textMethod{name: "heterogeneous-swarms", level: LevelText, pool: pool}
	m.one = func(x *exchange) (string, error) { return runDAG(x, adj, order) }
	return m, nil
}

// searchSwarm runs PSO over DAGs, scoring each on the dev items.
func searchSwarm(ctx context.Context, pool []Member, items []DevItem, q SwarmsParams) ([][]int, []int, error) {
	n := len(pool)
	dim := n*n + n
	rng := rand.New(rand.NewPCG(q.Seed, 0x5357))
	cache := map[string]float64{}
	fitness := func(pos []float64) (float64, error) {
		adj, order := decodeParticle(pos, n)
		key := fmt.Sprint(adj, order)
		if f, ok := cache[key]; ok {
			return f, nil
		}
		right := 0
		for _, it := range items {
			x := newExchange(ctx, "heterogeneous-swarms", pool, q.DevConfig.request(it))
			out, err := runDAG(x, adj, order)
			if err != nil {
				return 0, fmt.Errorf("searching the graph on dev: %w", err)
			}
			if extract.Correct(it.Task, out, it.Ref) {
				right++
			}
		}
		f := float64(right) / float64(len(items))
		cache[key] = f
		return f, nil
	}
	type particle struct{ pos, vel, best []float64 }
	var ps []particle
	var gBest []float64
	gFit := -1.0
	for range q.Particles {
		pt := particle{pos: make([]float64, dim), vel: make([]float64, dim)}
		for d := range pt.pos {
			pt.pos[d] = rng.Float64()
			pt.vel[d] = (rng.Float64() - 0.5) * 0.2
		}
		pt.best = append([]float64(nil), pt.pos...)
		ps = append(ps, pt)
	}
	pFit := make([]float64, len(ps))
	for i := range ps {
		f, err := fitness(ps[i].pos)
		if err != nil {
			return nil, nil, err
		}
		pFit[i] = f
		if f > gFit {
			gFit, gBest = f, append([]float64(nil), ps[i].pos...)
		}
	}
	for range q.MaxIterations {
		for i := range ps {
			pt := &ps[i]
			for d := range pt.pos {
				pt.vel[d] = q.Inertia*pt.vel[d] + q.Cognitive*rng.Float64()*(pt.best[d]-pt.pos[d]) + q.Social*rng.Float64()*(gBest[d]-pt.pos[d])
				pt.pos[d] = min(1, max(0, pt.pos[d]+pt.vel[d]))
			}
			f, err := fitness(pt.pos)
			if err != nil {
				return nil, nil, err
			}
			if f > pFit[i] {
				pFit[i], pt.best = f, append([]float64(nil), pt.pos...)
			}
			if f > gFit {
				gFit, gBest = f, append([]float64(nil), pt.pos...)
			}
		}
	}
	adj, order := decodeParticle(gBest, n)
	return adj, order, nil
}

package collab

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/mocolab/moco/collab/extract"
)

// SwarmsParams configures heterogeneous swarms (#14; the role-step of
// Feng et al. 2025, as MoCo's text_heterogeneous_swarms runs it): the
// models form a directed acyclic graph and answer in topological order.
// A model's role is its place in the graph: a start node (no parents)
// answers the question alone; a middle node answers seeing its parents'
// answers; the end node, last in the order, sees its parents' answers and
// gives the final answer. Each role has its own instruction, as in MoCo.
//
// The graph is either given (Graph[i][j] = 1: model j sees model i's
// answer; a cycle is an error) or searched on the dev set, edges and roles
// together, with particle swarm optimisation as MoCo does it: a particle
// is a continuous n x n adjacency matrix (entries drawn from [-1, 1], the
// diagonal ignored), decoded by the paper's G-Decode into an in-tree: the
// end node is drawn with probabilities softmax(1 / out-degree), then each
// remaining node in turn, drawn by softmax(out-degree), joins by an edge
// to one node already placed, drawn by softmax(its row's weights to them);
// every draw keeps the most likely options up to GraphTopP of the mass
// (MoCo's top-p selection; 0 takes the most likely). A particle's fitness
// is its DAG's dev accuracy. Without a graph or a dev set the graph is the
// chain 0 -> 1 -> ... -> n-1.
//
// The swarm (MoCo's NumericSwarm) moves each particle by its velocity
// times a step length that shrinks by StepLengthFactor each iteration down
// to MinStepLength; the velocity mixes inertia, the particle's own best,
// the global best and a repulsion from the global worst, their weights
// drawn at random and normalised to sum to 1. A particle that has not
// improved for RestartPatience iterations restarts from its best with a
// new random velocity; the search stops early when the global best has
// not improved for Patience iterations. The defaults are MoCo's, but
// max_iterations 3 is its example config's (its code's fallback is 5).
//
// Deviations: MoCo draws the searched graph anew for each evaluation and
// once more for the test set (with graph_top_p 0.7); here the draws come
// from Seed, so a run is reproducible. The paper's weight-step (training
// the models' weights on a contribution score) is not part of MoCo's text
// method and not done here.
type SwarmsParams struct {
	Graph [][]int `json:"graph"`
	DevConfig
	Population       int     `json:"population"`             // default 5
	MaxIterations    int     `json:"max_iterations"`         // default 3 (MoCo's example config)
	Inertia          float64 `json:"inertia"`                // default 0.2
	Cognitive        float64 `json:"cognitive_coeff"`        // default 0.3
	Social           float64 `json:"social_coeff"`           // default 0.4
	Repel            float64 `json:"repel_coeff"`            // default 0.05
	RepelTerm        *bool   `json:"repel_term"`             // default true
	StepLength       float64 `json:"step_length"`            // default 0.5
	StepLengthFactor float64 `json:"step_length_factor"`     // default 0.95
	MinStepLength    float64 `json:"minimum_step_length"`    // default 0.1
	Patience         int     `json:"patience"`               // default 5
	RestartPatience  int     `json:"restart_patience"`       // default 3
	StartingVelocity string  `json:"starting_velocity_mode"` // "random" (default) or "zero"
	WeightRandomness *bool   `json:"weight_randomness"`      // default true
	GraphTopP        float64 `json:"graph_top_p"`            // default 0.7; 0: the most likely graph
	Seed             uint64  `json:"seed"`
}

func init() {
	Register(Spec{Name: "heterogeneous-swarms", Level: LevelText, MinModels: 2, Dev: true,
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

// The role instructions say what MoCo's FIRST_, NON_LAST_ and
// LAST_INSTRUCTION say, in our words.
const (
	swarmStart  = "Answer the following question."
	swarmMiddle = "Answer the following question. Earlier responses are given to help you; ignore any that are wrong or unhelpful."
	swarmEnd    = swarmMiddle + " Give a final answer."
)

// swarmPrompt is the prompt of a node with the given role ("start",
// "middle" or "end"); parents are the parent nodes' 0-based indexes and
// answers, in index order.
func swarmPrompt(role, q string, parents []int, answers []string) string {
	var b strings.Builder
	switch role {
	case "start":
		b.WriteString(swarmStart)
	case "middle":
		b.WriteString(swarmMiddle)
	default:
		b.WriteString(swarmEnd)
	}
	b.WriteString("\n")
	for k, i := range parents {
		fmt.Fprintf(&b, "Response from node %d: %s\n\n", i+1, answers[k])
	}
	b.WriteString(q)
	return b.String()
}

// runDAG answers one request along the graph: each node in order, with
// its role's prompt; the last node's answer is the result.
func runDAG(x *exchange, adj [][]int, order []int) (string, error) {
	q := question(x.req)
	out := make([]string, len(adj))
	for step, j := range order {
		var parents []int
		var answers []string
		for i := range adj {
			if adj[i][j] == 1 {
				parents = append(parents, i)
				answers = append(answers, out[i])
			}
		}
		role := "middle"
		switch {
		case len(parents) == 0:
			role = "start"
		case step == len(order)-1:
			role = "end"
		}
		c := call{Member: j, Prompt: swarmPrompt(role, q, parents, answers)}
		t, err := x.ask(step+1, role, []call{c})
		if err != nil {
			return "", err
		}
		out[j] = t[0]
	}
	return out[order[len(order)-1]], nil
}

// graphText writes a DAG's edges as "A -> C, B -> C".
func graphText(pool []Member, adj [][]int) string {
	var edges []string
	for i := range adj {
		for j, v := range adj[i] {
			if v == 1 {
				edges = append(edges, pool[i].Name+" -> "+pool[j].Name)
			}
		}
	}
	if len(edges) == 0 {
		return "no edges"
	}
	return strings.Join(edges, ", ")
}

func newSwarms(ctx context.Context, pool []Member, p Params) (Method, error) {
	yes := true
	q := SwarmsParams{Population: 5, MaxIterations: 3, Inertia: 0.2, Cognitive: 0.3, Social: 0.4, Repel: 0.05,
		StepLength: 0.5, StepLengthFactor: 0.95, MinStepLength: 0.1, Patience: 5, RestartPatience: 3,
		StartingVelocity: "random", GraphTopP: 0.7}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("heterogeneous-swarms: %w", err)
	}
	if q.RepelTerm == nil {
		q.RepelTerm = &yes
	}
	if q.WeightRandomness == nil {
		q.WeightRandomness = &yes
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
		switch {
		case q.Population < 1 || q.MaxIterations < 1 || q.Patience < 1 || q.RestartPatience < 1:
			return nil, inputErrorf("heterogeneous-swarms: population, max_iterations, patience and restart_patience must be at least 1")
		case q.StartingVelocity != "random" && q.StartingVelocity != "zero":
			return nil, inputErrorf("heterogeneous-swarms: starting_velocity_mode must be random or zero, got %q", q.StartingVelocity)
		case !(q.GraphTopP >= 0 && q.GraphTopP <= 1):
			return nil, inputErrorf("heterogeneous-swarms: graph_top_p must be in [0, 1], got %v", q.GraphTopP)
		case !(q.StepLength > 0) || !(q.StepLengthFactor > 0) || q.MinStepLength < 0:
			return nil, inputErrorf("heterogeneous-swarms: step_length and step_length_factor must be positive, minimum_step_length not negative")
		case q.Inertia < 0 || q.Cognitive < 0 || q.Social < 0 || q.Repel < 0 || q.Inertia+q.Cognitive+q.Social+q.Repel <= 0:
			return nil, inputErrorf("heterogeneous-swarms: inertia and the coefficients must be non-negative and not all 0")
		}
		items, err := q.DevConfig.load("heterogeneous-swarms")
		if err != nil {
			return nil, err
		}
		if adj, err = searchSwarm(ctx, pool, items, q); err != nil {
			return nil, err
		}
		if order, err = TopoOrder(adj); err != nil {
			return nil, err // G-Decode makes trees: cannot happen
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
	graph := graphText(pool, adj)
	m := &textMethod{name: "heterogeneous-swarms", level: LevelText, pool: pool}
	m.one = func(x *exchange) (string, error) {
		x.note(0, "graph", "heterogeneous-swarms", graph, "")
		return runDAG(x, adj, order)
	}
	return m, nil
}

// mocoSoftmax is MoCo's softmax for G-Decode: exp of each entry,
// normalised, where an entry exactly 0 means "not a candidate" and gets
// probability 0.
func mocoSoftmax(v []float64) []float64 {
	out := make([]float64, len(v))
	sum := 0.0
	for i, x := range v {
		if x != 0 {
			out[i] = math.Exp(x)
			sum += out[i]
		}
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// topPSelect is MoCo's top_p_sampling_selection: the options by
// probability, highest first (ties: higher index first, as Python sorts
// the (probability, index) pairs), are kept until their mass exceeds
// topP; one of them is drawn with probabilities mocoSoftmax of theirs.
// topP 0 keeps only the most likely. A degenerate input (all zero or not
// finite) takes the first most likely option without drawing.
func topPSelect(probs []float64, topP float64, rng *rand.Rand) int {
	idx := make([]int, len(probs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		pa, pb := probs[idx[a]], probs[idx[b]]
		if pa != pb {
			return pa > pb
		}
		return idx[a] > idx[b]
	})
	cum := 0.0
	var sel []int
	for _, i := range idx {
		cum += probs[i]
		sel = append(sel, i)
		if cum > topP {
			break
		}
	}
	if len(sel) == 1 {
		return sel[0]
	}
	ps := make([]float64, len(sel))
	for k, i := range sel {
		ps[k] = probs[i]
	}
	ps = mocoSoftmax(ps)
	u := rng.Float64()
	for k, p := range ps {
		if math.IsNaN(p) {
			return sel[0]
		}
		if u -= p; u < 0 {
			return sel[k]
		}
	}
	return sel[len(sel)-1]
}

// gDecode is G-Decode (MoCo's graph_decode): a continuous adjacency
// matrix (its diagonal ignored) to a discrete in-tree, as described at
// SwarmsParams. w is not changed.
func gDecode(w [][]float64, topP float64, rng *rand.Rand) [][]int {
	n := len(w)
	a := make([][]float64, n)
	for i := range a {
		a[i] = append([]float64(nil), w[i]...)
		a[i][i] = 0
	}
	adj := make([][]int, n)
	for i := range adj {
		adj[i] = make([]int, n)
	}
	rowSum := func(i int) float64 {
		s := 0.0
		for _, v := range a[i] {
			s += v
		}
		return s
	}
	placed := make([]bool, n)
	inv := make([]float64, n)
	for i := range inv {
		inv[i] = 1 / rowSum(i)
	}
	end := topPSelect(mocoSoftmax(inv), topP, rng)
	placed[end] = true
	for range n - 1 {
		deg := make([]float64, n)
		for i := range deg {
			if !placed[i] {
				deg[i] = rowSum(i)
			}
		}
		node := topPSelect(mocoSoftmax(deg), topP, rng)
		if placed[node] { // only when every weight is degenerate
			for i := range placed {
				if !placed[i] {
					node = i
					break
				}
			}
		}
		to := make([]float64, n)
		for i := range to {
			if placed[i] {
				to[i] = a[node][i]
			}
		}
		parent := topPSelect(mocoSoftmax(to), topP, rng)
		if !placed[parent] {
			parent = end
		}
		adj[node][parent] = 1
		placed[node] = true
	}
	return adj
}

// numericSwarm is MoCo's NumericSwarm (utils/numeric_swarm.py): PSO that
// maximises a score, with a repulsion from the global worst, shrinking
// steps, per-particle restarts and early stopping.
type numericSwarm struct {
	q                SwarmsParams
	rng              *rand.Rand
	pos, vel, best   [][]float64
	bestScore        []float64 // -Inf until scored
	history          [][]float64
	gBest, gWorst    []float64
	gScore, gWorstSc float64
	scored           bool
	gHistory         []float64
	step             float64
}

func newNumericSwarm(q SwarmsParams, dim int, rng *rand.Rand) *numericSwarm {
	s := &numericSwarm{q: q, rng: rng, step: q.StepLength}
	uni := func() []float64 {
		v := make([]float64, dim)
		for d := range v {
			v[d] = rng.Float64()*2 - 1
		}
		return v
	}
	for range q.Population {
		s.pos = append(s.pos, uni())
	}
	for i := range q.Population {
		s.best = append(s.best, s.pos[i])
		s.bestScore = append(s.bestScore, math.Inf(-1))
		s.history = append(s.history, nil)
		if q.StartingVelocity == "zero" {
			s.vel = append(s.vel, make([]float64, dim))
		} else {
			s.vel = append(s.vel, uni())
		}
	}
	s.gBest = s.pos[rng.IntN(len(s.pos))]
	s.gWorst = s.pos[rng.IntN(len(s.pos))]
	return s
}

// update takes the particles' scores and moves them; true means stop
// (no improvement of the global best for Patience iterations).
func (s *numericSwarm) update(scores []float64) bool {
	hi, lo := 0, 0
	for i, f := range scores {
		s.history[i] = append(s.history[i], f)
		if f > s.bestScore[i] {
			s.bestScore[i], s.best[i] = f, s.pos[i]
		}
		if f > scores[hi] {
			hi = i
		}
		if f < scores[lo] {
			lo = i
		}
	}
	if !s.scored || scores[hi] > s.gScore {
		s.gScore, s.gBest = scores[hi], s.pos[hi]
	}
	if !s.scored || scores[lo] < s.gWorstSc {
		s.gWorstSc, s.gWorst = scores[lo], s.pos[lo]
	}
	s.scored = true
	s.gHistory = append(s.gHistory, s.gScore)
	if stalled(s.gHistory, s.q.Patience) {
		return true
	}
	for i := range s.pos {
		if stalled(s.history[i], s.q.RestartPatience) {
			s.pos[i] = s.best[i]
			v := make([]float64, len(s.pos[i]))
			for d := range v {
				v[d] = s.rng.Float64()*2 - 1
			}
			s.vel[i] = v
			continue
		}
		rw, rp, rs, rb := 1.0, 1.0, 1.0, 1.0
		if *s.q.WeightRandomness {
			rw, rp, rs, rb = s.rng.Float64(), s.rng.Float64(), s.rng.Float64(), s.rng.Float64()
		}
		ww, wp, wg, wr := s.q.Inertia*rw, s.q.Cognitive*rp, s.q.Social*rs, 0.0
		if *s.q.RepelTerm {
			wr = s.q.Repel * rb
		}
		sum := ww + wp + wg + wr
		ww, wp, wg, wr = ww/sum, wp/sum, wg/sum, wr/sum
		p, v := s.pos[i], s.vel[i]
		nv := make([]float64, len(p))
		np := make([]float64, len(p))
		for d := range p {
			nv[d] = v[d]*ww + (s.best[i][d]-p[d])*wp + (s.gBest[d]-p[d])*wg + (p[d]-s.gWorst[d])*wr
			np[d] = p[d] + nv[d]*s.step
		}
		s.vel[i], s.pos[i] = nv, np
	}
	s.step = max(s.step*s.q.StepLengthFactor, s.q.MinStepLength)
	return false
}

// stalled reports whether the last of h is no better than the best of
// the patience-1 entries before it (MoCo's patience rule; it needs more
// than patience entries).
func stalled(h []float64, patience int) bool {
	if len(h) <= patience {
		return false
	}
	recent := h[len(h)-patience:]
	best := math.Inf(-1)
	for _, v := range recent[:len(recent)-1] {
		best = max(best, v)
	}
	return h[len(h)-1] <= best
}

// matrix reads a particle as an n x n matrix.
func matrix(pos []float64, n int) [][]float64 {
	w := make([][]float64, n)
	for i := range w {
		w[i] = pos[i*n : (i+1)*n]
	}
	return w
}

// searchSwarm runs MoCo's role-step on the dev items and returns the
// graph decoded from the best particle.
func searchSwarm(ctx context.Context, pool []Member, items []DevItem, q SwarmsParams) ([][]int, error) {
	n := len(pool)
	rng := rand.New(rand.NewPCG(q.Seed, 0x5357))
	graphRNG := rand.New(rand.NewPCG(q.Seed, 0x6772))
	cache := map[string]float64{}
	fitness := func(pos []float64) (float64, error) {
		adj := gDecode(matrix(pos, n), q.GraphTopP, graphRNG)
		order, err := TopoOrder(adj)
		if err != nil {
			return 0, err
		}
		key := fmt.Sprint(adj)
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
	s := newNumericSwarm(q, n*n, rng)
	for range q.MaxIterations {
		scores := make([]float64, len(s.pos))
		for i, p := range s.pos {
			f, err := fitness(p)
			if err != nil {
				return nil, err
			}
			scores[i] = f
		}
		if s.update(scores) {
			break
		}
	}
	return gDecode(matrix(s.gBest, n), q.GraphTopP, graphRNG), nil
}

package collab

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/mocolab/moco/engine"
)

// The API-level routers: one pool model answers each query, chosen by an
// LLM reading model descriptions (prompt-routing, MoCo #1), by a small
// classifier trained on which model solves each dev item (trained-router,
// #4), or by label propagation over a graph of dev queries
// (graph-router, #5).

// PromptRoutingParams configures prompt routing (#1).
type PromptRoutingParams struct {
	// Descriptions, one per model in pool order (required).
	Descriptions []string `json:"model_descriptions"`
	// Router is the model that reads the descriptions and picks (name or
	// index); MoCo uses the best single model on dev: give DevScores.
	Router    any       `json:"router"`
	DevScores []float64 `json:"dev_scores"`
}

// EncoderConfig names the model whose mean-pooled final hidden state
// embeds queries: a pool member that exposes hidden states (name or
// index; default the first that does), or a model folder of its own.
type EncoderConfig struct {
	Encoder    any    `json:"encoder"`
	EncoderDir string `json:"encoder_dir"`
}

// TrainedRouterParams configures the trained router (#4). MoCo fine-tunes
// an LLM (LoRA SFT) to name the best model; here, as the issue asks, a
// small MLP on an encoder's mean-pooled hidden state is trained in Go to
// predict which pool models solve a query: its target for a dev item is
// uniform over the models that answered it correctly (MoCo breaks ties
// between correct models with a reward model, which we do not have);
// items no model solved are left out. A query goes to the most likely
// model.
type TrainedRouterParams struct {
	DevConfig
	EncoderConfig
	Hidden int     `json:"hidden"` // hidden units (default 32; -1: a linear model)
	Epochs int     `json:"epochs"` // default 300
	LR     float64 `json:"lr"`     // default 0.01
	// L2 is the weight decay; 0 (default) chooses it by 2-fold
	// cross-validation on the dev items among 0.001, 0.01, 0.1 and 1.
	L2   float64 `json:"l2"`
	Seed uint64  `json:"seed"`
}

// chooseL2 picks the weight decay whose classifiers, trained on one half
// of the examples and tested on the other (both ways), put the most
// probability mass on the target classes; the smaller on ties.
func chooseL2(xs [][]float32, ys [][]float64, c MLPConfig) float64 {
	best, bestScore := 0.001, -1.0
	if len(xs) < 4 {
		return best
	}
	for _, l2 := range []float64{0.001, 0.01, 0.1, 1} {
		score := 0.0
		for fold := range 2 {
			var tx [][]float32
			var ty [][]float64
			for i := range xs {
				if i%2 != fold {
					tx, ty = append(tx, xs[i]), append(ty, ys[i])
				}
			}
			cc := c
			cc.L2 = l2
			m, _, err := TrainClassifier(tx, ty, cc)
			if err != nil {
				return best
			}
			for i := range xs {
				if i%2 == fold {
					p := softmax64(m.Output(xs[i]))
					score += ys[i][argmax64(p)]
				}
			}
		}
		if score > bestScore+1e-12 {
			best, bestScore = l2, score
		}
	}
	return best
}

// GraphRouterParams configures the graph router (#5). MoCo trains a GNN
// (GraphRouter) on a task-query-model graph; here the graph is the k
// nearest-neighbour graph of the dev queries (cosine similarity of their
// standardised encoder embeddings) and the model labels (which models
// solved each dev query) are spread over it by label propagation (Zhou et
// al., 2004: F = (1-Alpha) (I - Alpha S)^-1 Y with S the symmetrically
// normalised affinity matrix, found by iteration). A new query's score for
// each model is the similarity-weighted mean of its K nearest dev queries'
// propagated labels; ties go to the model best on the whole dev set.
type GraphRouterParams struct {
	DevConfig
	EncoderConfig
	K     int     `json:"k"`     // neighbours (default 10)
	Alpha float64 `json:"alpha"` // propagation weight (default 0.9)
}

func init() {
	Register(Spec{Name: "prompt-routing", Level: LevelAPI, MinModels: 2, DevScores: true,
		Summary: "an LLM picks the model for each query from user-given descriptions",
		New:     newPromptRouting})
	Register(Spec{Name: "trained-router", Level: LevelAPI, MinModels: 2, Dev: true,
		Summary: "an MLP on an encoder's hidden state, trained on dev, picks the model",
		New: func(ctx context.Context, pool []Member, p Params) (Method, error) {
			return NewTrainedRouter(ctx, pool, p)
		}})
	Register(Spec{Name: "graph-router", Level: LevelAPI, MinModels: 2, Dev: true,
		Summary: "label propagation over a graph of dev queries picks the model",
		New: func(ctx context.Context, pool []Member, p Params) (Method, error) {
			return NewGraphRouter(ctx, pool, p)
		}})
}

// Router is a method that sends each query to one pool model.
type Router struct {
	name string
	pool []Member
	// Route picks the model for a request and says why.
	route func(ctx context.Context, x *exchange) (int, string, error)
	// DevAccuracy is each model's accuracy on the dev set (trained routers).
	DevAccuracy []float64
}

func (r *Router) Name() string { return r.name }
func (r *Router) Level() Level { return LevelAPI }

// Route returns the index of the model a request goes to.
func (r *Router) Route(ctx context.Context, req Request) (int, error) {
	i, _, err := r.route(ctx, newExchange(ctx, r.name, r.pool, req))
	return i, err
}

// Generate routes each request and returns the chosen model's answer.
func (r *Router) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	out := make([]Response, len(reqs))
	for i, req := range reqs {
		x := newExchange(ctx, r.name, r.pool, req)
		m, why, err := r.route(ctx, x)
		if err != nil {
			return nil, err
		}
		x.note(1, "route", r.name, r.pool[m].Name, why)
		txt, err := x.ask(2, "answer", []call{{Member: m, Orig: true}})
		if err != nil {
			return nil, err
		}
		out[i] = x.finish(txt[0])
	}
	return out, nil
}

func routingPrompt(q string, desc []string) string {
	var b strings.Builder
	b.WriteString("You are an AI assistant that sends each user question to the AI model best suited to answer it, judging by the models' descriptions.\n\n")
	b.WriteString("User question: " + q + "\n\n")
	b.WriteString("Model descriptions:\n")
	for i, d := range desc {
		fmt.Fprintf(&b, "- %d: %s\n", i+1, d)
	}
	b.WriteString("\nWhich model is best suited to answer the user's question? Reply with the model's number only.")
	return b.String()
}

// parseRoute reads the model number from a router's reply as MoCo does:
// the highest number from n down to 1 that occurs in the text; -1 if none.
func parseRoute(text string, n int) int {
	for i := n; i >= 1; i-- {
		if strings.Contains(text, strconv.Itoa(i)) {
			return i - 1
		}
	}
	return -1
}

func newPromptRouting(_ context.Context, pool []Member, p Params) (Method, error) {
	var q PromptRoutingParams
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("prompt-routing: %w", err)
	}
	if len(q.Descriptions) != len(pool) {
		return nil, inputErrorf("prompt-routing needs one model description per model (model_descriptions): %d for %d models", len(q.Descriptions), len(pool))
	}
	router, err := pickModel(pool, q.Router, q.DevScores, "prompt-routing router")
	if err != nil {
		return nil, err
	}
	r := &Router{name: "prompt-routing", pool: pool}
	r.route = func(ctx context.Context, x *exchange) (int, string, error) {
		out, err := x.ask(1, "route", []call{{Member: router, Prompt: routingPrompt(question(x.req), q.Descriptions)}})
		if err != nil {
			return 0, "", err
		}
		if m := parseRoute(out[0], len(pool)); m >= 0 {
			return m, fmt.Sprintf("the router chose model %d", m+1), nil
		}
		return router, "no model number in the router's reply: the router answers itself", nil
	}
	return r, nil
}

// encoder resolves an EncoderConfig over the pool.
func (e EncoderConfig) resolve(method string, pool []Member, opts engine.Options) (Embedder, string, error) {
	if e.EncoderDir != "" {
		if e.Encoder != nil {
			return nil, "", inputErrorf("%s: give encoder or encoder_dir, not both", method)
		}
		l, err := LoadLocal(e.EncoderDir, opts)
		if err != nil {
			return nil, "", fmt.Errorf("%s: encoder: %w", method, err)
		}
		return l, l.ModelName, nil
	}
	i, err := memberIndex(pool, e.Encoder, method+" encoder")
	if err != nil {
		return nil, "", err
	}
	if i >= 0 {
		if em, ok := pool[i].Gen.(Embedder); ok {
			return em, pool[i].Name, nil
		}
		return nil, "", inputErrorf("%s: encoder %s does not expose hidden states (use a local model)", method, pool[i].Name)
	}
	for _, m := range pool {
		if em, ok := m.Gen.(Embedder); ok {
			return em, m.Name, nil
		}
	}
	return nil, "", inputErrorf("%s needs an encoder with hidden states: no pool model is local; give encoder_dir", method)
}

// devTraining is what the trained routers share: the dev items, the
// pool's results on them and their embeddings.
type devTraining struct {
	items   []DevItem
	res     *DevResults
	emb     [][]float32
	encoder Embedder
	encName string
	acc     []float64
}

func prepareDev(ctx context.Context, method string, pool []Member, d DevConfig, e EncoderConfig) (*devTraining, error) {
	items, err := d.load(method)
	if err != nil {
		return nil, err
	}
	enc, name, err := e.resolve(method, pool, engine.Options{})
	if err != nil {
		return nil, err
	}
	res, err := runDev(ctx, method, pool, items, d)
	if err != nil {
		return nil, err
	}
	prompts := make([]string, len(items))
	for i, it := range items {
		prompts[i] = it.Prompt
	}
	emb, err := enc.Embed(ctx, prompts)
	if err != nil {
		return nil, fmt.Errorf("%s: embedding the dev set: %w", method, err)
	}
	t := &devTraining{items: items, res: res, emb: emb, encoder: enc, encName: name}
	for m := range pool {
		t.acc = append(t.acc, res.Accuracy(m))
	}
	return t, nil
}

func (t *devTraining) embed(ctx context.Context, method string, req Request) ([]float32, error) {
	e, err := t.encoder.Embed(ctx, []string{req.Prompt + renderedQuestion(req)})
	if err != nil {
		return nil, fmt.Errorf("%s: embedding the query with %s: %w", method, t.encName, err)
	}
	return e[0], nil
}

// renderedQuestion is the text of a chat request's messages (empty for a
// plain prompt), so that chat queries embed by their content.
func renderedQuestion(r Request) string {
	var parts []string
	for _, m := range r.Messages {
		parts = append(parts, m.Content)
	}
	return strings.Join(parts, "\n\n")
}

// NewTrainedRouter answers the dev set with every pool model, embeds the
// dev prompts and trains the router's MLP.
func NewTrainedRouter(ctx context.Context, pool []Member, p Params) (*Router, error) {
	var q TrainedRouterParams
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("trained-router: %w", err)
	}
	t, err := prepareDev(ctx, "trained-router", pool, q.DevConfig, q.EncoderConfig)
	if err != nil {
		return nil, err
	}
	var xs [][]float32
	var ys [][]float64
	for i := range t.items {
		y := make([]float64, len(pool))
		n := 0
		for m := range pool {
			if t.res.Correct[m][i] {
				y[m] = 1
				n++
			}
		}
		if n == 0 {
			continue
		}
		for m := range y {
			y[m] /= float64(n)
		}
		xs, ys = append(xs, t.emb[i]), append(ys, y)
	}
	if len(xs) == 0 {
		return nil, fmt.Errorf("trained-router: no pool model answered any of the %d dev items correctly, so there is nothing to learn", len(t.items))
	}
	cfg := MLPConfig{Hidden: q.Hidden, Linear: q.Hidden < 0, Epochs: q.Epochs, LR: q.LR, L2: q.L2, Seed: q.Seed}
	if q.L2 == 0 {
		cfg.L2 = chooseL2(xs, ys, cfg)
	}
	mlp, _, err := TrainClassifier(xs, ys, cfg)
	if err != nil {
		return nil, fmt.Errorf("trained-router: %w", err)
	}
	r := &Router{name: "trained-router", pool: pool, DevAccuracy: t.acc}
	r.route = func(ctx context.Context, x *exchange) (int, string, error) {
		e, err := t.embed(ctx, "trained-router", x.req)
		if err != nil {
			return 0, "", err
		}
		pr := softmax64(mlp.Output(e))
		m := argmax64(pr)
		return m, fmt.Sprintf("router probabilities %s", fmtProbs(pool, pr)), nil
	}
	return r, nil
}

func fmtProbs(pool []Member, p []float64) string {
	parts := make([]string, len(p))
	for i, v := range p {
		parts[i] = fmt.Sprintf("%s %.3f", pool[i].Name, v)
	}
	return strings.Join(parts, ", ")
}

// standardize returns a function mapping a vector to its z-scores under
// the mean and deviation of xs, normalised to unit length.
func standardize(xs [][]float32) func([]float32) []float64 {
	d := len(xs[0])
	mean, sd := make([]float64, d), make([]float64, d)
	for _, x := range xs {
		for j, v := range x {
			mean[j] += float64(v) / float64(len(xs))
		}
	}
	for _, x := range xs {
		for j, v := range x {
			sd[j] += (float64(v) - mean[j]) * (float64(v) - mean[j]) / float64(len(xs))
		}
	}
	return func(x []float32) []float64 {
		z := make([]float64, d)
		n := 0.0
		for j, v := range x {
			z[j] = (float64(v) - mean[j]) / (math.Sqrt(sd[j]) + 1e-6)
			n += z[j] * z[j]
		}
		n = math.Sqrt(n) + 1e-12
		for j := range z {
			z[j] /= n
		}
		return z
	}
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// nearest returns the k indexes of rows most similar to z (cosine, rows
// unit length), skipping skip, with their similarities clipped at 0.
func nearest(rows [][]float64, z []float64, k, skip int) ([]int, []float64) {
	type nb struct {
		i int
		s float64
	}
	var all []nb
	for i, r := range rows {
		if i != skip {
			all = append(all, nb{i, dot(r, z)})
		}
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].s > all[b].s })
	if len(all) > k {
		all = all[:k]
	}
	idx := make([]int, len(all))
	w := make([]float64, len(all))
	for j, n := range all {
		idx[j], w[j] = n.i, math.Max(n.s, 0)
	}
	return idx, w
}

// LabelPropagation spreads the label rows y over the graph with symmetric
// affinities w (w[i][j] = w[j][i] >= 0, zero diagonal): the fixed point of
// F = alpha S F + (1 - alpha) Y with S = D^-1/2 W D^-1/2, found by
// iterating until no entry moves by more than 1e-10 (at most 1000 steps).
func LabelPropagation(w [][]float64, y [][]float64, alpha float64) [][]float64 {
	n := len(w)
	deg := make([]float64, n)
	for i := range w {
		for _, v := range w[i] {
			deg[i] += v
		}
	}
	f := make([][]float64, n)
	for i := range f {
		f[i] = append([]float64(nil), y[i]...)
	}
	for iter := 0; iter < 1000; iter++ {
		moved := 0.0
		next := make([][]float64, n)
		for i := range next {
			next[i] = make([]float64, len(y[i]))
			for j, v := range w[i] {
				if v == 0 || deg[i] == 0 || deg[j] == 0 {
					continue
				}
				s := v / math.Sqrt(deg[i]*deg[j])
				for c := range next[i] {
					next[i][c] += alpha * s * f[j][c]
				}
			}
			for c := range next[i] {
				next[i][c] += (1 - alpha) * y[i][c]
				moved = math.Max(moved, math.Abs(next[i][c]-f[i][c]))
			}
		}
		f = next
		if moved < 1e-10 {
			break
		}
	}
	return f
}

// NewGraphRouter answers the dev set with every pool model, builds the
// dev queries' neighbour graph and propagates the models' labels over it.
func NewGraphRouter(ctx context.Context, pool []Member, p Params) (*Router, error) {
	q := GraphRouterParams{K: 10, Alpha: 0.9}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("graph-router: %w", err)
	}
	if q.K < 1 || !(q.Alpha > 0 && q.Alpha < 1) {
		return nil, inputErrorf("graph-router: k must be at least 1 and alpha in (0, 1), got %d and %v", q.K, q.Alpha)
	}
	t, err := prepareDev(ctx, "graph-router", pool, q.DevConfig, q.EncoderConfig)
	if err != nil {
		return nil, err
	}
	norm := standardize(t.emb)
	rows := make([][]float64, len(t.emb))
	for i, e := range t.emb {
		rows[i] = norm(e)
	}
	n := len(rows)
	w := make([][]float64, n)
	for i := range w {
		w[i] = make([]float64, n)
	}
	for i := range rows {
		idx, sim := nearest(rows, rows[i], q.K, i)
		for j, k := range idx {
			w[i][k] = math.Max(w[i][k], sim[j])
			w[k][i] = w[i][k]
		}
	}
	y := make([][]float64, n)
	for i := range y {
		y[i] = make([]float64, len(pool))
		for m := range pool {
			if t.res.Correct[m][i] {
				y[i][m] = 1
			}
		}
	}
	f := LabelPropagation(w, y, q.Alpha)
	best := argmax64(t.acc)
	r := &Router{name: "graph-router", pool: pool, DevAccuracy: t.acc}
	r.route = func(ctx context.Context, x *exchange) (int, string, error) {
		e, err := t.embed(ctx, "graph-router", x.req)
		if err != nil {
			return 0, "", err
		}
		idx, sim := nearest(rows, norm(e), q.K, -1)
		score := make([]float64, len(pool))
		tot := 0.0
		for j, k := range idx {
			for m := range score {
				score[m] += sim[j] * f[k][m]
			}
			tot += sim[j]
		}
		if tot > 0 {
			for m := range score {
				score[m] /= tot
			}
		}
		m := argmax64(score)
		if score[m] == score[best] {
			m = best
		}
		return m, fmt.Sprintf("propagated scores %s", fmtProbs(pool, score)), nil
	}
	return r, nil
}

package collab

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// exchange runs one request's protocol: it sends prompts to pool members,
// records every exchange as an Event and adds up the cost. A member that
// fails fails the whole request with an error naming the member, the round
// and the step: a failing model is reported, never dropped.
type exchange struct {
	ctx    context.Context
	method string
	pool   []Member
	req    Request // the outer request: sampling settings for every call

	mu   sync.Mutex
	res  Response
	last int // completion tokens of the last call
}

// lastCompletion is the number of tokens the last call generated.
func (x *exchange) lastCompletion() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.last
}

func newExchange(ctx context.Context, method string, pool []Member, req Request) *exchange {
	return &exchange{ctx: ctx, method: method, pool: pool, req: req}
}

// question is the text methods quote as "the question": the prompt, or the
// last user message of a chat.
func question(r Request) string {
	if len(r.Messages) == 0 {
		return r.Prompt
	}
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return r.Messages[len(r.Messages)-1].Content
}

// sub is the request sent to a member for prompt: one user message, with
// the outer request's sampling settings, length, stop strings and task.
func (x *exchange) sub(prompt string) Request {
	r := x.req
	r.Prompt = ""
	r.Messages = []Message{{Role: "user", Content: prompt}}
	return r
}

// call is one prompt for one member.
type call struct {
	Member int
	Prompt string
	To     string // whom the answer is for, when it is about another model
	Orig   bool   // send the outer request itself (its Messages, if any)
	// MaxTokens, when positive, caps this call's length instead of the
	// outer request's (a judge's short verdict).
	MaxTokens int
	// Seed, when non-zero, replaces the outer request's seed (the k
	// samples of one model need k different seeds).
	Seed uint64
}

// answers is round 1 of most text methods: the outer request itself sent
// to members 0..n-1, their answers in member order.
func (x *exchange) answers(n int) ([]string, error) {
	calls := make([]call, n)
	for i := range calls {
		calls[i] = call{Member: i, Orig: true}
	}
	return x.ask(1, "answer", calls)
}

// ask sends the calls concurrently (each member's calls in one batch) and
// returns the texts in call order. Events are recorded in call order.
func (x *exchange) ask(round int, step string, calls []call) ([]string, error) {
	if err := x.ctx.Err(); err != nil {
		return nil, err
	}
	byMember := map[int][]int{}
	var order []int
	for i, c := range calls {
		if _, ok := byMember[c.Member]; !ok {
			order = append(order, c.Member)
		}
		byMember[c.Member] = append(byMember[c.Member], i)
	}
	out := make([]string, len(calls))
	resps := make([]Response, len(calls))
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for k, m := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx := byMember[m]
			reqs := make([]Request, len(idx))
			for j, i := range idx {
				if calls[i].Orig {
					reqs[j] = x.req
				} else {
					reqs[j] = x.sub(calls[i].Prompt)
				}
				if n := calls[i].MaxTokens; n > 0 {
					reqs[j].MaxTokens = n
				}
				if s := calls[i].Seed; s != 0 {
					reqs[j].Seed = s
				}
			}
			rs, err := x.pool[m].Gen.Generate(x.ctx, reqs)
			if err == nil && len(rs) != len(reqs) {
				err = fmt.Errorf("returned %d responses to %d requests", len(rs), len(reqs))
			}
			if err != nil {
				errs[k] = fmt.Errorf("%s: round %d, %s: model %s failed: %w", x.method, round, step, x.pool[m].Name, err)
				return
			}
			for j, i := range idx {
				resps[i] = rs[j]
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, c := range calls {
		r := resps[i]
		out[i] = r.Text
		x.res.PromptTokens += r.PromptTokens
		x.res.CompletionTokens += r.CompletionTokens
		x.res.ForwardTokens += r.ForwardTokens
		x.res.FLOPs += r.FLOPs
		x.last = r.CompletionTokens
		in := c.Prompt
		if c.Orig {
			in = question(x.req)
		}
		x.res.Trace = append(x.res.Trace, Event{Round: round, Step: step, From: x.pool[c.Member].Name, To: c.To, Input: in, Text: r.Text, Finish: r.Finish})
	}
	return out, nil
}

// note records an event that is the method's own decision (a vote count,
// a route), with no model call behind it.
func (x *exchange) note(round int, step, from, text, note string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.res.Trace = append(x.res.Trace, Event{Round: round, Step: step, From: from, Text: text, Note: note})
}

// notePrev sets the note of the last event.
func (x *exchange) notePrev(note string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n := len(x.res.Trace); n > 0 {
		x.res.Trace[n-1].Note = note
	}
}

// finish returns the response with text as its answer, and the finish
// reason of the last call that wrote that text (none when no call did).
func (x *exchange) finish(text string) Response {
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.res
	r.Text = text
	for i := len(r.Trace) - 1; i >= 0; i-- {
		if e := r.Trace[i]; e.Finish != "" && e.Text == text {
			r.Finish = e.Finish
			break
		}
	}
	return r
}

// textMethod is the shared shell of the methods that exchange texts:
// name, level, pool, and a protocol run per request.
type textMethod struct {
	name  string
	level Level
	pool  []Member
	one   func(x *exchange) (string, error)
}

func (m *textMethod) Name() string { return m.name }
func (m *textMethod) Level() Level { return m.level }

// Generate runs the protocol for each request in order.
func (m *textMethod) Generate(ctx context.Context, reqs []Request) ([]Response, error) {
	out := make([]Response, len(reqs))
	for i, r := range reqs {
		x := newExchange(ctx, m.name, m.pool, r)
		text, err := m.one(x)
		if err != nil {
			return nil, err
		}
		out[i] = x.finish(text)
	}
	return out, nil
}

// memberIndex resolves a member given by name or by index (a JSON number
// or a string holding one); -1 when p is nil.
func memberIndex(pool []Member, p any, what string) (int, error) {
	switch v := p.(type) {
	case nil:
		return -1, nil
	case float64:
		i := int(v)
		if float64(i) != v || i < 0 || i >= len(pool) {
			return 0, inputErrorf("%s: %v is not a model index (0..%d)", what, v, len(pool)-1)
		}
		return i, nil
	case int:
		if v < 0 || v >= len(pool) {
			return 0, inputErrorf("%s: %d is not a model index (0..%d)", what, v, len(pool)-1)
		}
		return v, nil
	case string:
		var names []string
		for i, m := range pool {
			if m.Name == v {
				return i, nil
			}
			names = append(names, m.Name)
		}
		var i int
		if _, err := fmt.Sscanf(v, "%d", &i); err == nil && fmt.Sprint(i) == v && i >= 0 && i < len(pool) {
			return i, nil
		}
		return 0, inputErrorf("%s: no model %q in the pool (%s)", what, v, strings.Join(names, ", "))
	}
	return 0, inputErrorf("%s: want a model name or index, got %v", what, p)
}

// bestByDev is the index of the highest dev score (the first on ties), the
// way MoCo picks the summariser; scores must have one entry per model.
func bestByDev(pool []Member, scores []float64, what string) (int, error) {
	if len(scores) != len(pool) {
		return 0, inputErrorf("%s: %d dev scores for %d models", what, len(scores), len(pool))
	}
	best := 0
	for i, s := range scores {
		if s > scores[best] {
			best = i
		}
	}
	return best, nil
}

// pickModel resolves a method's "which model" parameter: by name or index,
// else the best by dev scores, else the first model.
func pickModel(pool []Member, p any, dev []float64, what string) (int, error) {
	i, err := memberIndex(pool, p, what)
	if err != nil || i >= 0 {
		return i, err
	}
	if dev != nil {
		return bestByDev(pool, dev, what)
	}
	return 0, nil
}

// bullets formats texts as MoCo's "- text" lines.
func bullets(texts []string) string {
	var b strings.Builder
	for _, t := range texts {
		b.WriteString("- ")
		b.WriteString(t)
		b.WriteString("\n")
	}
	return b.String()
}

package collab

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
)

// BBMASParams configures the blackboard multi-agent system (#17, MoCo's
// text_bbmas). Each iteration MaxAgentsToAct agents, drawn with Seed,
// choose one of the actions (propose a strategy, execute a step, critique
// and refine, verify, terminate) and write an entry on the shared
// blackboard; after MinAgentsToStop terminations, or MaxIterations, the
// conclusions of the last iteration (the text after "FINAL:" when
// present) are put to a vote of every agent; the most voted wins, ties
// going to the conclusion voted for first (MoCo's tally order). A vote
// for a conclusion that does not exist abstains, and an agent whose
// replies name none after MaxRetries tries votes for the first, as in
// MoCo. When MaxIterations pass without enough terminations the
// conclusions are the entries of the last iteration; MoCo looks for them
// in the iteration after the last (its counter has moved past the limit)
// and so always answers "No conclusion.", a bug not copied. MoCo's
// actions are the four of its prompts; "verify existing work", named in
// its guidelines, is the fifth. MoCo runs every agent on the best dev
// model; here each pool model is one agent (set SharedAgent to run them
// all on one model, as MoCo does). Every call samples with the request's
// settings, where MoCo's agents use temperature 1.0 and up to 8192 new
// tokens whatever was asked.
type BBMASParams struct {
	MaxAgentsToAct  int    `json:"max_num_agents_to_act"`  // default 1
	MinAgentsToStop int    `json:"min_num_agents_to_stop"` // default 1
	MaxIterations   int    `json:"max_iterations"`         // default 10
	MaxRetries      int    `json:"max_num_retries"`        // default 3
	Seed            uint64 `json:"seed"`
	SharedAgent     any    `json:"shared_agent"`
}

var bbActions = []string{
	"propose a solving strategy",
	"execute a solution step",
	"critique and refine existing work",
	"verify existing work",
	"terminate and finalize the solution",
}

var bbTasks = map[string]string{
	bbActions[0]: "Propose a high-level strategy for the problem: what kind of problem it is, the concepts it needs, the approach, 3-5 phases, and the pitfalls. Plan only; do not solve it.",
	bbActions[1]: "Carry out one concrete step of the solution rigorously, showing your work; continue earlier entries where useful.",
	bbActions[2]: "Critique the entries you name: point out errors and gaps, explain why they matter, and propose concrete fixes or alternatives.",
	bbActions[3]: "Check the entries you name step by step and say which parts are correct and which are not.",
	bbActions[4]: "Combine the work on the blackboard into one complete solution and state the final answer. Start your output with FINAL: and end it with **Final Answer**: followed by the answer.",
}

type bbEntry struct {
	id, author, iteration int
	text                  string
}

func bbHeader(problem string, entries []bbEntry) string {
	var b strings.Builder
	b.WriteString("You are one participant of a group solving a problem together on a shared blackboard. Help the group reach the correct solution. Refer to earlier work as Entry #<id>.\n\n<problem>\n" + problem + "\n</problem>\n\n<blackboard>\n")
	if len(entries) == 0 {
		b.WriteString("The blackboard is empty.\n")
	}
	for _, e := range entries {
		fmt.Fprintf(&b, "Entry #%d (iteration %d, agent %d):\n%s\n\n", e.id, e.iteration, e.author, e.text)
	}
	b.WriteString("</blackboard>\n\n")
	return b.String()
}

func bbSelectPrompt(problem string, entries []bbEntry) string {
	var b strings.Builder
	b.WriteString(bbHeader(problem, entries))
	b.WriteString("Look at what has been done, what is missing or doubtful, and choose ONE action that helps most now. Output exactly one of these sentences and stop:\n")
	for _, a := range bbActions {
		b.WriteString("I choose to " + a + ".\n")
	}
	return b.String()
}

func bbExecutePrompt(problem string, entries []bbEntry, action, thinking string) string {
	return bbHeader(problem, entries) + "You chose to " + action + ". Your reasoning:\n" + thinking + "\n\n" + bbTasks[action]
}

func bbVotePrompt(problem string, entries []bbEntry, conclusions []string) string {
	var b strings.Builder
	b.WriteString(bbHeader(problem, entries))
	b.WriteString("The conclusions on the blackboard:\n")
	for i, c := range conclusions {
		fmt.Fprintf(&b, "Conclusion #%d: %s\n", i+1, c)
	}
	b.WriteString("\nReason step by step, then end with: Therefore, I vote for Conclusion #<id>.")
	return b.String()
}

// bbAction finds the one action a reply names; "" when none or several.
func bbAction(reply string) string {
	found := ""
	for _, a := range bbActions {
		if strings.Contains(reply, a) {
			if found != "" {
				return ""
			}
			found = a
		}
	}
	return found
}

var reVote = regexp.MustCompile(`(?i)Conclusion\s*#\s*(\d+)`)

func init() {
	Register(Spec{Name: "bbmas", Level: LevelText, MinModels: 1,
		Summary: "agents act on a shared blackboard (five actions), then vote on the conclusions",
		New:     newBBMAS})
}

func newBBMAS(_ context.Context, pool []Member, p Params) (Method, error) {
	q := BBMASParams{MaxAgentsToAct: 1, MinAgentsToStop: 1, MaxIterations: 10, MaxRetries: 3}
	if err := p.Decode(&q); err != nil {
		return nil, fmt.Errorf("bbmas: %w", err)
	}
	if q.MaxAgentsToAct < 1 || q.MinAgentsToStop < 1 || q.MaxIterations < 1 || q.MaxRetries < 1 {
		return nil, inputErrorf("bbmas: the agent counts, max_iterations and max_num_retries must be at least 1")
	}
	shared, err := memberIndex(pool, q.SharedAgent, "bbmas shared_agent")
	if err != nil {
		return nil, err
	}
	model := func(agent int) int {
		if shared >= 0 {
			return shared
		}
		return agent
	}
	m := &textMethod{name: "bbmas", level: LevelText, pool: pool}
	m.one = func(x *exchange) (string, error) {
		problem := question(x.req)
		rng := rand.New(rand.NewPCG(q.Seed, x.req.Seed))
		var board []bbEntry
		iter := 0
		for iter < q.MaxIterations {
			iter++
			agents := rng.Perm(len(pool))[:min(q.MaxAgentsToAct, len(pool))]
			stops := 0
			var added []bbEntry
			for _, a := range agents {
				text := "INVALID ACTION"
				for try := 0; try < q.MaxRetries; try++ {
					sel, err := x.ask(iter, "select", []call{{Member: model(a), Prompt: bbSelectPrompt(problem, board)}})
					if err != nil {
						return "", err
					}
					act := bbAction(sel[0])
					x.notePrev("action: " + act)
					if act == "" {
						continue
					}
					out, err := x.ask(iter, "execute", []call{{Member: model(a), Prompt: bbExecutePrompt(problem, board, act, sel[0])}})
					if err != nil {
						return "", err
					}
					text = sel[0] + "\n\n---\n\nTo carry out the action I chose:\n\n" + out[0]
					break
				}
				if strings.Contains(text, "I choose to "+bbActions[4]) {
					stops++
				}
				added = append(added, bbEntry{id: len(board) + len(added), author: a, iteration: iter, text: text})
			}
			board = append(board, added...) // agents of one iteration see the same board
			if stops >= q.MinAgentsToStop {
				break
			}
		}
		var conclusions []string
		for _, e := range board {
			if e.iteration == iter && strings.Contains(e.text, "FINAL:") {
				parts := strings.Split(e.text, "FINAL:")
				conclusions = append(conclusions, strings.TrimSpace(parts[len(parts)-1]))
			}
		}
		if len(conclusions) == 0 {
			for _, e := range board {
				if e.iteration == iter {
					conclusions = append(conclusions, strings.TrimSpace(e.text))
				}
			}
		}
		if len(conclusions) == 0 {
			return "No conclusion.", nil
		}
		if len(conclusions) == 1 {
			x.note(iter+1, "vote", "bbmas", conclusions[0], "only one conclusion")
			return conclusions[0], nil
		}
		votes := make([]int, len(conclusions))
		var voted []int // conclusions in the order of their first vote
		for a := range pool {
			choice := 1 // MoCo's default after failed retries
			for try := 0; try < q.MaxRetries; try++ {
				out, err := x.ask(iter+1, "vote", []call{{Member: model(a), Prompt: bbVotePrompt(problem, board, conclusions)}})
				if err != nil {
					return "", err
				}
				if mm := reVote.FindStringSubmatch(out[0]); mm != nil {
					// MoCo takes any number above 0 (an overflow
					// included) and ends the retries.
					if n, err := strconv.Atoi(mm[1]); n >= 1 || err != nil {
						choice = n
						if err != nil {
							choice = math.MaxInt
						}
						break
					}
				}
			}
			if choice > len(conclusions) {
				// MoCo drops a vote past the last conclusion when it
				// counts: the agent abstains.
				x.notePrev(fmt.Sprintf("votes for conclusion #%d, which does not exist: abstains", choice))
				continue
			}
			if votes[choice-1] == 0 {
				voted = append(voted, choice-1)
			}
			votes[choice-1]++
			x.notePrev(fmt.Sprintf("votes for conclusion #%d", choice))
		}
		if len(voted) == 0 {
			x.note(iter+1, "result", "bbmas", conclusions[0], "no valid vote: the first conclusion")
			return conclusions[0], nil
		}
		// MoCo counts votes in a dict filled as they are cast and takes
		// its max: a tie goes to the conclusion voted for first.
		win := voted[0]
		for _, i := range voted {
			if votes[i] > votes[win] {
				win = i
			}
		}
		x.note(iter+1, "result", "bbmas", conclusions[win], fmt.Sprintf("votes %v", votes))
		return conclusions[win], nil
	}
	return m, nil
}

package collab

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestBBMASProtocol(t *testing.T) {
	pool, gens := scriptedPool(func(name, p string) (string, error) {
		switch {
		case strings.Contains(p, "Output exactly one of these sentences"):
			if strings.Contains(p, "The blackboard is empty") {
				return "I choose to propose a solving strategy.", nil
			}
			return "I choose to terminate and finalize the solution.", nil
		case strings.Contains(p, "You chose to terminate"):
			return "FINAL: answer from " + name, nil
		case strings.Contains(p, "You chose to"):
			return "plan by " + name, nil
		case strings.Contains(p, "I vote for Conclusion"):
			return "Therefore, I vote for Conclusion #2.", nil
		}
		return "?", nil
	}, "A", "B")
	m, err := New(context.Background(), "bbmas", pool, Params{"max_num_agents_to_act": 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{{Prompt: "2+2?"}})
	if err != nil {
		t.Fatal(err)
	}
	// Iteration 1: both propose (empty board); iteration 2: both finalise;
	// the vote picks conclusion 2.
	var steps []string
	for _, e := range res[0].Trace {
		steps = append(steps, e.Step)
	}
	want := "select execute select execute select execute select execute vote vote result"
	if strings.Join(steps, " ") != want {
		t.Errorf("steps %v", steps)
	}
	if !strings.HasPrefix(res[0].Text, "answer from ") {
		t.Errorf("final %q", res[0].Text)
	}
	if len(gens[0].log) != 5 || len(gens[1].log) != 5 {
		t.Errorf("calls %d and %d", len(gens[0].log), len(gens[1].log))
	}
	if bbAction("I choose to execute a solution step. Or verify existing work") != "" {
		t.Error("two actions accepted")
	}
	if _, err := New(context.Background(), "bbmas", pool, Params{"max_iterations": 0}); err == nil {
		t.Error("max_iterations 0 accepted")
	}
}

// MoCo tallies votes in a dict in the order they are cast and takes
// max(counts): a tie goes to the conclusion that got its first vote
// earliest, not to the lowest-numbered one.
func TestBBMASVoteTieGoesToFirstVoted(t *testing.T) {
	var mu sync.Mutex
	var second string // the text listed as conclusion #2
	pool, _ := scriptedPool(func(name, p string) (string, error) {
		switch {
		case strings.Contains(p, "Output exactly one of these sentences"):
			return "I choose to terminate and finalize the solution.", nil
		case strings.Contains(p, "You chose to"):
			return "FINAL: answer from " + name, nil
		case strings.Contains(p, "I vote for Conclusion"):
			if m := regexp.MustCompile(`Conclusion #2: (.*)`).FindStringSubmatch(p); m != nil {
				mu.Lock()
				second = m[1]
				mu.Unlock()
			}
			if name == "A" { // A votes first
				return "Therefore, I vote for Conclusion #2.", nil
			}
			return "Therefore, I vote for Conclusion #1.", nil
		}
		return "?", nil
	}, "A", "B")
	m, err := New(context.Background(), "bbmas", pool, Params{"max_num_agents_to_act": 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{{Prompt: "2+2?"}})
	if err != nil {
		t.Fatal(err)
	}
	if second == "" || res[0].Text != second {
		t.Errorf("1-1 tie: got %q, want conclusion #2 %q (voted for first)", res[0].Text, second)
	}
}

// MoCo accepts any conclusion number above 0 without retrying and drops
// the ones past the last conclusion when it counts: such a vote abstains.
func TestBBMASOutOfRangeVoteAbstains(t *testing.T) {
	var mu sync.Mutex
	var second string
	pool, gens := scriptedPool(func(name, p string) (string, error) {
		switch {
		case strings.Contains(p, "Output exactly one of these sentences"):
			return "I choose to terminate and finalize the solution.", nil
		case strings.Contains(p, "You chose to"):
			return "FINAL: answer from " + name, nil
		case strings.Contains(p, "I vote for Conclusion"):
			if m := regexp.MustCompile(`Conclusion #2: (.*)`).FindStringSubmatch(p); m != nil {
				mu.Lock()
				second = m[1]
				mu.Unlock()
			}
			if name == "A" {
				return "Therefore, I vote for Conclusion #5.", nil
			}
			return "Therefore, I vote for Conclusion #2.", nil
		}
		return "?", nil
	}, "A", "B")
	m, err := New(context.Background(), "bbmas", pool, Params{"max_num_agents_to_act": 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), []Request{{Prompt: "2+2?"}})
	if err != nil {
		t.Fatal(err)
	}
	if second == "" || res[0].Text != second {
		t.Errorf("got %q, want conclusion #2 %q (A's vote for #5 abstains)", res[0].Text, second)
	}
	if n := len(gens[0].log); n != 3 { // select, execute, one vote
		t.Errorf("A was called %d times, want 3 (no vote retries)", n)
	}
}

package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// ReadPredictions reads JSON lines {"id": ..., "output": "..."} (ids as
// strings or numbers, as datasets write them) into a map from id to output.
// Blank lines are skipped; a line that is not such an object, or an id
// given twice, is an error naming the line.
func ReadPredictions(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var p struct {
			ID     json.RawMessage `json:"id"`
			Output *string         `json:"output"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, jsonError(err))
		}
		id := idString(p.ID)
		if id == "" {
			return nil, fmt.Errorf("line %d: no \"id\"", line)
		}
		if p.Output == nil {
			return nil, fmt.Errorf("line %d (id %s): no \"output\" string", line, id)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("line %d: id %s appears twice", line, id)
		}
		out[id] = *p.Output
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}

// idString turns a JSON id (string or number) into the form Item.ID has.
func idString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	t := strings.TrimSpace(string(raw))
	if t == "null" {
		return ""
	}
	return t
}

// ItemScore is one item's verdict in a ScoreReport.
type ItemScore struct {
	ID        string  `json:"id"`
	Extracted string  `json:"extracted"`
	Score     float64 `json:"score"`
	Note      string  `json:"note,omitempty"`
	Missing   bool    `json:"missing,omitempty"`
}

// ScoreReport is the score of a set of outputs on a split.
type ScoreReport struct {
	Dataset  string      `json:"dataset"`
	Split    string      `json:"split"`
	TaskType string      `json:"task_type"`
	Metric   string      `json:"metric"`
	Score    float64     `json:"score"`
	N        int         `json:"n"`
	Missing  []string    `json:"missing"` // items with no output: scored 0
	Unknown  []string    `json:"unknown"` // outputs for ids the split does not have: ignored
	Items    []ItemScore `json:"items"`
}

// ScoreOutputs scores outputs (by item id) on a split of ds with the task
// type's scorer, workers items at a time (<= 0: one per CPU). Items with no
// output count as wrong and are listed in Missing.
func ScoreOutputs(ctx context.Context, ds *Dataset, split string, outputs map[string]string, o ScorerOptions, workers int) (*ScoreReport, error) {
	items, err := ds.Split(split)
	if err != nil {
		return nil, err
	}
	if o.Dataset == "" {
		o.Dataset = ds.Name
	}
	s, err := NewScorer(ds.TaskType, o)
	if err != nil {
		return nil, err
	}
	rep := &ScoreReport{Dataset: ds.Name, Split: split, TaskType: ds.TaskType, Metric: s.Metric(), N: len(items),
		Items: make([]ItemScore, len(items)), Missing: []string{}, Unknown: []string{}}
	known := map[string]bool{}
	for _, it := range items {
		known[it.ID] = true
	}
	for id := range outputs {
		if !known[id] {
			rep.Unknown = append(rep.Unknown, id)
		}
	}
	sort.Strings(rep.Unknown)
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				it := items[i]
				g, ok := outputs[it.ID]
				if !ok {
					rep.Items[i] = ItemScore{ID: it.ID, Missing: true, Note: "no output"}
					continue
				}
				r, err := s.Score(ctx, it, g)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("item %s: %w", it.ID, err)
					}
					mu.Unlock()
					continue
				}
				rep.Items[i] = ItemScore{ID: it.ID, Extracted: r.Extracted, Score: r.Score, Note: r.Note}
			}
		}()
	}
	for i := range items {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	scores := make([]float64, len(items))
	for i, r := range rep.Items {
		scores[i] = r.Score
		if r.Missing {
			rep.Missing = append(rep.Missing, r.ID)
		}
	}
	rep.Score = Aggregate(ds.Name, items, scores)
	for i := range rep.Items {
		rep.Items[i].Score = scores[i]
	}
	return rep, nil
}

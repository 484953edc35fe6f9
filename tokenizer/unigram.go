package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"unicode/utf8"
)

// unigram is the Unigram model (SentencePiece unigram): the segmentation
// with the highest total log-probability, found by Viterbi over a lattice.
type unigram struct {
	vocab        map[string]int
	tokens       []string
	scores       []float64
	unk          int
	byteFallback bool
	byteIDs      [256]int
	unkScore     float64
	maxLen       int // longest piece in bytes
}

// unkPenalty is how much less than the least likely piece an unknown
// character scores (kUnkPenalty in SentencePiece).
const unkPenalty = 10.0

func (m *unigram) tokenID(tok string) (int, bool) { id, ok := m.vocab[tok]; return id, ok }
func (m *unigram) vocabLen() int                  { return len(m.vocab) }
func (m *unigram) idTokens() []string             { return m.tokens }

func newUnigram(raw json.RawMessage) (*unigram, error) {
	var j struct {
		UnkID        *int              `json:"unk_id"`
		Vocab        []json.RawMessage `json:"vocab"`
		ByteFallback bool              `json:"byte_fallback"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("model Unigram: %v", err)
	}
	if len(j.Vocab) == 0 {
		return nil, fmt.Errorf("model Unigram: empty vocab")
	}
	m := &unigram{vocab: make(map[string]int, len(j.Vocab)), byteFallback: j.ByteFallback, unk: -1}
	minScore := math.Inf(1)
	for i, r := range j.Vocab {
		var entry [2]json.RawMessage
		var piece string
		var score float64
		if json.Unmarshal(r, &entry) != nil || json.Unmarshal(entry[0], &piece) != nil || json.Unmarshal(entry[1], &score) != nil {
			return nil, fmt.Errorf("model Unigram: vocab entry %d is not [piece, score]", i)
		}
		if _, dup := m.vocab[piece]; !dup {
			m.vocab[piece] = i
		}
		m.tokens = append(m.tokens, piece)
		m.scores = append(m.scores, score)
		minScore = min(minScore, score)
		m.maxLen = max(m.maxLen, len(piece))
	}
	// Without unk_id the reference fails on unknown characters; rather
	// than drop them, refuse the model.
	if j.UnkID == nil {
		return nil, fmt.Errorf("model Unigram without unk_id is not supported")
	}
	if *j.UnkID < 0 || *j.UnkID >= len(m.tokens) {
		return nil, fmt.Errorf("model Unigram: unk_id %d is out of range", *j.UnkID)
	}
	m.unk = *j.UnkID
	m.unkScore = minScore - unkPenalty
	for b := range m.byteIDs {
		m.byteIDs[b] = -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteIDs[b] = id
		}
	}
	return m, nil
}

func (m *unigram) encodeWord(word string) []int {
	type node struct {
		score float64
		start int // -1: not reached
		id    int
	}
	best := make([]node, len(word)+1)
	for i := range best {
		best[i].start = -1
	}
	best[0].start = 0
	for i := 0; i < len(word); {
		_, charLen := utf8.DecodeRuneInString(word[i:])
		here := best[i].score
		single := false
		for end := i + 1; end <= len(word) && end-i <= m.maxLen; end++ {
			if id, ok := m.vocab[word[i:end]]; ok {
				c := here + m.scores[id]
				if t := &best[end]; t.start < 0 || c > t.score {
					*t = node{c, i, id}
				}
				if end-i == charLen {
					single = true
				}
			}
		}
		if !single {
			c := here + m.unkScore
			if t := &best[i+charLen]; t.start < 0 || c > t.score {
				*t = node{c, i, m.unk}
			}
		}
		i += charLen
	}
	// Walk back from the end, fusing runs of unknown characters.
	var pieces [][2]int // byte spans
	var ids []int
	for end := len(word); end > 0; end = best[end].start {
		n := best[end]
		if n.id == m.unk && len(ids) > 0 && ids[len(ids)-1] == m.unk {
			pieces[len(pieces)-1][0] = n.start
			continue
		}
		pieces = append(pieces, [2]int{n.start, end})
		ids = append(ids, n.id)
	}
	out := make([]int, 0, len(ids))
	for k := len(ids) - 1; k >= 0; k-- {
		if ids[k] != m.unk || !m.byteFallback {
			out = append(out, ids[k])
			continue
		}
		p := word[pieces[k][0]:pieces[k][1]]
		all := true
		for i := 0; i < len(p); i++ {
			all = all && m.byteIDs[p[i]] >= 0
		}
		if !all {
			out = append(out, m.unk)
			continue
		}
		for i := 0; i < len(p); i++ {
			out = append(out, m.byteIDs[p[i]])
		}
	}
	return out
}

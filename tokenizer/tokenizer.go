package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/mocolab/moco/internal/modeldir"
)

// Tokenizer is a Hugging Face tokenizer loaded from tokenizer.json (and
// tokenizer_config.json). It is safe for concurrent use.
type Tokenizer struct {
	// Chat is the chat template of tokenizer_config.json, nil if none or
	// if it does not parse (ChatErr then says why).
	Chat *ChatTemplate
	// ChatErr is the error of a chat template that failed to load. It does
	// not stop the tokenizer from working: only chat rendering needs it.
	ChatErr error

	model      model
	mu         sync.Mutex
	cache      map[string][]int // word -> ids
	added      []AddedToken
	addedID    map[string]int
	rawAdded   *addedMatcher // added tokens matched in the raw text
	normAdded  *addedMatcher // added tokens matched after normalization
	normalizer normalizer
	pre        preTokenizer
	mapBytes   bool // the model sees words in the byte-level alphabet
	spChunks   bool // without a pre-tokenizer, cut words before "▁" (see chunkable)
	post       postProcessor
	dec        decoder
	rawDec     decoder // dec keeping invalid UTF-8 (for Piece)
	cleanup    bool    // clean_up_tokenization_spaces

	hasByteFallback bool // the decoder has ByteFallback (for Stream)
	stripTrailing   rune // the decoder strips this at the end, or -1

	tokens  []string // id -> token string, added tokens included
	special []bool   // id -> special added token
	bos     int
	eos     []int
}

type fileJSON struct {
	AddedTokens   []AddedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

// Load reads dir/tokenizer.json and, when present, dir/tokenizer_config.json
// and the chat templates saved as files beside it: chat_template.jinja (the
// default template) and additional_chat_templates/NAME.jinja, which take
// priority over tokenizer_config.json's chat_template, as in transformers
// (newer checkpoints keep their template only there); failing all of
// those, a multimodal processor's chat_template.json.
func Load(dir string) (*Tokenizer, error) {
	tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		if c := modeldir.Check(dir); c != nil {
			return nil, c
		}
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cj, err := readConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := New(tj, cj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return t, nil
}

// fileNames are the files of a Hugging Face tokenizer a model folder may
// hold; Files adds additional_chat_templates/*.jinja.
var fileNames = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
	"vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json"}

// Files lists the tokenizer files present in dir, paths relative to it,
// chat templates included: what a tool that writes a model folder copies so
// that the new folder tokenizes and chats as dir does.
func Files(dir string) ([]string, error) {
	var out []string
	for _, f := range fileNames {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			out = append(out, f)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	extra, err := extraTemplateFiles(dir)
	if err != nil {
		return nil, err
	}
	for _, f := range extra {
		out = append(out, filepath.Join("additional_chat_templates", filepath.Base(f)))
	}
	return out, nil
}

// ReadChatTemplate reads the chat template of the model folder dir as
// Load does (the template files first, then tokenizer_config.json) without
// building the tokenizer; nil when it has none.
func ReadChatTemplate(dir string) (*ChatTemplate, error) {
	cj, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	return LoadChatTemplate(cj)
}

// readConfig reads dir's tokenizer_config.json (nil when there is none)
// with the chat templates saved as files in place of its own.
func readConfig(dir string) ([]byte, error) {
	cj, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if errors.Is(err, os.ErrNotExist) {
		cj, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	return withTemplateFiles(dir, cj)
}

// extraTemplateFiles are the paths of dir's named chat templates,
// additional_chat_templates/NAME.jinja, sorted.
func extraTemplateFiles(dir string) ([]string, error) {
	extra, err := filepath.Glob(filepath.Join(dir, "additional_chat_templates", "*.jinja"))
	sort.Strings(extra)
	return extra, err
}

// withTemplateFiles returns the tokenizer config cj (nil: none) with its
// chat_template replaced by the template files of dir, when there are any:
// the string of chat_template.jinja alone, or a list of {name, template}
// with it as "default" and each additional_chat_templates/NAME.jinja.
func withTemplateFiles(dir string, cj []byte) ([]byte, error) {
	var named []chatTemplateNamed
	if b, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		named = append(named, chatTemplateNamed{Name: "default", Template: string(b)})
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	extra, err := extraTemplateFiles(dir)
	if err != nil {
		return nil, err
	}
	for _, f := range extra {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		named = append(named, chatTemplateNamed{Name: strings.TrimSuffix(filepath.Base(f), ".jinja"), Template: string(b)})
	}
	cfg := map[string]json.RawMessage{}
	if len(cj) > 0 {
		if err := json.Unmarshal(cj, &cfg); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	if len(named) == 0 {
		if t, ok := cfg["chat_template"]; ok && string(t) != "null" {
			return cj, nil
		}
		// A multimodal model's processor keeps the template in
		// chat_template.json (Gemma 3 4B and up): the text model chats
		// with it when the tokenizer has none of its own.
		b, err := os.ReadFile(filepath.Join(dir, "chat_template.json"))
		if errors.Is(err, os.ErrNotExist) {
			return cj, nil
		} else if err != nil {
			return nil, err
		}
		var proc struct {
			ChatTemplate json.RawMessage `json:"chat_template"`
		}
		if err := json.Unmarshal(b, &proc); err != nil {
			return nil, fmt.Errorf("chat_template.json: %w", err)
		}
		if len(proc.ChatTemplate) == 0 {
			return cj, nil
		}
		cfg["chat_template"] = proc.ChatTemplate
		return json.Marshal(cfg)
	}
	var tmpl any = named
	if len(named) == 1 && named[0].Name == "default" {
		tmpl = named[0].Template
	}
	b, err := json.Marshal(tmpl)
	if err != nil {
		return nil, err
	}
	cfg["chat_template"] = b
	return json.Marshal(cfg)
}

// New builds a tokenizer from the contents of tokenizer.json and
// tokenizer_config.json (which may be nil).
func New(tokenizerJSON, tokenizerConfigJSON []byte) (t *Tokenizer, err error) {
	defer catchRegexTimeout(&err)
	t, err = build(tokenizerJSON, tokenizerConfigJSON)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return t, nil
}

func build(tokenizerJSON, configJSON []byte) (*Tokenizer, error) {
	// The model holds nearly all the bytes: keep it out of encoding/json.
	fields, model, err := splitTokenizerFile(tokenizerJSON)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %v", err)
	}
	var f fileJSON
	modelRaw := fields["model"]
	delete(fields, "model")
	// The added tokens too, when the scanner can read them and no other
	// key would fill f.AddedTokens (encoding/json ignores case).
	added, fastAdded := parseAddedTokens(fields["added_tokens"])
	for k := range fields {
		fastAdded = fastAdded && (k == "added_tokens" || !strings.EqualFold(k, "added_tokens"))
	}
	if fastAdded {
		delete(fields, "added_tokens")
	}
	rest, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %v", err)
	}
	if err := json.Unmarshal(rest, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %v", err)
	}
	if fastAdded {
		f.AddedTokens = added
	}
	// A key that differs only in case ("Model") fills f.Model too, and
	// takes precedence. f.Model is set after, not before: encoding/json
	// would write that key's value over the caller's bytes, where it
	// points.
	if f.Model == nil {
		f.Model = modelRaw
	}
	if isNull(f.Model) {
		return nil, errNoModel
	}
	cfg, err := parseConfig(configJSON)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{bos: -1}
	if t.model, err = newModel(f.Model, model); err != nil {
		return nil, err
	}
	t.cache = make(map[string][]int)
	if t.normalizer, err = newNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if t.pre, err = newPreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if t.pre != nil {
		t.pre, t.mapBytes = lastByteLevel(t.pre)
		if q, ok := t.pre.(preSeq); ok && len(q) == 0 {
			t.pre = nil
		}
	}
	t.spChunks = t.pre == nil && chunkable(t.model)
	if t.post, err = newPostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	if t.dec, err = newDecoder(f.Decoder); err != nil {
		return nil, err
	}
	t.rawDec = rawDecoder(t.dec)
	t.hasByteFallback, t.stripTrailing = decoderTraits(t.dec)
	if err := t.setAdded(f.AddedTokens, cfg.SplitSpecialTokens); err != nil {
		return nil, err
	}
	t.cleanup = cfg.CleanUp != nil && *cfg.CleanUp
	if err := t.setSpecials(cfg); err != nil {
		return nil, err
	}
	if len(configJSON) > 0 {
		t.Chat, t.ChatErr = LoadChatTemplate(configJSON)
	}
	return t, nil
}

// setAdded indexes the added tokens and builds their matchers.
func (t *Tokenizer) setAdded(added []AddedToken, splitSpecial bool) error {
	n := len(t.model.idTokens())
	for _, a := range added {
		if a.ID < 0 || a.ID >= 1<<24 {
			return fmt.Errorf("added token %q has invalid id %d", a.Content, a.ID)
		}
		n = max(n, a.ID+1)
	}
	t.added = added
	t.tokens = make([]string, n)
	copy(t.tokens, t.model.idTokens())
	t.special = make([]bool, n)
	t.addedID = make(map[string]int, len(added))
	var raw, norm []AddedToken
	var rawPats, normPats []string
	for _, a := range added {
		t.tokens[a.ID] = a.Content
		t.special[a.ID] = a.Special
		if _, dup := t.addedID[a.Content]; !dup {
			t.addedID[a.Content] = a.ID
		}
		if a.Content == "" || splitSpecial && a.Special {
			continue
		}
		if a.Normalized && t.normalizer != nil {
			norm = append(norm, a)
			normPats = append(normPats, t.normalizer.normalize(a.Content))
		} else {
			raw = append(raw, a)
			rawPats = append(rawPats, a.Content)
		}
	}
	if len(raw) > 0 {
		t.rawAdded = newAddedMatcher(raw, rawPats)
	}
	if len(norm) > 0 {
		t.normAdded = newAddedMatcher(norm, normPats)
	}
	return nil
}

// VocabSize returns the largest id plus one, added tokens included.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenString returns the vocabulary string of id (in the model's
// alphabet, e.g. "Ġthe"), or "" when id is not in the vocabulary.
func (t *Tokenizer) TokenString(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// TokenID returns the id of a vocabulary string or added token.
func (t *Tokenizer) TokenID(s string) (int, bool) {
	if id, ok := t.addedID[s]; ok {
		return id, true
	}
	return t.model.tokenID(s)
}

// IsSpecial reports whether id is a special added token.
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// BOS returns the beginning-of-sequence id, or -1 if there is none.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the end-of-sequence ids (often one; empty if none).
func (t *Tokenizer) EOS() []int { return append([]int(nil), t.eos...) }

// AddedTokens returns the added tokens of tokenizer.json.
func (t *Tokenizer) AddedTokens() []AddedToken { return append([]AddedToken(nil), t.added...) }

// Encode returns the ids of text. With addSpecial, the post-processor's
// special tokens (e.g. BOS) are added as the model folder says.
// Special-token strings inside text are always encoded as those tokens.
func (t *Tokenizer) Encode(text string, addSpecial bool) (_ []int, err error) {
	defer catchRegexTimeout(&err)
	if !utf8.ValidString(text) {
		return nil, errors.New("tokenizer: text is not valid UTF-8")
	}
	ids := make([]int, 0, len(text)/3+4)
	if addSpecial {
		ids = append(ids, t.post.prefix...)
	}
	var segBuf [8]segment
	segs := t.rawAdded.split(segBuf[:0], segment{text, -1, true})
	pieces := make([]piece, 0, len(text)/4+1)
	var subBuf [8]segment
	sub := subBuf[:0]
	for _, seg := range segs {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		if t.normalizer != nil {
			seg.s = t.normalizer.normalize(seg.s)
		}
		sub = t.normAdded.split(sub[:0], seg)
		for _, ss := range sub {
			if ss.id >= 0 {
				ids = append(ids, ss.id)
				continue
			}
			if t.pre == nil {
				if t.spChunks {
					ids = t.tokenizeChunks(ids, ss.s)
				} else {
					ids = t.tokenizeWord(ids, ss.s)
				}
				continue
			}
			pieces = t.pre.split(pieces[:0], piece{ss.s, ss.atStart})
			for _, p := range pieces {
				ids = t.tokenizeWord(ids, p.s)
			}
		}
	}
	if addSpecial {
		ids = append(ids, t.post.suffix...)
	}
	return ids, nil
}

// maxCache bounds the word cache; it is emptied when full. Words longer
// than maxCachedWord (whole segments, for models without a pre-tokenizer)
// are not worth keeping.
const (
	maxCache      = 1 << 16
	maxCachedWord = 256
)

// tokenizeWord appends the ids of one pre-tokenized word to dst, from the
// cache when the word was seen before. With mapBytes, the model sees the
// word in the byte-level alphabet.
func (t *Tokenizer) tokenizeWord(dst []int, word string) []int {
	if word == "" {
		return dst
	}
	if len(word) > maxCachedWord {
		return append(dst, t.encodeWord(word)...)
	}
	t.mu.Lock()
	ids, ok := t.cache[word]
	t.mu.Unlock()
	if !ok {
		ids = t.encodeWord(word)
		t.mu.Lock()
		if len(t.cache) >= maxCache {
			clear(t.cache)
		}
		t.cache[strings.Clone(word)] = ids // a clone: word may pin a large input
		t.mu.Unlock()
	}
	return append(dst, ids...)
}

// chunkable reports whether BPE on a whole SentencePiece-style segment
// equals BPE on its parts cut before each "▁" that follows another
// character: true when no vocabulary token holds such a pair (so no merge
// crosses a cut), "▁" itself is known (so unknown runs end at a cut) and
// ignore_merges is off (it looks up whole words only). Then each part can
// be cached like a pre-tokenized word.
func chunkable(m model) bool {
	b, ok := m.(*bpe)
	if !ok || b.ignoreMerges || b.prefix != "" || b.suffix != "" {
		return false
	}
	if _, ok := b.vocab.get("▁"); !ok {
		return false
	}
	for tok := range b.vocab.all() {
		if strings.Contains(strings.TrimLeft(tok, "▁"), "▁") {
			return false
		}
	}
	return true
}

// tokenizeChunks tokenizes a segment in parts cut before each "▁" that
// follows another character.
func (t *Tokenizer) tokenizeChunks(dst []int, s string) []int {
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] == 0xE2 && strings.HasPrefix(s[i:], "▁") && !strings.HasSuffix(s[:i], "▁") {
			dst = t.tokenizeWord(dst, s[start:i])
			start = i
		}
	}
	return t.tokenizeWord(dst, s[start:])
}

// encodeWord runs the model on one word, in the byte-level alphabet when
// the pre-tokenizer left that mapping to the model.
func (t *Tokenizer) encodeWord(word string) []int {
	if !t.mapBytes {
		return t.model.encodeWord(word)
	}
	if b, ok := t.model.(*bpe); ok {
		return b.encodeBytes(word)
	}
	return t.model.encodeWord(byteLevelString(word))
}

// tokenStrings returns the token strings of ids, without unknown ids and,
// with skipSpecial, without special tokens.
func (t *Tokenizer) tokenStrings(ids []int, skipSpecial bool) []string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id < 0 || id >= len(t.tokens) || skipSpecial && t.special[id] {
			continue
		}
		if t.tokens[id] == "" {
			continue // a gap in the ids
		}
		toks = append(toks, t.tokens[id])
	}
	return toks
}

// Decode returns the text of ids. Unknown ids are skipped; with
// skipSpecial, so are special tokens.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	return t.decodeTokens(t.tokenStrings(ids, skipSpecial))
}

func (t *Tokenizer) decodeTokens(toks []string) string {
	s := t.join(t.dec, toks)
	if t.cleanup {
		s = cleanUpSpaces(s)
	}
	return s
}

// join decodes toks with dec, before clean-up.
func (t *Tokenizer) join(dec decoder, toks []string) string {
	if dec == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(dec.decode(toks), "")
}

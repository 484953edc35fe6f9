package tokenizer

import (
	"encoding/json"
	"fmt"
)

// configJSON holds the fields of tokenizer_config.json that change how
// text is encoded or decoded.
type configJSON struct {
	BOSToken           json.RawMessage `json:"bos_token"`
	EOSToken           json.RawMessage `json:"eos_token"`
	AddBOS             *bool           `json:"add_bos_token"`
	AddEOS             *bool           `json:"add_eos_token"`
	CleanUp            *bool           `json:"clean_up_tokenization_spaces"`
	SplitSpecialTokens bool            `json:"split_special_tokens"`
}

func parseConfig(data []byte) (*configJSON, error) {
	var c configJSON
	if len(data) == 0 {
		return &c, nil
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("tokenizer_config.json: %v", err)
	}
	return &c, nil
}

// tokenContent reads a special token given as a string or as an
// AddedToken object ({"content": ...}); ok is false for null or absent.
func tokenContent(raw json.RawMessage) (string, bool, error) {
	if isNull(raw) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", false, fmt.Errorf("want a string or an object with content, got %.40s", raw)
	}
	return *obj.Content, true, nil
}

// setSpecials sets BOS and EOS, and the ids added around encoded text:
// tokenizer_config.json's add_bos_token/add_eos_token override the
// post-processor, as transformers does for the Llama and Gemma families.
func (t *Tokenizer) setSpecials(c *configJSON) error {
	lookup := func(name string, raw json.RawMessage) (int, error) {
		s, ok, err := tokenContent(raw)
		if err != nil {
			return -1, fmt.Errorf("tokenizer_config.json: %s: %v", name, err)
		}
		if !ok {
			return -1, nil
		}
		id, ok := t.TokenID(s)
		if !ok {
			return -1, fmt.Errorf("tokenizer_config.json: %s %q is not in the vocabulary", name, s)
		}
		return id, nil
	}
	bos, err := lookup("bos_token", c.BOSToken)
	if err != nil {
		return err
	}
	eos, err := lookup("eos_token", c.EOSToken)
	if err != nil {
		return err
	}
	// Without a config entry, the post-processor's first and last special
	// tokens are the best guess.
	if bos < 0 && c.BOSToken == nil && len(t.post.prefix) > 0 {
		bos = t.post.prefix[0]
	}
	if eos < 0 && c.EOSToken == nil && len(t.post.suffix) > 0 {
		eos = t.post.suffix[len(t.post.suffix)-1]
	}
	t.bos = bos
	if eos >= 0 {
		t.eos = []int{eos}
	}
	if c.AddBOS == nil && c.AddEOS == nil {
		return nil
	}
	addBOS := bos >= 0 && len(t.post.prefix) > 0 && t.post.prefix[0] == bos
	addEOS := eos >= 0 && len(t.post.suffix) > 0 && t.post.suffix[len(t.post.suffix)-1] == eos
	if c.AddBOS != nil {
		addBOS = *c.AddBOS
	}
	if c.AddEOS != nil {
		addEOS = *c.AddEOS
	}
	if addBOS && bos < 0 {
		return fmt.Errorf("tokenizer_config.json: add_bos_token is set but there is no bos_token")
	}
	if addEOS && eos < 0 {
		return fmt.Errorf("tokenizer_config.json: add_eos_token is set but there is no eos_token")
	}
	t.post = postProcessor{}
	if addBOS {
		t.post.prefix = []int{bos}
	}
	if addEOS {
		t.post.suffix = []int{eos}
	}
	return nil
}

package tokenizer

import "fmt"

func newPrecompiled(charsmap string) (normalizer, error) {
	return nil, fmt.Errorf("normalizer \"Precompiled\" is not supported yet")
}

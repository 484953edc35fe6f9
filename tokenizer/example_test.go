package tokenizer_test

import (
	"fmt"

	"github.com/mocolab/moco/internal/stories260k"
	"github.com/mocolab/moco/tokenizer"
)

func Example() {
	tk, err := tokenizer.New(stories260k.Tokenizer, stories260k.TokenizerConfig)
	if err != nil {
		panic(err)
	}
	ids, _ := tk.Encode("Once upon a time", true)
	fmt.Println(ids)
	fmt.Printf("%q\n", tk.Decode(ids, true))
	// Output:
	// [1 403 407 261 378]
	// "Once upon a time"
}

func ExampleStream() {
	tk, _ := tokenizer.New(stories260k.Tokenizer, stories260k.TokenizerConfig)
	ids, _ := tk.Encode("Lily saw a ball.", false)
	st := tk.NewStream(true)
	for _, id := range ids {
		fmt.Printf("%q ", st.Add(id))
	}
	fmt.Printf("%q\n", st.Flush())
	// Output:
	// "Lily" " saw" " a" " b" "all" "." ""
}

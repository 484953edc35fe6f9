package tokenizer_test

import (
	"fmt"

	"github.com/mocolab/moco/embedded"
	"github.com/mocolab/moco/tokenizer"
)

func Example() {
	tk, err := embedded.Tokenizer() // tokenizer.Load(dir) for a model folder
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
	tk, _ := embedded.Tokenizer()
	ids, _ := tk.Encode("Lily saw a ball.", false)
	st := tk.NewStream(true)
	for _, id := range ids {
		fmt.Printf("%q ", st.Add(id))
	}
	fmt.Printf("%q\n", st.Flush())
	// Output:
	// "Lily" " saw" " a" " b" "all" "." ""
}

func ExampleChatTemplate_Render() {
	config := []byte(`{
		"eos_token": "<|im_end|>",
		"chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
	}`)
	ct, err := tokenizer.LoadChatTemplate(config)
	if err != nil {
		fmt.Println(err)
		return
	}
	prompt, err := ct.Render([]map[string]any{
		{"role": "system", "content": "You are terse."},
		{"role": "user", "content": "What is 2+2? "},
	}, tokenizer.ChatOptions{AddGenerationPrompt: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(prompt)
	// Output:
	// <|im_start|>system
	// You are terse.<|im_end|>
	// <|im_start|>user
	// What is 2+2?<|im_end|>
	// <|im_start|>assistant
}

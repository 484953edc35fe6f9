package safetensors_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/mocolab/moco/safetensors"
)

// Stream two tensors into a file, then read them back through a memory map.
func Example() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")

	headers := []safetensors.Header{
		{Name: "bias", DType: safetensors.U8, Shape: []int{3}},
		{Name: "weight", DType: safetensors.BF16, Shape: []int{2}},
	}
	w, err := safetensors.Create(path, headers, map[string]string{"format": "pt"})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Abort() // removes the temporary file unless Close succeeded
	w.Write("bias", []byte{1, 2, 3})
	w.Write("weight", []byte{0x80, 0x3f, 0x00, 0xc0}) // bf16 1.0 and -2.0
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	f, err := safetensors.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	for _, name := range f.Names() {
		t, _ := f.Tensor(name)
		fmt.Println(name, t.DType, t.Shape, t.NumElements())
	}
	weight, _ := f.Tensor("weight")
	v, _ := safetensors.ToF32(weight)
	fmt.Println(v, f.Metadata["format"])
	// Output:
	// bias U8 [3] 3
	// weight BF16 [2] 2
	// [1 -2] pt
}

// Convert rounds to nearest even: 1/3 becomes bf16 0x3eab = 0.333984375.
func ExampleConvert() {
	third := float32(1) / 3
	t := &safetensors.Tensor{Name: "x", DType: safetensors.F32, Shape: []int{1}}
	t.Data = []byte{0, 0, 0, 0}
	t.Data[0], t.Data[1], t.Data[2], t.Data[3] = 0xab, 0xaa, 0xaa, 0x3e // 0x3eaaaaab
	b, err := safetensors.Convert(t, safetensors.BF16)
	if err != nil {
		log.Fatal(err)
	}
	back, _ := safetensors.ToF32(b)
	fmt.Printf("% x %v %.6f\n", b.Data, b.DType, back[0]-third)
	// Output: ab 3e BF16 0.000651
}

package main

import (
	"fmt"
	"io"
	"time"

	"github.com/mocolab/moco/safetensors"
)

// checkReport is the result of inspect --check: every floating-point tensor
// scanned for NaN and infinite values.
type checkReport struct {
	Tensors   int              `json:"tensors_checked"`
	Bytes     int64            `json:"bytes_checked"`
	NonFinite []nonFiniteCount `json:"non_finite"` // tensors holding NaN or Inf, in name order
}

type nonFiniteCount struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
	First int64  `json:"first_index"` // flat index of the first
}

// checkTensors scans the tensors of src in the order of names, reporting
// progress on progress (nil: none) for checkpoints of more than a second's
// reading.
func checkTensors(src safetensors.Source, names []string, progress io.Writer) *checkReport {
	r := &checkReport{NonFinite: []nonFiniteCount{}}
	var total int64
	for _, name := range names {
		t, _ := src.Tensor(name)
		total += int64(len(t.Data))
	}
	start, last := time.Now(), time.Now()
	for i, name := range names {
		t, _ := src.Tensor(name)
		n, first := safetensors.NonFinite(t)
		r.Tensors++
		r.Bytes += int64(len(t.Data))
		if n > 0 {
			r.NonFinite = append(r.NonFinite, nonFiniteCount{Name: name, Count: n, First: first})
		}
		if progress != nil && time.Since(last) > time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "\rchecking: %d/%d tensors, %s of %s bytes (%.0f MB/s)", i+1, len(names), group(r.Bytes), group(total),
				float64(r.Bytes)/1e6/time.Since(start).Seconds())
		}
	}
	if progress != nil && time.Since(start) > time.Second {
		fmt.Fprintln(progress)
	}
	return r
}

func (c *checkReport) print(w io.Writer) {
	fmt.Fprintln(w)
	if len(c.NonFinite) == 0 {
		fmt.Fprintf(w, "check: %d tensors (%s bytes) hold no NaN or Inf\n", c.Tensors, group(c.Bytes))
		return
	}
	fmt.Fprintf(w, "check: %d of %d tensors hold NaN or Inf:\n", len(c.NonFinite), c.Tensors)
	for _, t := range c.NonFinite {
		fmt.Fprintf(w, "  %s: %d values, the first at index %d\n", t.Name, t.Count, t.First)
	}
}

// err is the command's error when the check failed.
func (c *checkReport) err() error {
	if c == nil || len(c.NonFinite) == 0 {
		return nil
	}
	return fmt.Errorf("%d tensors hold NaN or Inf values (first: %s)", len(c.NonFinite), c.NonFinite[0].Name)
}

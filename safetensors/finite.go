package safetensors

import (
	"encoding/binary"
	"runtime"
	"sync"
)

// NonFinite counts the NaN and infinite values of a floating-point tensor
// (F64, F32, F16, BF16) and returns the index of the first; other dtypes
// hold none (count 0, first -1). It tests the exponent bits of the stored
// values without converting them, sharing large tensors out over all
// cores, so a checkpoint is scanned at about memory bandwidth.
func NonFinite(t *Tensor) (count int64, first int64) {
	size := t.DType.Size()
	var mask uint64
	switch t.DType {
	case F64:
		mask = 0x7ff0000000000000
	case F32:
		mask = 0x7f800000
	case F16:
		mask = 0x7c00
	case BF16:
		mask = 0x7f80
	default:
		return 0, -1
	}
	n := len(t.Data) / size
	const minPart = 1 << 20 // elements per goroutine at least
	parts := min(runtime.GOMAXPROCS(0), max(1, n/minPart))
	counts := make([]int64, parts)
	firsts := make([]int64, parts)
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := n*p/parts, n*(p+1)/parts
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[p], firsts[p] = nonFiniteRange(t.Data, size, mask, lo, hi)
		}()
	}
	wg.Wait()
	first = -1
	for p := range parts {
		count += counts[p]
		if first < 0 && firsts[p] >= 0 {
			first = firsts[p]
		}
	}
	return count, first
}

// nonFiniteRange scans elements [lo, hi): a value is NaN or infinite when
// all its exponent bits are set. Eight bytes are tested at once: a lane
// whose masked value equals the mask is a zero lane of (w & M) ^ M, which
// the classic has-zero test finds; only words with a hit are looked at
// element by element.
func nonFiniteRange(data []byte, size int, mask uint64, lo, hi int) (count, first int64) {
	first = -1
	var M, ones, highs uint64
	switch size {
	case 8:
		M, ones, highs = mask, 1, 1<<63
	case 4:
		M, ones, highs = mask|mask<<32, 1|1<<32, 1<<31|1<<63
	case 2:
		M, ones, highs = mask*0x0001000100010001, 0x0001000100010001, 0x8000800080008000
	}
	per := 8 / size
	i := lo
	for ; i < hi && i%per != 0; i++ {
		if elemNonFinite(data, size, mask, i) {
			count++
			if first < 0 {
				first = int64(i)
			}
		}
	}
	end := hi - (hi-i)%per
	b := data[i*size : end*size]
	for j := 0; j+8 <= len(b); j += 8 {
		x := binary.LittleEndian.Uint64(b[j:j+8])&M ^ M
		if (x-ones)&^x&highs == 0 {
			continue
		}
		for k := range per {
			e := i + j/size + k
			if elemNonFinite(data, size, mask, e) {
				count++
				if first < 0 {
					first = int64(e)
				}
			}
		}
	}
	for i = end; i < hi; i++ {
		if elemNonFinite(data, size, mask, i) {
			count++
			if first < 0 {
				first = int64(i)
			}
		}
	}
	return count, first
}

func elemNonFinite(data []byte, size int, mask uint64, i int) bool {
	switch size {
	case 8:
		return binary.LittleEndian.Uint64(data[8*i:])&mask == mask
	case 4:
		return uint64(binary.LittleEndian.Uint32(data[4*i:]))&mask == mask
	default:
		return uint64(binary.LittleEndian.Uint16(data[2*i:]))&mask == mask
	}
}

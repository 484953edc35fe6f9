package hugemem

import (
	"testing"
	"unsafe"
)

func TestAlloc(t *testing.T) {
	for _, n := range []int{1, 4095, PageSize, PageSize + 1, 3*PageSize + 17} {
		b, free, err := Alloc(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != n || cap(b) != n {
			t.Errorf("Alloc(%d): len %d cap %d", n, len(b), cap(b))
		}
		if p := uintptr(unsafe.Pointer(unsafe.SliceData(b))); p%PageSize != 0 {
			t.Errorf("Alloc(%d) at %#x, not aligned to %d", n, p, PageSize)
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("Alloc(%d)[%d] = %d, want zeroed memory", n, i, b[i])
			}
			b[i] = byte(i)
		}
		if err := ReadOnly(b); err != nil {
			t.Fatal(err)
		}
		if b[n-1] != byte(n-1) {
			t.Errorf("Alloc(%d): contents changed by ReadOnly", n)
		}
		if err := free(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{0, -1} {
		if _, _, err := Alloc(n); err == nil {
			t.Errorf("Alloc(%d) succeeded", n)
		}
	}
}

func TestParseHugeBytes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"Rss:  100 kB\nAnonHugePages:   966656 kB\nShared: 1 kB\n", 966656 << 10},
		{"AnonHugePages: 0 kB\n", 0},
		{"Rss: 100 kB\n", 0},
		{"AnonHugePages: 12 MB\n", 0},
		{"AnonHugePages: -4 kB\n", 0},
		{"AnonHugePages: 99999999999999999999 kB\n", 0},
		{"AnonHugePages:\n", 0},
		{"", 0},
	} {
		if got := parseHugeBytes(c.in); got != c.want {
			t.Errorf("parseHugeBytes(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func FuzzParseHugeBytes(f *testing.F) {
	f.Add("AnonHugePages:   966656 kB\n")
	f.Add("AnonHugePages: 1 kB")
	f.Fuzz(func(t *testing.T, s string) {
		if n := parseHugeBytes(s); n < 0 || n%1024 != 0 {
			t.Fatalf("parseHugeBytes(%q) = %d", s, n)
		}
	})
}

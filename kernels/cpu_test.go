package kernels

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestCPU checks CPUID's vendor, family and model against the kernel's
// /proc/cpuinfo where there is one (not the brand string: under a
// hypervisor the two can differ).
func TestCPU(t *testing.T) {
	c := CPU()
	t.Logf("%s", c)
	if c.Arch != runtime.GOARCH {
		t.Errorf("arch %q, want %q", c.Arch, runtime.GOARCH)
	}
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || c.Vendor == "" {
		t.Skip("no /proc/cpuinfo or no CPUID")
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			break // the first processor
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	for k, want := range map[string]string{"vendor_id": c.Vendor, "cpu family": strconv.Itoa(c.Family), "model": strconv.Itoa(c.Model)} {
		if got, ok := fields[k]; ok && got != want {
			t.Errorf("/proc/cpuinfo %s = %q, CPUID gives %q", k, got, want)
		}
	}
}

// TestChoices checks that the reported paths follow the selection: one
// entry per kernel family, the bf16-activation entry names the kernels
// BF16ActKernels reports, and the at-load quantizers' entry names the
// Q4_0 assembly exactly when it is in use.
func TestChoices(t *testing.T) {
	paths(t, func(t *testing.T) {
		c := Choices()
		if len(c) != 7 {
			t.Fatalf("%d choices, want 7: %+v", len(c), c)
		}
		for _, ch := range c {
			if ch.Kernel == "" || ch.Path == "" || ch.Reason == "" {
				t.Errorf("incomplete choice %+v", ch)
			}
			if ch.Kernel == "bf16 activation mode" && Impl() != "purego" && !strings.HasPrefix(ch.Path, BF16ActKernels()) {
				t.Errorf("bf16 activation mode path %q, BF16ActKernels says %q", ch.Path, BF16ActKernels())
			}
			if ch.Kernel == "quantize at load" && strings.Contains(ch.Path, "quantQ4x256") != (quantQ4Impl != nil) {
				t.Errorf("quantize at load path %q with the Q4_0 assembly in use: %v", ch.Path, quantQ4Impl != nil)
			}
		}
		if Impl() == "purego" && c[0].Path != "purego" {
			t.Errorf("purego path reports %q", c[0].Path)
		}
	})
}

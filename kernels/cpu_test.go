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

package kernels

import (
	"fmt"
	"runtime"
)

// CPUInfo identifies the processor the kernels were chosen for (empty
// fields where it cannot be read: other architectures, purego builds).
type CPUInfo struct {
	Vendor string `json:"vendor,omitempty"` // CPUID vendor: GenuineIntel, AuthenticAMD
	Name   string `json:"name,omitempty"`   // brand string
	Family int    `json:"family,omitempty"` // with the extended family (AMD Zen 4: 25, Zen 5: 26)
	Model  int    `json:"model,omitempty"`
	Arch   string `json:"arch"` // GOARCH
}

func (c CPUInfo) String() string {
	if c.Vendor == "" {
		return c.Arch
	}
	return fmt.Sprintf("%s (%s family %d model %d)", c.Name, c.Vendor, c.Family, c.Model)
}

var cpuInfo = func() CPUInfo {
	c := readCPU()
	c.Arch = runtime.GOARCH
	return c
}()

// CPU returns the processor the kernels run on.
func CPU() CPUInfo { return cpuInfo }

// isAMD reports an AMD processor (Zen's VDPBF16PS runs at full speed,
// unlike Intel's before AMX, where it measured at half the f32 FMA rate).
func isAMD() bool { return cpuInfo.Vendor == "AuthenticAMD" }

//go:build !purego

package kernels

import (
	"encoding/binary"
	"strings"
)

//go:noescape
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// readCPU identifies the processor with CPUID: vendor (leaf 0), family and
// model (leaf 1, with the extended fields), brand string (0x80000002-4).
func readCPU() CPUInfo {
	var c CPUInfo
	max0, b, cx, d := cpuid(0, 0)
	var v [12]byte
	binary.LittleEndian.PutUint32(v[0:], b)
	binary.LittleEndian.PutUint32(v[4:], d)
	binary.LittleEndian.PutUint32(v[8:], cx)
	c.Vendor = string(v[:])
	if max0 >= 1 {
		a, _, _, _ := cpuid(1, 0)
		fam, mod := int(a>>8&0xf), int(a>>4&0xf)
		if fam == 0xf {
			fam += int(a >> 20 & 0xff)
		}
		if fam >= 6 {
			mod |= int(a>>16&0xf) << 4
		}
		c.Family, c.Model = fam, mod
	}
	if maxExt, _, _, _ := cpuid(0x80000000, 0); maxExt >= 0x80000004 {
		var name []byte
		for leaf := uint32(0x80000002); leaf <= 0x80000004; leaf++ {
			a, b, cx, d := cpuid(leaf, 0)
			for _, r := range []uint32{a, b, cx, d} {
				name = binary.LittleEndian.AppendUint32(name, r)
			}
		}
		c.Name = strings.TrimSpace(strings.TrimRight(string(name), "\x00"))
	}
	return c
}

//go:build purego || !amd64

package kernels

// archKnobs: the pure-Go reference has one path per kernel, nothing to
// calibrate.
func archKnobs() []*knob { return nil }

func cpuFeatures() string { return "" }

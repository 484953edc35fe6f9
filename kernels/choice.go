package kernels

// Choice is the path one kernel runs on this machine and why it was
// chosen: by the CPU's instruction sets, its vendor and family (CPU), and
// the settings (SetBF16Activations, MOCO_AMX), or by the start-up
// calibration (Calibrate). `moco bench speed --json` reports them.
type Choice struct {
	Kernel string `json:"kernel"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Choices lists the path of each kernel family as selected now. Each
// reason starts with how the path was chosen: "cpu family rule: ...",
// "calibrated (X ns vs Y ns for ...)" or "cached calibration from FILE
// (...)", the times being those of the calibration's candidates; a first
// entry "selection" reports MOCO_KERNELS, when set.
func Choices() []Choice {
	c := choices()
	seen := map[string]bool{}
	for i := range c {
		seen[c[i].Kernel] = true
		if c[i].Kernel == "selection" {
			continue // MOCO_KERNELS's note, a setting rather than a rule
		}
		if _, why, ok := calibrationReason(c[i].Kernel); ok {
			c[i].Reason = why
		} else {
			c[i].Reason = "cpu family rule: " + c[i].Reason
		}
	}
	for _, k := range calibratedKernels() {
		if !seen[k] {
			path, why, _ := calibrationReason(k)
			c = append(c, Choice{k, path, why})
		}
	}
	return c
}

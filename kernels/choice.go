package kernels

// Choice is the path one kernel runs on this machine and why it was
// chosen: by the CPU's instruction sets, its vendor and family (CPU), and
// the settings (SetBF16Activations, MOCO_AMX). `moco bench speed --json`
// reports them.
type Choice struct {
	Kernel string `json:"kernel"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Choices lists the path of each kernel family as selected now.
func Choices() []Choice { return choices() }

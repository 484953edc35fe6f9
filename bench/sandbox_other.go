//go:build !unix

package bench

import "os/exec"

// No network namespaces or process groups: code runs unsandboxed (and says
// so), and only the interpreter itself is killed at the timeout.
var sandboxModes []int

func setSandbox(cmd *exec.Cmd, mode int) {}

func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

//go:build unix && !linux

package bench

import (
	"os/exec"
	"syscall"
)

// No network namespaces outside Linux: code runs unsandboxed (and says so).
var sandboxModes []int

func setSandbox(cmd *exec.Cmd, mode int) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

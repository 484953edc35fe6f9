//go:build linux

package bench

import (
	"os"
	"os/exec"
	"syscall"
)

// sandboxModes are tried in order: a network namespace alone (needs
// CAP_SYS_ADMIN), then inside a new user namespace (unprivileged).
var sandboxModes = []int{1, 2}

func setSandbox(cmd *exec.Cmd, mode int) {
	a := &syscall.SysProcAttr{Setpgid: true}
	switch mode {
	case 1:
		a.Cloneflags = syscall.CLONE_NEWNET
	case 2:
		a.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
	}
	cmd.SysProcAttr = a
}

func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

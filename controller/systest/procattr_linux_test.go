package systest

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill a node if the test binary dies first, so
// a crashed or interrupted test run leaves no controller behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

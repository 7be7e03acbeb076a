//go:build unix

package hubtest

import (
	"os"
	"syscall"
)

// resume continues a process a test stopped with SIGSTOP.
func resume(p *os.Process) { _ = p.Signal(syscall.SIGCONT) }

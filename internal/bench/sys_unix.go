//go:build unix

package bench

import (
	"os"
	"syscall"
	"time"
)

// selfCPU returns this process's user+system CPU time so far, from
// getrusage (microsecond resolution).
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// stopSignal asks a child process to stop cleanly.
var stopSignal os.Signal = syscall.SIGTERM

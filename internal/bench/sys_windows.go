//go:build windows

package bench

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// selfCPU returns this process's user+system CPU time so far, from
// GetProcessTimes (100 ns units).
func selfCPU() (time.Duration, error) {
	h, err := syscall.GetCurrentProcess()
	if err != nil {
		return 0, err
	}
	var creation, exit, kernel, user syscall.Filetime
	if err := syscall.GetProcessTimes(h, &creation, &exit, &kernel, &user); err != nil {
		return 0, err
	}
	ticks := func(f syscall.Filetime) int64 { return int64(f.HighDateTime)<<32 | int64(f.LowDateTime) }
	return time.Duration(ticks(kernel)+ticks(user)) * 100, nil
}

// stopSignal stops a child process: Windows has no SIGTERM to send, so
// the child is killed (bench children hold no state worth a clean exit).
var stopSignal = os.Kill

// lowerPriority is not done on Windows: the bench says so.
func lowerPriority(pid int) error {
	return errors.New("lowering a process's priority is not done on Windows")
}

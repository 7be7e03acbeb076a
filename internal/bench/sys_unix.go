//go:build unix

package bench

import (
	"errors"
	"fmt"
	"os"
	"strconv"
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

// lowestPriority is the nice value lowerPriority sets.
const lowestPriority = 19

// lowerPriority sets every thread of process pid to the lowest CPU
// priority (nice 19). Linux keeps a nice value per thread, so each of
// /proc/<pid>/task is set; where there is no /proc, the process.
func lowerPriority(pid int) error {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return syscall.Setpriority(syscall.PRIO_PROCESS, pid, lowestPriority)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, lowestPriority); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("lowering the priority of process %d: %w", pid, err)
		}
	}
	return nil
}

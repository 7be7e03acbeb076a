package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat. Linux reports
// them in USER_HZ, which is 100 on every architecture Go runs on.
const userHZ = 100

// procCPU returns the user+system CPU time of process pid so far; pid 0
// is this process (selfCPU: getrusage, or GetProcessTimes on Windows).
// Other processes are read from Linux's /proc.
func procCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return selfCPU()
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// procRSS returns the resident set size of pid (0: this process) now and
// at its peak, in MB, from /proc/<pid>/status.
func procRSS(pid int) (now, peak float64) {
	p := "/proc/self/status"
	if pid != 0 {
		p = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		kb, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			now = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	return now, peak
}

// cpuMeter measures the CPU one side uses over a window, in cores (CPU
// seconds per wall second).
type cpuMeter struct {
	pid   int
	start time.Time
	cpu0  time.Duration
	ok    bool
}

func startCPU(pid int) *cpuMeter {
	c, err := procCPU(pid)
	return &cpuMeter{pid: pid, start: time.Now(), cpu0: c, ok: err == nil}
}

// cores is the CPU used since start, per wall second; -1 if unknown.
func (m *cpuMeter) cores() float64 {
	c, err := procCPU(m.pid)
	el := time.Since(m.start)
	if !m.ok || err != nil || el <= 0 {
		return -1
	}
	return float64(c-m.cpu0) / float64(el)
}

// child is a vidhub subcommand run as its own process, so its CPU and
// memory can be measured apart from the benchmark's.
type child struct {
	name   string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	out    bytes.Buffer // stdout and stderr, for errors
	lines  chan string  // stdout lines
}

// startChild runs exe with args. Stop ends it.
func startChild(name, exe string, args ...string) (*child, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(stopSignal) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = childEnv()
	c := &child{name: name, cmd: cmd, cancel: cancel, done: make(chan struct{}), lines: make(chan string, 16)}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = lockedWriter{c}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("bench: starting %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			_, _ = lockedWriter{c}.Write([]byte(line + "\n"))
			select {
			case c.lines <- line:
			default:
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(c.done)
	}()
	return c, nil
}

// childEnv is the environment of a child: this one without VIDHUB_
// settings, which would override the flags the bench passes.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIDHUB_") && !strings.HasPrefix(kv, "NATS_") {
			env = append(env, kv)
		}
	}
	return env
}

type lockedWriter struct{ c *child }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	if w.c.out.Len() < 64<<10 {
		w.c.out.Write(p)
	}
	return len(p), nil
}

// waitLine waits for a stdout line containing s and returns it.
func (c *child) waitLine(s string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line := <-c.lines:
			if strings.Contains(line, s) {
				return line, nil
			}
		case <-c.done:
			return "", fmt.Errorf("bench: %s exited early: %s", c.name, c.output())
		case <-t.C:
			return "", fmt.Errorf("bench: %s did not say %q within %v: %s", c.name, s, timeout, c.output())
		}
	}
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.TrimSpace(c.out.String())
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop ends the child with SIGTERM (SIGKILL after a grace period) and
// waits for it.
func (c *child) stop() {
	c.cancel()
	<-c.done
}

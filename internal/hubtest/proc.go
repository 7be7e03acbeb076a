package hubtest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StopWait is how long Stop and the end of a test give a process to exit
// after its signal before it is killed.
const StopWait = 10 * time.Second

// Env is the environment of a process a test starts: this process's,
// without any VIDHUB_* or NATS_* variable and without DISPLAY (so a
// user's exported NATS_URL, say, cannot change a test's outcome), plus
// kv, each "KEY=value".
func Env(kv ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, "VIDHUB_") || strings.HasPrefix(e, "NATS_") || strings.HasPrefix(e, "DISPLAY=") {
			continue
		}
		env = append(env, e)
	}
	return append(env, kv...)
}

// ProcConfig says how to start a process; the zero value is fine.
type ProcConfig struct {
	// Env is added to the clean environment (see Env), each "KEY=value".
	Env []string
	// Stdout, when set, also receives what the process prints on stdout
	// (a *Stats, say), as it prints it.
	Stdout io.Writer
	// ExtraFiles are passed on as exec.Cmd's.
	ExtraFiles []*os.File
	// Name tags the process's lines in the test log; empty means the
	// binary's base name and first argument.
	Name string
}

// Proc is a process a test started. Its stderr goes to the test log line
// by line as it comes, its stdout and stderr to Stdout and Stderr; on a
// failed test the end of its stdout is logged too. It is stopped, if
// still running, when the test ends.
type Proc struct {
	Name           string
	Cmd            *exec.Cmd
	Stdout, Stderr Buffer

	t       testing.TB
	started time.Time
	done    chan struct{} // closed once the process has exited
	err     error         // Wait's, once done
	ended   time.Time
}

// Start runs bin with args in a clean environment until the test ends.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	return StartProc(t, ProcConfig{}, bin, args...)
}

// StartProc runs bin with args as cfg says until the test ends.
func StartProc(t testing.TB, cfg ProcConfig, bin string, args ...string) *Proc {
	t.Helper()
	name := cfg.Name
	if name == "" {
		name = filepath.Base(bin)
		if len(args) > 0 {
			name += " " + args[0]
		}
	}
	p := &Proc{Name: name, Cmd: exec.Command(bin, args...), t: t, done: make(chan struct{})}
	p.Cmd.Env = Env(cfg.Env...)
	p.Cmd.ExtraFiles = cfg.ExtraFiles
	log := &lineLog{t: t, prefix: name + ": "}
	var stdout io.Writer = &p.Stdout
	if cfg.Stdout != nil {
		stdout = io.MultiWriter(&p.Stdout, cfg.Stdout)
	}
	p.Cmd.Stdout, p.Cmd.Stderr = stdout, io.MultiWriter(&p.Stderr, log)
	// A child that keeps the pipes open must not hold Wait for ever.
	p.Cmd.WaitDelay = 5 * time.Second
	p.started = time.Now()
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		p.ended = time.Now()
		log.flush()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			resume(p.Cmd.Process) // a test may have stopped it (SIGSTOP)
			p.stop(syscall.SIGTERM, StopWait)
		}
		if t.Failed() {
			if out := p.Stdout.String(); out != "" {
				t.Logf("%s: stdout (exit %d):\n%s", name, p.Code(), tail(out, 4000))
			}
		}
	})
	return p
}

// Run runs bin with args in a clean environment (plus env, each
// "KEY=value") to its end, killing it after timeout, and returns it.
func Run(t testing.TB, timeout time.Duration, env []string, bin string, args ...string) *Proc {
	t.Helper()
	p := StartProc(t, ProcConfig{Env: env}, bin, args...)
	if _, ok := p.Wait(timeout); !ok {
		t.Logf("%s: killed after %v", p.Name, timeout)
		p.Kill()
	}
	return p
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Code is the exit code once the process has exited: -1 while it runs
// and when a signal ended it.
func (p *Proc) Code() int {
	if !p.Exited() || p.Cmd.ProcessState == nil {
		return -1
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Err is what exec.Cmd.Wait returned, once the process has exited.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Elapsed is how long the process ran (so far).
func (p *Proc) Elapsed() time.Duration {
	if p.Exited() {
		return p.ended.Sub(p.started)
	}
	return time.Since(p.started)
}

// Output is everything the process printed, stdout then stderr.
func (p *Proc) Output() string { return p.Stdout.String() + p.Stderr.String() }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits at most timeout for the process to exit and returns its
// exit code, and false if it still runs.
func (p *Proc) Wait(timeout time.Duration) (int, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.Code(), true
	case <-t.C:
		return -1, false
	}
}

// Stop sends SIGINT, as Ctrl-C does, waits up to StopWait for the
// process to exit (then kills it) and returns its exit code.
func (p *Proc) Stop() int { return p.stop(os.Interrupt, StopWait) }

// StopWith sends sig, waits up to timeout for the process to exit (then
// kills it) and returns its exit code.
func (p *Proc) StopWith(sig os.Signal, timeout time.Duration) int { return p.stop(sig, timeout) }

func (p *Proc) stop(sig os.Signal, timeout time.Duration) int {
	if !p.Exited() {
		if err := p.Cmd.Process.Signal(sig); err != nil {
			timeout = 0 // the platform has no such signal (Windows): kill it
		}
		if _, ok := p.Wait(timeout); !ok {
			p.t.Logf("%s: still running %v after %v: killing it", p.Name, timeout, sig)
			p.Kill()
		}
	}
	return p.Code()
}

// Kill kills the process and waits for it to go.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// WaitFor waits until cond holds, failing the test after timeout or as
// soon as the process exits without it holding; the failure shows what
// the process printed. cond is called once per poll, never again after
// it held (it may keep state, such as the last screenshot).
func (p *Proc) WaitFor(timeout time.Duration, cond func() bool, format string, args ...any) {
	p.t.Helper()
	held := false
	Eventually(p.t, timeout, func() bool {
		exited := p.Exited() // before cond: the output is complete once exited
		held = cond()
		return held || exited
	}, "%s: "+format+"\n%s", append(append([]any{p.Name}, args...), Lazy(func() any { return p.Output() }))...)
	if !held {
		p.t.Fatalf("%s exited (code %d) before "+format+":\n%s", append(append([]any{p.Name, p.Code()}, args...), p.Output())...)
	}
}

// WaitOutput waits until the process has printed s (on stdout or
// stderr), as WaitFor.
func (p *Proc) WaitOutput(timeout time.Duration, s string) {
	p.t.Helper()
	p.WaitFor(timeout, func() bool { return strings.Contains(p.Output(), s) }, "no %q in its output", s)
}

// WaitMatch waits until re matches what the process printed, as
// WaitFor, and returns the match and its submatches.
func (p *Proc) WaitMatch(timeout time.Duration, re *regexp.Regexp) []string {
	p.t.Helper()
	var m []string
	p.WaitFor(timeout, func() bool { m = re.FindStringSubmatch(p.Output()); return m != nil }, "nothing matches %s in its output", re)
	return m
}

// lineLog sends whole lines to the test log, each with a prefix.
type lineLog struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.log(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	return len(b), nil
}

func (l *lineLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.log(l.buf)
		l.buf = nil
	}
}

func (l *lineLog) log(line []byte) {
	defer func() { _ = recover() }() // the test may have ended
	l.t.Logf("%s%s", l.prefix, line)
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("...%s", s[len(s)-n:])
}

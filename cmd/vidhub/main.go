// Command vidhub is a NATS-brokered publish/subscribe video hub: an
// embedded broker, camera and pattern publishers, desktop and headless
// viewers, and the tools around them, in one binary.
//
// Run "vidhub help" for the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

func init() {
	// OpenCV's HighGUI must run on the main OS thread; the window runs on
	// the main goroutine, so pin it there before anything else starts.
	runtime.LockOSThread()
}

func main() {
	stopDebugStats := startDebugStats(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	stopDebugStats()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err on stderr, prefixed "vidhub: " once (library
// errors carry no program prefix), and returns the process's exit status:
// 0 for none, the error's own status when it carries one (2 for usage
// errors), 1 for the rest.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "vidhub: %v\n", err)
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}

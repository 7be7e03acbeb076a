//go:build !unix

package hubtest

import "os"

// resume does nothing where processes cannot be stopped with SIGSTOP.
func resume(*os.Process) {}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/vidhub/vidhub/internal/media"
)

// debugStatsEnv names the environment variable that turns on debug stats:
// when it holds a file name, the process appends one JSON line of
// debugStats to that file every second and a last one, marked final, on
// its way out. The soak test (internal/soak/) reads them to see goroutines, heap
// and open Mats of processes it cannot look into otherwise; a flag would
// have put a debugging aid into every subcommand's usage.
const debugStatsEnv = "VIDHUB_DEBUG_STATS"

// debugStatsInterval is how often a debug stats line is written.
const debugStatsInterval = time.Second

// debugStats is one line of the debug stats file.
type debugStats struct {
	Time       time.Time `json:"time"`
	PID        int       `json:"pid"`
	Goroutines int       `json:"goroutines"`
	Heap       uint64    `json:"heap"` // bytes of live heap objects
	// Mats is the number of open OpenCV Mats (media.MatCount): -1
	// unless built with -tags matprofile (and OpenCV).
	Mats  int  `json:"mats"`
	Final bool `json:"final,omitempty"`
}

// startDebugStats starts writing debug stats if getenv(debugStatsEnv)
// names a file, and returns the function that writes the final line and
// stops; it is safe to call more than once. Without the variable it does
// nothing. Called from main, so the final line comes after run has
// returned and every component (and every Mat) has been closed.
func startDebugStats(getenv func(string) string) (stop func()) {
	path := getenv(debugStatsEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vidhub: %s: %v (no debug stats)\n", debugStatsEnv, err)
		return func() {}
	}
	enc := json.NewEncoder(f)
	write := func(final bool) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = enc.Encode(debugStats{
			Time: time.Now(), PID: os.Getpid(), Goroutines: runtime.NumGoroutine(),
			Heap: ms.HeapAlloc, Mats: media.MatCount(), Final: final,
		})
	}
	write(false)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(debugStatsInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				write(false)
			}
		}
	})
	return sync.OnceFunc(func() {
		close(done)
		wg.Wait()
		write(true)
		_ = f.Close()
	})
}

//go:build race

package web

// raceEnabled reports whether the race detector is on: it slows Go code
// several times, so CPU-bound helpers run as separate processes.
const raceEnabled = true

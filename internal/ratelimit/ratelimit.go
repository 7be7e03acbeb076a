// Package ratelimit keeps repeated log lines to one per interval: a flood
// of bad frames is counted in full but logged only now and then.
package ratelimit

import (
	"sync"
	"time"
)

// Every lets one event through per interval; the zero value lets one
// through every 10 seconds.
type Every struct {
	Interval time.Duration

	mu   sync.Mutex
	last time.Time
}

// Allow reports whether an event at now may pass.
func (e *Every) Allow(now time.Time) bool {
	iv := e.Interval
	if iv <= 0 {
		iv = 10 * time.Second
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.last.IsZero() && now.Sub(e.last) < iv {
		return false
	}
	e.last = now
	return true
}

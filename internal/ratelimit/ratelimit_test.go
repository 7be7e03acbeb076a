package ratelimit

import (
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	var e Every
	t0 := time.Unix(1000, 0)
	for i, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {time.Second, false}, {9 * time.Second, false}, {10 * time.Second, true}, {11 * time.Second, false}, {25 * time.Second, true}} {
		if got := e.Allow(t0.Add(tc.at)); got != tc.want {
			t.Errorf("%d: Allow(+%v) = %v, want %v", i, tc.at, got, tc.want)
		}
	}
	fast := Every{Interval: time.Millisecond}
	if !fast.Allow(t0) || fast.Allow(t0) || !fast.Allow(t0.Add(time.Millisecond)) {
		t.Error("custom interval not honoured")
	}
}

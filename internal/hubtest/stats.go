package hubtest

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/vidhub/vidhub/subscriber"
)

// Stats reads what "vidhub view --headless --json" (or join) prints: one
// JSON subscriber.TileStats a participant each interval. Give it as a
// process's stdout (ProcConfig.Stdout); it keeps every line with the time
// it arrived. Lines that are not such JSON are skipped.
type Stats struct {
	mu      sync.Mutex
	lines   []StatsLine
	partial []byte
}

// StatsLine is one line of stats and when it arrived.
type StatsLine struct {
	At time.Time
	subscriber.TileStats
}

// Write takes the process's output.
func (s *Stats) Write(b []byte) (int, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial = append(s.partial, b...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		var ts subscriber.TileStats
		if json.Unmarshal(s.partial[:i], &ts) == nil && ts.Participant != "" {
			s.lines = append(s.lines, StatsLine{now, ts})
		}
		s.partial = s.partial[i+1:]
	}
	return len(b), nil
}

// Last returns the newest line of participant, if any.
func (s *Stats) Last(participant string) (StatsLine, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.lines) - 1; i >= 0; i-- {
		if s.lines[i].Participant == participant {
			return s.lines[i], true
		}
	}
	return StatsLine{}, false
}

// Frames is participant's frame count in its newest line (0 if none).
func (s *Stats) Frames(participant string) uint64 {
	l, _ := s.Last(participant)
	return l.Frames
}

// Since returns the lines of participant that arrived after t.
func (s *Stats) Since(participant string, t time.Time) []StatsLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []StatsLine
	for _, l := range s.lines {
		if l.Participant == participant && l.At.After(t) {
			out = append(out, l)
		}
	}
	return out
}

// Between returns the lines of participant that arrived in (from, to].
func (s *Stats) Between(participant string, from, to time.Time) []StatsLine {
	return slices.DeleteFunc(s.Since(participant, from), func(l StatsLine) bool { return l.At.After(to) })
}

// MedianP50 is the median of the lines' latency p50, over the lines with
// frames (fps above 0), and false when there are none.
func MedianP50(lines []StatsLine) (float64, bool) {
	var v []float64
	for _, l := range lines {
		if l.FPS > 0 {
			v = append(v, l.LatencyP50)
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	return v[len(v)/2], true
}

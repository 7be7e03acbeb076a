package bench

import (
	"math"
	"slices"
	"sync"
)

// samples collects latency samples in milliseconds from many goroutines.
type samples struct {
	mu sync.Mutex
	v  []float64
}

func (s *samples) add(ms float64) {
	s.mu.Lock()
	if len(s.v) < maxSamples {
		s.v = append(s.v, ms)
	}
	s.mu.Unlock()
}

func (s *samples) addAll(ms []float64) {
	s.mu.Lock()
	n := min(len(ms), maxSamples-len(s.v))
	s.v = append(s.v, ms[:max(n, 0)]...)
	s.mu.Unlock()
}

// maxSamples bounds the latency samples kept per scenario (about 100
// viewers for 30 s at 30 fps).
const maxSamples = 1 << 18

// sorted returns a sorted copy.
func (s *samples) sorted() []float64 {
	s.mu.Lock()
	v := slices.Clone(s.v)
	s.mu.Unlock()
	slices.Sort(v)
	return v
}

// quantile of sorted values by linear interpolation; 0 for none.
func quantile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	pos := q * float64(n-1)
	i := int(math.Floor(pos))
	if i >= n-1 {
		return sorted[n-1]
	}
	f := pos - float64(i)
	return sorted[i]*(1-f) + sorted[i+1]*f
}

// cdfPoints are the quantiles kept for the chart: 0, 1, ..., 100 %.
func cdfPoints(sorted []float64) []float64 {
	if len(sorted) == 0 {
		return nil
	}
	out := make([]float64, 101)
	for i := range out {
		out[i] = round3(quantile(sorted, float64(i)/100))
	}
	return out
}

// median of unsorted values.
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return quantile(s, 0.5)
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round3(a / b)
}

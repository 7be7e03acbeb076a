package publisher

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vidhub/vidhub/protocol"
)

// How the publisher adapts an H.264 layer it encodes to the path to its
// viewers (docs/architecture.md, "How the publisher adapts"). The
// publisher's own connection, to an edge broker on the same machine,
// never sees the congestion of the WAN link beyond it: its viewers do,
// and say so in receiver reports (protocol.Report).
const (
	// reportMaxAge: older reports are ignored.
	reportMaxAge = 2 * time.Second
	// baseWindow is how far back the lowest delay a viewer reported
	// counts as its uncongested delay: the clocks of publisher and
	// viewer may differ, so only delay above it, queueing, means anything.
	baseWindow = 10 * time.Second
	// queueHigh is the queueing delay that means congestion.
	queueHigh = 100 * time.Millisecond
	// A queueing delay that rose in each of riseReports reports in a row,
	// by riseMin in all, means congestion too: a queue is building.
	riseReports = 4
	riseMin     = 30 * time.Millisecond
	// A queueing delay that fell by drainMin since the viewer's last
	// report is draining: the last step down works, take no other.
	drainMin = 20 * time.Millisecond
	// lossHigh is the share of frames missed that means congestion.
	lossHigh = 0.03
	// rateLow: a viewer that received less than this share of what the
	// publisher sent in the last second is congested.
	rateLow = 0.5
	// downFactor times the rate the viewers received is the new bitrate:
	// below the path's capacity, so the queue drains; lower still when
	// the queue is long, so that it drains within drainWithin (but not
	// below minDownFactor of the capacity).
	downFactor    = 0.75
	drainWithin   = 3 * time.Second
	minDownFactor = 0.25
	// downHold is the least time between two steps down. Besides, the
	// reports that follow one show frames captured before it (as old as
	// their queueing delay) for a while: those do not count.
	downHold = time.Second
	// calmBeforeUp is how long no congestion must last before climbing,
	// upEvery the time between two steps up, upFactor each step's size.
	calmBeforeUp = 5 * time.Second
	upEvery      = time.Second
	upFactor     = 1.15
	// Near the capacity measured at the last congestion (the ceiling),
	// above nearShare of it, the climb slows to nearFactor every
	// nearEvery: it probes gently where the queue built last time,
	// instead of running into it again and again. Past farShare of the
	// ceiling without congestion, or after ceilingFor without any, the
	// path has widened: it climbs at full pace again.
	nearShare  = 0.8
	farShare   = 1.25
	nearFactor = 1.05
	nearEvery  = 3 * time.Second
	ceilingFor = 30 * time.Second
	// maxReporters bounds the viewers followed per layer: reports are
	// cheap to send, and anyone who may view the room may send them.
	maxReporters = 256
	// minFloor is the lowest floor bitrate a layer takes by default.
	minFloor = 32_000
)

// rateState is what an adapted layer encodes: a bitrate, whether it
// codes every other captured frame only, and whether it codes half its
// width and height.
type rateState struct {
	Bitrate  int
	HalfFPS  bool
	HalfSize bool
}

// bitrateFor is the bitrate at which a layer in state s sends rate bits
// per second.
func (s rateState) bitrateFor(rate float64) int {
	if s.HalfFPS {
		return int(2 * rate)
	}
	return int(rate)
}

// rate is what a layer in state s sends, in bits per second: the encoder
// spends Bitrate / fps on each picture, so at half the frame rate it
// sends half its bitrate.
func (s rateState) rate() float64 {
	if s.HalfFPS {
		return float64(s.Bitrate) / 2
	}
	return float64(s.Bitrate)
}

// adapter decides the rate of one H.264 layer from its viewers' reports.
// Reports come from a NATS callback, decisions from the publish
// goroutine; the clock is the caller's, so tests need no sleeps.
type adapter struct {
	layer    protocol.Layer
	max, min int // bits per second
	// w, h is the layer's full size, hw, hh its half size; hw is 0 when
	// it does not step down in size (withHalfSize). halfMin is the floor
	// at half the size: min's bits per pixel.
	w, h, hw, hh int
	halfMin      int

	mu      sync.Mutex
	state   rateState
	viewers map[string]*reporter
	// sent holds the bytes the layer published at each of the last
	// decisions (newest last), for the rate the viewers should see.
	sent []sentMark

	lastDown, lastUp, lastCongested time.Time
	// reopened is when the encoder last reopened at a new size: the
	// publisher's own stall, not the path's queue, delayed the frames
	// captured before it.
	reopened   time.Time
	downs, ups int
	// ceiling is the rate the viewers received when the last step down
	// was taken (bits per second).
	ceiling float64
}

// reporter is what the adapter keeps of one viewer.
type reporter struct {
	last  time.Time
	rep   protocol.Report
	prev  protocol.Report // the one before, for a receive rate over two
	mins  []delayMark     // the lowest delay of each report in baseWindow
	queue []time.Duration
}

type delayMark struct {
	at  time.Time
	min int // ms
}

type sentMark struct {
	at    time.Time
	bytes uint64
}

func newAdapter(l protocol.Layer, maxBitrate, minBitrate int) *adapter {
	minBitrate = min(max(minBitrate, minFloor), maxBitrate)
	return &adapter{layer: l, max: maxBitrate, min: minBitrate, state: rateState{Bitrate: maxBitrate},
		viewers: map[string]*reporter{}}
}

// withHalfSize lets the adapter halve the layer's size, w x h, as its
// last step down, to even dimensions no smaller than least w x least h
// (the small layer's size); a layer too small already does not.
func (a *adapter) withHalfSize(w, h, leastW, leastH int) *adapter {
	a.w, a.h = w, h
	if hw, hh := w/2&^1, h/2&^1; hw >= max(2, leastW) && hh >= max(2, leastH) {
		a.hw, a.hh = hw, hh
		// A quarter of the pixels at the same bitrate would cut nothing.
		a.halfMin = max(minFloor, int(float64(a.min)*float64(hw*hh)/float64(w*h)))
	}
	return a
}

// floor is the lowest bitrate at s's size.
func (a *adapter) floor(s rateState) int {
	if s.HalfSize {
		return a.halfMin
	}
	return a.min
}

// size is the size state s codes.
func (a *adapter) size(s rateState) (w, h int) {
	if s.HalfSize && a.hw > 0 {
		return a.hw, a.hh
	}
	return a.w, a.h
}

// report takes one receiver report about the adapter's layer.
func (a *adapter) report(r protocol.Report, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.viewers[r.From]
	if v == nil {
		if len(a.viewers) >= maxReporters {
			a.forget(now)
			if len(a.viewers) >= maxReporters {
				return
			}
		}
		v = &reporter{}
		a.viewers[r.From] = v
	}
	v.last, v.prev, v.rep = now, v.rep, r
	if r.Frames == 0 {
		return // no delay to learn from
	}
	v.mins = append(v.mins, delayMark{at: now, min: r.DelayMin})
	for len(v.mins) > 0 && now.Sub(v.mins[0].at) > baseWindow {
		v.mins = v.mins[1:]
	}
	base := r.DelayMin
	for _, m := range v.mins {
		base = min(base, m.min)
	}
	v.queue = append(v.queue, time.Duration(r.DelayMin-base)*time.Millisecond)
	if len(v.queue) > riseReports {
		v.queue = v.queue[len(v.queue)-riseReports:]
	}
}

// forget drops the viewers whose reports are too old. a.mu is held.
func (a *adapter) forget(now time.Time) {
	for name, v := range a.viewers {
		if now.Sub(v.last) > reportMaxAge {
			delete(a.viewers, name)
		}
	}
}

// verdict is what one viewer's latest report says.
type verdict struct {
	congested bool
	draining  bool // congested, but its queue shrinks
	why       string
	rate      float64       // bits per second received
	queue     time.Duration // queueing delay
}

// judge reads viewer v's state; sentRate is what the layer published in
// the last second, bits per second (0: unknown).
func (v *reporter) judge(sentRate float64) verdict {
	r := v.rep
	// Whether far less arrived than was sent is judged over the last two
	// reports (a keyframe lands in one of them); the capacity is the lower
	// of that and the last report's rate (at the onset of congestion the
	// one before still shows the clear path).
	out := verdict{rate: r.ReceiveRate()}
	avg := out.rate
	if p := v.prev; p.Interval > 0 {
		avg = float64(r.Bytes+p.Bytes) * 8 * 1000 / float64(r.Interval+p.Interval)
		out.rate = min(out.rate, avg)
	}
	q := time.Duration(0)
	if n := len(v.queue); n > 0 {
		q = v.queue[n-1]
	}
	out.queue = q
	rising := len(v.queue) == riseReports && v.queue[riseReports-1]-v.queue[0] >= riseMin
	for i := 1; rising && i < len(v.queue); i++ {
		rising = v.queue[i] > v.queue[i-1]
	}
	expected := r.Frames + r.Missed
	draining := len(v.queue) >= 2 && v.queue[len(v.queue)-2]-q >= drainMin
	switch {
	case q > queueHigh && draining:
		out.draining = true
	case q > queueHigh:
		out.congested, out.why = true, fmt.Sprintf("%d ms queueing delay", q.Milliseconds())
	case rising:
		out.congested, out.why = true, fmt.Sprintf("queueing delay rising to %d ms", q.Milliseconds())
	case expected >= 5 && float64(r.Missed) > lossHigh*float64(expected):
		out.congested, out.why = true, fmt.Sprintf("%.0f%% of frames lost", 100*float64(r.Missed)/float64(expected))
	case sentRate > 0 && avg < rateLow*sentRate:
		out.congested, out.why = true, fmt.Sprintf("%.2f of %.2f Mbit/s received", avg/1e6, sentRate/1e6)
	}
	return out
}

// predates reports whether the frames of v's last report, which waited
// q in a queue, were captured before t.
func (v *reporter) predates(q time.Duration, t time.Time) bool {
	return v.last.Add(-q - protocol.ReportEvery).Before(t)
}

// published notes the layer's published byte count at now.
func (a *adapter) published(bytes uint64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sent = append(a.sent, sentMark{at: now, bytes: bytes})
	for len(a.sent) > 2 && now.Sub(a.sent[1].at) >= time.Second {
		a.sent = a.sent[1:]
	}
}

// sentRate is what the layer published over the last second or so, bits
// per second; 0 before it knows. a.mu is held.
func (a *adapter) sentRate() float64 {
	if len(a.sent) < 2 {
		return 0
	}
	first, last := a.sent[0], a.sent[len(a.sent)-1]
	d := last.at.Sub(first.at)
	if d < 500*time.Millisecond {
		return 0
	}
	return float64(last.bytes-first.bytes) * 8 / d.Seconds()
}

// decide looks at the fresh reports and returns the layer's new state
// and why it changed; changed is false when it holds. Without reports it
// holds: nobody says anything about the path.
func (a *adapter) decide(now time.Time) (s rateState, why string, changed bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.forget(now)
	if len(a.viewers) == 0 {
		return a.state, "", false
	}
	sent := a.sentRate()
	var congested []verdict
	draining := 0
	for _, v := range a.viewers {
		switch vd := v.judge(sent); {
		case vd.draining || vd.congested && v.predates(vd.queue, latest(a.lastDown, a.reopened)):
			draining++
		case vd.congested:
			congested = append(congested, vd)
		}
	}
	old := a.state
	if 2*(len(congested)+draining) > len(a.viewers) {
		// Congested: no climbing. A step down only on news: a queue
		// that drains says the last step works, and frames captured
		// before it say nothing of it.
		a.lastCongested = now
		if 2*len(congested) <= len(a.viewers) || now.Sub(a.lastDown) < downHold {
			return a.state, "", false
		}
		slices.SortFunc(congested, func(x, y verdict) int { return cmp.Compare(x.rate, y.rate) })
		mid := congested[len(congested)/2]
		s, changed = a.stepDown(mid.rate, mid.queue)
		if !changed {
			return a.state, "", false
		}
		a.lastDown, a.downs, a.ceiling = now, a.downs+1, mid.rate
		why = fmt.Sprintf("%d of %d viewers see %s (%.2f Mbit/s received): %s", len(congested), len(a.viewers), mid.why, mid.rate/1e6, a.describeStep(old, s))
		return s, why, true
	}
	if now.Sub(a.lastCongested) < calmBeforeUp {
		return a.state, "", false
	}
	factor, every := upFactor, upEvery
	if r := a.state.rate(); now.Sub(a.lastCongested) < ceilingFor && r*upFactor > nearShare*a.ceiling && r < farShare*a.ceiling {
		factor, every = nearFactor, nearEvery
	}
	if now.Sub(a.lastUp) < every {
		return a.state, "", false
	}
	if s, changed = a.stepUp(factor); !changed {
		return a.state, "", false
	}
	a.lastUp, a.ups = now, a.ups+1
	why = fmt.Sprintf("no congestion for %v: %s", now.Sub(a.lastCongested).Round(time.Second), a.describeStep(old, s))
	if a.lastCongested.IsZero() {
		why = "no congestion: " + a.describeStep(old, s)
	}
	return s, why, true
}

// stepDown lowers the rate below capacity, the rate the viewers received
// (bits per second), with a queue of q in front of them: to downFactor
// of it or less (so the queue drains within drainWithin), and to at most
// downFactor of what it was; not below the floor of its rung, and from
// the floor one rung down (half the frame rate, then half the size) at
// the rate it wants, or that rung's floor. One rung a step: a received
// rate is only as high as what was sent, and a loaded viewer's reports
// are noisy, so a single report must not take the layer to its lowest.
// a.mu is held.
func (a *adapter) stepDown(capacity float64, q time.Duration) (rateState, bool) {
	f := min(downFactor, max(minDownFactor, 1-q.Seconds()/drainWithin.Seconds()))
	want := min(f*capacity, downFactor*a.state.rate())
	s := a.state
	switch b, floor := s.bitrateFor(want), a.floor(s); {
	case b >= floor:
		s.Bitrate = b
	case s.Bitrate > floor:
		s.Bitrate = floor
	case a.lower(&s):
		s.Bitrate = max(s.bitrateFor(want), a.floor(s))
	default:
		return s, false // the lowest it goes
	}
	a.state = s
	return s, true
}

// lower takes s one rung down, keeping its bitrate: half the frame rate,
// then half the size; false at the lowest.
func (a *adapter) lower(s *rateState) bool {
	switch {
	case !s.HalfFPS:
		s.HalfFPS = true
	case !s.HalfSize && a.hw > 0:
		s.HalfSize = true
	default:
		return false
	}
	return true
}

// stepUp climbs back in the reverse order, and without a jump: each rung
// comes back only once the bitrate has climbed (by factor a step) to
// where it sends what the rung above sends at its floor. At half the
// size, to the floor of the full size; at half the frame rate, to twice
// the floor, then the full frame rate at the floor. The climb's pace,
// gentle near the last congestion, thus holds for every rung, and a
// link that carries only a lower rung is probed, not run into. a.mu is
// held.
func (a *adapter) stepUp(factor float64) (rateState, bool) {
	s := a.state
	switch twice := min(2*a.min, a.max); {
	case s.HalfSize && s.Bitrate < a.min:
		s.Bitrate = climb(s.Bitrate, factor, a.min)
	case s.HalfSize:
		s.HalfSize = false
	case s.HalfFPS && s.Bitrate < twice:
		s.Bitrate = climb(s.Bitrate, factor, twice)
	case s.HalfFPS:
		s.HalfFPS, s.Bitrate = false, max(a.min, s.Bitrate/2)
	case s.Bitrate < a.max:
		s.Bitrate = climb(s.Bitrate, factor, a.max)
	default:
		return s, false
	}
	a.state = s
	return s, true
}

// climb raises bitrate b by factor, to top at most; within 5% of top it
// takes top.
func climb(b int, factor float64, top int) int {
	if b = int(float64(b) * factor); b > top*95/100 {
		return top
	}
	return b
}

// reopen notes that the encoder reopened at a new size, done at t.
func (a *adapter) reopen(t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reopened = t
}

// latest is the later of x and y.
func latest(x, y time.Time) time.Time {
	if x.After(y) {
		return x
	}
	return y
}

// current is the state the layer codes.
func (a *adapter) current() rateState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// counts returns the steps taken down and up.
func (a *adapter) counts() (downs, ups int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.downs, a.ups
}

// sizeFailed takes back a step to s that changed the size but could not
// be applied: the adapter stays at old. A failed step down ends the size
// rung for good; a failed step up is tried again on the next.
func (a *adapter) sizeFailed(s, old rateState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == s {
		a.state = old
	}
	if s.HalfSize {
		a.hw, a.hh = 0, 0
	}
}

// describeStep says what changed from x to y, for the log.
func (a *adapter) describeStep(x, y rateState) string {
	var parts []string
	if x.HalfSize != y.HalfSize {
		xw, xh := a.size(x)
		yw, yh := a.size(y)
		what := "full size"
		if y.HalfSize {
			what = "size halved"
		}
		parts = append(parts, fmt.Sprintf("%s: %dx%d → %dx%d", what, xw, xh, yw, yh))
	}
	switch {
	case x.HalfFPS != y.HalfFPS && y.HalfFPS:
		parts = append(parts, "frame rate halved")
	case x.HalfFPS != y.HalfFPS:
		parts = append(parts, "full frame rate")
	}
	parts = append(parts, fmt.Sprintf("bitrate %.2f → %.2f Mbit/s", float64(x.Bitrate)/1e6, float64(y.Bitrate)/1e6))
	return strings.Join(parts, ", ")
}

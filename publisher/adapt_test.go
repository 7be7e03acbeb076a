package publisher

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vidhub/vidhub/protocol"
)

// link is one viewer's path in the synthetic runs below: a queue in
// front of capacity bits per second, with clock the offset of the
// viewer's clock and base its uncongested one-way delay.
type link struct {
	name     string
	capacity float64
	clock    time.Duration
	base     time.Duration
	queue    []chunk // what waits, oldest first
}

// chunk is what the publisher sent in one round, evenly over the dt
// before at; bits of it wait.
type chunk struct {
	at          time.Time
	bits, total float64
}

// carry queues what was sent at now and passes on what the link carries
// in dt: bits, and the capture time of the newest frame among them.
func (l *link) carry(now time.Time, sent float64, dt time.Duration) (bits float64, newest time.Time) {
	l.queue = append(l.queue, chunk{at: now, bits: sent, total: sent})
	budget := l.capacity * dt.Seconds()
	for budget > 0 && len(l.queue) > 0 {
		c := &l.queue[0]
		n := min(budget, c.bits)
		c.bits -= n
		budget -= n
		bits += n
		done := (c.total - c.bits) / c.total // of the chunk, sent in order
		newest = c.at.Add(-time.Duration((1 - done) * float64(dt)))
		if c.bits <= 0 {
			l.queue = l.queue[1:]
		}
	}
	return bits, newest
}

// backlog is how long what waits takes to pass.
func (l *link) backlog() time.Duration {
	var bits float64
	for _, c := range l.queue {
		bits += c.bits
	}
	return time.Duration(bits / l.capacity * float64(time.Second))
}

// sim feeds an adapter the reports of viewers behind links, each
// ReportEvery, with the publisher sending exactly its bitrate (halved at
// half the frame rate), and decides after each round.
type sim struct {
	t     *testing.T
	a     *adapter
	now   time.Time
	links []*link
	sent  uint64
	log   []string
}

func newSim(t *testing.T, a *adapter, links ...*link) *sim {
	return &sim{t: t, a: a, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), links: links}
}

// run runs d of rounds and returns the state at the end.
func (s *sim) run(d time.Duration) rateState {
	dt := protocol.ReportEvery
	for end := s.now.Add(d); s.now.Before(end); {
		s.now = s.now.Add(dt)
		st := s.a.state
		rate := float64(st.Bitrate)
		if st.HalfFPS {
			rate /= 2
		}
		in := rate * dt.Seconds()
		s.sent += uint64(in / 8)
		s.a.published(s.sent, s.now)
		for _, l := range s.links {
			out, newest := l.carry(s.now, in, dt)
			if out == 0 {
				s.a.report(protocol.Report{From: l.name, Layer: protocol.H264, Interval: int(dt.Milliseconds())}, s.now)
				continue
			}
			delay := l.base + s.now.Sub(newest)
			ms := int((delay + l.clock).Milliseconds())
			frames := 15
			if st.HalfFPS {
				frames = 8
			}
			s.a.report(protocol.Report{From: l.name, Layer: protocol.H264, Interval: int(dt.Milliseconds()),
				Frames: frames, Bytes: int(out / 8), DelayMin: ms, DelayMax: ms + 20}, s.now)
		}
		if _, why, ok := s.a.decide(s.now); ok {
			s.log = append(s.log, fmt.Sprintf("%v %s", s.now.Format("04:05.0"), why))
		}
	}
	return s.a.state
}

func TestAdaptStepsDownAndClimbsBack(t *testing.T) {
	a := newAdapter(protocol.H264, 2_000_000, 300_000)
	l := &link{name: "v1", capacity: 10e6, clock: -3 * time.Hour, base: 40 * time.Millisecond}
	s := newSim(t, a, l)
	if st := s.run(5 * time.Second); st.Bitrate != 2_000_000 || st.HalfFPS {
		t.Fatalf("on a clear path: %+v, want the full 2 Mbit/s", st)
	}
	l.capacity = 1e6 // the link drops to 1 Mbit/s
	start := s.now
	for s.a.state.Bitrate >= 1_000_000 && s.now.Sub(start) < 3*time.Second {
		s.run(protocol.ReportEvery)
	}
	if st := s.a.state; st.Bitrate >= 1_000_000 {
		t.Fatalf("3 s after the link fell to 1 Mbit/s: %+v\n%s", st, strings.Join(s.log, "\n"))
	}
	t.Logf("adapted in %v", s.now.Sub(start))
	st := s.run(20 * time.Second)
	if st.Bitrate > 1_000_000 || st.Bitrate < 500_000 || st.HalfFPS {
		t.Errorf("on a 1 Mbit/s link after 20 s: %+v, want 0.5 to 1 Mbit/s at the full frame rate", st)
	}
	if q := l.backlog(); q > 300*time.Millisecond {
		t.Errorf("queue of %v after 20 s: a backlog\n%s", q, strings.Join(s.log, "\n"))
	}
	l.capacity = 10e6 // lifted
	if st := s.run(30 * time.Second); st.Bitrate != 2_000_000 {
		t.Errorf("30 s after the link came back: %+v, want the full 2 Mbit/s again\n%s", st, strings.Join(s.log, "\n"))
	}
	downs, ups := a.counts()
	if downs == 0 || ups == 0 {
		t.Errorf("%d steps down, %d up", downs, ups)
	}
	t.Logf("%d down, %d up:\n%s", downs, ups, strings.Join(s.log, "\n"))
}

func TestAdaptFloorThenFrameRate(t *testing.T) {
	a := newAdapter(protocol.H264, 2_000_000, 500_000)
	l := &link{name: "v1", capacity: 200_000, base: 20 * time.Millisecond}
	s := newSim(t, a, l)
	s.run(time.Second)
	st := s.run(10 * time.Second)
	if !st.HalfFPS || st.Bitrate != 500_000 {
		t.Errorf("on a 200 kbit/s link with a 500 kbit/s floor: %+v, want the floor at half the frame rate\n%s", st, strings.Join(s.log, "\n"))
	}
	// The link comes back: the bitrate climbs at half the frame rate
	// until the full frame rate costs no more.
	l.capacity = 5e6
	if st := s.run(15 * time.Second); st.HalfFPS || st.Bitrate < 500_000 {
		t.Errorf("15 s after the link came back: %+v, want the full frame rate again\n%s", st, strings.Join(s.log, "\n"))
	}
	if up := slices.IndexFunc(s.log, func(l string) bool { return strings.Contains(l, "full frame rate, bitrate 1.00 → 0.50") }); up < 0 {
		t.Errorf("the frame rate came back other than at twice the floor, without a jump:\n%s", strings.Join(s.log, "\n"))
	}
}

// TestAdaptMajority: one viewer on a bad link of its own does not drag
// the others down; two of three do.
func TestAdaptMajority(t *testing.T) {
	a := newAdapter(protocol.H264, 2_000_000, 100_000)
	bad := &link{name: "bad", capacity: 300_000, base: 30 * time.Millisecond}
	s := newSim(t, a, bad,
		&link{name: "good1", capacity: 10e6, base: 10 * time.Millisecond},
		&link{name: "good2", capacity: 10e6, clock: time.Minute, base: 80 * time.Millisecond})
	if st := s.run(10 * time.Second); st.Bitrate != 2_000_000 {
		t.Errorf("one viewer of three on a slow link: %+v, want 2 Mbit/s held\n%s", st, strings.Join(s.log, "\n"))
	}
	s.links[1].capacity = 300_000
	if st := s.run(3 * time.Second); st.Bitrate >= 2_000_000 {
		t.Errorf("two viewers of three on slow links: %+v, want a step down", st)
	}
}

func TestAdaptLossAndSilence(t *testing.T) {
	a := newAdapter(protocol.H264, 2_000_000, 100_000)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, _, changed := a.decide(now); changed {
		t.Error("changed without reports")
	}
	a.report(protocol.Report{From: "v", Layer: protocol.H264, Interval: 500, Frames: 12, Missed: 3, Bytes: 100_000}, now)
	st, why, changed := a.decide(now)
	if !changed || st.Bitrate != int(downFactor*1_600_000) || !strings.Contains(why, "20% of frames lost") {
		t.Errorf("20%% loss at 1.6 Mbit/s received: %+v %q", st, why)
	}
	// Reports stop: the rate holds, however long.
	for i := range 100 {
		if _, _, changed := a.decide(now.Add(time.Duration(i) * time.Second)); changed {
			t.Fatalf("changed %d s after the last report", i)
		}
	}
}

// TestAdaptProbesGently: on a link that stays at 1 Mbit/s, the climb
// slows near the rate measured at the last congestion, so the publisher
// runs into the queue rarely (every 20 s or so), not every few seconds.
func TestAdaptProbesGently(t *testing.T) {
	a := newAdapter(protocol.H264, 2_000_000, 100_000)
	l := &link{name: "v1", capacity: 1e6, base: 30 * time.Millisecond}
	s := newSim(t, a, l)
	s.run(10 * time.Second) // adapted
	downs, _ := a.counts()
	var worst time.Duration
	for range 120 {
		s.run(protocol.ReportEvery * 2)
		worst = max(worst, l.backlog())
	}
	more, ups := a.counts()
	// Climbing as fast as from far below (15% a second) would hit the
	// queue every 8 s or so, 15 times in these 2 minutes.
	t.Logf("in 2 min on a steady 1 Mbit/s link: %d steps down, %d up, longest queue %v\n%s", more-downs, ups, worst, strings.Join(s.log, "\n"))
	if more-downs > 6 {
		t.Errorf("%d steps down in 2 min on a steady link: the climb keeps running into the queue", more-downs)
	}
	if worst > 300*time.Millisecond {
		t.Errorf("a queue of %v on a steady link", worst)
	}
}

// TestAdaptSizeLast: on a link too slow even for the floor at half the
// frame rate, the size halves (to the floor's bits per pixel); when the
// link comes back, the size returns first, then the frame rate.
func TestAdaptSizeLast(t *testing.T) {
	a := newAdapter(protocol.H264, 2_000_000, 400_000).withHalfSize(1280, 720, 320, 180)
	l := &link{name: "v1", capacity: 180_000, base: 20 * time.Millisecond}
	s := newSim(t, a, l)
	start := s.now
	for !s.a.state.HalfSize && s.now.Sub(start) < time.Minute {
		s.run(protocol.ReportEvery)
	}
	st := s.a.state
	if !st.HalfFPS || !st.HalfSize || st.Bitrate < 100_000 || st.rate() > l.capacity {
		t.Fatalf("a minute on a 180 kbit/s link with a 400 kbit/s floor: %+v, want half the size at half the frame rate, at 100 kbit/s (a quarter of the floor) or more, below the link's rate\n%s", st, strings.Join(s.log, "\n"))
	}
	if w, h := a.size(st); w != 640 || h != 360 {
		t.Errorf("half of 1280x720 is %dx%d", w, h)
	}
	if !slices.ContainsFunc(s.log, func(l string) bool { return strings.Contains(l, "size halved: 1280x720 → 640x360") }) {
		t.Errorf("no step says the size halved:\n%s", strings.Join(s.log, "\n"))
	}
	// Below the link's rate now: the queue drains.
	q := l.backlog()
	if s.run(4 * time.Second); l.backlog() >= q {
		t.Errorf("the queue went from %v to %v in the 4 s after the size halved\n%s", q, l.backlog(), strings.Join(s.log, "\n"))
	}
	// The link comes back: the size first, then the frame rate, each
	// once the bitrate has climbed to where it costs no more.
	l.capacity = 5e6
	n := len(s.log)
	st = s.run(40 * time.Second)
	if st.HalfSize || st.HalfFPS || st.Bitrate <= 400_000 {
		t.Errorf("40 s after the link came back: %+v, want the full size and frame rate, climbing\n%s", st, strings.Join(s.log, "\n"))
	}
	up := s.log[n:]
	size := slices.IndexFunc(up, func(l string) bool {
		return strings.Contains(l, "full size: 640x360 → 1280x720, bitrate 0.40 → 0.40")
	})
	fps := slices.IndexFunc(up, func(l string) bool { return strings.Contains(l, "full frame rate, bitrate 0.80 → 0.40") })
	if size < 0 || fps < size {
		t.Errorf("the climb, want the size first at the floor, then the frame rate at twice it, without a jump:\n%s", strings.Join(up, "\n"))
	}
	t.Logf("\n%s", strings.Join(s.log, "\n"))
}

// TestAdaptRungsProbeGently: on a link that carries the half size but
// not the full size at its floor, the publisher stays at the half size
// and uses the link, probing it gently, instead of returning to the full
// size every few seconds (each return reopens the encoder, then runs
// into the queue).
func TestAdaptRungsProbeGently(t *testing.T) {
	a := newAdapter(protocol.H264, 2_000_000, 400_000).withHalfSize(1280, 720, 320, 180)
	l := &link{name: "v1", capacity: 150_000, base: 20 * time.Millisecond}
	s := newSim(t, a, l)
	// Settled: at half the size, with the queue built on the way down
	// (2 Mbit/s into 150 kbit/s) drained.
	start := s.now
	for (!s.a.state.HalfSize || l.backlog() > 200*time.Millisecond) && s.now.Sub(start) < 2*time.Minute {
		s.run(protocol.ReportEvery)
	}
	if !s.a.state.HalfSize || l.backlog() > 200*time.Millisecond {
		t.Fatalf("2 min on a 150 kbit/s link with a 400 kbit/s floor: %+v, a queue of %v\n%s", s.a.state, l.backlog(), strings.Join(s.log, "\n"))
	}
	t.Logf("settled after %v:\n%s", s.now.Sub(start), strings.Join(s.log, "\n"))
	downs, _ := a.counts()
	n, sent := len(s.log), s.sent
	var worst time.Duration
	for range 120 {
		s.run(protocol.ReportEvery * 2)
		worst = max(worst, l.backlog())
	}
	more, _ := a.counts()
	log := s.log[n:]
	rate := float64(s.sent-sent) * 8 / 120
	t.Logf("in 2 min on a steady 150 kbit/s link: %d steps down, %.0f kbit/s sent, longest queue %v\n%s", more-downs, rate/1000, worst, strings.Join(log, "\n"))
	if sizes := slices.IndexFunc(log, func(l string) bool { return strings.Contains(l, "size") }); sizes >= 0 {
		t.Errorf("the size changed on a steady link: %s", log[sizes])
	}
	if more-downs > 6 {
		t.Errorf("%d steps down in 2 min on a steady link: the climb keeps running into the queue", more-downs)
	}
	if rate < 0.6*l.capacity {
		t.Errorf("sent %.0f kbit/s on a %.0f kbit/s link: it does not use the link", rate/1000, l.capacity/1000)
	}
	if worst > 500*time.Millisecond {
		t.Errorf("a queue of %v on a steady link", worst)
	}
}

// TestAdaptSizeFloor: a layer at the small layer's size already, or one
// whose half would be below it, does not step down in size; 640x360
// halves to 320x180, no further.
func TestAdaptSizeFloor(t *testing.T) {
	for _, c := range []struct{ w, h, hw, hh int }{
		{320, 180, 0, 0}, {500, 282, 0, 0}, {640, 360, 320, 180}, {1920, 1080, 960, 540}, {1278, 718, 638, 358},
	} {
		lw, lh := protocol.LoSize(c.w, c.h)
		a := newAdapter(protocol.H264, 1_000_000, 200_000).withHalfSize(c.w, c.h, lw, lh)
		if a.hw != c.hw || a.hh != c.hh {
			t.Errorf("%dx%d (small layer %dx%d) halves to %dx%d, want %dx%d", c.w, c.h, lw, lh, a.hw, a.hh, c.hw, c.hh)
		}
		a.state = rateState{Bitrate: a.min, HalfFPS: true}
		s, changed := a.stepDown(10_000, 0)
		if changed != (c.hw > 0) || s.HalfSize != changed {
			t.Errorf("%dx%d at the floor at half the frame rate steps down to %+v (%v)", c.w, c.h, s, changed)
		}
	}
}

// TestAdaptStepDownRungs: a step down below the floor takes the floor;
// from the floor, one rung down, at the rate wanted or that rung's floor.
func TestAdaptStepDownRungs(t *testing.T) {
	for _, c := range []struct {
		from     rateState
		capacity float64 // received, bits per second
		want     rateState
	}{
		{rateState{Bitrate: 2_000_000}, 1_000_000, rateState{Bitrate: 750_000}},
		{rateState{Bitrate: 500_000}, 400_000, rateState{Bitrate: 400_000}},                // 300 kbit/s: the floor first
		{rateState{Bitrate: 400_000}, 380_000, rateState{Bitrate: 570_000, HalfFPS: true}}, // from the floor: 285 kbit/s at 15 fps
		{rateState{Bitrate: 2_000_000}, 150_000, rateState{Bitrate: 400_000}},              // 112 kbit/s: one rung a step
		{rateState{Bitrate: 400_000, HalfFPS: true}, 150_000, rateState{Bitrate: 225_000, HalfFPS: true, HalfSize: true}},
		{rateState{Bitrate: 100_000, HalfFPS: true, HalfSize: true}, 10_000, rateState{Bitrate: 100_000, HalfFPS: true, HalfSize: true}},
	} {
		a := newAdapter(protocol.H264, 2_000_000, 400_000).withHalfSize(1280, 720, 320, 180)
		a.state = c.from
		got, changed := a.stepDown(c.capacity, 0)
		if got != c.want || changed != (c.from != c.want) {
			t.Errorf("from %+v, %.0f kbit/s received: %+v (changed %v), want %+v", c.from, c.capacity/1000, got, changed, c.want)
		}
	}
}

// TestAdaptReopenIsNoCongestion: frames captured while the encoder
// reopened at a new size arrive late through no fault of the path: that
// delay takes no step down; the same delay of frames captured after it
// does.
func TestAdaptReopenIsNoCongestion(t *testing.T) {
	a := newAdapter(protocol.H264, 2_000_000, 400_000).withHalfSize(1280, 720, 320, 180)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rep := func(delay int) {
		now = now.Add(protocol.ReportEvery)
		a.report(protocol.Report{From: "v", Layer: protocol.H264, Interval: 500, Frames: 15, Bytes: 120_000, DelayMin: delay, DelayMax: delay + 10}, now)
	}
	for range 10 {
		rep(40) // a clear path
		if _, why, changed := a.decide(now); changed && !strings.Contains(why, "no congestion") {
			t.Fatalf("on a clear path: %s", why)
		}
	}
	a.reopen(now)
	rep(340)
	if s, why, changed := a.decide(now); changed {
		t.Errorf("frames captured while the encoder reopened: %+v, %s", s, why)
	}
	for range 4 {
		rep(340)
		if s, why, changed := a.decide(now); changed {
			if !strings.Contains(why, "300 ms queueing delay") {
				t.Errorf("a step %+v: %s", s, why)
			}
			return
		}
	}
	t.Error("frames captured after the reopen, 300 ms late: no step down")
}

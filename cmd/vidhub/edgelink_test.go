//go:build linux

package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// arrivals keeps when each frame of one subject arrived and how old it
// was then (capture to arrival: test and publisher share a clock).
type arrivals struct {
	mu     sync.Mutex
	frames []arrival
}

type arrival struct {
	at  time.Time
	age time.Duration
	seq uint64
	key bool
}

// watchFrames subscribes nc to subject until the test ends.
func watchFrames(t *testing.T, nc *nats.Conn, subject string) *arrivals {
	t.Helper()
	a := &arrivals{}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		now := time.Now()
		meta, err := protocol.ParseFrameHeader(m.Header)
		if err != nil {
			return
		}
		a.mu.Lock()
		a.frames = append(a.frames, arrival{now, now.Sub(meta.CaptureTime()), meta.Seq, meta.Key})
		a.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return a
}

// since returns the frames that arrived after from.
func (a *arrivals) since(from time.Time) []arrival {
	return a.between(from, time.Now().Add(time.Hour))
}

// between returns the frames that arrived from from to to.
func (a *arrivals) between(from, to time.Time) []arrival {
	a.mu.Lock()
	defer a.mu.Unlock()
	at := func(f arrival, t time.Time) int { return f.at.Compare(t) }
	i, _ := slices.BinarySearchFunc(a.frames, from, at)
	j, _ := slices.BinarySearchFunc(a.frames, to, at)
	return slices.Clone(a.frames[i:max(i, j)])
}

// liveAgain is when, after from, a viewer could show the present again:
// when a keyframe younger than maxAge arrived, if one did.
func (a *arrivals) liveAgain(from time.Time, maxAge time.Duration) (time.Time, bool) {
	for _, f := range a.since(from) {
		if f.key && f.age <= maxAge {
			return f.at, true
		}
	}
	return time.Time{}, false
}

// linkStats sums up frames: frames per second over span, ages at the
// 50th and 99th percentile, and frames missing from the numbering.
type linkStats struct {
	fps      float64
	p50, p99 time.Duration
	missing  uint64
}

func (s linkStats) String() string {
	return fmt.Sprintf("%.1f fps, latency p50 %v p99 %v, %d missing", s.fps, s.p50.Round(time.Millisecond), s.p99.Round(time.Millisecond), s.missing)
}

func summarize(fs []arrival, span time.Duration) linkStats {
	if len(fs) == 0 {
		return linkStats{}
	}
	ages := make([]time.Duration, len(fs))
	var missing uint64
	for i, f := range fs {
		ages[i] = f.age
		if i > 0 && f.seq > fs[i-1].seq+1 {
			missing += f.seq - fs[i-1].seq - 1
		}
	}
	slices.Sort(ages)
	return linkStats{
		fps:     float64(len(fs)) / span.Seconds(),
		p50:     ages[len(ages)/2],
		p99:     ages[min(len(ages)-1, len(ages)*99/100)],
		missing: missing,
	}
}

// wan is a WAN uplink's shape: 40 ms round trip, 1% loss.
var wan = hubtest.WireShape{Delay: 20 * time.Millisecond, Loss: 0.01}

// edgeSite is a camera at another site: an edge broker and a publisher
// in a network namespace behind a shaped WAN link, a leaf node of a hub
// broker here.
type edgeSite struct {
	link     *hubtest.Wire
	hubURL   string
	edgeURL  string // inside the namespace
	pub      *hubtest.Proc
	hub      *nats.Conn
	hubFrame *arrivals // the full H.264 layer, as the hub gets it
}

func startEdgeSite(t *testing.T, room, name string, pubArgs ...string) *edgeSite {
	t.Helper()
	link := hubtest.NewWire(t, "edge", 232)
	link.RateUp("5mbit")
	link.Shape(wan)
	bin := hubtest.Vidhub(t)
	hubAddr := "127.0.0.1:" + strconv.Itoa(hubtest.FreePort(t))
	leafAddr := link.HubIP + ":" + strconv.Itoa(hubtest.FreePort(t))
	hubtest.StartProc(t, hubtest.ProcConfig{Name: "hub broker"}, bin, "broker", "--listen", hubAddr, "--leaf-listen", leafAddr)
	hubtest.WaitPort(t, hubAddr, 20*time.Second)
	edgeAddr := "127.0.0.1:4222"
	edge := hubtest.StartProc(t, hubtest.ProcConfig{Name: "edge broker"}, "ip", link.In(bin, "broker", "--listen", edgeAddr, "--leaf", "nats://"+leafAddr)[1:]...)
	edge.WaitOutput(20*time.Second, "broker ready")
	s := &edgeSite{link: link, hubURL: "nats://" + hubAddr, edgeURL: "nats://" + edgeAddr}
	args := append([]string{"publish", "--nats", s.edgeURL, "--room", room, "--name", name, "--source", "pattern",
		"--size", "1280x720", "--fps", "30", "--encode", "watched"}, pubArgs...)
	s.pub = hubtest.StartProc(t, hubtest.ProcConfig{Name: "edge publisher"}, "ip", link.In(append([]string{bin}, args...)...)[1:]...)
	s.hub = hubtest.Connect(t, s.hubURL)
	addr, err := protocol.NewAddress(room, name)
	if err != nil {
		t.Fatal(err)
	}
	s.hubFrame = watchFrames(t, s.hub, addr.FrameSubject(protocol.H264))
	return s
}

// TestEdgeLinkOutage runs a camera behind a WAN uplink of 5 Mbit/s, 40
// ms round trip and 1% loss, as a leaf node of the hub: 720p30 reaches
// the hub's viewers in time. Then the link goes dead for 10 s: viewers
// at the edge keep watching, and the hub's are live again soon after it
// returns.
func TestEdgeLinkOutage(t *testing.T) {
	site := startEdgeSite(t, "edge", "cam")
	bin := hubtest.Vidhub(t)
	var hubStats, edgeStats hubtest.Stats
	hubView := hubtest.StartProc(t, hubtest.ProcConfig{Stdout: &hubStats, Name: "hub viewer"},
		bin, "view", "--nats", site.hubURL, "--room", "edge", "--headless", "--json")
	edgeView := hubtest.StartProc(t, hubtest.ProcConfig{Stdout: &edgeStats, Name: "edge viewer"},
		"ip", site.link.In(bin, "view", "--nats", site.edgeURL, "--room", "edge", "--headless", "--json")[1:]...)
	defer edgeView.Stop()
	hubView.WaitFor(60*time.Second, func() bool { return hubStats.Frames("cam") > 60 && edgeStats.Frames("cam") > 60 },
		"frames did not reach the hub and edge viewers")

	const span = 10 * time.Second
	from := time.Now()
	hubView.WaitFor(span+5*time.Second, func() bool { return time.Since(from) >= span }, "")
	got := summarize(site.hubFrame.since(from), span)
	t.Logf("5 Mbit/s, 40 ms, 1%% loss: hub gets %v", got)
	if got.fps < 20 {
		t.Errorf("over 5 Mbit/s the hub got %.1f fps of 30", got.fps)
	}

	site.link.Shape(hubtest.WireShape{Down: true})
	cut := time.Now()
	hubView.WaitFor(15*time.Second, func() bool { return time.Since(cut) >= 10*time.Second }, "")
	site.link.Shape(wan)
	back := time.Now()
	// At the edge, nothing happened: every second's line shows frames
	// at about the full rate, fresh, with no reconnect. (The bounds
	// leave room for a test machine busy with other tests.)
	for _, l := range edgeStats.Between("cam", cut.Add(time.Second), back) {
		if l.FPS < 20 || l.LatencyP99 > 500 || l.Reconnects != 0 || l.CorruptShown != 0 {
			t.Errorf("the edge viewer during the outage: %.1f fps, p99 %.0f ms, %d reconnects, %d corrupt shown", l.FPS, l.LatencyP99, l.Reconnects, l.CorruptShown)
		}
	}
	var live time.Time
	hubView.WaitFor(20*time.Second, func() bool {
		var ok bool
		live, ok = site.hubFrame.liveAgain(back, 200*time.Millisecond)
		return ok
	}, "the hub got no fresh frame in 20 s after the link returned")
	t.Logf("10 s outage: the hub is live again %v after the link returned", live.Sub(back).Round(time.Millisecond))
	if d := live.Sub(back); d > 5*time.Second {
		t.Errorf("the hub was live again %v after the link returned", d)
	}
	if l, _ := hubStats.Last("cam"); l.CorruptShown != 0 {
		t.Errorf("the hub viewer showed %d corrupt pictures", l.CorruptShown)
	}
}

// TestEdgeLinkNarrows: the edge's uplink drops from 5 to 1 Mbit/s under
// a 720p30 camera of about 1.4 Mbit/s. The publisher hears of it from
// the hub viewer's receiver reports and steps its bitrate down; the hub
// keeps getting every frame, and the queue in front of the link drains
// instead of growing.
func TestEdgeLinkNarrows(t *testing.T) {
	site := startEdgeSite(t, "narrow", "cam")
	bin := hubtest.Vidhub(t)
	var hubStats hubtest.Stats
	hubView := hubtest.StartProc(t, hubtest.ProcConfig{Stdout: &hubStats, Name: "hub viewer"},
		bin, "view", "--nats", site.hubURL, "--room", "narrow", "--headless", "--json")
	hubView.WaitFor(60*time.Second, func() bool { return hubStats.Frames("cam") > 90 }, "frames did not reach the hub viewer")

	const adapting = "adapting to the viewers' path"
	steps := func() int { return strings.Count(site.pub.Stderr.String(), adapting) }
	before := steps()
	site.link.RateUp("1mbit")
	drop := time.Now()
	site.pub.WaitFor(15*time.Second, func() bool { return steps() > before }, "the publisher did not adapt to a 1 Mbit/s link")
	adapted := time.Since(drop)

	// From when the target says it must have adapted (3 s) on, 24 s:
	// long enough for the publisher to climb back and probe the link.
	const span = 24 * time.Second
	from := drop.Add(3 * time.Second)
	hubView.WaitFor(span+25*time.Second, func() bool { return time.Since(from) >= span }, "")
	all := site.hubFrame.between(from, from.Add(span))
	got := summarize(all, span)
	firstHalf := summarize(site.hubFrame.between(from, from.Add(span/2)), span/2)
	lastHalf := summarize(site.hubFrame.between(from.Add(span/2), from.Add(span)), span/2)
	t.Logf("link down to 1 Mbit/s: adapted after %v; then the hub gets %v (first half p50 %v, last half p50 %v)",
		adapted.Round(time.Millisecond), got, firstHalf.p50.Round(time.Millisecond), lastHalf.p50.Round(time.Millisecond))
	t.Logf("publisher's steps: %s", hubtest.Lazy(func() any { return adaptLines(site.pub.Stderr.String(), adapting) }))
	if adapted > 6*time.Second {
		t.Errorf("the publisher adapted %v after the link dropped", adapted)
	}
	if got.fps < 20 {
		t.Errorf("over 1 Mbit/s after adapting, the hub got %.1f fps", got.fps)
	}
	// No growing backlog: the second half is no later than the first.
	if lastHalf.p50 > firstHalf.p50+100*time.Millisecond || lastHalf.p50 > time.Second {
		t.Errorf("frames reach the hub later and later: p50 %v, then %v", firstHalf.p50, lastHalf.p50)
	}
	if l, _ := hubStats.Last("cam"); l.CorruptShown != 0 {
		t.Errorf("the hub viewer showed %d corrupt pictures", l.CorruptShown)
	}
}

// adaptLines picks the publisher's adaptation lines out of its log.
func adaptLines(log, adapting string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, adapting) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

package web

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/protocol"
)

// Pending limits of the gateway's frame subscriptions: small, so a stuck
// callback sheds frames at once instead of hoarding stale ones. The
// callback only swaps pointers, so they are rarely reached.
const (
	pendingMsgs  = 256
	pendingBytes = 64 << 20
)

// feedKey names one shared frame subscription: a room and a layer.
type feedKey struct {
	room  string
	layer protocol.Layer
}

// feed is the one NATS subscription of a room and layer, shared by every
// browser that watches it.
type feed struct {
	key     feedKey
	sub     *nats.Subscription
	viewers atomic.Pointer[[]*viewer] // copy on write

	// reports gathers, for an H.264 feed, a receiver report per
	// publisher: the gateway is a receiver too, and its path from the
	// publisher may be the congested one.
	mu      sync.Mutex
	reports map[string]*gatewayReport
}

// gatewayReport is what a feed received of one publisher since its last
// receiver report.
type gatewayReport struct {
	rep     protocol.Report
	since   time.Time
	last    time.Time // the last frame
	lastSeq uint64
}

// hub fans frames out: one feed per room and layer however many
// browsers watch, ended when the last one leaves.
type hub struct {
	nc   *nats.Conn
	log  *slog.Logger
	m    *metrics
	self string // the gateway's participant name: its reports' from
	// noReports: the broker refused a receiver report (an access
	// configuration older than them); on the gateway's loop only.
	noReports bool

	mu    sync.Mutex
	feeds map[feedKey]*feed
}

func newHub(nc *nats.Conn, log *slog.Logger, m *metrics, self string) *hub {
	return &hub{nc: nc, log: log, m: m, self: self, feeds: map[feedKey]*feed{}}
}

// attach adds v to the feed of its room and layer l, subscribing when v
// is the first.
func (h *hub) attach(v *viewer, l protocol.Layer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := feedKey{v.room, l}
	f := h.feeds[k]
	if f == nil {
		f = &feed{key: k, reports: map[string]*gatewayReport{}}
		f.viewers.Store(&[]*viewer{})
		sub, err := h.nc.Subscribe(protocol.RoomFrames(k.room, l), func(m *nats.Msg) { h.onFrame(f, m) })
		if err != nil {
			return fmt.Errorf("subscribing to room %s layer %s: %w", k.room, l, err)
		}
		_ = sub.SetPendingLimits(pendingMsgs, pendingBytes)
		f.sub = sub
		h.feeds[k] = f
		h.log.Info("subscribed", "room", k.room, "layer", l)
	}
	vs := slices.Clone(*f.viewers.Load())
	if !slices.Contains(vs, v) {
		vs = append(vs, v)
	}
	f.viewers.Store(&vs)
	return nil
}

// detach removes v from a feed and unsubscribes when it was the last.
func (h *hub) detach(v *viewer, l protocol.Layer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := feedKey{v.room, l}
	f := h.feeds[k]
	if f == nil {
		return
	}
	vs := slices.DeleteFunc(slices.Clone(*f.viewers.Load()), func(x *viewer) bool { return x == v })
	f.viewers.Store(&vs)
	if len(vs) == 0 {
		_ = f.sub.Unsubscribe()
		delete(h.feeds, k)
		h.log.Info("unsubscribed: no browser watches", "room", k.room, "layer", l)
	}
}

// close ends every feed.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, f := range h.feeds {
		_ = f.sub.Unsubscribe()
		delete(h.feeds, k)
	}
}

// feedStat is one feed as /metrics shows it.
type feedStat struct {
	feedKey
	viewers int
}

func (h *hub) stats() []feedStat {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]feedStat, 0, len(h.feeds))
	for k, f := range h.feeds {
		out = append(out, feedStat{k, len(*f.viewers.Load())})
	}
	return out
}

// onFrame is the NATS callback of a feed: check the headers and body
// (JPEG markers, or the H.264 access unit's structure), frame it once for
// every browser, and offer it to each. Nothing here waits on a browser.
func (h *hub) onFrame(f *feed, m *nats.Msg) {
	s, err := protocol.ParseSubject(m.Subject)
	if err == nil && (s.Presence || s.Key || s.Layer != f.key.layer) {
		err = fmt.Errorf("%w: not a frame of layer %s", protocol.ErrBadFrame, f.key.layer)
	}
	var meta protocol.FrameMeta
	if err == nil {
		meta, err = protocol.ParseLayerFrame(s.Layer, m.Header, m.Data)
	}
	if err != nil {
		n := h.m.bad.Add(1)
		h.m.badLog.Do(func() {
			h.log.Warn("skipping bad frame from the broker", "subject", m.Subject, "err", err, "bad_frames", n)
		})
		return
	}
	h.m.framesIn[layerIndex(s.Layer)].Add(1)
	name := s.Participant()
	now := time.Now()
	if s.Layer.Codec() == protocol.CodecH264 {
		f.note(name, meta, len(m.Data), now)
	}
	vs := *f.viewers.Load()
	if len(vs) == 0 {
		return
	}
	msg := AppendWire(make([]byte, 0, wireFixed+len(name)+len(m.Data)), WireFrame{
		Participant: name, Layer: s.Layer, Meta: meta, Body: m.Data,
	})
	for _, v := range vs {
		v.offer(name, s.Layer, meta, msg, now)
	}
}

// maxReported bounds the publishers a feed reports on: frames under any
// number of names would otherwise grow it without end.
const maxReported = 1024

// note adds an H.264 frame of publisher name to its receiver report.
func (f *feed) note(name string, meta protocol.FrameMeta, size int, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reports[name]
	if r == nil {
		if len(f.reports) >= maxReported {
			return
		}
		r = &gatewayReport{rep: protocol.Report{Layer: f.key.layer}, since: now}
		f.reports[name] = r
	}
	var missed uint64
	if meta.Seq > r.lastSeq+1 && r.lastSeq > 0 {
		missed = meta.Seq - r.lastSeq - 1
	}
	r.lastSeq, r.last = meta.Seq, now
	r.rep.Count(missed, now.Sub(meta.CaptureTime()), size)
}

// report sends each publisher of every H.264 feed the receiver report of
// what the gateway received of it since the last (protocol.Report);
// publishers silent for 2 s are dropped.
func (h *hub) report(now time.Time) {
	if h.noReports {
		return
	}
	if le := h.nc.LastError(); protocol.RefusedReport(le) {
		h.noReports = true
		h.log.Warn("the broker refuses receiver reports: publishers cannot adapt to the gateway's path; give the gateway's user any_name (publish to vidhub.<room>.*.rr."+h.self+")", "err", le)
		return
	}
	h.mu.Lock()
	feeds := make([]*feed, 0, len(h.feeds))
	for _, f := range h.feeds {
		if f.key.layer.Codec() == protocol.CodecH264 {
			feeds = append(feeds, f)
		}
	}
	h.mu.Unlock()
	for _, f := range feeds {
		f.mu.Lock()
		var out []protocol.Report
		var to []string
		for name, r := range f.reports {
			if now.Sub(r.last) > 2*time.Second {
				delete(f.reports, name)
				continue
			}
			rep := r.rep
			rep.Interval = max(1, int(now.Sub(r.since).Milliseconds()))
			out, to = append(out, rep), append(to, name)
			r.rep, r.since = protocol.Report{Layer: f.key.layer}, now
		}
		f.mu.Unlock()
		for i, rep := range out {
			b, err := rep.Encode()
			if err == nil {
				err = h.nc.Publish(protocol.ParticipantReport(f.key.room, to[i], h.self), b)
			}
			if err != nil {
				h.log.Debug("receiver report not sent", "room", f.key.room, "participant", to[i], "err", err)
			}
		}
	}
}

// allLayers is every layer the gateway relays, in the order of the
// metrics' per-layer counters.
var allLayers = [...]protocol.Layer{protocol.Hi, protocol.Lo, protocol.H264, protocol.H264Lo}

// layerIndex is l's index in allLayers.
func layerIndex(l protocol.Layer) int {
	switch l {
	case protocol.Lo:
		return 1
	case protocol.H264:
		return 2
	case protocol.H264Lo:
		return 3
	}
	return 0
}

// logEvery spaces out repeated log lines: a flood (of bad frames, drops,
// refusals) is counted in full in the metrics, but logged only the first
// time and then at most once per interval.
const logEvery = 10 * time.Second

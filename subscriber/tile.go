package subscriber

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vidhub/vidhub/protocol"
)

// Frame is one received JPEG frame.
type Frame struct {
	Participant string             // who sent it
	Layer       protocol.Layer     // which of its layers
	Meta        protocol.FrameMeta // from its headers: seq, capture time, size
	JPEG        []byte             // the body, one complete JPEG
	Received    time.Time          // when this viewer got it
}

// TileStats measures one publisher as seen by one viewer over the last
// stats interval (rates and latency) and since joining (counts).
type TileStats struct {
	Room        string         `json:"room"`
	Participant string         `json:"participant"`
	Layer       protocol.Layer `json:"layer"`
	Width       int            `json:"width"`          // of the newest frame
	Height      int            `json:"height"`         // of the newest frame
	FPS         float64        `json:"fps"`            // frames received per second
	LatencyP50  float64        `json:"latency_ms_p50"` // capture to receipt, ms
	LatencyP99  float64        `json:"latency_ms_p99"` // capture to receipt, ms
	LatencyMax  float64        `json:"latency_ms_max"` // capture to receipt, ms
	Kbps        float64        `json:"kbps"`           // JPEG kilobits per second
	Frames      uint64         `json:"frames"`         // received since joining
	Drops       uint64         `json:"drops"`          // Gaps + Overwritten
	Gaps        uint64         `json:"gaps"`           // frames missing from the sequence
	Overwritten uint64         `json:"overwritten"`    // frames replaced before the renderer took them
	Bad         uint64         `json:"bad"`            // frames that broke the protocol, skipped
	Stalled     bool           `json:"stalled"`        // present, but no frame for a while
	// LayerReason says why an auto viewer takes lo where it could take
	// hi (its link is too slow), or is empty.
	LayerReason string `json:"layer_reason,omitempty"`
	// Reconnects counts the times the viewer's connection to the broker
	// came back since it joined the room: the same for every tile.
	Reconnects uint64 `json:"reconnects,omitempty"`
	// Self marks this process's own publisher (Config.Self).
	Self bool `json:"self,omitempty"`
}

// Tile is one publisher in a room: its newest frame and its stats.
type Tile struct {
	room, name string
	self       bool

	slot        atomic.Pointer[Frame]
	overwritten atomic.Uint64
	bad         atomic.Uint64

	mu           sync.Mutex
	lastPresence time.Time
	lastFrame    time.Time
	created      time.Time
	presence     protocol.Presence
	lastSeq      uint64
	lastLayer    protocol.Layer
	frames       uint64
	gaps         uint64
	width        int
	height       int
	// the current interval
	winStart   time.Time
	winFrames  uint64
	winBytes   uint64
	winLatency []float64
	sorted     []float64
	snap       TileStats
}

func newTile(room, name string, self bool, now time.Time) *Tile {
	return &Tile{room: room, name: name, self: self, created: now, winStart: now,
		winLatency: make([]float64, 0, 64),
		snap:       TileStats{Room: room, Participant: name, Self: self}}
}

// Name is the publisher's participant name.
func (t *Tile) Name() string { return t.name }

// Self reports whether this tile is this process's own publisher.
func (t *Tile) Self() bool { return t.self }

// Take returns the newest frame not yet taken, or nil.
func (t *Tile) Take() *Frame { return t.slot.Swap(nil) }

// CountBad counts a frame the renderer could not use (it did not decode).
func (t *Tile) CountBad() { t.bad.Add(1) }

// Stats returns the stats of the last complete interval, with counts
// brought up to now.
func (t *Tile) Stats() TileStats {
	t.mu.Lock()
	s := t.snap
	s.Frames, s.Gaps = t.frames, t.gaps
	t.mu.Unlock()
	s.Overwritten, s.Bad = t.overwritten.Load(), t.bad.Load()
	s.Drops = s.Gaps + s.Overwritten
	return s
}

func (t *Tile) onFrame(l protocol.Layer, m protocol.FrameMeta, jpeg []byte, now time.Time, keep bool) {
	t.mu.Lock()
	switch {
	case l != t.lastLayer:
		// A new layer starts its own sequence.
	case m.Seq > t.lastSeq+1:
		t.gaps += m.Seq - t.lastSeq - 1
	case m.Seq <= t.lastSeq:
		// The publisher restarted under the same name: a new sequence.
	}
	t.lastSeq, t.lastLayer = m.Seq, l
	t.frames++
	t.winFrames++
	t.winBytes += uint64(len(jpeg))
	if len(t.winLatency) < maxSamples {
		t.winLatency = append(t.winLatency, float64(now.Sub(m.CaptureTime()))/float64(time.Millisecond))
	}
	t.lastFrame = now
	t.width, t.height = m.Width, m.Height
	t.mu.Unlock()
	if keep {
		f := &Frame{Participant: t.name, Layer: l, Meta: m, JPEG: jpeg, Received: now}
		if t.slot.Swap(f) != nil {
			t.overwritten.Add(1)
		}
	}
}

// setLink adds what the room knows of its link to the stats of the last
// interval.
func (t *Tile) setLink(layerReason string, reconnects uint64) {
	t.mu.Lock()
	t.snap.LayerReason, t.snap.Reconnects = layerReason, reconnects
	t.mu.Unlock()
}

func (t *Tile) onPresence(p protocol.Presence, now time.Time) {
	t.mu.Lock()
	t.presence, t.lastPresence = p, now
	t.mu.Unlock()
}

func (t *Tile) lastSeen() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastFrame.After(t.lastPresence) {
		return t.lastFrame
	}
	return t.lastPresence
}

// roll closes the current interval and returns its stats.
func (t *Tile) roll(now time.Time) TileStats {
	t.mu.Lock()
	el := now.Sub(t.winStart).Seconds()
	s := TileStats{
		Room: t.room, Participant: t.name, Layer: t.lastLayer,
		Width: t.width, Height: t.height, Self: t.self,
		Frames: t.frames, Gaps: t.gaps,
	}
	if el > 0 {
		s.FPS = float64(t.winFrames) / el
		s.Kbps = float64(t.winBytes) * 8 / 1000 / el
	}
	t.sorted = append(t.sorted[:0], t.winLatency...)
	slices.Sort(t.sorted)
	s.LatencyP50, s.LatencyP99 = percentile(t.sorted, 0.50), percentile(t.sorted, 0.99)
	if n := len(t.sorted); n > 0 {
		s.LatencyMax = t.sorted[n-1]
	}
	// Stalled: announced but silent, or never a frame since it appeared.
	last := t.lastFrame
	if last.IsZero() {
		last = t.created
	}
	s.Stalled = now.Sub(last) > stallAfter
	if s.Width == 0 && len(t.presence.Layers) > 0 {
		s.Width, s.Height = t.presence.Layers[0].Width, t.presence.Layers[0].Height
	}
	t.winStart, t.winFrames, t.winBytes = now, 0, 0
	t.winLatency = t.winLatency[:0]
	t.snap = s
	t.mu.Unlock()
	s.Overwritten, s.Bad = t.overwritten.Load(), t.bad.Load()
	s.Drops = s.Gaps + s.Overwritten
	return s
}

// percentile of sorted values, nearest rank; 0 for none.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

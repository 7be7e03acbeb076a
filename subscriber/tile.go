package subscriber

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
)

// Frame is one received frame: a JPEG, or a decoded H.264 picture.
type Frame struct {
	Participant string             // who sent it
	Layer       protocol.Layer     // which of its layers
	Meta        protocol.FrameMeta // from its headers: seq, capture time, size, codec
	JPEG        []byte             // a JPEG layer's body, one complete JPEG
	AU          []byte             // an H.264 layer's body, one access unit
	// BGR is an H.264 frame's decoded picture, Meta.Width x Meta.Height,
	// 3 bytes per pixel, when the room keeps frames for a renderer.
	BGR      []byte
	Received time.Time // when this viewer got it

	gop []*Frame // a GOP reply's access units, for the decoder
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
	// Codec is the codec of the frames taken: jpeg, or the H.264 codec
	// string the publisher announces (e.g. avc1.42E01F).
	Codec string `json:"codec"`
	// FirstFrameMS is the time from joining the room to this publisher's
	// first usable frame (for H.264, the first decoded picture); -1
	// before it.
	FirstFrameMS int64 `json:"first_frame_ms"`
	// Keyframes counts H.264 keyframes decoded, DecodeErrors access units
	// the decoder refused, Waited access units dropped while waiting for
	// a keyframe (after a gap, or when the decoder fell behind).
	Keyframes    uint64 `json:"keyframes"`
	DecodeErrors uint64 `json:"decode_errors"`
	Waited       uint64 `json:"waited,omitempty"`
	// GOPs counts GOP replies decoded: a publisher that passes a camera
	// through answers a keyframe request with the access units since its
	// last keyframe.
	GOPs uint64 `json:"gops,omitempty"`
	// CorruptShown counts pictures decoded from a broken reference chain
	// (a frame missing since the last keyframe) and shown anyway: always
	// 0 unless this viewer is broken.
	CorruptShown uint64 `json:"corrupt_shown"`
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
	firstMS    int64     // first_frame_ms of a JPEG tile, -1 before
	joined     time.Time // when the room was joined

	// h264 is the H.264 state once an H.264 frame came; nil for a JPEG
	// publisher. Set once, under mu.
	h264 *h264Tile
	// rep is the receiver report being gathered (H.264 only).
	rep      protocol.Report
	repStart time.Time
}

func newTile(room, name string, self bool, now time.Time) *Tile {
	return &Tile{room: room, name: name, self: self, created: now, winStart: now, joined: now,
		winLatency: make([]float64, 0, 64), firstMS: -1,
		snap: TileStats{Room: room, Participant: name, Self: self, FirstFrameMS: -1, Codec: string(protocol.CodecJPEG)}}
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
	t.countsLocked(&s)
	t.mu.Unlock()
	s.Overwritten, s.Bad = t.overwritten.Load(), t.bad.Load()
	s.Drops = s.Gaps + s.Overwritten
	return s
}

// countsLocked fills in the codec's counts. t.mu is held.
func (t *Tile) countsLocked(s *TileStats) {
	s.FirstFrameMS = t.firstMS
	h := t.h264
	if h == nil {
		return
	}
	s.Codec = string(protocol.CodecH264)
	if li, ok := t.presence.Layer(t.lastLayer); ok && li.Codec != "" {
		s.Codec = li.Codec
	}
	s.FirstFrameMS = h.firstFrame.Load()
	s.Keyframes, s.DecodeErrors = h.keyframes.Load(), h.decodeErrors.Load()
	s.CorruptShown, s.Waited, s.GOPs = h.corruptShown.Load(), h.waited.Load(), h.gops.Load()
}

// takesH264 reports whether the tile takes the H.264 counterpart of JPEG
// layer l: its publisher sends it (by its frames, or its presence).
func (t *Tile) takesH264(l protocol.Layer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.lastPresence.IsZero() {
		// Its presence says: a publisher that restarted as JPEG only
		// is taken as JPEG again.
		return t.presence.Sends(l.As(protocol.CodecH264))
	}
	return t.h264 != nil
}

// startH264 gives the tile its H.264 state and decoder, once.
func (t *Tile) startH264(since time.Time, keep bool, ask func(protocol.Layer)) (*h264Tile, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h264 != nil {
		return t.h264, nil
	}
	dec, err := media.NewDecoder()
	if err != nil {
		return nil, err
	}
	t.h264 = newH264Tile(since, ask)
	t.h264.run(dec, keep, func(f *Frame, at time.Time) { t.shown(f, at, keep) })
	return t.h264, nil
}

// stop ends the tile's decoder, if any.
func (t *Tile) stop() {
	t.mu.Lock()
	h := t.h264
	t.mu.Unlock()
	if h != nil {
		h.stop()
	}
}

// onAU takes an H.264 access unit from the NATS callback.
func (t *Tile) onAU(h *h264Tile, f *Frame, now time.Time) {
	t.mu.Lock()
	missed := t.countSeqLocked(f.Layer, f.Meta.Seq)
	t.lastFrame = now
	t.winBytes += uint64(len(f.AU))
	t.noteReportLocked(f, missed, now)
	t.mu.Unlock()
	h.offer(f, now)
}

// noteReportLocked adds an access unit to the receiver report. t.mu is
// held.
func (t *Tile) noteReportLocked(f *Frame, missed uint64, now time.Time) {
	if f.Layer != t.rep.Layer {
		// A new layer: its own report (the last one's frames are not
		// reported: a layer switch is no sign of the path).
		t.rep, t.repStart = protocol.Report{Layer: f.Layer}, now
	}
	t.rep.Count(missed, now.Sub(f.Meta.CaptureTime()), len(f.AU))
}

// takeReport returns the receiver report since the last one and starts
// the next; ok is false for a tile that received no H.264 in the last
// reportQuiet (so that a publisher gone or switched to JPEG is not
// reported on).
func (t *Tile) takeReport(from string, now time.Time) (r protocol.Report, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h264 == nil || t.self || t.rep.Layer == "" || now.Sub(t.lastFrame) > reportQuiet {
		return protocol.Report{}, false
	}
	r = t.rep
	r.From = from
	r.Interval = max(1, int(now.Sub(t.repStart).Milliseconds()))
	t.rep, t.repStart = protocol.Report{Layer: r.Layer}, now
	return r, true
}

// shown counts a decoded H.264 picture and, for a renderer, keeps it.
func (t *Tile) shown(f *Frame, at time.Time, keep bool) {
	t.mu.Lock()
	t.frames++
	t.winFrames++
	if len(t.winLatency) < maxSamples {
		t.winLatency = append(t.winLatency, float64(at.Sub(f.Meta.CaptureTime()))/float64(time.Millisecond))
	}
	t.width, t.height = f.Meta.Width, f.Meta.Height
	t.mu.Unlock()
	if keep {
		f.AU = nil
		if t.slot.Swap(f) != nil {
			t.overwritten.Add(1)
		}
	}
}

// countSeqLocked counts the frames missing before seq on layer l, and
// returns how many. t.mu is held.
func (t *Tile) countSeqLocked(l protocol.Layer, seq uint64) (missed uint64) {
	switch {
	case l != t.lastLayer:
		// A new layer starts its own sequence.
	case seq > t.lastSeq+1:
		missed = seq - t.lastSeq - 1
		t.gaps += missed
	case seq <= t.lastSeq:
		// The publisher restarted under the same name: a new sequence.
	}
	t.lastSeq, t.lastLayer = seq, l
	return missed
}

func (t *Tile) onFrame(l protocol.Layer, m protocol.FrameMeta, jpeg []byte, now time.Time, keep bool) {
	t.mu.Lock()
	if t.firstMS < 0 {
		t.firstMS = now.Sub(t.joined).Milliseconds()
	}
	t.countSeqLocked(l, m.Seq)
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
		Frames: t.frames, Gaps: t.gaps, Codec: string(protocol.CodecJPEG),
	}
	t.countsLocked(&s)
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

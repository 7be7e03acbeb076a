package subscriber

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
)

// H.264 flow control: latest decodable frame wins. Access units go from
// the NATS callback into a short queue that the tile's decoder drains. A
// frame cannot be skipped on its own, so when the queue is full (the
// decoder fell behind), a frame is missing from the sequence, or the
// decoder fails, the tile drops everything up to the next keyframe and
// asks the publisher for one. It never decodes across a gap, so it never
// shows a corrupted picture: the last good one stays until then.
const (
	// auQueue bounds the access units waiting for the decoder: a second's
	// worth at 30 fps. Behind by more, the tile skips to a keyframe.
	auQueue = 32
	// keyAskEvery paces this viewer's keyframe requests to one publisher:
	// while it waits for a keyframe, it asks again this often, in case a
	// request or the keyframe was lost.
	keyAskEvery = 300 * time.Millisecond
)

// gateGaps is off only in the test that checks that CorruptShown counts
// what a viewer without the gate would show.
var gateGaps = true

// decodeAvailable reports whether this build can decode H.264.
var decodeAvailable = media.H264Available

// DecodesH264 reports whether rooms joined by this build take H.264
// layers (it has a decoder); if not, they take JPEG.
func DecodesH264() bool { return decodeAvailable() }

// h264Tile is a tile's H.264 state.
type h264Tile struct {
	// ask sends a keyframe request for layer l; set by the room.
	ask func(l protocol.Layer)
	// since is when the room was joined: first_frame_ms counts from it.
	since time.Time

	mu       sync.Mutex
	layer    protocol.Layer
	lastSeq  uint64
	waitKey  bool // dropping until the next keyframe
	lastAsk  time.Time
	queue    chan *Frame
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	// counted by the decoder goroutine, read by stats
	firstFrame   atomic.Int64 // ms from since to the first decoded picture, -1 before
	keyframes    atomic.Uint64
	decodeErrors atomic.Uint64
	corruptShown atomic.Uint64
	waited       atomic.Uint64 // access units dropped waiting for a keyframe
}

func newH264Tile(since time.Time, ask func(protocol.Layer)) *h264Tile {
	h := &h264Tile{ask: ask, since: since, waitKey: true, queue: make(chan *Frame, auQueue), done: make(chan struct{})}
	h.firstFrame.Store(-1)
	return h
}

// offer takes one access unit from the NATS callback. It reports whether
// the frame was queued for decoding.
func (h *h264Tile) offer(f *Frame, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := f.Meta
	switch {
	case f.Layer != h.layer || m.Seq <= h.lastSeq:
		// Another layer, or the publisher restarted: a new stream that
		// starts at a keyframe.
		h.layer, h.waitKey = f.Layer, true
	case m.Seq != h.lastSeq+1:
		h.waitKey = true // a frame is missing: what follows refers to it
	}
	h.lastSeq = m.Seq
	if h.waitKey && !m.Key {
		h.askLocked(f.Layer, now)
		if gateGaps {
			h.waited.Add(1)
			return false
		}
	}
	select {
	case h.queue <- f:
		if m.Key {
			h.waitKey = false
		}
		return true
	default:
		// The decoder is a second behind: drop what waits and skip to
		// the next keyframe.
		for len(h.queue) > 0 {
			<-h.queue
			h.waited.Add(1)
		}
		h.waited.Add(1)
		h.waitKey = true
		h.askLocked(f.Layer, now)
		return false
	}
}

func (h *h264Tile) askLocked(l protocol.Layer, now time.Time) {
	if now.Sub(h.lastAsk) >= keyAskEvery {
		h.lastAsk = now
		h.ask(l)
	}
}

// broken is the decoder's report that the stream can no longer be
// decoded until a keyframe.
func (h *h264Tile) broken(l protocol.Layer) {
	h.mu.Lock()
	h.waitKey = true
	h.askLocked(l, time.Now())
	h.mu.Unlock()
}

// run decodes until stop. shown is called with each decoded picture and
// the time it was decoded; keep asks it to convert the picture for a
// renderer.
func (h *h264Tile) run(dec media.Decoder, keep bool, shown func(f *Frame, at time.Time)) {
	h.wg.Go(func() {
		defer dec.Close()
		var chainOK, skipping bool
		var prevSeq uint64
		var prevLayer protocol.Layer
		for {
			var f *Frame
			select {
			case <-h.done:
				return
			case f = <-h.queue:
			}
			if skipping && !f.Meta.Key {
				continue // queued before the decoder failed
			}
			skipping = false
			// An account of the reference chain kept apart from offer's
			// gating: a picture decoded from anything but an unbroken
			// run of frames since a keyframe counts as corrupt_shown.
			if f.Meta.Key {
				chainOK = true
			} else {
				chainOK = chainOK && f.Layer == prevLayer && f.Meta.Seq == prevSeq+1
			}
			prevSeq, prevLayer = f.Meta.Seq, f.Layer
			ok, err := dec.Decode(f.AU)
			if err != nil {
				h.decodeErrors.Add(1)
				chainOK, skipping = false, true
				h.broken(f.Layer)
				continue
			}
			if !ok {
				continue
			}
			now := time.Now()
			if f.Meta.Key {
				h.keyframes.Add(1)
			}
			if !chainOK {
				h.corruptShown.Add(1)
			}
			if h.firstFrame.Load() < 0 {
				h.firstFrame.Store(now.Sub(h.since).Milliseconds())
			}
			if keep {
				w, hh := dec.Size()
				pix := make([]byte, w*hh*3)
				if err := dec.Picture(media.Image{Fmt: media.BGR24, Width: w, Height: hh, Stride: 3 * w, Pix: pix}); err == nil {
					f.BGR, f.Meta.Width, f.Meta.Height = pix, w, hh
				}
			}
			shown(f, now)
		}
	})
}

func (h *h264Tile) stop() {
	h.stopOnce.Do(func() { close(h.done) })
	h.wg.Wait()
}

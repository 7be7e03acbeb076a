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
	// ask sends a keyframe request for layer l; set by the room. The
	// request carries a reply subject: a publisher that cannot force a
	// keyframe answers with a GOP (offerGOP).
	ask func(l protocol.Layer)
	// since is when the room was joined: first_frame_ms counts from it.
	since time.Time

	mu sync.Mutex
	// chain gates the access units offered: after a gap, or on joining,
	// it drops them until the next keyframe.
	chain protocol.Chain
	// pending keeps the newest access units dropped while waiting, in
	// order: a GOP reply that ends just before them joins up with them.
	pending  []*Frame
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
	gops         atomic.Uint64 // GOP replies decoded
}

func newH264Tile(since time.Time, ask func(protocol.Layer)) *h264Tile {
	h := &h264Tile{ask: ask, since: since, queue: make(chan *Frame, auQueue), done: make(chan struct{})}
	h.firstFrame.Store(-1)
	return h
}

// offer takes one access unit from the NATS callback. It reports whether
// the frame was queued for decoding.
func (h *h264Tile) offer(f *Frame, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.chain.Old(f.Layer, f.Meta) {
		return false // decoded already, in a GOP reply that overtook it
	}
	pass, restart := h.chain.Offer(f.Layer, f.Meta)
	if restart {
		h.pending = h.pending[:0] // another layer, or the publisher started again
	}
	if !pass {
		h.askLocked(f.Layer, now)
		if gateGaps {
			h.waited.Add(1)
			if n := len(h.pending); n > 0 && h.pending[n-1].Meta.Seq+1 != f.Meta.Seq {
				h.pending = h.pending[:0] // not a run: useless after a GOP
			}
			if len(h.pending) == maxPending {
				h.pending = append(h.pending[:0], h.pending[1:]...)
			}
			h.pending = append(h.pending, f)
			return false
		}
	}
	h.pending = h.pending[:0]
	select {
	case h.queue <- f:
		return true
	default:
		// The decoder is a second behind: drop what waits and skip to
		// the next keyframe.
		for len(h.queue) > 0 {
			<-h.queue
			h.waited.Add(1)
		}
		h.waited.Add(1)
		h.chain.Break()
		h.askLocked(f.Layer, now)
		return false
	}
}

// maxPending bounds the access units kept while waiting for a GOP reply.
const maxPending = 64

// offerGOP takes a GOP reply: the access units since the publisher's last
// keyframe, gop[0] a keyframe. While the tile waits for a keyframe, it
// queues them, and the live ones kept since that follow on, as one item:
// the decoder runs through them and shows the last.
func (h *h264Tile) offerGOP(gop []*Frame) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.chain.NeedKey() || len(gop) == 0 || gop[0].Layer != h.chain.Layer() {
		return false
	}
	run := gop
	last := gop[len(gop)-1].Meta.Seq
	for _, f := range h.pending {
		switch {
		case f.Meta.Seq <= last:
		case f.Meta.Seq == last+1:
			run = append(run, f)
			last++
		default:
			return false // live frames went on beyond what joins up: wait for the next
		}
	}
	if last < h.chain.Seq() {
		return false // stale: frames after it were lost
	}
	catch := &Frame{Participant: gop[0].Participant, Layer: h.chain.Layer(), Meta: run[len(run)-1].Meta, Received: run[len(run)-1].Received, gop: run}
	select {
	case h.queue <- catch:
		h.chain.Mend(last)
		h.pending = h.pending[:0]
		h.gops.Add(1)
		return true
	default:
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
	h.chain.Break()
	h.askLocked(l, time.Now())
	h.mu.Unlock()
}

// run decodes until stop. shown is called with each decoded picture and
// the time it was decoded; keep asks it to convert the picture for a
// renderer.
func (h *h264Tile) run(dec media.Decoder, keep bool, shown func(f *Frame, at time.Time)) {
	h.wg.Go(func() {
		defer dec.Close()
		// An account of the reference chain kept apart from offer's
		// gating: a picture decoded from anything but an unbroken run of
		// frames since a keyframe counts as corrupt_shown.
		var chain protocol.Chain
		var skipping bool // after a decoder error, until a keyframe
		var one [1]*Frame
		for {
			var f *Frame
			select {
			case <-h.done:
				return
			case f = <-h.queue:
			}
			// One access unit, or a GOP reply joined up with live ones:
			// decode them all, show the last.
			run := f.gop
			if run == nil {
				one[0] = f
				run = one[:]
			}
			var ok, chainOK bool
			var err error
			for _, g := range run {
				if skipping && !g.Meta.Key {
					continue // queued before the decoder failed
				}
				skipping = false
				chainOK, _ = chain.Offer(g.Layer, g.Meta)
				if ok, err = dec.Decode(g.AU); err != nil {
					break
				}
				if ok && g.Meta.Key {
					h.keyframes.Add(1)
				}
			}
			if err != nil {
				h.decodeErrors.Add(1)
				chain.Break()
				skipping = true
				h.broken(f.Layer)
				continue
			}
			if ok {
				h.show(dec, run[len(run)-1], chainOK, keep, shown)
			}
		}
	})
}

// show counts the decoder's picture of f and hands it on.
func (h *h264Tile) show(dec media.Decoder, f *Frame, chainOK, keep bool, shown func(*Frame, time.Time)) {
	now := time.Now()
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

func (h *h264Tile) stop() {
	h.stopOnce.Do(func() { close(h.done) })
	h.wg.Wait()
}

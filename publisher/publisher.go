// Package publisher captures video from a source (a camera, a file or
// stream, a GStreamer pipeline, or a synthetic pattern), encodes each frame
// once per layer (H.264 and JPEG), and publishes the layers with the
// protocol's headers and presence. It forces H.264 keyframes when viewers
// ask for them, at most every KeyRequestEvery.
//
// Capture and publishing run on their own goroutines joined by a one-slot
// mailbox: when encoding or the network falls behind, the newest frame
// wins and the older one is dropped and counted. While the broker is
// unreachable frames are dropped and counted, never queued.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
)

// Defaults for Config's zero values.
const (
	DefaultFPS     = 30
	DefaultQuality = 80
	DefaultWidth   = 1280 // of sources without a size of their own (pattern)
	DefaultHeight  = 720
	minQuality     = 10
	qualityStep    = 10
	statsEvery     = 10 * time.Second
)

// ErrNotAllowed is returned (wrapped) by Run when the broker refuses to
// let this user publish as this participant in this room.
var ErrNotAllowed = errors.New("not allowed")

// ErrConnClosed is returned (wrapped) by Run when the connection to the
// broker is closed for good while the publisher runs: nats.go gives up
// reconnecting when a broker that came back refuses this client (its
// password or rights were changed). Frames would only be dropped from
// then on, so the publisher ends and says why; a service manager restarts
// it.
var ErrConnClosed = errors.New("the connection to the broker was closed")

// ErrBadConfig is returned (wrapped) for a Config that cannot work.
var ErrBadConfig = errors.New("bad publisher settings")

// Config says what to publish where.
type Config struct {
	Room, Name string
	// Source is what to capture: "pattern", a camera ("0", "/dev/video0"),
	// a file or URL, or "gst:<pipeline ending in appsink>".
	Source string
	// FPS paces capture; 0 means DefaultFPS.
	FPS float64
	// Width and Height of the hi layer; 0 means the source's own size
	// (DefaultWidth x DefaultHeight for the pattern).
	Width, Height int
	// Quality is the starting JPEG quality, 1 to 100; 0 means DefaultQuality.
	Quality int
	// Loop restarts a file source at its end instead of stopping.
	Loop bool
	// Views lists layers this participant also watches (a video chat),
	// announced in its presence.
	Views []protocol.Layer
	// Encode says which layers to encode; empty means EncodeAuto.
	Encode Encode
	// Codec is the codec of the main layers: protocol.CodecH264 publishes
	// the H.264 layers as well as the JPEG ones (those on demand, with
	// EncodeAuto), protocol.CodecJPEG only the JPEG layers, as protocol v1.
	// Empty means JPEG; DefaultCodec is what the command line defaults to.
	Codec protocol.Codec
	// Bitrate is the H.264 layer's target in bits per second; 0 picks
	// one from the size and frame rate (media.DefaultBitrate). The small
	// layer always picks its own.
	Bitrate int
	// KeyInt is the longest time between two H.264 keyframes; 0 means
	// DefaultKeyInt.
	KeyInt time.Duration
	// Adapt adapts the H.264 layers the publisher encodes to what its
	// viewers' receiver reports say of the path (adapt.go): bitrate down
	// to MinBitrate, then half the frame rate, then half the size, and
	// back up to Bitrate. A source passed through cannot be re-rated.
	Adapt bool
	// MinBitrate is the lowest bitrate Adapt takes the h264 layer to,
	// bits per second; 0 means a fifth of its bitrate. The small layer
	// goes down to a fifth of its own.
	MinBitrate int
	// Logger receives the publisher's log; nil discards it.
	Logger *slog.Logger
}

// Stats counts what a publisher did.
type Stats struct {
	Captured       uint64 // frames read from the source
	Published      uint64 // frames published on the main layer: h264 for codec H.264, else hi
	Bytes          uint64 // bytes published, all layers
	DroppedOffline uint64 // frames dropped while the broker was unreachable
	DroppedBusy    uint64 // frames overwritten in the mailbox: encoding fell behind
	Oversize       uint64 // frames over the broker's max payload
	Quality        int    // current JPEG quality
	// Skipped counts layer frames not encoded because nobody watched
	// the layer (EncodeWatched).
	Skipped uint64
	// JPEGReused counts JPEG frames made from the picture an H.264
	// layer of the same size had just coded, without converting and
	// scaling the frame again (the full build).
	JPEGReused uint64
	// Encoding lists the layers being encoded now.
	Encoding []protocol.Layer
	// Keyframes counts H.264 keyframes published, both layers;
	// KeyRequests the keyframe requests heard.
	Keyframes, KeyRequests uint64
	// GOPReplies counts keyframe requests answered with the access units
	// since the last keyframe (a source passed through).
	GOPReplies uint64
	// Record says how the frames of layers the room's recording keeps
	// fared: acknowledged, sent again, given up.
	Record RecordStats
	// Adapt says what each H.264 layer encodes now, when it adapts
	// (Config.Adapt).
	Adapt []AdaptStats `json:",omitempty"`
}

// AdaptOf returns what layer l encodes now, and false when l does not
// adapt.
func (s Stats) AdaptOf(l protocol.Layer) (AdaptStats, bool) {
	for _, a := range s.Adapt {
		if a.Layer == l {
			return a, true
		}
	}
	return AdaptStats{}, false
}

// AdaptStats is the state of one adapted H.264 layer.
type AdaptStats struct {
	Layer   protocol.Layer `json:"layer"`
	Bitrate int            `json:"bitrate"` // bits per second sent: at half the frame rate, half the encoder's
	FPS     float64        `json:"fps"`
	Width   int            `json:"width"`
	Height  int            `json:"height"`
	Downs   int            `json:"downs"` // steps down taken
	Ups     int            `json:"ups"`   // steps up taken
}

// layerOrder indexes Publisher.encoding.
var layerOrder = [4]protocol.Layer{protocol.Hi, protocol.Lo, protocol.H264, protocol.H264Lo}

// Publisher publishes one source into one room under one name.
type Publisher struct {
	cfg  Config
	addr protocol.Address
	nc   *nats.Conn
	log  *slog.Logger
	src  frameSource
	hiW  int
	hiH  int
	loW  int
	loH  int

	box     mailbox[captured]
	started time.Time
	quality atomic.Int64
	// Oversize frames are logged once, not once per frame or quality
	// step: when the first one comes, and when frames fit again or even
	// minQuality is too big. Only the publish goroutine touches these.
	bigLogged, bigSettled bool

	captured, published, bytes       atomic.Uint64
	droppedOffline, droppedBusy, big atomic.Uint64
	skipped                          atomic.Uint64
	jpegReused                       atomic.Uint64 // JPEG frames made from an H.264 layer's I420 picture
	interest                         *interest
	encoding                         [4]atomic.Bool // as layerOrder

	h264                   [2]*h264Layer // h264, h264lo; nil for codec JPEG
	bitrates               [2]atomic.Int64
	halfFPS                [2]atomic.Bool // adapted down to every other frame
	keyWanted              [2]atomic.Bool // a viewer asked for a keyframe
	keyframes, keyRequests atomic.Uint64
	encodeErrLog, bigLog   rate.Sometimes
	resizeErrLog           rate.Sometimes

	// pass, for an H.264 source passed through, publishes its access
	// units on the h264 layer (h264[0] is nil then).
	pass       *passthrough
	gopReplies atomic.Uint64

	rec *recorder // the room's recording, if any

	closeOnce sync.Once
}

// captured is one frame and its capture metadata.
type captured struct {
	f   frame
	seq uint64
	at  time.Time
}

// New checks cfg and opens the source. The source is released by Close
// (or at the end of Run).
func New(nc *nats.Conn, cfg Config) (*Publisher, error) {
	addr, err := protocol.NewAddress(cfg.Room, cfg.Name)
	if err != nil {
		return nil, err
	}
	if cfg.FPS == 0 {
		cfg.FPS = DefaultFPS
	}
	if cfg.FPS < 0 || cfg.FPS > 240 {
		return nil, fmt.Errorf("%w: fps %g is outside 1 to 240", ErrBadConfig, cfg.FPS)
	}
	if cfg.Quality == 0 {
		cfg.Quality = DefaultQuality
	}
	if cfg.Encode == "" {
		cfg.Encode = EncodeAuto
	}
	if _, err := ParseEncode(string(cfg.Encode)); err != nil {
		return nil, err
	}
	if cfg.Codec == "" {
		cfg.Codec = protocol.CodecJPEG
	}
	if _, err := ParseCodec(string(cfg.Codec)); err != nil {
		return nil, err
	}
	if cfg.KeyInt == 0 {
		cfg.KeyInt = DefaultKeyInt
	}
	if cfg.KeyInt < 0 || cfg.KeyInt > time.Minute {
		return nil, fmt.Errorf("%w: keyframe interval %v is outside 0 to 1m", ErrBadConfig, cfg.KeyInt)
	}
	if cfg.Bitrate < 0 || cfg.Bitrate > 1_000_000_000 {
		return nil, fmt.Errorf("%w: bitrate %d is outside 0 to 1000000000 bit/s", ErrBadConfig, cfg.Bitrate)
	}
	if cfg.MinBitrate < 0 || cfg.MinBitrate > 1_000_000_000 || (cfg.Bitrate > 0 && cfg.MinBitrate > cfg.Bitrate) {
		return nil, fmt.Errorf("%w: minimum bitrate %d is outside 0 to the bitrate (%d) bit/s", ErrBadConfig, cfg.MinBitrate, cfg.Bitrate)
	}
	if cfg.Quality < 1 || cfg.Quality > 100 {
		return nil, fmt.Errorf("%w: quality %d is outside 1 to 100", ErrBadConfig, cfg.Quality)
	}
	if (cfg.Width == 0) != (cfg.Height == 0) || cfg.Width < 0 || cfg.Height < 0 ||
		cfg.Width > protocol.MaxDimension || cfg.Height > protocol.MaxDimension {
		return nil, fmt.Errorf("%w: size %dx%d: give both sides, each 1 to %d", ErrBadConfig, cfg.Width, cfg.Height, protocol.MaxDimension)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "publisher", "room", cfg.Room, "name", cfg.Name)
	pt, passing, err := openPassthrough(cfg)
	if err != nil {
		return nil, err
	}
	var src frameSource
	if passing {
		src = pt.source()
	} else if src, err = openSource(cfg); err != nil {
		return nil, err
	}
	p := &Publisher{cfg: cfg, addr: addr, nc: nc, log: log, src: src, started: time.Now(), pass: pt,
		encodeErrLog: rate.Sometimes{Interval: 10 * time.Second}, bigLog: rate.Sometimes{Interval: 10 * time.Second}}
	p.hiW, p.hiH = cfg.Width, cfg.Height
	if p.hiW == 0 {
		p.hiW, p.hiH = src.Size()
	}
	p.loW, p.loH = protocol.LoSize(p.hiW, p.hiH)
	p.quality.Store(int64(cfg.Quality))
	p.box.init()
	if cfg.Codec == protocol.CodecH264 {
		if err := p.openH264(); err != nil {
			_ = src.Close()
			return nil, err
		}
	}
	for i, l := range layerOrder {
		p.encoding[i].Store(p.sends(l))
	}
	if cfg.Encode == EncodeWatched || (cfg.Encode == EncodeAuto && cfg.Codec == protocol.CodecH264) {
		p.interest = newInterest()
	}
	p.rec = newRecorder(nc, addr, log)
	return p, nil
}

// Size returns the size of the hi layer.
func (p *Publisher) Size() (w, h int) { return p.hiW, p.hiH }

// Stats returns the counters so far.
func (p *Publisher) Stats() Stats {
	return Stats{
		Captured:       p.captured.Load(),
		Published:      p.published.Load(),
		Bytes:          p.bytes.Load(),
		DroppedOffline: p.droppedOffline.Load(),
		DroppedBusy:    p.droppedBusy.Load(),
		Oversize:       p.big.Load(),
		Quality:        int(p.quality.Load()),
		Skipped:        p.skipped.Load(),
		JPEGReused:     p.jpegReused.Load(),
		Encoding:       p.encodingLayers(),
		Keyframes:      p.keyframes.Load(),
		KeyRequests:    p.keyRequests.Load(),
		GOPReplies:     p.gopReplies.Load(),
		Record:         p.rec.stats(),
		Adapt:          p.adaptStats(),
	}
}

func (p *Publisher) encodingLayers() []protocol.Layer {
	var ls []protocol.Layer
	for i, l := range layerOrder {
		if p.encoding[i].Load() {
			ls = append(ls, l)
		}
	}
	return ls
}

// sends reports whether the publisher has layer l at all.
func (p *Publisher) sends(l protocol.Layer) bool {
	return l.Codec() == protocol.CodecJPEG || p.cfg.Codec == protocol.CodecH264
}

// Run captures and publishes until ctx is done or a non-looping file ends.
// On the way out it beats a last presence with leaving set and flushes;
// draining the connection is the caller's. It returns nil on a clean stop.
func (p *Publisher) Run(ctx context.Context) error {
	defer p.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if p.interest != nil {
		sub, err := p.nc.Subscribe(protocol.RoomPresence(p.addr.Room()), p.interest.onPresence)
		if err != nil {
			return fmt.Errorf("following who watches room %s: %w", p.addr.Room(), err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	if p.cfg.Codec == protocol.CodecH264 {
		sub, err := p.nc.Subscribe(p.addr.KeySubject(), p.onKeyRequest)
		if err != nil {
			return fmt.Errorf("listening for keyframe requests: %w", err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	if p.adapting() {
		sub, err := p.nc.Subscribe(p.addr.ReportSubject(protocol.AnyParticipant), p.onReport)
		if err != nil {
			return fmt.Errorf("listening for receiver reports: %w", err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	acks, err := p.nc.Subscribe(p.rec.inbox+".*", p.rec.onAck)
	if err != nil {
		return fmt.Errorf("listening for the recording's acknowledgements: %w", err)
	}
	defer func() { _ = acks.Unsubscribe() }()
	var wg sync.WaitGroup
	var captureErr, beatErr error
	wg.Go(func() { p.rec.run(ctx) })
	wg.Go(func() {
		defer cancel()
		if p.pass != nil {
			captureErr = p.runPassthrough(ctx)
		} else {
			captureErr = p.capture(ctx)
		}
	})
	wg.Go(func() { p.publish(ctx) })
	wg.Go(func() {
		defer cancel()
		beatErr = p.beat(ctx)
	})
	wg.Wait()
	if n := p.rec.drain(DrainWait); n > 0 {
		p.log.Warn("stopping with recorded frames the recording has not acknowledged", "unacked", n)
	}
	if beatErr != nil {
		return beatErr
	}

	p.sendPresence(true)
	if err := p.nc.FlushTimeout(time.Second); err != nil && p.nc.IsConnected() {
		p.log.Warn("flush on exit", "err", err)
	}
	st := p.Stats()
	p.log.Info("publisher stopped", "captured", st.Captured, "published", st.Published,
		"dropped_offline", st.DroppedOffline, "dropped_busy", st.DroppedBusy, "oversize", st.Oversize)
	if errors.Is(captureErr, io.EOF) {
		p.log.Info("source ended", "source", p.cfg.Source)
		return nil
	}
	return captureErr
}

// Close releases the source and any frame still in the mailbox. Run calls
// it; it is safe to call more than once.
func (p *Publisher) Close() {
	p.closeOnce.Do(func() {
		if c, ok := p.box.drain(); ok {
			c.f.release()
		}
		if err := p.src.Close(); err != nil {
			p.log.Warn("closing source", "err", err)
		}
		p.closeH264()
	})
}

// capture reads frames at the configured pace into the mailbox.
func (p *Publisher) capture(ctx context.Context) error {
	interval := time.Duration(float64(time.Second) / p.cfg.FPS)
	next := time.Now()
	var seq uint64
	for ctx.Err() == nil {
		if !p.src.Live() {
			// Paced sources (pattern, files) are read on our clock.
			if d := time.Until(next); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
			}
		}
		f, err := p.src.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		if p.src.Live() && now.Before(next.Add(-interval/4)) {
			// A live source delivers at its own rate; keep up with it
			// (no stale frames pile up in its buffers) but publish at ours.
			f.release()
			continue
		}
		next = next.Add(interval)
		if now.Sub(next) > interval {
			next = now // fell far behind (a stall): do not burst to catch up
		}
		seq++
		p.captured.Add(1)
		if old, replaced := p.box.put(captured{f: f, seq: seq, at: now}); replaced {
			old.f.release()
			p.droppedBusy.Add(1)
		}
	}
	return nil
}

// publish encodes and sends what the mailbox holds.
func (p *Publisher) publish(ctx context.Context) {
	hdr := map[protocol.Layer]*protocol.FrameHeader{protocol.Hi: protocol.NewFrameHeader(), protocol.Lo: protocol.NewFrameHeader()}
	subj := map[protocol.Layer]string{protocol.Hi: p.addr.FrameSubject(protocol.Hi), protocol.Lo: p.addr.FrameSubject(protocol.Lo)}
	offline := false
	tick := time.NewTicker(statsEvery)
	defer tick.Stop()
	adapt := time.NewTicker(protocol.ReportEvery)
	defer adapt.Stop()
	for {
		var c captured
		select {
		case <-ctx.Done():
			return
		case now := <-adapt.C:
			p.adapt(now)
			continue
		case <-tick.C:
			st := p.Stats()
			p.log.Info("publishing", "published", st.Published, "kbytes", st.Bytes/1000,
				"dropped_offline", st.DroppedOffline, "dropped_busy", st.DroppedBusy, "oversize", st.Oversize,
				"quality", st.Quality, "encoding", st.Encoding, "skipped", st.Skipped)
			for _, a := range st.Adapt {
				p.log.Info("adapting", "layer", a.Layer, "bitrate", a.Bitrate, "fps", a.FPS,
					"size", fmt.Sprintf("%dx%d", a.Width, a.Height), "downs", a.Downs, "ups", a.Ups)
			}
			if r := st.Record; len(r.Layers) > 0 || r.Unacked > 0 {
				p.log.Info("recorded", "layers", r.Layers, "acked", r.Acked, "unacked", r.Unacked,
					"resent", r.Resent, "lost", r.Lost, "refused", r.Refused)
			}
			continue
		case <-p.box.ready:
			var ok bool
			if c, ok = p.box.drain(); !ok {
				continue
			}
		}
		if !p.nc.IsConnected() {
			if !offline {
				p.log.Warn("broker unreachable: dropping frames until it is back", "status", p.nc.Status().String())
				offline = true
			}
			p.droppedOffline.Add(1)
			for i, hl := range p.h264 {
				switch {
				case hl == nil:
				case p.rec.recorded(hl.layer) && p.wanted(2+i, c.at):
					p.sendH264(c, i, false) // kept for the recording
				default:
					p.lostH264(hl)
				}
			}
			c.f.release()
			continue
		}
		if offline {
			p.log.Info("broker is back: publishing again", "dropped_offline", p.droppedOffline.Load())
			offline = false
			if p.interest != nil {
				p.interest.resumed(time.Now())
			}
		}
		for i := range p.h264 {
			if p.h264[i] != nil && p.wanted(2+i, c.at) {
				p.sendH264(c, i, true)
			} else if p.h264[i] != nil {
				p.h264[i].needKey = true // idle: a viewer that comes needs a keyframe
			}
		}
		if p.wanted(0, c.at) {
			p.send(c, protocol.Hi, p.hiW, p.hiH, hdr[protocol.Hi], subj[protocol.Hi])
		}
		if p.wanted(1, c.at) {
			p.send(c, protocol.Lo, p.loW, p.loH, hdr[protocol.Lo], subj[protocol.Lo])
		}
		c.f.release()
	}
}

// wanted reports whether layer layerOrder[i] is to be encoded now, and
// logs when that changes.
func (p *Publisher) wanted(i int, now time.Time) bool {
	l := layerOrder[i]
	if p.interest == nil || (p.cfg.Encode == EncodeAuto && l == protocol.H264) ||
		(p.cfg.Encode == EncodeAuto && l == protocol.H264Lo && p.pass == nil) {
		// auto: H.264 always, but for the small layer of a source passed
		// through, which costs a decoder: it is encoded while watched.
		return true
	}
	w := p.interest.watched(l, now) || p.rec.recorded(l)
	if p.encoding[i].Swap(w) != w {
		if w {
			p.log.Info("layer watched: encoding it", "layer", l)
		} else {
			p.log.Info("nobody watches layer: not encoding it", "layer", l)
		}
	}
	if !w {
		p.skipped.Add(1)
	}
	return w
}

// send encodes one layer of c and publishes it. A frame over the broker's
// payload limit is counted (Stats.Oversize, and the periodic log line),
// and quality steps down until frames fit. It runs on the publish
// goroutine only.
func (p *Publisher) send(c captured, l protocol.Layer, w, h int, fh *protocol.FrameHeader, subject string) {
	q := int(p.quality.Load())
	publish := func(jpeg []byte) error {
		if limit := p.nc.MaxPayload(); limit > 0 && int64(len(jpeg)) > limit {
			return fmt.Errorf("%w: %d bytes", nats.ErrMaxPayload, len(jpeg))
		}
		msg := nats.Msg{
			Subject: subject,
			Header:  fh.Set(protocol.FrameMeta{Seq: c.seq, Time: c.at.UnixNano(), Width: w, Height: h}),
			Data:    jpeg,
		}
		p.rec.track(&msg, l, c.at, true)
		if err := p.nc.PublishMsg(&msg); err != nil {
			return err
		}
		p.bytes.Add(uint64(len(jpeg)))
		return nil
	}
	var err error
	if img, ok := p.i420For(c, w, h); ok {
		if err = media.EncodeJPEGI420(img, q, publish); err == nil {
			p.jpegReused.Add(1)
		}
	} else {
		err = c.f.encode(w, h, q, publish)
	}
	switch {
	case err == nil:
		if l == protocol.Hi && p.h264[0] == nil {
			p.published.Add(1)
		}
		if p.bigLogged && !p.bigSettled && l == protocol.Hi {
			p.bigSettled = true
			p.log.Info("frames fit the broker's max payload again", "quality", q,
				"max_payload", p.nc.MaxPayload(), "oversize", p.big.Load())
		}
	case errors.Is(err, nats.ErrMaxPayload):
		p.big.Add(1)
		nq := max(minQuality, q-qualityStep)
		if nq < q {
			p.quality.Store(int64(nq))
		}
		switch {
		case !p.bigLogged && nq < q:
			p.bigLogged = true
			p.log.Warn("frames over the broker's max payload are dropped: stepping JPEG quality down until they fit",
				"layer", l, "err", err, "max_payload", p.nc.MaxPayload(), "quality", nq)
		case nq == q && !p.bigSettled:
			p.bigLogged, p.bigSettled = true, true
			p.log.Error("frames still over the broker's max payload at the lowest JPEG quality: lower --size or raise the broker's max_payload",
				"layer", l, "err", err, "max_payload", p.nc.MaxPayload(), "quality", q, "oversize", p.big.Load())
		}
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionDraining):
		if l == protocol.Hi {
			p.droppedOffline.Add(1)
		}
	default:
		p.log.Warn("publishing a frame failed", "layer", l, "err", err)
	}
}

// i420For returns the I420 picture an H.264 layer coded of c, when its
// size is w x h and this build makes JPEGs of such pictures: a JPEG layer
// then skips a colour conversion and a scaling of its own (a 720p30
// publisher with every layer watched: BENCHMARKS.md).
func (p *Publisher) i420For(c captured, w, h int) (media.Image, bool) {
	if !media.CanEncodeJPEGI420() {
		return media.Image{}, false
	}
	for _, hl := range p.h264 {
		if hl == nil || !hl.coded.Equal(c.at) {
			continue
		}
		if img := hl.enc.Input(); img.Width == w && img.Height == h {
			return img, true
		}
	}
	return media.Image{}, false
}

// beat sends presence every protocol.Beat. It fails when the broker
// refuses this participant's subjects: publishing would be in vain.
func (p *Publisher) beat(ctx context.Context) error {
	p.sendPresence(false)
	if p.nc.IsConnected() {
		_ = p.nc.FlushTimeout(2 * time.Second)
	}
	t := time.NewTicker(protocol.Beat)
	defer t.Stop()
	for {
		if err := p.refused(); err != nil {
			return err
		}
		if p.nc.IsClosed() {
			return fmt.Errorf("%w (last error: %v); check that the broker still admits this user, then start the publisher again",
				ErrConnClosed, p.nc.LastError())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			p.sendPresence(false)
		}
	}
}

// refused reports a permission violation on this participant's subjects.
func (p *Publisher) refused() error {
	le := p.nc.LastError()
	if errors.Is(le, nats.ErrPermissionViolation) && strings.Contains(le.Error(), p.addr.SubjectPrefix()) {
		return fmt.Errorf("%w: the broker refused (%w); publishing into room %s as %s needs publish rights to %s",
			ErrNotAllowed, le, p.addr.Room(), p.addr.Participant(), p.addr.AllSubjects())
	}
	return nil
}

func (p *Publisher) sendPresence(leaving bool) {
	pr := protocol.Presence{
		Role: protocol.RolePublisher,
		Layers: []protocol.LayerInfo{
			{Layer: protocol.Hi, Width: p.hiW, Height: p.hiH, FPS: p.cfg.FPS},
			{Layer: protocol.Lo, Width: p.loW, Height: p.loH, FPS: p.cfg.FPS},
		},
		Streams: p.streams(),
		Started: p.started,
		Leaving: leaving,
	}
	pr.SetViews(p.cfg.Views)
	b, err := pr.Encode()
	if err != nil {
		p.log.Error("encoding presence", "err", err)
		return
	}
	if !p.nc.IsConnected() {
		return
	}
	if err := p.nc.Publish(p.addr.PresenceSubject(), b); err != nil {
		p.log.Debug("presence not sent", "err", err)
	}
}

// mailbox holds at most one value: put replaces what is there.
type mailbox[T any] struct {
	mu    sync.Mutex
	v     T
	full  bool
	ready chan struct{}
}

func (m *mailbox[T]) init() { m.ready = make(chan struct{}, 1) }

// put stores v and returns the value it replaced, if any.
func (m *mailbox[T]) put(v T) (old T, replaced bool) {
	m.mu.Lock()
	old, replaced = m.v, m.full
	m.v, m.full = v, true
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
	return old, replaced
}

// drain takes the value out, if there is one.
func (m *mailbox[T]) drain() (v T, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok = m.v, m.full
	var zero T
	m.v, m.full = zero, false
	return v, ok
}

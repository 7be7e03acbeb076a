package publisher

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
)

// Keyframe pacing.
const (
	// DefaultKeyInt is the longest time between two keyframes when
	// Config.KeyInt is 0.
	DefaultKeyInt = 2 * time.Second
	// KeyRequestEvery is the shortest time between two keyframes forced
	// by viewers' requests: more requests within it are served together
	// by the next one, so nobody can make a publisher send only keyframes.
	KeyRequestEvery = 300 * time.Millisecond
)

// ErrNoH264 is returned (wrapped) by New for Codec H.264 in a build that
// cannot encode it.
var ErrNoH264 = media.ErrUnavailable

// ParseCodec parses h264 or jpeg.
func ParseCodec(s string) (protocol.Codec, error) {
	switch protocol.Codec(s) {
	case protocol.CodecH264, protocol.CodecJPEG:
		return protocol.Codec(s), nil
	}
	return "", fmt.Errorf("%w: codec %q: use h264 or jpeg", ErrBadConfig, s)
}

// DefaultCodec is H.264 where this build can encode it, else JPEG.
func DefaultCodec() protocol.Codec {
	if media.CanEncodeH264() {
		return protocol.CodecH264
	}
	return protocol.CodecJPEG
}

// h264Layer is one H.264 layer: its encoder and its keyframe state. Only
// the publish goroutine touches it, but for keyWanted, the counters and
// shape.
type h264Layer struct {
	layer  protocol.Layer
	keyInt int
	enc    media.Encoder
	// shape is what enc codes; presence and Stats read it on other
	// goroutines.
	shape   atomic.Pointer[layerShape]
	hdr     *protocol.FrameHeader
	subject string
	seq     uint64
	// needKey says the chain broke here (an access unit was not sent, or
	// the layer was idle): the next must be a keyframe.
	needKey    bool
	lastForced time.Time
	// coded is the capture time of the last picture the encoder took:
	// while it is the frame at hand, the small layer codes the full one's
	// I420 picture (enc.Input) instead of converting the frame again.
	coded time.Time
	// adapt, with Config.Adapt, decides the layer's rate from receiver
	// reports; sent counts the bytes it published, for it.
	adapt *adapter
	sent  uint64
}

// openH264 opens the encoders of both H.264 layers and learns their codec
// strings, so that presence can announce them before the first frame.
func (p *Publisher) openH264() error {
	keyInt := max(1, int(p.cfg.KeyInt.Seconds()*p.cfg.FPS+0.5))
	for i, l := range []protocol.Layer{protocol.H264, protocol.H264Lo} {
		if i == 0 && p.pass != nil {
			continue // the source's own access units
		}
		w, h := p.hiW, p.hiH
		bitrate := p.cfg.Bitrate
		if l.Small() {
			w, h = p.loW, p.loH
			bitrate = 0
		}
		w, h = max(2, w&^1), max(2, h&^1)
		if bitrate == 0 {
			bitrate = media.DefaultBitrate(w, h, p.cfg.FPS)
		}
		enc, err := media.NewEncoder(media.EncoderConfig{Width: w, Height: h, FPS: p.cfg.FPS, Bitrate: bitrate, KeyInt: keyInt})
		if err != nil {
			p.closeH264()
			return err
		}
		hl := &h264Layer{layer: l, keyInt: keyInt, enc: enc,
			hdr: protocol.NewCodecHeader(protocol.CodecH264), subject: p.addr.FrameSubject(l), needKey: true}
		p.h264[i] = hl
		p.bitrates[i].Store(int64(bitrate))
		if p.cfg.Adapt {
			floor := bitrate / 5
			if i == 0 && p.cfg.MinBitrate > 0 {
				floor = p.cfg.MinBitrate
			}
			hl.adapt = newAdapter(l, bitrate, floor).withHalfSize(w, h, p.loW, p.loH)
		}
		codec, err := codecOf(enc, w, h)
		if err != nil {
			p.closeH264()
			return fmt.Errorf("starting the H.264 encoder: %w", err)
		}
		hl.shape.Store(&layerShape{w: w, h: h, codec: codec})
	}
	return nil
}

// layerShape is what an H.264 layer codes: its size and codec string.
type layerShape struct {
	w, h  int
	codec string
}

// codecOf returns the codec string of enc, which codes w x h.
func codecOf(enc media.Encoder, w, h int) (string, error) {
	if c := enc.Codec(); c != "" {
		return c, nil
	}
	// The encoder states its profile and level in its first SPS: code one
	// blank picture to read it. The first real frame is a keyframe anyway.
	blank := media.Image{Fmt: media.RGBA, Width: w, Height: h, Stride: 4 * w, Pix: make([]byte, 4*w*h)}
	au, err := enc.Encode(blank, true)
	if err != nil {
		return "", err
	}
	return protocol.H264CodecString(au.Data)
}

// resize reopens hl's encoder at w x h with bitrate: the next frame is
// an IDR with the new SPS and PPS. When it fails, hl codes on as before.
func (p *Publisher) resize(hl *h264Layer, w, h, bitrate int) error {
	enc, err := media.NewEncoder(media.EncoderConfig{Width: w, Height: h, FPS: p.cfg.FPS, Bitrate: bitrate, KeyInt: hl.keyInt})
	if err != nil {
		return err
	}
	codec, err := codecOf(enc, w, h)
	if err != nil {
		enc.Close()
		return err
	}
	hl.enc.Close()
	hl.enc = enc
	hl.coded = time.Time{}
	hl.needKey = true
	hl.shape.Store(&layerShape{w: w, h: h, codec: codec})
	return nil
}

func (p *Publisher) closeH264() {
	for i, hl := range p.h264 {
		if hl != nil {
			hl.enc.Close()
			p.h264[i] = nil
		}
	}
}

// onKeyRequest is the NATS callback for keyframe requests: the body names
// the layer. It only marks the layer; the publish goroutine paces.
func (p *Publisher) onKeyRequest(m *nats.Msg) {
	l, err := protocol.ParseLayer(string(m.Data))
	if err != nil || l.Codec() != protocol.CodecH264 {
		return
	}
	i := 0
	if l.Small() {
		i = 1
	}
	p.keyRequests.Add(1)
	if i == 0 && p.pass != nil {
		p.replyGOP(m) // a camera's keyframes cannot be forced
		return
	}
	p.keyWanted[i].Store(true)
}

// lostH264 accounts for a frame dropped while the broker is away: its
// number is used up, so viewers count it as lost, and the next frame is a
// keyframe.
func (p *Publisher) lostH264(hl *h264Layer) {
	hl.seq++
	hl.needKey = true
}

// sendH264 encodes c on layer i and publishes it. Offline (online
// false), it encodes it for the recording of the layer only, which gets
// it once the broker is back.
func (p *Publisher) sendH264(c captured, i int, online bool) {
	hl := p.h264[i]
	if hl == nil {
		return
	}
	if p.halfFPS[i].Load() && c.seq%2 == 0 {
		return // adapted to half the frame rate: the numbering goes on unbroken
	}
	force := hl.needKey
	if p.keyWanted[i].Load() && c.at.Sub(hl.lastForced) >= KeyRequestEvery {
		force = true
	}
	src := c.f.picture()
	if full := p.h264[0]; i == 1 && full != nil && full.coded.Equal(c.at) {
		src = full.enc.Input()
	}
	au, err := hl.enc.Encode(src, force)
	if err == nil {
		hl.coded = c.at
	}
	if err != nil {
		p.encodeErrLog.Do(func() { p.log.Warn("H.264 encoding failed", "layer", hl.layer, "err", err) })
		hl.needKey = true
		return
	}
	if force {
		p.keyWanted[i].Store(false)
		hl.lastForced = c.at
	}
	if limit := p.nc.MaxPayload(); limit > 0 && int64(len(au.Data)) > limit {
		p.big.Add(1)
		hl.needKey = true // what follows refers to what was not sent
		p.bigLog.Do(func() {
			p.log.Warn("an H.264 frame over the broker's max payload was dropped: lower --bitrate or raise the broker's max_payload",
				"layer", hl.layer, "bytes", len(au.Data), "max_payload", limit)
		})
		return
	}
	hl.seq++
	sh := hl.shape.Load()
	msg := nats.Msg{
		Subject: hl.subject,
		Header:  hl.hdr.Set(protocol.FrameMeta{Seq: hl.seq, Time: c.at.UnixNano(), Width: sh.w, Height: sh.h, Key: au.Key}),
		Data:    au.Data,
	}
	p.rec.track(&msg, hl.layer, c.at, online)
	if !online {
		return
	}
	if err := p.nc.PublishMsg(&msg); err != nil {
		hl.needKey = true // the number stays used: viewers count it lost
		if !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrConnectionReconnecting) &&
			!errors.Is(err, nats.ErrReconnectBufExceeded) && !errors.Is(err, nats.ErrConnectionDraining) {
			p.log.Warn("publishing a frame failed", "layer", hl.layer, "err", err)
		} else if i == 0 {
			p.droppedOffline.Add(1)
		}
		return
	}
	hl.needKey = false
	hl.sent += uint64(len(au.Data))
	p.bytes.Add(uint64(len(au.Data)))
	if au.Key {
		p.keyframes.Add(1)
	}
	if i == 0 {
		p.published.Add(1)
	}
}

// streams is what presence says of the H.264 layers.
func (p *Publisher) streams() []protocol.LayerInfo {
	var out []protocol.LayerInfo
	if p.pass != nil {
		if c := p.pass.codec(); c != "" {
			w, h := p.pass.size()
			out = append(out, protocol.LayerInfo{Layer: protocol.H264, Width: w, Height: h, FPS: p.cfg.FPS, Codec: c})
		}
	}
	for i, hl := range p.h264 {
		if hl == nil {
			continue
		}
		sh := hl.shape.Load()
		out = append(out, protocol.LayerInfo{Layer: hl.layer, Width: sh.w, Height: sh.h, FPS: p.fps(i),
			Codec: sh.codec, Bitrate: p.bitrate(i)})
	}
	return out
}

// bitrate is the rate H.264 layer i is coded at now, in bits per second:
// the encoder spends its bitrate / fps on each picture, so at half the
// frame rate half of it.
func (p *Publisher) bitrate(i int) int {
	b := int(p.bitrates[i].Load())
	if p.halfFPS[i].Load() {
		return b / 2
	}
	return b
}

// fps is the frame rate H.264 layer i is coded at now.
func (p *Publisher) fps(i int) float64 {
	if p.halfFPS[i].Load() {
		return p.cfg.FPS / 2
	}
	return p.cfg.FPS
}

// adapting reports whether some H.264 layer adapts to receiver reports.
func (p *Publisher) adapting() bool {
	return p.h264[0] != nil && p.h264[0].adapt != nil || p.h264[1] != nil && p.h264[1].adapt != nil
}

// onReport is the NATS callback for receiver reports: it hands each to
// its layer's adapter, which the publish goroutine consults.
func (p *Publisher) onReport(m *nats.Msg) {
	// The sender's name is the subject's last token, where the broker
	// holds a viewer to its own.
	r, err := protocol.ParseReport(m.Subject, m.Data)
	if err != nil {
		return
	}
	i := 0
	if r.Layer.Small() {
		i = 1
	}
	if hl := p.h264[i]; hl != nil && hl.adapt != nil {
		hl.adapt.report(r, time.Now())
	}
}

// adapt runs every protocol.ReportEvery on the publish goroutine: each
// adapted layer's decision, applied at once.
func (p *Publisher) adapt(now time.Time) {
	for i, hl := range p.h264 {
		if hl == nil || hl.adapt == nil {
			continue
		}
		hl.adapt.published(hl.sent, now)
		old := hl.adapt.current()
		s, why, changed := hl.adapt.decide(now)
		if !changed {
			continue
		}
		sh := hl.shape.Load()
		if w, h := hl.adapt.size(s); w != sh.w || h != sh.h {
			if err := p.resize(hl, w, h, s.Bitrate); err != nil {
				p.resizeErrLog.Do(func() {
					p.log.Warn("cannot change the H.264 size: the layer keeps its own", "layer", hl.layer, "size", fmt.Sprintf("%dx%d", sh.w, sh.h), "err", err)
				})
				hl.adapt.sizeFailed(s, old)
				continue
			}
			p.bitrates[i].Store(int64(s.Bitrate))
			hl.adapt.reopen(time.Now())
		}
		if int64(s.Bitrate) != p.bitrates[i].Load() {
			if err := hl.enc.SetBitrate(s.Bitrate); err != nil {
				p.log.Warn("cannot change the H.264 bitrate", "layer", hl.layer, "err", err)
				continue
			}
			p.bitrates[i].Store(int64(s.Bitrate))
		}
		p.halfFPS[i].Store(s.HalfFPS)
		p.log.Info("adapting to the viewers' path: "+why, "layer", hl.layer)
	}
}

// adaptStats is Stats.Adapt.
func (p *Publisher) adaptStats() []AdaptStats {
	var out []AdaptStats
	for i, hl := range p.h264 {
		if hl == nil || hl.adapt == nil {
			continue
		}
		downs, ups := hl.adapt.counts()
		sh := hl.shape.Load()
		out = append(out, AdaptStats{Layer: hl.layer, Bitrate: p.bitrate(i), FPS: p.fps(i),
			Width: sh.w, Height: sh.h, Downs: downs, Ups: ups})
	}
	return out
}

package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
)

// passthrough publishes an H.264 source's access units as they come, on
// the h264 layer, without decoding them. It keeps the access units since
// the last keyframe: the camera's keyframes cannot be forced, so a viewer
// that asks for one gets them instead (a GOP reply) and decodes them at
// once. Only while a decoded layer is watched (JPEG, or h264lo) does it
// decode, and hands the pictures to the publish goroutine.
type passthrough struct {
	url  string
	loop bool
	dmx  media.Demuxer
	w, h int
	fps  float64
	// codecStr is the source's codec string, as of the last (re)open;
	// under mu.
	codecStr string

	hdr     *protocol.FrameHeader
	subject string
	seq     uint64

	mu     sync.Mutex                        // guards gop and gopSeq
	gop    protocol.GOPRun[protocol.GOPUnit] // access units since the last keyframe, owned copies
	gopSeq uint64                            // number of the run's keyframe

	dec    media.Decoder // while decoding
	capSeq uint64        // numbers the pictures decoded for the other layers
}

// passthroughCandidate reports whether src may be an H.264 file or
// stream: not a camera, pipeline or pattern.
func passthroughCandidate(src string) bool {
	return src != "" && !isCamera(src) && !strings.HasPrefix(src, "gst:") && !strings.HasPrefix(src, "pattern")
}

// openPassthrough opens src for passthrough if it is H.264; ok is false
// (and err nil) when it is something else, to be decoded and encoded.
// Builds without FFmpeg (static, lite) cannot demux, so they never pass
// a source through.
func openPassthrough(cfg Config) (pt *passthrough, ok bool, err error) {
	if cfg.Codec != protocol.CodecH264 || !passthroughCandidate(cfg.Source) {
		return nil, false, nil
	}
	dmx, err := media.OpenH264(cfg.Source)
	if err != nil {
		// Not H.264, or not openable this way: OpenCV gets its turn (and
		// says what is wrong if it cannot open it either).
		return nil, false, nil //nolint:nilerr
	}
	if cfg.Width != 0 {
		_ = dmx.Close()
		return nil, false, fmt.Errorf("%w: --size cannot change an H.264 source that is passed through (%s); drop --size, or use --codec jpeg", ErrBadConfig, cfg.Source)
	}
	w, h := dmx.Size()
	return &passthrough{url: cfg.Source, loop: cfg.Loop, dmx: dmx, w: w, h: h, fps: dmx.FPS(), codecStr: dmx.Codec(),
		hdr: protocol.NewCodecHeader(protocol.CodecH264)}, true, nil
}

// ptSource stands in for the frame source of a passthrough publisher:
// its size, pace and closing.
type ptSource struct{ pt *passthrough }

func (pt *passthrough) source() frameSource { return ptSource{pt} }

// codec is the codec string of the source.
func (pt *passthrough) codec() string {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.codecStr
}

// size is the source's picture size.
func (pt *passthrough) size() (int, int) { return pt.w, pt.h }

func (s ptSource) Read(context.Context) (frame, error) { return nil, io.EOF }
func (s ptSource) Live() bool                          { return s.pt.dmx.Live() }
func (s ptSource) Size() (int, int)                    { return s.pt.w, s.pt.h }
func (s ptSource) Close() error {
	if s.pt.dec != nil {
		s.pt.dec.Close()
		s.pt.dec = nil
	}
	return s.pt.dmx.Close()
}

// run reads and publishes access units until ctx is done or a file ends.
func (p *Publisher) runPassthrough(ctx context.Context) error {
	pt := p.pass
	pt.subject = p.addr.FrameSubject(protocol.H264)
	var start time.Time
	var firstPTS time.Duration
	waitKey := true
	backoff := time.Second
	for ctx.Err() == nil {
		au, err := pt.dmx.Read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) && !pt.loop {
				return fmt.Errorf("%s: %w", pt.url, io.EOF)
			}
			if !errors.Is(err, io.EOF) {
				p.log.Warn("H.264 source failed: reopening", "source", pt.url, "err", err, "in", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
				backoff = min(2*backoff, 10*time.Second)
			}
			if err := pt.reopen(ctx); err != nil {
				p.log.Warn("reopening the H.264 source failed", "source", pt.url, "err", err)
			}
			start, waitKey = time.Time{}, true
			continue
		}
		backoff = time.Second
		if waitKey && !au.Key {
			continue // after a reopen, start clean
		}
		waitKey = false
		now := time.Now()
		if !pt.dmx.Live() {
			// A file plays at its own pace, by its timestamps.
			if start.IsZero() {
				start, firstPTS = now, au.PTS
			}
			if d := time.Until(start.Add(au.PTS - firstPTS)); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
				now = time.Now()
			}
		}
		p.captured.Add(1)
		p.passAU(au, now)
		p.passDecode(au, now)
	}
	return nil
}

func (pt *passthrough) reopen(ctx context.Context) error {
	_ = pt.dmx.Close()
	dmx, err := media.OpenH264Context(ctx, pt.url)
	if err != nil {
		pt.dmx = closedDemuxer{pt.dmx}
		return err
	}
	pt.dmx = dmx
	pt.mu.Lock()
	pt.codecStr = dmx.Codec()
	pt.mu.Unlock()
	return nil
}

// closedDemuxer is a demuxer that failed to reopen: Read fails, so the
// loop tries again.
type closedDemuxer struct{ media.Demuxer }

func (c closedDemuxer) Read() (media.AU, error) {
	return media.AU{}, errors.New("the source is closed")
}
func (c closedDemuxer) Close() error { return nil }

// passAU publishes one access unit and keeps it for the GOP.
func (p *Publisher) passAU(au media.AU, now time.Time) {
	pt := p.pass
	if limit := p.nc.MaxPayload(); limit > 0 && int64(len(au.Data)) > limit {
		p.big.Add(1)
		p.bigLog.Do(func() {
			p.log.Warn("an H.264 access unit over the broker's max payload was dropped: raise the broker's max_payload",
				"bytes", len(au.Data), "max_payload", limit)
		})
		return
	}
	pt.seq++ // used up even offline: viewers see the gap
	meta := protocol.FrameMeta{Seq: pt.seq, Time: now.UnixNano(), Width: pt.w, Height: pt.h, Key: au.Key}
	msg := nats.Msg{Subject: pt.subject, Header: pt.hdr.Set(meta), Data: au.Data}
	online := p.nc.IsConnected()
	p.rec.track(&msg, protocol.H264, now, online)
	if !online {
		p.droppedOffline.Add(1)
		return
	}
	if err := p.nc.PublishMsg(&msg); err != nil {
		p.droppedOffline.Add(1)
	} else {
		p.published.Add(1)
		p.bytes.Add(uint64(len(au.Data)))
		if au.Key {
			p.keyframes.Add(1)
		}
	}
	pt.mu.Lock()
	// A run too long to keep is dropped: no reply until the next keyframe.
	if pt.gop.Add(protocol.GOPUnit{Time: now.UnixNano(), AU: append([]byte(nil), au.Data...)}, au.Key, len(au.Data)) && au.Key {
		pt.gopSeq = pt.seq
	}
	pt.mu.Unlock()
}

// replyGOP answers a keyframe request for the passed-through layer with
// the access units since the last keyframe.
func (p *Publisher) replyGOP(m *nats.Msg) {
	pt := p.pass
	if m.Reply == "" {
		return // nowhere to send it: the next keyframe of the camera serves
	}
	pt.mu.Lock()
	gop := pt.gop.Units()
	if len(gop) == 0 {
		pt.mu.Unlock()
		return
	}
	body := make([]byte, 0, pt.gop.Bytes()+12*len(gop))
	for _, u := range gop {
		body = protocol.AppendGOP(body, u.Time, u.AU)
	}
	h := nats.Header{}
	h.Set(protocol.HeaderContentType, protocol.ContentTypeGOP)
	h.Set(protocol.HeaderSeq, fmt.Sprint(pt.gopSeq))
	h.Set(protocol.HeaderCount, fmt.Sprint(len(gop)))
	h.Set(protocol.HeaderTime, fmt.Sprint(gop[0].Time))
	h.Set(protocol.HeaderSize, protocol.FormatSize(pt.w, pt.h))
	pt.mu.Unlock()
	if limit := p.nc.MaxPayload(); limit > 0 && int64(len(body)) > limit {
		p.bigLog.Do(func() {
			p.log.Warn("the GOP for a late joiner is over the broker's max payload: it waits for the camera's next keyframe",
				"bytes", len(body), "max_payload", limit)
		})
		return
	}
	if err := p.nc.PublishMsg(&nats.Msg{Subject: m.Reply, Header: h, Data: body}); err == nil {
		p.gopReplies.Add(1)
	}
}

// passDecode decodes au while a decoded layer is watched and hands the
// picture to the publish goroutine.
func (p *Publisher) passDecode(au media.AU, now time.Time) {
	pt := p.pass
	// Every decoded layer is asked (wanted logs when that changes).
	want := false
	for _, i := range []int{0, 1, 3} {
		want = p.wanted(i, now) || want
	}
	if !want {
		if pt.dec != nil {
			pt.dec.Close()
			pt.dec = nil
		}
		return
	}
	if pt.dec == nil {
		dec, err := media.NewDecoder()
		if err != nil {
			p.encodeErrLog.Do(func() { p.log.Warn("cannot decode the H.264 source", "err", err) })
			return
		}
		pt.dec = dec
		// Start from the keyframe: decode what the GOP holds up to now.
		pt.mu.Lock()
		gop := pt.gop.Units()
		pt.mu.Unlock()
		for _, u := range gop[:max(0, len(gop)-1)] {
			_, _ = dec.Decode(u.AU)
		}
	}
	ok, err := pt.dec.Decode(au.Data)
	if err != nil || !ok {
		return // the decoder waits for a keyframe by itself
	}
	pic, err := media.NewPicture(pt.dec.Size())
	if err != nil {
		return
	}
	if err := pt.dec.Picture(pic.Image()); err != nil {
		pic.Close()
		return
	}
	pt.capSeq++
	if old, replaced := p.box.put(captured{f: &pictureFrame{p: pic}, seq: pt.capSeq, at: now}); replaced {
		old.f.release()
		p.droppedBusy.Add(1)
	}
}

package bench

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// The frames every scenario sends: 720p at 30 fps, as a webcam would.
const (
	frameW   = 1280
	frameH   = 720
	frameFPS = 30
	// payloadFrames is how many distinct frames are captured for replay.
	payloadFrames = 30
)

// payloads are frames of vidhub's pattern publisher, captured once per
// run and replayed byte for byte by the references.
type payloads struct {
	hi, lo       [][]byte
	loW, loH     int
	hiAvg, loAvg float64
	// hiImg and loImg are the first captured frame of each layer,
	// decoded: what the paced raw reference encodes per frame, so that
	// its latency spans capture, encode and delivery like vidhub's.
	hiImg, loImg *image.RGBA
}

// capturePayloads runs a real publisher until it has sent payloadFrames
// frames of each layer and keeps copies of them.
func capturePayloads(ctx context.Context, url string) (*payloads, error) {
	nc, err := natsconn.Connect(natsconn.Config{URL: url, Name: "bench capture"})
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	p := &payloads{}
	var mu sync.Mutex
	done := make(chan struct{})
	var once sync.Once
	sub, err := nc.Subscribe(protocol.RoomAll("bench-capture"), func(m *nats.Msg) {
		meta, err := protocol.ParseFrame(m.Header, m.Data)
		if err != nil {
			return
		}
		s, err := protocol.ParseSubject(m.Subject)
		if err != nil || s.Presence {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		b := append([]byte(nil), m.Data...)
		switch {
		case s.Layer == protocol.Hi && len(p.hi) < payloadFrames:
			p.hi = append(p.hi, b)
		case s.Layer == protocol.Lo && len(p.lo) < payloadFrames:
			p.lo = append(p.lo, b)
			p.loW, p.loH = meta.Width, meta.Height
		}
		if len(p.hi) == payloadFrames && len(p.lo) == payloadFrames {
			once.Do(func() { close(done) })
		}
	})
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	pub, err := publisher.New(nc, publisher.Config{Room: "bench-capture", Name: "pattern", Source: "pattern",
		Width: frameW, Height: frameH, FPS: 60, Codec: protocol.CodecJPEG})
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { _ = pub.Run(pctx) })
	select {
	case <-done:
	case <-pctx.Done():
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(p.hi) < payloadFrames || len(p.lo) < payloadFrames {
		return nil, fmt.Errorf("bench: captured only %d hi and %d lo frames from the pattern publisher", len(p.hi), len(p.lo))
	}
	p.hiAvg, p.loAvg = avgLen(p.hi), avgLen(p.lo)
	for _, d := range []struct {
		b   []byte
		img **image.RGBA
	}{{p.hi[0], &p.hiImg}, {p.lo[0], &p.loImg}} {
		img, err := jpeg.Decode(bytes.NewReader(d.b))
		if err != nil {
			return nil, fmt.Errorf("bench: decoding a captured frame: %w", err)
		}
		*d.img = toRGBA(img)
	}
	return p, nil
}

func avgLen(bs [][]byte) float64 {
	var n int
	for _, b := range bs {
		n += len(b)
	}
	return float64(n) / float64(max(len(bs), 1))
}

// replayer publishes captured frames with protocol v1 headers, paced at
// fps or (fps 0) as fast as the connection takes them. The raw reference
// and the ceiling use it. With an encoder (the paced reference) it does
// what any video publisher must: it stamps the capture time, then encodes
// each layer with this build's encoder (the one vidhub's publisher uses)
// before publishing it, so its latency covers the same span as vidhub's
// Vidhub-Time; it publishes the captured bytes, not its own output, so the
// payloads stay identical. The ceiling replays without encoding.
type replayer struct {
	nc     *nats.Conn
	p      *payloads
	enc    *encoder  // nil: replay only
	subj   [2]string // hi, lo; lo empty: hi only
	fps    float64
	sent   uint64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// maxReplay bounds the frames one replayer sends, whatever the duration.
const maxReplay = 2_000_000

func startReplay(url, room, name string, p *payloads, fps float64, withLo, encode bool) (*replayer, error) {
	a, err := protocol.NewAddress(room, name)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, nats.Name("bench replay"), quietErrors)
	if err != nil {
		return nil, fmt.Errorf("bench: replay publisher: %w", err)
	}
	r := &replayer{nc: nc, p: p, fps: fps}
	if encode {
		e := encoders()[0] // each replayer its own: the stdlib one keeps a buffer
		r.enc = &e
	}
	r.subj[0] = a.FrameSubject(protocol.Hi)
	if withLo {
		r.subj[1] = a.FrameSubject(protocol.Lo)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() { r.run(ctx) })
	return r, nil
}

func (r *replayer) run(ctx context.Context) {
	hdr := [2]*protocol.FrameHeader{protocol.NewFrameHeader(), protocol.NewFrameHeader()}
	var interval time.Duration
	if r.fps > 0 {
		interval = time.Duration(float64(time.Second) / r.fps)
	}
	next := time.Now()
	for seq := uint64(1); seq <= maxReplay && ctx.Err() == nil; seq++ {
		if interval > 0 {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			} else if -d > interval {
				next = time.Now()
			}
		}
		i := int(seq % uint64(len(r.p.hi)))
		now := time.Now().UnixNano()
		sizes := [2][2]int{{frameW, frameH}, {r.p.loW, r.p.loH}}
		data := [2][]byte{r.p.hi[i], r.p.lo[i]}
		imgs := [2]*image.RGBA{r.p.hiImg, r.p.loImg}
		for l := range 2 {
			if r.subj[l] == "" {
				continue
			}
			if r.enc != nil {
				if _, err := r.enc.enc(imgs[l], encodeQuality); err != nil {
					return
				}
			}
			msg := nats.Msg{Subject: r.subj[l], Data: data[l],
				Header: hdr[l].Set(protocol.FrameMeta{Seq: seq, Time: now, Width: sizes[l][0], Height: sizes[l][1]})}
			if err := r.nc.PublishMsg(&msg); err != nil {
				return
			}
		}
		r.sent = seq
	}
}

func (r *replayer) stop() {
	r.cancel()
	r.wg.Wait()
	r.nc.Close()
}

// livePublisher is vidhub's own publisher (pattern source, 720p30), run
// as a child process when the bench has a vidhub binary, so its CPU is its
// own, else in this process.
type livePublisher struct {
	ch     *child
	cancel context.CancelFunc
	wg     sync.WaitGroup
	nc     *nats.Conn
}

// liveConfig says how to run a live publisher.
type liveConfig struct {
	room, name string
	enc        publisher.Encode
	// codec is the publisher's codec: the JPEG scenarios say
	// protocol.CodecJPEG, so that the command line's default (H.264 in
	// the full build) never changes what they measure.
	codec  protocol.Codec
	keyInt time.Duration // 0: the publisher's default
	// source replaces the 720p30 pattern: a stream URL or gst: pipeline,
	// published at its own size and rate.
	source string
}

// startLive starts a JPEG pattern publisher, hi and lo layers; enc says
// which layers it encodes.
func startLive(env *runEnv, room, name string, enc publisher.Encode) (*livePublisher, error) {
	return startPublisher(env, liveConfig{room: room, name: name, enc: enc, codec: protocol.CodecJPEG})
}

// startPublisher starts a 720p30 pattern publisher (or c.source) as c
// says.
func startPublisher(env *runEnv, c liveConfig) (*livePublisher, error) {
	src, w, h, fps := "pattern", frameW, frameH, frameFPS
	if c.source != "" {
		src, w, h, fps = c.source, 0, 0, publisher.DefaultFPS
	}
	if env.exe != "" {
		args := []string{"publish", "--nats", env.url, "--room", c.room, "--name", c.name, "--source", src,
			"--codec", string(c.codec), "--encode", string(c.enc), "--log-level", "warn"}
		if c.source == "" {
			args = append(args, "--size", protocol.FormatSize(w, h), "--fps", strconv.Itoa(fps))
		}
		if c.keyInt > 0 {
			args = append(args, "--keyint", c.keyInt.String())
		}
		ch, err := startChild("publisher "+c.name, env.exe, args...)
		if err != nil {
			return nil, err
		}
		if _, err := ch.waitLine("publishing", 20*time.Second); err != nil {
			ch.stop()
			return nil, err
		}
		return &livePublisher{ch: ch}, nil
	}
	nc, err := natsconn.Connect(natsconn.Config{URL: env.url, Name: "bench publisher"})
	if err != nil {
		return nil, err
	}
	p, err := publisher.New(nc, publisher.Config{Room: c.room, Name: c.name, Source: src, Width: w, Height: h,
		FPS: float64(fps), Encode: c.enc, Codec: c.codec, KeyInt: c.keyInt})
	if err != nil {
		nc.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	lp := &livePublisher{cancel: cancel, nc: nc}
	lp.wg.Go(func() { _ = p.Run(ctx) })
	return lp, nil
}

// pid is the publisher's process, 0 when it runs in this one.
func (lp *livePublisher) pid() int {
	if lp.ch != nil {
		return lp.ch.pid()
	}
	return 0
}

func (lp *livePublisher) stop() {
	if lp.ch != nil {
		lp.ch.stop()
		return
	}
	lp.cancel()
	lp.wg.Wait()
	lp.nc.Close()
}

// brokerURL parses "vidhub broker listening on nats://HOST:PORT (...)".
func brokerURL(line string) string {
	_, rest, _ := strings.Cut(line, " on ")
	u, _, _ := strings.Cut(rest, " ")
	return u
}

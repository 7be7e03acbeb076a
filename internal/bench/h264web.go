package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/vidhub/vidhub/internal/web"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// WebH264Result is n WebSocket viewers of one 720p30 H.264 publisher
// through the web gateway, all on one layer, as the room page asks for it.
type WebH264Result struct {
	// View is the page's: grid (every tile small: h264lo, or lo for a
	// page without H.264) or focused (the tile full size: h264, or hi).
	View      string         `json:"view"`
	Layer     protocol.Layer `json:"layer"`
	Sockets   int            `json:"sockets"`
	FPSMin    float64        `json:"fps_min"`
	FPSMedian float64        `json:"fps_median"`
	Kbps      float64        `json:"kbps_per_socket"` // mean
	LatP50    float64        `json:"latency_ms_p50"`  // capture to the socket's read, every frame
	// From each socket's first frame of the layer on, warm-up included:
	// Skipped counts frames missing from the sockets' sequences (the
	// gateway dropped them for a socket behind), Unkeyed the H.264 frames
	// that came first, or after a gap, without being a keyframe: frames a
	// browser could not decode. Keyframes counts the H.264 keyframes.
	Skipped   uint64  `json:"skipped"`
	Unkeyed   uint64  `json:"unkeyed"`
	Keyframes uint64  `json:"keyframes"`
	Cores     float64 `json:"gateway_cores"` // -1: the gateway ran in the bench process
}

// webH264Views are the control messages of the room page for one
// publisher "cam" (room.js syncHi): the grid takes it small, the focused
// tile full size; a page that decodes H.264 names it in h264 and takes
// no JPEG. Each H.264 view is followed by its JPEG reference.
var webH264Views = []struct {
	view  string
	layer protocol.Layer
	ctl   string
}{
	{"grid", protocol.H264Lo, `{"hi":[],"h264":["cam"],"jpeg":false}`},
	{"grid", protocol.Lo, `{"hi":[]}`},
	{"focused", protocol.H264, `{"hi":["cam"],"h264":["cam"],"jpeg":false}`},
	{"focused", protocol.Hi, `{"hi":["cam"]}`},
}

// webH264 runs n sockets through the gateway on one H.264 publisher's
// room, switching all of them from view to view with the page's control
// message, and measures each view.
func webH264(ctx context.Context, env *runEnv, n int) ([]WebH264Result, error) {
	room := "bench-h264-web"
	base, gw, stop, err := startGateway(env)
	if err != nil {
		return nil, err
	}
	defer stop()
	lp, err := startPublisher(env, liveConfig{room: room, name: "cam", enc: publisher.EncodeAuto, codec: protocol.CodecH264})
	if err != nil {
		return nil, err
	}
	defer lp.stop()
	ws := newWireSocks()
	defer ws.close()
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws/view/" + room
	for range n {
		if err := ws.dial(ctx, wsURL, webH264Views[0].ctl, webH264Views[0].layer); err != nil {
			return nil, err
		}
	}
	var out []WebH264Result
	for i, v := range webH264Views {
		if i > 0 {
			// Count the new layer from its first frame on, which must
			// be a keyframe: so want it before asking for it.
			ws.want(v.layer)
			if err := ws.send(ctx, v.ctl); err != nil {
				return nil, err
			}
		}
		if err := ws.waitFrames(ctx, flowWait); err != nil {
			return nil, fmt.Errorf("%s view, %s: %w", v.view, v.layer, err)
		}
		if err := sleep(ctx, env.warmup); err != nil {
			return nil, err
		}
		r := WebH264Result{View: v.view, Layer: v.layer, Sockets: n, Cores: -1}
		var m *cpuMeter
		if gw != 0 {
			m = startCPU(gw)
		}
		ws.begin()
		err := sleep(ctx, env.d)
		ws.end(&r)
		if m != nil {
			r.Cores = round3(m.cores())
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// wireSocks are browser stand-ins that read the gateway's frame messages
// without decoding them: they count the frames of the layer they want,
// their bytes, the gaps in its sequence and whether each H.264 frame
// after a gap is a keyframe.
type wireSocks struct {
	mu     sync.Mutex
	socks  []*wireSock
	t0     time.Time
	base   []wireCounts    // each socket's counts at t0
	ctx    context.Context // the readers'
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type wireSock struct {
	conn *websocket.Conn
	mu   sync.Mutex
	// layer is the one counted; last the sequence number of its newest
	// frame (0: none yet).
	layer                                 protocol.Layer
	last                                  uint64
	frames, bytes, skipped, unkeyed, keys uint64
	rec                                   bool
	lat                                   []float64
}

func newWireSocks() *wireSocks {
	w := &wireSocks{}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w
}

// dial opens a socket that asks for ctl and counts layer l.
func (w *wireSocks) dial(ctx context.Context, url, ctl string, l protocol.Layer) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, _, err := websocket.Dial(dctx, url, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("bench: opening a viewing socket: %w", err)
	}
	conn.SetReadLimit(16 << 20)
	if err := writeCtl(ctx, conn, ctl); err != nil {
		conn.CloseNow()
		return err
	}
	s := &wireSock{conn: conn, layer: l}
	w.mu.Lock()
	w.socks = append(w.socks, s)
	w.mu.Unlock()
	w.wg.Go(func() { s.read(w.ctx) })
	return nil
}

func writeCtl(ctx context.Context, conn *websocket.Conn, ctl string) error {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := conn.Write(wctx, websocket.MessageText, []byte(ctl)); err != nil {
		return fmt.Errorf("bench: sending %s to the gateway: %w", ctl, err)
	}
	return nil
}

// send sends every socket the control message ctl.
func (w *wireSocks) send(ctx context.Context, ctl string) error {
	w.mu.Lock()
	socks := slices.Clone(w.socks)
	w.mu.Unlock()
	for _, s := range socks {
		if err := writeCtl(ctx, s.conn, ctl); err != nil {
			return err
		}
	}
	return nil
}

// want makes every socket count layer l from now on, from its next frame.
func (w *wireSocks) want(l protocol.Layer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.socks {
		s.mu.Lock()
		s.layer, s.last = l, 0
		s.frames, s.bytes, s.skipped, s.unkeyed, s.keys = 0, 0, 0, 0, 0
		s.rec, s.lat = false, nil
		s.mu.Unlock()
	}
}

// waitFrames waits until every socket has had a frame of its layer.
func (w *wireSocks) waitFrames(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		w.mu.Lock()
		for _, s := range w.socks {
			s.mu.Lock()
			if s.frames == 0 {
				missing++
			}
			s.mu.Unlock()
		}
		n := len(w.socks)
		w.mu.Unlock()
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %d of %d sockets got no frame within %v", missing, n, timeout)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

func (s *wireSock) read(ctx context.Context) {
	readWire(ctx, s.conn, func(f web.WireFrame, n int, now int64) {
		s.mu.Lock()
		if f.Layer == s.layer {
			s.count(f, n, now)
		}
		s.mu.Unlock()
	})
}

// count counts frame f of s.layer, n bytes on the wire; s.mu is held.
func (s *wireSock) count(f web.WireFrame, n int, now int64) {
	seq := f.Meta.Seq
	gap := s.last == 0 || seq != s.last+1
	if s.last != 0 && seq > s.last+1 {
		s.skipped += seq - s.last - 1
	}
	s.last = seq
	s.frames++
	s.bytes += uint64(n)
	if f.Layer.Codec() == protocol.CodecH264 {
		if f.Meta.Key {
			s.keys++
		} else if gap {
			s.unkeyed++
		}
	}
	if s.rec && len(s.lat) < maxSamples {
		s.lat = append(s.lat, float64(now-f.Meta.Time)/float64(time.Millisecond))
	}
}

type wireCounts struct{ frames, bytes, skipped, unkeyed, keys uint64 }

func (s *wireSock) counts() wireCounts {
	return wireCounts{s.frames, s.bytes, s.skipped, s.unkeyed, s.keys}
}

// begin starts the measuring window; end fills r with it.
func (w *wireSocks) begin() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.socks {
		s.mu.Lock()
		s.rec, s.lat = true, nil
		s.mu.Unlock()
	}
	w.base = w.base[:0]
	for _, s := range w.socks {
		s.mu.Lock()
		w.base = append(w.base, s.counts())
		s.mu.Unlock()
	}
	w.t0 = time.Now()
}

func (w *wireSocks) end(r *WebH264Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	el := time.Since(w.t0).Seconds()
	var fps, lat []float64
	var bytes float64
	for i, s := range w.socks {
		s.mu.Lock()
		s.rec = false
		c, b := s.counts(), w.base[i]
		lat = append(lat, s.lat...)
		s.mu.Unlock()
		fps = append(fps, float64(c.frames-b.frames)/el)
		bytes += float64(c.bytes - b.bytes)
		r.Skipped += c.skipped
		r.Unkeyed += c.unkeyed
		r.Keyframes += c.keys
	}
	if len(fps) == 0 {
		return
	}
	slices.Sort(lat)
	r.FPSMin, r.FPSMedian = round3(slices.Min(fps)), round3(median(fps))
	r.Kbps = round3(bytes * 8 / 1000 / el / float64(len(fps)))
	r.LatP50 = round3(quantile(lat, 0.5))
}

func (w *wireSocks) close() {
	w.cancel()
	w.mu.Lock()
	socks := w.socks
	w.socks = nil
	w.mu.Unlock()
	for _, s := range socks {
		_ = s.conn.CloseNow()
	}
	w.wg.Wait()
}

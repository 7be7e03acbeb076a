package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/internal/netproxy"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// H264Report is what the h264 scenario measured: H.264 against JPEG, each
// figure against a JPEG reference of the same run.
type H264Report struct {
	// NotMeasured says why nothing was measured (a build without H.264).
	NotMeasured string `json:"not_measured,omitempty"`
	// Clip describes the camera-like clip of the quality figures.
	Clip      string          `json:"clip,omitempty"`
	Quality   []QualityResult `json:"quality,omitempty"`
	Publisher []PublisherCPU  `json:"publisher_cpu,omitempty"`
	Join      []JoinResult    `json:"late_join,omitempty"`
	Latency   []LatencyResult `json:"latency,omitempty"`
	Stall     []StallResult   `json:"stall,omitempty"`
	Viewers   []ViewersResult `json:"viewers,omitempty"`
	Web       []WebH264Result `json:"web,omitempty"`
	RTSP      []RTSPResult    `json:"rtsp,omitempty"`
	Targets   []Target        `json:"targets"`
}

// PublisherCPU is a 720p30 pattern publisher's CPU with some layers
// watched.
type PublisherCPU struct {
	Codec string `json:"codec"` // the publisher's --codec
	// Watched names the layers viewers take; FPS is what each of them got.
	Watched []protocol.Layer `json:"watched"`
	FPS     []float64        `json:"fps"`
	Cores   float64          `json:"cores"` // -1: not measured (publisher in this process)
}

// JoinResult is the time from subscriber.Join to the first usable
// frame (for H.264, the first decoded picture), over Joins joins.
type JoinResult struct {
	Codec   string    `json:"codec"`
	KeyInt  float64   `json:"keyint_s,omitempty"`
	Joins   int       `json:"joins"`
	P50     float64   `json:"ms_p50"`
	P95     float64   `json:"ms_p95"`
	Max     float64   `json:"ms_max"`
	Samples []float64 `json:"ms"`
	Failed  int       `json:"failed"` // joins with no frame within joinWait
}

// LatencyResult is capture-to-picture latency of one path.
type LatencyResult struct {
	Codec string `json:"codec"`
	// SubP50 and SubP99 are the subscriber's own figures (TileStats:
	// capture to the decoded picture for H.264, to receipt for JPEG),
	// the median over its stats intervals.
	SubP50 float64 `json:"sub_ms_p50"`
	SubP99 float64 `json:"sub_ms_p99"`
	// RenderP50 and RenderP99 are measured by a renderer stand-in that
	// takes each newest frame: capture to a picture ready to draw (an
	// H.264 frame comes decoded to BGR; a JPEG is decoded as the desktop
	// window does).
	RenderP50 float64 `json:"render_ms_p50"`
	RenderP99 float64 `json:"render_ms_p99"`
	FPS       float64 `json:"fps"`
}

// StallResult is how a viewer whose connection stopped reading for
// Paused seconds comes back.
type StallResult struct {
	Codec  string  `json:"codec"`
	Paused float64 `json:"paused_s"`
	// FirstMS is the time from the resume to the first picture ready
	// (of any age); LiveMS to the first picture captured after the
	// resume: live again. -1: none within stallWait.
	FirstMS float64 `json:"first_ms"`
	LiveMS  float64 `json:"live_ms"`
	// FPSAfter is the frame rate in the second after LiveMS.
	FPSAfter     float64 `json:"fps_after"`
	CorruptShown uint64  `json:"corrupt_shown"`
	DecodeErrors uint64  `json:"decode_errors"`
	Waited       uint64  `json:"waited"` // access units dropped waiting for a keyframe
}

// ViewersResult is n headless viewers of one 720p30 publisher.
type ViewersResult struct {
	Codec     string             `json:"codec"`
	Layer     protocol.Layer     `json:"layer"`
	Viewers   int                `json:"viewers"`
	FPSMin    float64            `json:"fps_min"`
	FPSMedian float64            `json:"fps_median"`
	FPSMean   float64            `json:"fps_mean"`
	LatP50    float64            `json:"latency_ms_p50"` // median of the viewers' p50
	CPU       map[string]float64 `json:"cpu_cores"`
}

// Bounds of the H.264 scenario's waits.
const (
	joinWait   = 5 * time.Second  // for one join's first frame
	flowWait   = 15 * time.Second // for viewers' first frames
	stallWait  = 5 * time.Second  // after a stall, for live pictures
	joinKeyInt = 2 * time.Second  // the late-join publisher's --keyint
)

// h264Scenario runs the H.264 measurements.
func h264Scenario(ctx context.Context, env *runEnv) (*H264Report, error) {
	h := &H264Report{}
	if !media.H264Available() {
		h.NotMeasured = "not measured: static build (no H.264 codec)"
		h.Targets = h264Targets(h)
		return h, nil
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"quality", func() error {
			var err error
			h.Clip, h.Quality, err = qualityScenario(ctx, env)
			for _, q := range h.Quality {
				env.logf("h264 quality %-22s %9.0f kbit/s  SSIM %.4f (min %.4f)  encode %.1f ms", q.Setting, q.Kbps, q.SSIM, q.SSIMMin, q.EncodeMs)
			}
			return err
		}},
		{"publisher", func() error {
			var err error
			h.Publisher, err = publisherCPU(ctx, env)
			for _, p := range h.Publisher {
				env.logf("h264 publisher %-4s watched %v fps %v: %.2f cores", p.Codec, p.Watched, p.FPS, p.Cores)
			}
			return err
		}},
		{"join", func() error {
			n := 20
			if env.opts.Quick {
				n = 3
			}
			for _, c := range []protocol.Codec{protocol.CodecH264, protocol.CodecJPEG} {
				j, err := lateJoin(ctx, env, c, n)
				if err != nil {
					return err
				}
				env.logf("h264 join %-4s %d joins: first frame p50 %.0f p95 %.0f max %.0f ms, %d failed", j.Codec, j.Joins, j.P50, j.P95, j.Max, j.Failed)
				h.Join = append(h.Join, j)
			}
			return nil
		}},
		{"latency", func() error {
			var err error
			h.Latency, err = latencyH264(ctx, env)
			for _, l := range h.Latency {
				env.logf("h264 latency %-4s subscriber p50 %.1f p99 %.1f, renderer p50 %.1f p99 %.1f ms, %.1f fps", l.Codec, l.SubP50, l.SubP99, l.RenderP50, l.RenderP99, l.FPS)
			}
			return err
		}},
		{"stall", func() error {
			var err error
			h.Stall, err = stallScenario(ctx, env)
			for _, s := range h.Stall {
				env.logf("h264 stall %-4s %.0f s: first picture %.0f ms, live %.0f ms, then %.1f fps; corrupt shown %d, waited %d", s.Codec, s.Paused, s.FirstMS, s.LiveMS, s.FPSAfter, s.CorruptShown, s.Waited)
			}
			return err
		}},
		{"viewers", func() error {
			n := 50
			if env.opts.Quick {
				n = 5
			}
			var err error
			h.Viewers, err = manyViewers(ctx, env, n)
			for _, v := range h.Viewers {
				env.logf("h264 viewers %-4s %-6s x%d: fps min %.1f median %.1f, latency p50 %.0f ms, cpu %v", v.Codec, v.Layer, v.Viewers, v.FPSMin, v.FPSMedian, v.LatP50, v.CPU)
			}
			return err
		}},
		{"web", func() error {
			n := 100
			if env.opts.Quick {
				n = 10
			}
			var err error
			h.Web, err = webH264(ctx, env, n)
			for _, w := range h.Web {
				env.logf("h264 web %-7s %-6s x%d: gateway %.2f cores, fps min %.1f median %.1f, %.0f kbit/s, latency p50 %.0f ms, skipped %d, unkeyed %d",
					w.View, w.Layer, w.Sockets, w.Cores, w.FPSMin, w.FPSMedian, w.Kbps, w.LatP50, w.Skipped, w.Unkeyed)
			}
			return err
		}},
		{"rtsp", func() error {
			var err error
			h.RTSP, err = rtspCamera(ctx, env)
			for _, r := range h.RTSP {
				if r.Skipped != "" {
					env.logf("h264 rtsp %-11s skipped: %s", r.Case, r.Skipped)
				}
				if r.FPS > 0 {
					env.logf("h264 rtsp %-11s %s %s %.1f fps: publisher %.3f cores", r.Case, r.Size, r.Codec, r.FPS, r.Cores)
				}
			}
			return err
		}},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.run(); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	h.Targets = h264Targets(h)
	return h, nil
}

// roomSpec is one viewer: its layer, and its codec (empty: H.264 where
// the publisher sends it).
type roomSpec struct {
	layer subscriber.LayerMode
	codec protocol.Codec
}

// takes is the layer a viewer of spec takes from an H.264 publisher.
func (s roomSpec) takes() protocol.Layer {
	l := protocol.Layer(s.layer)
	if s.codec == "" {
		return l.As(protocol.CodecH264)
	}
	return l
}

func (s roomSpec) codecName() string {
	if s.codec == "" {
		return string(protocol.CodecH264)
	}
	return string(s.codec)
}

// roomGroup is a set of subscriber.Rooms of one room, each on its own
// connection.
type roomGroup struct {
	conns []*nats.Conn
	rooms []*subscriber.Room
}

func joinRooms(url, room string, specs []roomSpec, keep bool, onStats func(i int, s []subscriber.TileStats)) (*roomGroup, error) {
	g := &roomGroup{}
	for i, s := range specs {
		nc, err := natsconn.Connect(natsconn.Config{URL: url, Name: "bench viewer"})
		if err != nil {
			g.close()
			return nil, err
		}
		g.conns = append(g.conns, nc)
		cfg := subscriber.Config{Room: room, Name: "bench-viewer-" + strconv.Itoa(i), Layer: s.layer, Codec: s.codec, KeepFrames: keep}
		if onStats != nil {
			cfg.OnStats = func(ts []subscriber.TileStats) { onStats(i, ts) }
		}
		r, err := subscriber.Join(nc, cfg)
		if err != nil {
			g.close()
			return nil, err
		}
		g.rooms = append(g.rooms, r)
	}
	return g, nil
}

// stats is the first tile's stats of every room (zero where none yet).
func (g *roomGroup) stats() []subscriber.TileStats {
	out := make([]subscriber.TileStats, len(g.rooms))
	for i, r := range g.rooms {
		if s := r.Stats(); len(s) > 0 {
			out[i] = s[0]
		}
	}
	return out
}

// waitFrames waits until every room has had a frame.
func (g *roomGroup) waitFrames(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		for _, s := range g.stats() {
			if s.Frames == 0 {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %d of %d viewers got no frame within %v", missing, len(g.rooms), timeout)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// rates measures every room's frame rate over d.
func (g *roomGroup) rates(ctx context.Context, d time.Duration) ([]float64, error) {
	before := g.stats()
	t0 := time.Now()
	err := sleep(ctx, d)
	after := g.stats()
	el := time.Since(t0).Seconds()
	fps := make([]float64, len(after))
	for i := range after {
		fps[i] = round3(float64(after[i].Frames-before[i].Frames) / el)
	}
	return fps, err
}

func (g *roomGroup) close() {
	var wg sync.WaitGroup
	for _, r := range g.rooms {
		wg.Go(r.Close)
	}
	wg.Wait()
	for _, nc := range g.conns {
		nc.Close()
	}
}

// publisherCPU measures the publisher process with every layer watched,
// with only the H.264 layers watched, and as a JPEG publisher.
func publisherCPU(ctx context.Context, env *runEnv) ([]PublisherCPU, error) {
	hi, lo := subscriber.LayerHi, subscriber.LayerLo
	jpeg := protocol.CodecJPEG
	cases := []struct {
		codec protocol.Codec
		specs []roomSpec
	}{
		{protocol.CodecH264, []roomSpec{{hi, ""}, {lo, ""}, {hi, jpeg}, {lo, jpeg}}},
		{protocol.CodecH264, []roomSpec{{hi, ""}, {lo, ""}}},
		{protocol.CodecJPEG, []roomSpec{{hi, jpeg}, {lo, jpeg}}},
	}
	var out []PublisherCPU
	for i, c := range cases {
		room := "bench-h264-cpu-" + strconv.Itoa(i)
		g, err := joinRooms(env.url, room, c.specs, false, nil)
		if err != nil {
			return nil, err
		}
		lp, err := startPublisher(env, liveConfig{room: room, name: "cam", enc: publisher.EncodeAuto, codec: c.codec})
		if err != nil {
			g.close()
			return nil, err
		}
		r := PublisherCPU{Codec: string(c.codec), Cores: -1}
		for _, s := range c.specs {
			if c.codec == protocol.CodecJPEG {
				r.Watched = append(r.Watched, protocol.Layer(s.layer))
			} else {
				r.Watched = append(r.Watched, s.takes())
			}
		}
		err = g.waitFrames(ctx, flowWait)
		if err == nil {
			err = sleep(ctx, env.warmup)
		}
		if err == nil {
			var m *cpuMeter
			if pid := lp.pid(); pid != 0 {
				m = startCPU(pid)
			}
			r.FPS, err = g.rates(ctx, env.d)
			if m != nil {
				r.Cores = round3(m.cores())
			}
		}
		lp.stop()
		g.close()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// lateJoin joins a room n times, one after another, each time on a
// fresh connection and at a random moment, and times the first frame.
func lateJoin(ctx context.Context, env *runEnv, codec protocol.Codec, n int) (JoinResult, error) {
	room := "bench-h264-join-" + string(codec)
	res := JoinResult{Codec: string(codec), Joins: n}
	cfg := liveConfig{room: room, name: "cam", enc: publisher.EncodeAuto, codec: codec}
	if codec == protocol.CodecH264 {
		cfg.keyInt = joinKeyInt
		res.KeyInt = joinKeyInt.Seconds()
	}
	lp, err := startPublisher(env, cfg)
	if err != nil {
		return res, err
	}
	defer lp.stop()
	// The spacing is random up to a keyframe interval, so that joins
	// land anywhere in a group of pictures.
	spread := joinKeyInt
	if env.opts.Quick {
		spread = 300 * time.Millisecond
	}
	spec := roomSpec{layer: subscriber.LayerHi}
	if codec == protocol.CodecJPEG {
		spec.codec = protocol.CodecJPEG
	}
	err = sampleJoins(ctx, &res, n, spread, 7, func() (float64, error) { return joinOnce(ctx, env.url, room, spec) })
	return res, err
}

// sampleJoins joins n times, one after another, each after a random
// pause of 0.1 s to 0.1 s + spread, and records in res what join timed
// (-1: no picture), with its quantiles.
func sampleJoins(ctx context.Context, res *JoinResult, n int, spread time.Duration, seed uint64, join func() (float64, error)) error {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), seed))
	for range n {
		if err := sleep(ctx, 100*time.Millisecond+time.Duration(rng.Int64N(int64(spread)))); err != nil {
			return err
		}
		ms, err := join()
		if err != nil {
			return err
		}
		if ms < 0 {
			res.Failed++
			continue
		}
		res.Samples = append(res.Samples, ms)
	}
	s := slices.Sorted(slices.Values(res.Samples))
	res.P50, res.P95 = round3(quantile(s, 0.5)), round3(quantile(s, 0.95))
	if len(s) > 0 {
		res.Max = s[len(s)-1]
	}
	return nil
}

// joinOnce joins on a new connection and returns the tile's
// FirstFrameMS, or -1 if no frame came within joinWait.
func joinOnce(ctx context.Context, url, room string, spec roomSpec) (float64, error) {
	g, err := joinRooms(url, room, []roomSpec{spec}, false, nil)
	if err != nil {
		return 0, err
	}
	defer g.close()
	deadline := time.Now().Add(joinWait)
	for time.Now().Before(deadline) {
		if s := g.stats()[0]; s.FirstFrameMS >= 0 && s.Frames > 0 {
			return float64(s.FirstFrameMS), nil
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return -1, nil
}

// renderer is a renderer stand-in for one room: it takes the newest frame
// of its tile every millisecond and makes it a picture ready to draw.
type renderer struct {
	room *subscriber.Room
	mu   sync.Mutex
	rec  bool
	lat  []float64
	// taken: when each frame was ready, and when it was captured.
	taken []takenFrame
}

type takenFrame struct{ ready, captured time.Time }

// renderRooms starts a renderer stand-in for each of g's rooms and waits
// until frames flow and the warm-up has passed; stop ends them.
func renderRooms(ctx context.Context, env *runEnv, g *roomGroup) (rs []*renderer, stop func(), err error) {
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	rs = make([]*renderer, len(g.rooms))
	for i, r := range g.rooms {
		rs[i] = &renderer{room: r}
		wg.Go(func() { rs[i].run(rctx) })
	}
	stop = func() {
		cancel()
		wg.Wait()
	}
	if err = g.waitFrames(ctx, flowWait); err == nil {
		err = sleep(ctx, env.warmup)
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return rs, stop, nil
}

func (r *renderer) run(ctx context.Context) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, tile := range r.room.Tiles() {
			f := tile.Take()
			if f == nil {
				continue
			}
			if f.JPEG != nil {
				if err := decodeJPEG(f.JPEG); err != nil {
					tile.CountBad()
					continue
				}
			} else if f.BGR == nil {
				continue // an H.264 picture that could not be converted
			}
			now := time.Now()
			r.mu.Lock()
			if r.rec && len(r.lat) < maxSamples {
				r.lat = append(r.lat, float64(now.Sub(f.Meta.CaptureTime()))/float64(time.Millisecond))
			}
			if len(r.taken) < maxSamples {
				r.taken = append(r.taken, takenFrame{now, f.Meta.CaptureTime()})
			}
			r.mu.Unlock()
		}
	}
}

// renderH264 joins a Room per spec (KeepFrames on) to room through url,
// starts a 720p30 H.264 publisher there and renders the Rooms; done
// stops all three.
func renderH264(ctx context.Context, env *runEnv, url, room string, specs []roomSpec, onStats func(int, []subscriber.TileStats)) (g *roomGroup, rs []*renderer, done func(), err error) {
	g, err = joinRooms(url, room, specs, true, onStats)
	if err != nil {
		return nil, nil, nil, err
	}
	lp, err := startPublisher(env, liveConfig{room: room, name: "cam", enc: publisher.EncodeAuto, codec: protocol.CodecH264})
	if err != nil {
		g.close()
		return nil, nil, nil, err
	}
	rs, stop, err := renderRooms(ctx, env, g)
	if err != nil {
		lp.stop()
		g.close()
		return nil, nil, nil, err
	}
	return g, rs, func() { stop(); lp.stop(); g.close() }, nil
}

// latencyH264 measures one H.264 publisher's latency through an H.264
// viewer and a JPEG viewer of its hi layer at the same time.
func latencyH264(ctx context.Context, env *runEnv) ([]LatencyResult, error) {
	room := "bench-h264-latency"
	specs := []roomSpec{{subscriber.LayerHi, ""}, {subscriber.LayerHi, protocol.CodecJPEG}}
	var mu sync.Mutex
	rec := false
	sub := make([][2][]float64, len(specs)) // per room: p50s, p99s of each interval
	g, rs, done, err := renderH264(ctx, env, env.url, room, specs, func(i int, ts []subscriber.TileStats) {
		mu.Lock()
		defer mu.Unlock()
		if rec && len(ts) > 0 && ts[0].FPS > 0 {
			sub[i][0] = append(sub[i][0], ts[0].LatencyP50)
			sub[i][1] = append(sub[i][1], ts[0].LatencyP99)
		}
	})
	if err != nil {
		return nil, err
	}
	defer done()
	mu.Lock()
	rec = true
	mu.Unlock()
	for _, r := range rs {
		r.mu.Lock()
		r.rec = true
		r.mu.Unlock()
	}
	// At least two stats intervals, so that the subscriber's own
	// figures cover whole ones.
	fps, err := g.rates(ctx, max(env.d, 2500*time.Millisecond))
	if err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	var out []LatencyResult
	for i, s := range specs {
		r := rs[i]
		r.mu.Lock()
		lat := slices.Sorted(slices.Values(r.lat))
		r.mu.Unlock()
		out = append(out, LatencyResult{Codec: s.codecName(),
			SubP50: round3(median(sub[i][0])), SubP99: round3(median(sub[i][1])),
			RenderP50: round3(quantile(lat, 0.5)), RenderP99: round3(quantile(lat, 0.99)), FPS: fps[i]})
	}
	return out, nil
}

// stallScenario stops an H.264 viewer's and a JPEG viewer's connections
// from reading for a while (a proxy between them and the broker stops
// forwarding, as a stopped process's socket would), then lets them go
// and times how soon live pictures come back.
func stallScenario(ctx context.Context, env *runEnv) ([]StallResult, error) {
	room := "bench-h264-stall"
	paused := 5 * time.Second
	if env.opts.Quick {
		paused = time.Second
	}
	px, err := netproxy.Start(env.url)
	if err != nil {
		return nil, err
	}
	defer px.Close()
	specs := []roomSpec{{subscriber.LayerHi, ""}, {subscriber.LayerHi, protocol.CodecJPEG}}
	g, rs, done, err := renderH264(ctx, env, px.URL(), room, specs, nil)
	if err != nil {
		return nil, err
	}
	defer done()
	before := g.stats()
	px.Pause()
	err = sleep(ctx, paused)
	resumed := time.Now()
	px.Resume()
	if err != nil {
		return nil, err
	}
	// Wait for live pictures and a second of them, on both.
	deadline := resumed.Add(stallWait)
	var out []StallResult
	for time.Now().Before(deadline) {
		out = out[:0]
		done := true
		for i, s := range specs {
			r := StallResult{Codec: s.codecName(), Paused: paused.Seconds(), FirstMS: -1, LiveMS: -1}
			var live time.Time
			frames := 0
			rs[i].mu.Lock()
			for _, t := range rs[i].taken {
				if t.ready.Before(resumed) {
					continue
				}
				if r.FirstMS < 0 {
					r.FirstMS = msSince(resumed, t.ready)
				}
				if live.IsZero() && !t.captured.Before(resumed) {
					live = t.ready
					r.LiveMS = msSince(resumed, t.ready)
				}
				if !live.IsZero() && t.ready.Sub(live) < time.Second {
					frames++
				}
			}
			rs[i].mu.Unlock()
			r.FPSAfter = float64(frames)
			done = done && !live.IsZero() && time.Since(live) > time.Second
			out = append(out, r)
		}
		if done {
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	after := g.stats()
	for i := range out {
		out[i].CorruptShown = after[i].CorruptShown - before[i].CorruptShown
		out[i].DecodeErrors = after[i].DecodeErrors - before[i].DecodeErrors
		out[i].Waited = after[i].Waited - before[i].Waited
	}
	return out, nil
}

func msSince(t0, t time.Time) float64 {
	return round3(float64(t.Sub(t0)) / float64(time.Millisecond))
}

// manyViewers: n headless viewers of one H.264 publisher taking h264,
// then h264lo, then (the reference) n taking its hi JPEG layer.
func manyViewers(ctx context.Context, env *runEnv, n int) ([]ViewersResult, error) {
	room := "bench-h264-viewers"
	lp, err := startPublisher(env, liveConfig{room: room, name: "cam", enc: publisher.EncodeAuto, codec: protocol.CodecH264})
	if err != nil {
		return nil, err
	}
	defer lp.stop()
	var out []ViewersResult
	for _, spec := range []roomSpec{{subscriber.LayerHi, ""}, {subscriber.LayerLo, ""}, {subscriber.LayerHi, protocol.CodecJPEG}} {
		r, err := viewersOnce(ctx, env, lp, room, spec, n)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func viewersOnce(ctx context.Context, env *runEnv, lp *livePublisher, room string, spec roomSpec, n int) (ViewersResult, error) {
	r := ViewersResult{Codec: spec.codecName(), Layer: spec.takes(), Viewers: n, CPU: map[string]float64{}}
	specs := make([]roomSpec, n)
	for i := range specs {
		specs[i] = spec
	}
	g, err := joinRooms(env.url, room, specs, false, nil)
	if err != nil {
		return r, err
	}
	defer g.close()
	if err := g.waitFrames(ctx, flowWait); err != nil {
		return r, err
	}
	if err := sleep(ctx, env.warmup); err != nil {
		return r, err
	}
	meters := map[string]*cpuMeter{"bench": startCPU(0)}
	if pid := lp.pid(); pid != 0 {
		meters["publisher"] = startCPU(pid)
	}
	if env.brokerPid != 0 {
		meters["broker"] = startCPU(env.brokerPid)
	}
	fps, err := g.rates(ctx, env.d)
	if err != nil {
		return r, err
	}
	for k, m := range meters {
		r.CPU[k] = round3(m.cores())
	}
	if env.exe == "" {
		r.CPU["process"] = r.CPU["bench"]
		delete(r.CPU, "bench")
	}
	var lat []float64
	for _, s := range g.stats() {
		lat = append(lat, s.LatencyP50)
	}
	var sum float64
	for _, f := range fps {
		sum += f
	}
	r.FPSMin, r.FPSMedian, r.FPSMean = round3(slices.Min(fps)), round3(median(fps)), round3(sum/float64(len(fps)))
	r.LatP50 = round3(median(lat))
	return r, nil
}

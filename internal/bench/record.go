package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/record"
	"github.com/vidhub/vidhub/subscriber"
)

// RecordReport is what the record scenario measured: a room of H.264
// publishers recorded on JetStream (package record), each figure against a
// reference of the same run: the broker not recording, the bytes
// published, a live join, live frame timing, and the span's own length.
type RecordReport struct {
	// NotMeasured says why nothing was measured (a build without H.264).
	NotMeasured string `json:"not_measured,omitempty"`
	Publishers  int    `json:"publishers,omitempty"`
	// Window is the length of each CPU window, s.
	Window float64 `json:"window_s,omitempty"`
	// CPUOff and CPUOn are the broker process's CPU, in cores, over a
	// window without and then with the recording; -1: not measured (the
	// broker runs in the bench process).
	CPUOff float64 `json:"broker_cores_not_recording"`
	CPUOn  float64 `json:"broker_cores_recording"`
	// Published is every message of the recorded subjects (h264, h264lo,
	// presence) as the bench received them over the recording window,
	// subject, headers and body; Stored is what the stream grew by over
	// the same window (record.Info.Bytes and Msgs).
	PublishedBytes uint64 `json:"published_bytes"`
	PublishedMsgs  uint64 `json:"published_msgs"`
	StoredBytes    uint64 `json:"stored_bytes"`
	StoredMsgs     uint64 `json:"stored_msgs"`
	// SeekBack is how far back the replays start (From: now-SeekBack), s.
	SeekBack float64 `json:"seek_back_s,omitempty"`
	// Seek is replays of the recording, LiveJoin the reference: live
	// joins of the same room; both from Join to the first decoded picture
	// of any tile.
	Seek     JoinResult `json:"seek"`
	LiveJoin JoinResult `json:"live_join"`
	// Timing is the pacing of a replay at 1x, against a live viewer of
	// the same publishers over the same seconds.
	Timing []TimingResult `json:"timing,omitempty"`
	Export *ExportResult  `json:"export,omitempty"`
	// Targets are the targets, met, missed or not measured.
	Targets []Target `json:"targets"`
}

// TimingResult compares the intervals between frames as a viewer got them
// with the intervals between their capture times: |arrival interval -
// capture interval| per pair of consecutive frames of a publisher, ms.
type TimingResult struct {
	Path  string  `json:"path"` // replay 1x, or live
	Pairs int     `json:"pairs"`
	P50   float64 `json:"ms_p50"`
	P99   float64 `json:"ms_p99"`
	Max   float64 `json:"ms_max"`
	FPS   float64 `json:"fps"` // frames taken per publisher per second
}

// ExportResult is one participant's recorded span exported to MP4.
type ExportResult struct {
	Participant string  `json:"participant"`
	Span        float64 `json:"span_s"` // capture time of the last frame written minus the first
	Frames      int     `json:"frames"`
	Bytes       int     `json:"bytes"`
	MS          float64 `json:"ms"`            // Export's wall time
	PerMinuteMS float64 `json:"ms_per_minute"` // MS scaled to a minute of video
}

// Bounds and sizes of the record scenario.
const (
	recordPublishers = 4
	recordSeekBack   = 5 * time.Second  // replays start at now-5s
	recordWindow     = 10 * time.Second // the shortest CPU window and recorded span of a full run
	recordTimingMin  = 10 * time.Second // the shortest pacing window of a full run
)

// recordScenario records a room of H.264 publishers on a broker with
// JetStream and measures what it costs and how it plays back.
func recordScenario(ctx context.Context, env *runEnv) (*RecordReport, error) {
	rr := &RecordReport{CPUOff: -1, CPUOn: -1}
	if !media.H264Available() {
		rr.NotMeasured = "not measured: static build (no H.264 codec)"
		rr.Targets = recordTargets(rr)
		return rr, nil
	}
	pubs, window, seekBack, joins, timing := recordPublishers, max(env.d, recordWindow), recordSeekBack, 10, max(env.d, recordTimingMin)
	timingLayer := subscriber.LayerHi
	if env.opts.Quick {
		pubs, window, seekBack, joins, timing = 2, env.d, time.Second, 3, max(env.d, 2*time.Second)
		timingLayer = subscriber.LayerLo
	}
	rr.Publishers, rr.Window, rr.SeekBack = pubs, round3(window.Seconds()), seekBack.Seconds()

	// A broker of its own, with a JetStream store in a temporary folder:
	// a process of the vidhub binary when there is one.
	dir, err := os.MkdirTemp("", "vidhub-bench-store-")
	if err != nil {
		return nil, fmt.Errorf("a folder for the JetStream store: %w", err)
	}
	defer os.RemoveAll(dir)
	renv := *env
	stop, err := renv.startBroker("recording broker", dir)
	if err != nil {
		return nil, err
	}
	defer stop()
	nc, err := natsconn.Connect(natsconn.Config{URL: renv.url, Name: "bench recording"})
	if err != nil {
		return nil, err
	}
	defer nc.Close()

	// Count what the publishers publish on the subjects a recording keeps.
	room := "bench-record"
	var pubBytes, pubMsgs atomic.Uint64
	var seenMu sync.Mutex
	seen := map[string]bool{}
	for _, subj := range []string{protocol.RoomFrames(room, protocol.H264), protocol.RoomFrames(room, protocol.H264Lo), protocol.RoomPresence(room)} {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
			pubBytes.Add(uint64(m.Size()))
			pubMsgs.Add(1)
			if s, err := protocol.ParseSubject(m.Subject); err == nil && !s.Presence {
				seenMu.Lock()
				seen[s.Participant()] = true
				seenMu.Unlock()
			}
		})
		if err != nil {
			return nil, err
		}
		_ = sub.SetPendingLimits(-1, -1)
		defer sub.Unsubscribe()
	}
	if err := nc.Flush(); err != nil {
		return nil, err
	}
	var pubProcs []int // the publishers' processes (0: in this one)
	for i := range pubs {
		lp, err := startPublisher(&renv, liveConfig{room: room, name: "cam" + strconv.Itoa(i), enc: publisher.EncodeAuto, codec: protocol.CodecH264})
		if err != nil {
			return nil, err
		}
		defer lp.stop()
		pubProcs = append(pubProcs, lp.pid())
	}
	if err := waitUntil(ctx, flowWait, func() bool {
		seenMu.Lock()
		defer seenMu.Unlock()
		return len(seen) == pubs
	}); err != nil {
		return nil, fmt.Errorf("publishers: %w", err)
	}
	if err := sleep(ctx, env.warmup); err != nil {
		return nil, err
	}

	// The broker not recording, then recording, the same publishers.
	cpu := func() (float64, error) {
		var m *cpuMeter
		if renv.brokerPid != 0 {
			m = startCPU(renv.brokerPid)
		}
		err := sleep(ctx, window)
		if m == nil {
			return -1, err
		}
		return round3(m.cores()), err
	}
	if rr.CPUOff, err = cpu(); err != nil {
		return nil, err
	}
	recStart := time.Now()
	if _, err := record.Start(ctx, nc, record.Config{Room: room, MaxAge: time.Hour}); err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = record.Stop(sctx, nc, room)
	}()
	if err := sleep(ctx, env.warmup); err != nil {
		return nil, err
	}
	i0, err := record.Get(ctx, nc, room)
	if err != nil {
		return nil, err
	}
	b0, m0 := pubBytes.Load(), pubMsgs.Load()
	rr.CPUOn, err = cpu()
	if err != nil {
		return nil, err
	}
	i1, err := record.Get(ctx, nc, room)
	if err != nil {
		return nil, err
	}
	rr.PublishedBytes, rr.PublishedMsgs = pubBytes.Load()-b0, pubMsgs.Load()-m0
	rr.StoredBytes, rr.StoredMsgs = i1.Bytes-i0.Bytes, i1.Msgs-i0.Msgs
	env.logf("record %d publishers: broker CPU (cores) %s not recording, %s recording; published %d bytes in %d messages, stored %d bytes in %d",
		pubs, cores(rr.CPUOff), cores(rr.CPUOn), rr.PublishedBytes, rr.PublishedMsgs, rr.StoredBytes, rr.StoredMsgs)

	// Seek: replays from now-seekBack, against live joins of the room.
	hi := subscriber.Config{Room: room, Layer: subscriber.LayerHi}
	rr.Seek, err = firstFrames(ctx, renv.url, "replay", joins, func() subscriber.Config {
		c := hi
		c.From = time.Now().Add(-seekBack)
		return c
	})
	if err != nil {
		return nil, err
	}
	rr.LiveJoin, err = firstFrames(ctx, renv.url, "live", joins, func() subscriber.Config { return hi })
	if err != nil {
		return nil, err
	}
	for _, j := range []JoinResult{rr.Seek, rr.LiveJoin} {
		env.logf("record join %-6s %d joins: first picture p50 %.0f p95 %.0f max %.0f ms, %d failed", j.Codec, j.Joins, j.P50, j.P95, j.Max, j.Failed)
	}

	// Pacing: a replay at 1x and a live viewer over the same seconds.
	rr.Timing, err = replayTiming(ctx, renv.url, room, timingLayer, seekBack, timing)
	if err != nil {
		return nil, err
	}
	// The same, where nothing decodes: the replay's own pacing (the
	// target) against a plain live subscription.
	paced, err := pacingTiming(ctx, nc, room, seekBack, timing, paths)
	if err != nil {
		return nil, err
	}
	rr.Timing = append(rr.Timing, paced...)
	for _, t := range rr.Timing {
		env.logf("record timing %-9s %d pairs: |arrival - capture interval| p50 %.2f p99 %.2f max %.2f ms, %.1f fps", t.Path, t.Pairs, t.P50, t.P99, t.Max, t.FPS)
	}

	// Export: the span recorded so far of one participant.
	from, to := recStart.Add(env.warmup/2), time.Now().Add(-500*time.Millisecond)
	out := filepath.Join(dir, "export.mp4")
	t0 := time.Now()
	ex, err := record.Export(ctx, nc, record.ExportConfig{Room: room, Name: "cam0", From: from, To: to, Out: out})
	el := time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	e := &ExportResult{Participant: "cam0", Span: round3(ex.Last.Sub(ex.First).Seconds()), Frames: ex.Frames, Bytes: ex.Bytes,
		MS: round3(float64(el) / float64(time.Millisecond))}
	if e.Span > 0 {
		e.PerMinuteMS = round3(e.MS * 60 / e.Span)
	}
	rr.Export = e
	env.logf("record export %s: %.1f s of video, %d frames, %d bytes in %.0f ms: %.0f ms per minute", e.Participant, e.Span, e.Frames, e.Bytes, e.MS, e.PerMinuteMS)

	// Pacing again, the publishers' processes at the lowest priority:
	// deployed, the encoders run on the cameras, not beside the replay.
	// Last, because a process may lower its children's priority but not
	// raise it again.
	niced := len(pubProcs) > 0 && !slices.Contains(pubProcs, 0) // 0: a publisher in this process
	if niced {
		for _, pid := range pubProcs {
			if err := lowerPriority(pid); err != nil {
				env.logf("record timing: %v; no pacing with the publishers niced", err)
				niced = false
				break
			}
		}
	}
	if niced {
		paced, err := pacingTiming(ctx, nc, room, seekBack, timing, pathsNiced)
		if err != nil {
			return nil, err
		}
		rr.Timing = append(rr.Timing, paced...)
		for _, t := range paced {
			env.logf("record timing %-9s %d pairs: |arrival - capture interval| p50 %.2f p99 %.2f max %.2f ms, %.1f fps", t.Path, t.Pairs, t.P50, t.P99, t.Max, t.FPS)
		}
	}
	rr.Targets = recordTargets(rr)
	return rr, nil
}

// waitUntil polls cond until it holds, for at most timeout.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: not ready within %v", timeout)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// firstFrames joins n times, one after another, each on a fresh
// connection at a random moment, and times Join to the first decoded
// picture of any tile (TileStats.FirstFrameMS).
func firstFrames(ctx context.Context, url, name string, n int, cfg func() subscriber.Config) (JoinResult, error) {
	res := JoinResult{Codec: name, Joins: n}
	err := sampleJoins(ctx, &res, n, 500*time.Millisecond, 12, func() (float64, error) { return firstFrame(ctx, url, cfg()) })
	return res, err
}

// firstFrame joins once and returns the earliest FirstFrameMS of its
// tiles, or -1 if none had a picture within joinWait.
func firstFrame(ctx context.Context, url string, cfg subscriber.Config) (float64, error) {
	nc, err := natsconn.Connect(natsconn.Config{URL: url, Name: "bench seek"})
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	cfg.Name = "bench-seek"
	r, err := subscriber.Join(nc, cfg)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	deadline := time.Now().Add(joinWait)
	for time.Now().Before(deadline) {
		best := int64(-1)
		for _, s := range r.Stats() {
			if s.Frames > 0 && s.FirstFrameMS >= 0 && (best < 0 || s.FirstFrameMS < best) {
				best = s.FirstFrameMS
			}
		}
		if best >= 0 {
			return float64(best), nil
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return -1, nil
}

// arrival is a frame a renderer stand-in took: when the room got it (for
// a replay, when the replay handed it over), and when it was captured.
type arrival struct {
	seq                uint64
	received, captured time.Time
}

// replayTiming takes every frame of a replay at 1x from now-seekBack and
// of a live viewer of the same room, for d, and compares the intervals.
//
// The viewers take layer: hi for the figures, lo in a quick run, whose
// decoders (720p, under the race detector in tests) could not keep up
// with two publishers on two paths.
func replayTiming(ctx context.Context, url, room string, layer subscriber.LayerMode, seekBack, d time.Duration) ([]TimingResult, error) {
	from := time.Now().Add(-seekBack)
	cfgs := []struct {
		path string
		cfg  subscriber.Config
		from time.Time
	}{
		{"replay 1x", subscriber.Config{Room: room, Name: "bench-replay", Layer: layer, KeepFrames: true, From: from, Speed: 1}, from},
		{"live", subscriber.Config{Room: room, Name: "bench-live", Layer: layer, KeepFrames: true}, time.Time{}},
	}
	type taker struct {
		room *subscriber.Room
		mu   sync.Mutex
		got  map[string][]arrival
	}
	var takers []*taker
	var conns []*nats.Conn
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		for _, t := range takers {
			t.room.Close()
		}
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for _, c := range cfgs {
		nc, err := natsconn.Connect(natsconn.Config{URL: url, Name: "bench " + c.path})
		if err != nil {
			return nil, err
		}
		conns = append(conns, nc)
		r, err := subscriber.Join(nc, c.cfg)
		if err != nil {
			return nil, err
		}
		t := &taker{room: r, got: map[string][]arrival{}}
		takers = append(takers, t)
		wg.Go(func() {
			tk := time.NewTicker(pollEvery)
			defer tk.Stop()
			for {
				select {
				case <-rctx.Done():
					return
				case <-tk.C:
				}
				for _, tile := range r.Tiles() {
					f := tile.Take()
					if f == nil || f.Meta.CaptureTime().Before(c.from) {
						continue // none, or held back until From and handed over at once
					}
					t.mu.Lock()
					if a := t.got[f.Participant]; len(a) < maxSamples {
						t.got[f.Participant] = append(a, arrival{f.Meta.Seq, f.Received, f.Meta.CaptureTime()})
					}
					t.mu.Unlock()
				}
			}
		})
	}
	t0 := time.Now()
	if err := sleep(ctx, d); err != nil {
		return nil, err
	}
	el := time.Since(t0).Seconds()
	cancel()
	wg.Wait()
	var out []TimingResult
	for i, t := range takers {
		t.mu.Lock()
		res := timing(cfgs[i].path, t.got, el)
		t.mu.Unlock()
		out = append(out, res)
	}
	return out, nil
}

// Paths of the pacing measured where nothing decodes.
const (
	pathReplayReader = "replay 1x, reader"
	pathLiveSub      = "live, subscription"
	pathReplayNiced  = "replay 1x, reader, publishers at nice 19"
	pathLiveNiced    = "live, subscription, publishers at nice 19"
)

// paths and pathsNiced name pacingTiming's two rows.
var (
	paths      = [2]string{pathReplayReader, pathLiveSub}
	pathsNiced = [2]string{pathReplayNiced, pathLiveNiced}
)

// pacingTiming measures, for d, when record.Play hands on each frame of
// the h264 layer of a replay at 1x from now-seekBack, and when a plain
// subscription to the same layer gets it live: the replay's pacing
// without a decoder competing for the CPU.
func pacingTiming(ctx context.Context, nc *nats.Conn, room string, seekBack, d time.Duration, names [2]string) ([]TimingResult, error) {
	from := time.Now().Add(-seekBack)
	subject := protocol.RoomFrames(room, protocol.H264)
	var mu sync.Mutex
	got := [2]map[string][]arrival{{}, {}}
	note := func(i int, participant string, seq uint64, at time.Time) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if a := got[i][participant]; len(a) < maxSamples {
			got[i][participant] = append(a, arrival{seq, now, at})
		}
	}
	rd, err := record.NewReader(ctx, nc, record.ReadConfig{Room: room, From: from, Subjects: []string{subject}, Follow: true})
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		s, err := protocol.ParseSubject(m.Subject)
		if meta, merr := protocol.ParseFrameHeader(m.Header); err == nil && merr == nil {
			note(1, s.Participant(), meta.Seq, meta.CaptureTime())
		}
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t0 := time.Now()
	err = record.Play(pctx, rd, from, 1, func(it record.Item) {
		if s, err := protocol.ParseSubject(it.Msg.Subject); err == nil && it.Frame && !it.Before {
			note(0, s.Participant(), it.Meta.Seq, it.At)
		}
	})
	if err != nil && pctx.Err() == nil {
		return nil, err
	}
	el := time.Since(t0).Seconds()
	_ = sub.Unsubscribe()
	mu.Lock()
	defer mu.Unlock()
	return []TimingResult{timing(names[0], got[0], el), timing(names[1], got[1], el)}, nil
}

// timing is the deviation of the arrival intervals from the capture
// intervals of each publisher's frames, over el seconds.
func timing(path string, got map[string][]arrival, el float64) TimingResult {
	var dev []float64
	frames := 0
	for _, as := range got {
		frames += len(as)
		for i := 1; i < len(as); i++ {
			if as[i].seq <= as[i-1].seq {
				continue // a publisher restarted: a new sequence
			}
			d := as[i].received.Sub(as[i-1].received) - as[i].captured.Sub(as[i-1].captured)
			dev = append(dev, math.Abs(float64(d)/float64(time.Millisecond)))
		}
	}
	slices.Sort(dev)
	r := TimingResult{Path: path, Pairs: len(dev), P50: round3(quantile(dev, 0.5)), P99: round3(quantile(dev, 0.99))}
	if len(dev) > 0 {
		r.Max = round3(dev[len(dev)-1])
	}
	if len(got) > 0 && el > 0 {
		r.FPS = round3(float64(frames) / float64(len(got)) / el)
	}
	return r
}

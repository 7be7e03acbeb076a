// Package bench measures vidhub: how fast, how smoothly and at what cost
// it moves live video, side by side with references run in the same
// process at the same time: plain nats.go publishers and subscribers
// sending the very same bytes, and the classic design vidhub replaces
// (raw BGR frames, length-prefixed, to one TCP client).
//
// Run drives the scenarios (fan-out, room, ceiling, classic, encode, web,
// the idle publisher, H.264 against JPEG, and recording on JetStream) on a broker over loopback TCP and returns a
// Report; WriteResults writes it as a table, JSON and an SVG chart. With
// a vidhub binary (Options.Exe) the broker, the publishers and the web
// gateway run as their own processes so that each side's CPU and memory
// are measured apart; without one everything runs in this process.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// Scenario kinds, in the order Run runs them.
const (
	KindEncode  = "encode"
	KindFanout  = "fanout"
	KindRoom    = "room"
	KindCeiling = "ceiling"
	KindClassic = "classic"
	KindWeb     = "web"
	KindIdle    = "idle"
	KindH264    = "h264"
	KindRecord  = "record"
)

// Kinds lists every scenario kind.
var Kinds = []string{KindEncode, KindFanout, KindRoom, KindCeiling, KindClassic, KindWeb, KindIdle, KindH264, KindRecord}

// ErrBadOptions is returned (wrapped) for Options that cannot work.
var ErrBadOptions = errors.New("bad bench settings")

// Options say what to run.
type Options struct {
	// Duration is how long each scenario is measured, after a warm-up;
	// 0 means 5 s (1.5 s when Quick).
	Duration time.Duration
	// Quick runs small viewer counts (1 and 10; 10 browsers) for a
	// smoke test.
	Quick bool
	// Exe is a vidhub binary. When set, the broker, the publishers and
	// the web gateway run as child processes of it.
	Exe string
	// Only limits the run to these kinds; empty runs them all.
	Only []string
	// Progress receives a line per scenario; nil discards them.
	Progress io.Writer
}

// Result is one scenario run by one implementation.
type Result struct {
	Scenario   string  `json:"scenario"` // e.g. fanout-50
	Kind       string  `json:"kind"`
	Impl       string  `json:"impl"` // vidhub, raw or classic
	Publishers int     `json:"publishers"`
	Viewers    int     `json:"viewers"`
	Seconds    float64 `json:"seconds"`
	// FPS per viewer and publisher: minimum, median and mean.
	FPSMin    float64   `json:"fps_min"`
	FPSMedian float64   `json:"fps_median"`
	FPSMean   float64   `json:"fps_mean"`
	StreamFPS []float64 `json:"stream_fps"`
	// FramesPerSec is every frame delivered to every viewer, per second.
	FramesPerSec float64 `json:"frames_per_sec"`
	MBPerSec     float64 `json:"mb_per_sec"`
	BytesFrame   float64 `json:"bytes_per_frame"`
	Gaps         uint64  `json:"gaps"`
	// Latency from capture (Vidhub-Time) to the viewer's callback, ms.
	LatP50 float64   `json:"latency_ms_p50"`
	LatP99 float64   `json:"latency_ms_p99"`
	LatMax float64   `json:"latency_ms_max"`
	LatCDF []float64 `json:"latency_ms_cdf,omitempty"` // 0..100 %
	// CPU in cores (CPU seconds per second) and peak RSS in MB, by side:
	// broker, publisher, gateway, bench (the viewers, and the reference
	// publishers), or process when everything shares this process.
	CPU  map[string]float64 `json:"cpu_cores"`
	RSS  map[string]float64 `json:"rss_mb_peak,omitempty"`
	Note string             `json:"note,omitempty"`
}

// Machine describes where the figures come from.
type Machine struct {
	CPUs      int     `json:"cpus"`
	Model     string  `json:"cpu_model"`
	Kernel    string  `json:"kernel"`
	Go        string  `json:"go"`
	MemMB     float64 `json:"mem_mb"`
	LoadStart string  `json:"loadavg_start"`
	LoadEnd   string  `json:"loadavg_end"`
	Processes bool    `json:"separate_processes"`
	Encoder   string  `json:"publisher_encoder"`
}

// Report is everything one run measured.
type Report struct {
	Started  time.Time      `json:"started"`
	Seconds  float64        `json:"seconds"`
	Duration float64        `json:"scenario_seconds"`
	Quick    bool           `json:"quick"`
	Machine  Machine        `json:"machine"`
	HiBytes  float64        `json:"hi_jpeg_bytes_avg"`
	LoBytes  float64        `json:"lo_jpeg_bytes_avg"`
	Encode   []EncodeResult `json:"encode"`
	Results  []Result       `json:"results"`
	Ratios   []Ratio        `json:"ratios"`
	Targets  []Target       `json:"targets"`
	// H264 is the h264 scenario's figures, nil when it did not run.
	H264 *H264Report `json:"h264,omitempty"`
	// Record is the record scenario's figures, nil when it did not run.
	Record *RecordReport `json:"record,omitempty"`
}

// runEnv is what the scenarios share.
type runEnv struct {
	opts      Options
	exe       string
	url       string
	brokerPid int // 0: the broker runs in this process
	p         *payloads
	d, warmup time.Duration
	progress  io.Writer
}

func (e *runEnv) logf(format string, a ...any) {
	fmt.Fprintf(e.progress, format+"\n", a...)
}

// Run runs the scenarios and returns their report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	for _, k := range opts.Only {
		if !slices.Contains(Kinds, k) {
			return nil, fmt.Errorf("%w: unknown scenario %q: use %s", ErrBadOptions, k, strings.Join(Kinds, ", "))
		}
	}
	if opts.Duration < 0 || opts.Duration > 10*time.Minute {
		return nil, fmt.Errorf("%w: duration %v: use 0.5s to 10m", ErrBadOptions, opts.Duration)
	}
	env := &runEnv{opts: opts, exe: opts.Exe, d: opts.Duration, warmup: 1500 * time.Millisecond, progress: opts.Progress}
	if env.progress == nil {
		env.progress = io.Discard
	}
	if env.d == 0 {
		env.d = 5 * time.Second
		if opts.Quick {
			env.d = 1500 * time.Millisecond
		}
	}
	if opts.Quick {
		env.warmup = min(time.Second, max(500*time.Millisecond, env.d))
	}
	rep := &Report{Started: time.Now(), Duration: env.d.Seconds(), Quick: opts.Quick, Machine: machine()}
	rep.Machine.Processes = env.exe != ""
	rep.Machine.Encoder = publisherEncoder

	// The broker: a vidhub broker process, or the embedded one here.
	stop, err := env.startBroker("broker", "")
	if err != nil {
		return nil, err
	}
	defer stop()
	if env.p, err = capturePayloads(ctx, env.url); err != nil {
		return nil, err
	}
	rep.HiBytes, rep.LoBytes = round3(env.p.hiAvg), round3(env.p.loAvg)
	env.logf("payloads: %d frames of 720p pattern, hi %.0f bytes, lo %dx%d %.0f bytes on average",
		len(env.p.hi), env.p.hiAvg, env.p.loW, env.p.loH, env.p.loAvg)

	want := func(k string) bool { return len(opts.Only) == 0 || slices.Contains(opts.Only, k) }
	add := func(rs ...Result) {
		for _, r := range rs {
			env.logf("%s", r.line())
		}
		rep.Results = append(rep.Results, rs...)
	}
	fanN := []int{1, 10, 50, 100}
	roomViewers, webViewers := 10, 100
	if opts.Quick {
		fanN, webViewers = []int{1, 10}, 10
	}
	steps := []struct {
		kind string
		run  func() error
	}{
		{KindEncode, func() error {
			rep.Encode = encodeTimings(ctx, env)
			for _, e := range rep.Encode {
				env.logf("encode %-6s %-9s %8.2f ms/frame  %7.0f bytes", e.Encoder, e.Size, e.Ms, e.Bytes)
			}
			return nil
		}},
		{KindFanout, func() error {
			for _, n := range fanN {
				rs, err := fanout(ctx, env, n)
				if err != nil {
					return err
				}
				add(rs...)
			}
			return nil
		}},
		{KindRoom, func() error {
			for _, l := range []subscriber.LayerMode{subscriber.LayerLo, subscriber.LayerHi} {
				rs, err := roomScenario(ctx, env, 4, roomViewers, l)
				if err != nil {
					return err
				}
				add(rs...)
			}
			return nil
		}},
		{KindCeiling, func() error {
			for _, n := range []int{1, 10} {
				rs, err := ceiling(ctx, env, n)
				if err != nil {
					return err
				}
				add(rs...)
			}
			return nil
		}},
		{KindClassic, func() error {
			for _, fps := range []float64{frameFPS, 0} {
				r, err := classic(ctx, env, fps)
				if err != nil {
					return err
				}
				add(r)
			}
			return nil
		}},
		{KindWeb, func() error {
			r, err := webScenario(ctx, env, webViewers)
			if err != nil {
				return err
			}
			add(r)
			return nil
		}},
		{KindIdle, func() error {
			r, err := idle(ctx, env)
			if err != nil {
				return err
			}
			add(r)
			return nil
		}},
		{KindH264, func() error {
			h, err := h264Scenario(ctx, env)
			rep.H264 = h
			return err
		}},
		{KindRecord, func() error {
			r, err := recordScenario(ctx, env)
			rep.Record = r
			return err
		}},
	}
	for _, s := range steps {
		if !want(s.kind) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.run(); err != nil {
			return nil, fmt.Errorf("bench: %s: %w", s.kind, err)
		}
	}
	rep.Machine.LoadEnd = loadavg()
	rep.Seconds = round3(time.Since(rep.Started).Seconds())
	rep.Ratios = ratios(rep)
	rep.Targets = targets(rep)
	return rep, nil
}

// sides names the processes whose CPU a scenario measures.
type sides map[string]int

// measure warms up, then measures vs for the scenario's duration.
func (e *runEnv) measure(ctx context.Context, vs viewerSet, sd sides, bytesPerFrame float64, r Result) (Result, error) {
	if err := sleep(ctx, e.warmup); err != nil {
		return r, err
	}
	meters := map[string]*cpuMeter{}
	if e.brokerPid != 0 {
		meters["broker"] = startCPU(e.brokerPid)
		meters["bench"] = startCPU(0)
	} else {
		meters["process"] = startCPU(0)
	}
	for name, pid := range sd {
		if pid != 0 {
			meters[name] = startCPU(pid)
		}
	}
	vs.begin()
	err := sleep(ctx, e.d)
	w := vs.end()
	r.CPU = map[string]float64{}
	for name, m := range meters {
		r.CPU[name] = round3(m.cores())
	}
	r.RSS = map[string]float64{}
	for name, pid := range sd {
		if pid != 0 {
			_, peak := procRSS(pid)
			r.RSS[name] = round3(peak)
		}
	}
	r.fill(w, bytesPerFrame)
	return r, err
}

// fill sets the figures of a window.
func (r *Result) fill(w window, bytesPerFrame float64) {
	r.Seconds = round3(w.seconds)
	r.StreamFPS = make([]float64, len(w.streamFPS))
	var sum float64
	for i, f := range w.streamFPS {
		r.StreamFPS[i] = round3(f)
		sum += f
	}
	if n := len(w.streamFPS); n > 0 {
		r.FPSMin = round3(slices.Min(w.streamFPS))
		r.FPSMedian = round3(median(w.streamFPS))
		r.FPSMean = round3(sum / float64(n))
	}
	if w.seconds > 0 {
		r.FramesPerSec = round3(float64(w.frames) / w.seconds)
		r.MBPerSec = round3(float64(w.frames) * bytesPerFrame / w.seconds / 1e6)
	}
	r.BytesFrame = round3(bytesPerFrame)
	r.Gaps = w.gaps
	r.LatP50, r.LatP99 = round3(quantile(w.lat, 0.5)), round3(quantile(w.lat, 0.99))
	if n := len(w.lat); n > 0 {
		r.LatMax = round3(w.lat[n-1])
	}
	r.LatCDF = cdfPoints(w.lat)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// fanout: one live 720p30 publisher, n viewers of hi; then the raw
// reference with the same bytes.
func fanout(ctx context.Context, env *runEnv, n int) ([]Result, error) {
	name := "fanout-" + strconv.Itoa(n)
	room := "bench-" + name
	base := Result{Scenario: name, Kind: KindFanout, Publishers: 1, Viewers: n}

	vs, err := joinVidhub(env.url, room, n, subscriber.LayerHi, 1)
	if err != nil {
		return nil, err
	}
	lp, err := startLive(env, room, "cam", publisher.EncodeAll)
	if err != nil {
		vs.close()
		return nil, err
	}
	r := base
	r.Impl = "vidhub"
	vr, err := env.measure(ctx, vs, sides{"publisher": lp.pid()}, env.p.hiAvg, r)
	lp.stop()
	vs.close()
	if err != nil {
		return nil, err
	}

	room += "-raw"
	rv, err := joinRaw(env.url, protocol.RoomFrames(room, protocol.Hi), n, 1)
	if err != nil {
		return nil, err
	}
	rp, err := startReplay(env.url, room, "cam", env.p, frameFPS, true, true)
	if err != nil {
		rv.close()
		return nil, err
	}
	r = base
	r.Impl = "raw"
	rr, err := env.measure(ctx, rv, nil, env.p.hiAvg, r)
	rp.stop()
	rv.close()
	return []Result{vr, rr}, err
}

// roomScenario: pubs live publishers, n viewers each taking every
// publisher in layer l.
func roomScenario(ctx context.Context, env *runEnv, pubs, n int, l subscriber.LayerMode) ([]Result, error) {
	mode := "grid-lo"
	avg := env.p.loAvg
	if l == subscriber.LayerHi {
		mode, avg = "all-hi", env.p.hiAvg
	}
	name := fmt.Sprintf("room-%dx%d-%s", pubs, n, mode)
	room := "bench-" + name
	base := Result{Scenario: name, Kind: KindRoom, Publishers: pubs, Viewers: n}

	vs, err := joinVidhub(env.url, room, n, l, pubs)
	if err != nil {
		return nil, err
	}
	var lps []*livePublisher
	stop := func() {
		for _, lp := range lps {
			lp.stop()
		}
		vs.close()
	}
	sd := sides{}
	for i := range pubs {
		lp, err := startLive(env, room, "cam"+strconv.Itoa(i), publisher.EncodeAll)
		if err != nil {
			stop()
			return nil, err
		}
		lps = append(lps, lp)
		if lp.pid() != 0 {
			sd["publisher"+strconv.Itoa(i)] = lp.pid()
		}
	}
	r := base
	r.Impl = "vidhub"
	vr, err := env.measure(ctx, vs, sd, avg, r)
	stop()
	if err != nil {
		return nil, err
	}

	room += "-raw"
	rv, err := joinRaw(env.url, protocol.RoomFrames(room, protocol.Layer(l)), n, pubs)
	if err != nil {
		return nil, err
	}
	var rps []*replayer
	for i := range pubs {
		rp, err := startReplay(env.url, room, "cam"+strconv.Itoa(i), env.p, frameFPS, true, true)
		if err != nil {
			break
		}
		rps = append(rps, rp)
	}
	r = base
	r.Impl = "raw"
	rr, err := env.measure(ctx, rv, nil, avg, r)
	for _, rp := range rps {
		rp.stop()
	}
	rv.close()
	return []Result{vr, rr}, err
}

// ceiling: pre-encoded 720p frames as fast as they go, to n viewers.
// Both sides publish with the same replayer; what differs is the viewer.
func ceiling(ctx context.Context, env *runEnv, n int) ([]Result, error) {
	name := "ceiling-" + strconv.Itoa(n)
	base := Result{Scenario: name, Kind: KindCeiling, Publishers: 1, Viewers: n,
		Note: "pre-encoded 720p frames, unpaced; latency includes queueing"}
	var out []Result
	for _, impl := range []string{"vidhub", "raw"} {
		room := "bench-" + name + "-" + impl
		var vs viewerSet
		var err error
		if impl == "vidhub" {
			vs, err = joinVidhub(env.url, room, n, subscriber.LayerHi, 1)
		} else {
			vs, err = joinRaw(env.url, protocol.RoomFrames(room, protocol.Hi), n, 1)
		}
		if err != nil {
			return nil, err
		}
		rp, err := startReplay(env.url, room, "cam", env.p, 0, false, false)
		if err != nil {
			vs.close()
			return nil, err
		}
		r := base
		r.Impl = impl
		r, err = env.measure(ctx, vs, nil, env.p.hiAvg, r)
		rp.stop()
		vs.close()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// idle: a live publisher that nobody watches.
func idle(ctx context.Context, env *runEnv) (Result, error) {
	lp, err := startLive(env, "bench-idle", "cam", publisher.EncodeWatched)
	if err != nil {
		return Result{}, err
	}
	defer lp.stop()
	r := Result{Scenario: "idle-publisher", Kind: KindIdle, Impl: "vidhub", Publishers: 1,
		Note: "no viewer on any layer, publisher run with --encode watched"}
	return env.measure(ctx, noViewers{}, sides{"publisher": lp.pid()}, 0, r)
}

type noViewers struct{}

func (noViewers) begin()      {}
func (noViewers) end() window { return window{} }
func (noViewers) close()      {}
func (r Result) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s %-7s fps min %5.1f med %5.1f  frames/s %7.1f  %7.1f MB/s  latency p50 %6.2f p99 %6.2f max %7.2f ms  gaps %d",
		r.Scenario, r.Impl, r.FPSMin, r.FPSMedian, r.FramesPerSec, r.MBPerSec, r.LatP50, r.LatP99, r.LatMax, r.Gaps)
	for _, k := range sortedKeys(r.CPU) {
		fmt.Fprintf(&b, "  %s %.2f", k, r.CPU[k])
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// machine describes this machine.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadStart: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					kb, _ := strconv.ParseFloat(f[0], 64)
					m.MemMB = round3(kb / 1024)
				}
			}
		}
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// startBroker starts the broker of a scenario, a vidhub broker process
// (env.exe) or else one embedded here, with a JetStream store in
// storeDir when it is set, and points env at it. stop stops it.
func (env *runEnv) startBroker(name, storeDir string) (stop func(), err error) {
	if env.exe == "" {
		b, err := broker.Start(broker.Config{StoreDir: storeDir})
		if err != nil {
			return nil, err
		}
		env.url, env.brokerPid = b.ClientURL(), 0
		return b.Close, nil
	}
	args := []string{"broker", "--listen", "127.0.0.1:0", "--log-level", "warn"}
	if storeDir != "" {
		args = append(args, "--store", storeDir)
	}
	ch, err := startChild(name, env.exe, args...)
	if err != nil {
		return nil, err
	}
	line, err := ch.waitLine("listening on", 20*time.Second)
	if err != nil {
		ch.stop()
		return nil, err
	}
	env.url, env.brokerPid = brokerURL(line), ch.pid()
	return ch.stop, nil
}

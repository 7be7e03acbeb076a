package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/subscriber"
)

// window is what a set of viewers measured between begin and end.
type window struct {
	streamFPS []float64 // frames per second of each (viewer, publisher) pair
	frames    uint64    // frames delivered, all viewers
	gaps      uint64    // frames missing from the sequences
	lat       []float64 // latency samples, ms, sorted
	seconds   float64
}

// viewerSet is a group of viewers of one room.
type viewerSet interface {
	begin()
	end() window
	close()
}

// pollEvery is how often the vidhub viewers' renderer stand-in takes the
// newest frame of each tile. Reception time is stamped by the subscriber
// in its NATS callback, so polling adds nothing to the latency measured.
const pollEvery = time.Millisecond

// vidhubViewers are subscriber.Room viewers, each on its own connection,
// as vidhub's headless and desktop viewers run. A renderer stand-in takes
// each tile's newest frame and records its latency from Vidhub-Time.
type vidhubViewers struct {
	conns   []*nats.Conn
	rooms   []*subscriber.Room
	lat     samples
	rec     atomic.Bool
	t0      time.Time
	base    []map[string]uint64 // per room: tile -> frames at begin
	gapBase []map[string]uint64
	streams int

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func joinVidhub(url, room string, n int, layer subscriber.LayerMode, streams int) (*vidhubViewers, error) {
	v := &vidhubViewers{streams: streams}
	for i := range n {
		nc, err := natsconn.Connect(natsconn.Config{URL: url, Name: "bench viewer"})
		if err != nil {
			v.close()
			return nil, err
		}
		v.conns = append(v.conns, nc)
		r, err := subscriber.Join(nc, subscriber.Config{
			Room: room, Name: "bench-viewer-" + strconv.Itoa(i), Layer: layer, KeepFrames: true,
			Codec: protocol.CodecJPEG, // the JPEG layers only, as protocol v1
		})
		if err != nil {
			v.close()
			return nil, err
		}
		v.rooms = append(v.rooms, r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	v.wg.Go(func() { v.poll(ctx) })
	return v, nil
}

// poll is the renderer stand-in: it takes every tile's newest frame.
func (v *vidhubViewers) poll(ctx context.Context) {
	tiles := make([][]*subscriber.Tile, len(v.rooms))
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	var n int
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n%100 == 0 { // tiles come and go rarely
			for i, r := range v.rooms {
				tiles[i] = r.Tiles()
			}
		}
		n++
		rec := v.rec.Load()
		for _, ts := range tiles {
			for _, tile := range ts {
				if f := tile.Take(); f != nil && rec {
					v.lat.add(float64(f.Received.Sub(f.Meta.CaptureTime())) / float64(time.Millisecond))
				}
			}
		}
	}
}

func (v *vidhubViewers) counts() (frames, gaps []map[string]uint64) {
	for _, r := range v.rooms {
		f, g := map[string]uint64{}, map[string]uint64{}
		for _, s := range r.Stats() {
			f[s.Participant], g[s.Participant] = s.Frames, s.Gaps
		}
		frames, gaps = append(frames, f), append(gaps, g)
	}
	return frames, gaps
}

func (v *vidhubViewers) begin() {
	v.base, v.gapBase = v.counts()
	v.t0 = time.Now()
	v.rec.Store(true)
}

func (v *vidhubViewers) end() window {
	v.rec.Store(false)
	el := time.Since(v.t0).Seconds()
	frames, gaps := v.counts()
	w := window{seconds: el}
	for i := range frames {
		seen := 0
		for name, n := range frames[i] {
			d := n - v.base[i][name]
			w.frames += d
			w.gaps += gaps[i][name] - v.gapBase[i][name]
			w.streamFPS = append(w.streamFPS, float64(d)/el)
			seen++
		}
		for ; seen < v.streams; seen++ {
			w.streamFPS = append(w.streamFPS, 0) // a publisher this viewer never got
		}
	}
	w.lat = v.lat.sorted()
	return w
}

func (v *vidhubViewers) close() {
	if v.cancel != nil {
		v.cancel()
		v.wg.Wait()
	}
	var wg sync.WaitGroup
	for _, r := range v.rooms {
		wg.Go(r.Close)
	}
	wg.Wait()
	for _, nc := range v.conns {
		nc.Close()
	}
}

// quietErrors keeps nats.go from printing slow-consumer errors: the
// frames a slow subscriber loses show up as gaps in the sequence.
var quietErrors = nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})

// rawViewers are plain nats.go subscribers: the reference. Each reads
// the same headers a vidhub viewer needs (sequence and capture time) and
// nothing more.
type rawViewers struct {
	conns   []*nats.Conn
	viewers []*rawViewer
	t0      time.Time
	streams int
}

type rawViewer struct {
	mu      sync.Mutex
	rec     bool
	streams map[string]*rawStream
	lat     []float64
}

type rawStream struct {
	frames, gaps, lastSeq uint64
	base, gapBase         uint64
}

func (rv *rawViewer) onMsg(m *nats.Msg) {
	now := time.Now()
	seq, err1 := strconv.ParseUint(m.Header.Get(protocol.HeaderSeq), 10, 64)
	at, err2 := strconv.ParseInt(m.Header.Get(protocol.HeaderTime), 10, 64)
	if err1 != nil || err2 != nil {
		return
	}
	rv.mu.Lock()
	s := rv.streams[m.Subject]
	if s == nil {
		s = &rawStream{}
		rv.streams[m.Subject] = s
	}
	if s.lastSeq != 0 && seq > s.lastSeq+1 {
		s.gaps += seq - s.lastSeq - 1
	}
	s.lastSeq = seq
	s.frames++
	if rv.rec && len(rv.lat) < maxSamples {
		rv.lat = append(rv.lat, float64(now.UnixNano()-at)/float64(time.Millisecond))
	}
	rv.mu.Unlock()
}

func joinRaw(url, subject string, n, streams int) (*rawViewers, error) {
	v := &rawViewers{streams: streams}
	for range n {
		nc, err := nats.Connect(url, nats.Name("bench raw viewer"), quietErrors)
		if err != nil {
			v.close()
			return nil, fmt.Errorf("bench: raw viewer: %w", err)
		}
		v.conns = append(v.conns, nc)
		rv := &rawViewer{streams: map[string]*rawStream{}}
		sub, err := nc.Subscribe(subject, rv.onMsg)
		if err != nil {
			v.close()
			return nil, err
		}
		// The same pending limits as vidhub's viewers.
		_ = sub.SetPendingLimits(256, 64<<20)
		if err := nc.Flush(); err != nil {
			v.close()
			return nil, err
		}
		v.viewers = append(v.viewers, rv)
	}
	return v, nil
}

func (v *rawViewers) begin() {
	for _, rv := range v.viewers {
		rv.mu.Lock()
		for _, s := range rv.streams {
			s.base, s.gapBase = s.frames, s.gaps
		}
		rv.rec = true
		rv.mu.Unlock()
	}
	v.t0 = time.Now()
}

func (v *rawViewers) end() window {
	el := time.Since(v.t0).Seconds()
	w := window{seconds: el}
	var lat samples
	for _, rv := range v.viewers {
		rv.mu.Lock()
		rv.rec = false
		seen := 0
		for _, s := range rv.streams {
			d := s.frames - s.base
			w.frames += d
			w.gaps += s.gaps - s.gapBase
			w.streamFPS = append(w.streamFPS, float64(d)/el)
			seen++
		}
		lat.addAll(rv.lat)
		rv.mu.Unlock()
		for ; seen < v.streams; seen++ {
			w.streamFPS = append(w.streamFPS, 0)
		}
	}
	w.lat = lat.sorted()
	return w
}

func (v *rawViewers) close() {
	for _, nc := range v.conns {
		nc.Close()
	}
}

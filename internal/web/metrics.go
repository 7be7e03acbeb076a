package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"

	"github.com/vidhub/vidhub/internal/webtoken"
)

// metrics counts what the gateway does, for /metrics.
type metrics struct {
	framesIn   [len(allLayers)]atomic.Uint64 // from the broker, by layer (allLayers)
	framesOut  [len(allLayers)]atomic.Uint64 // to browsers, by layer
	dropped    atomic.Uint64                 // never sent to a browser: a newer frame replaced it, or (H.264) it waited for a keyframe
	h264Waited atomic.Uint64                 // H.264 frames dropped while a browser waited for a keyframe
	keysMu     sync.Mutex
	keys       map[string]uint64             // keyframe requests by result
	bad        atomic.Uint64                 // bad frames from the broker
	pubFrames  [len(allLayers)]atomic.Uint64 // published for browsers, by layer
	pubBytes   atomic.Uint64
	pubWaited  atomic.Uint64 // H.264 frames from browsers dropped: a break in their chain
	badLog     rate.Sometimes
	refuseLog  rate.Sometimes
	refusedMu  sync.Mutex
	refused    map[string]uint64
	socketsNow [2]atomic.Int64 // open sockets: view, publish
	replaysNow atomic.Int64    // viewing sockets that replay a recording
}

func newMetrics() *metrics {
	return &metrics{
		refused: map[string]uint64{}, keys: map[string]uint64{},
		badLog: rate.Sometimes{Interval: logEvery}, refuseLog: rate.Sometimes{Interval: logEvery},
	}
}

func (m *metrics) refuse(kind string) {
	m.refusedMu.Lock()
	m.refused[kind]++
	m.refusedMu.Unlock()
}

// keyRequest counts a keyframe request (the gateway's own, or a
// browser's) by what became of it.
func (m *metrics) keyRequest(result string) {
	m.keysMu.Lock()
	m.keys[result]++
	m.keysMu.Unlock()
}

// refuseLevel is the level of a refusal's log line: every refusal is
// counted, but a flood of them is a warning now and then, debug between.
func (m *metrics) refuseLevel() slog.Level {
	level := slog.LevelDebug
	m.refuseLog.Do(func() { level = slog.LevelWarn })
	return level
}

// serveMetrics writes the Prometheus text format. It stays open on a
// gateway with a token key (a scraper needs no token), but room names are
// what tokens protect: there it shows per-room series only to a request
// whose token may view every room, and totals to everyone else.
func (g *Gateway) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	m := g.m
	var layers [len(allLayers)]string
	for i, l := range allLayers {
		layers[i] = string(l)
	}
	metric := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	metric("vidhub_web_frames_in_total", "counter", "Frames received from the broker.")
	for i, l := range layers {
		fmt.Fprintf(&b, "vidhub_web_frames_in_total{layer=%q} %d\n", l, m.framesIn[i].Load())
	}
	metric("vidhub_web_frames_out_total", "counter", "Frames sent to browsers.")
	for i, l := range layers {
		fmt.Fprintf(&b, "vidhub_web_frames_out_total{layer=%q} %d\n", l, m.framesOut[i].Load())
	}
	metric("vidhub_web_frames_dropped_total", "counter", "Frames a slow browser never got: a newer one replaced them.")
	fmt.Fprintf(&b, "vidhub_web_frames_dropped_total %d\n", m.dropped.Load())
	metric("vidhub_web_h264_waited_total", "counter", "H.264 frames a browser never got while it waited for a keyframe (it fell behind, or a frame was missing).")
	fmt.Fprintf(&b, "vidhub_web_h264_waited_total %d\n", m.h264Waited.Load())
	metric("vidhub_web_key_requests_total", "counter", "Keyframe requests, the gateway's and browsers', by result: sent to the publisher, limited (one per publisher and layer per 300 ms), socket_limited (a browser over its pace), not_watched (a publisher or layer the socket does not take), bad (unreadable), replay (a replaying socket's: not relayed).")
	m.keysMu.Lock()
	for _, k := range sortedKeys(m.keys) {
		fmt.Fprintf(&b, "vidhub_web_key_requests_total{result=%q} %d\n", k, m.keys[k])
	}
	m.keysMu.Unlock()
	metric("vidhub_web_frames_bad_total", "counter", "Frames from the broker that broke the protocol.")
	fmt.Fprintf(&b, "vidhub_web_frames_bad_total %d\n", m.bad.Load())
	metric("vidhub_web_published_frames_total", "counter", "Frames browsers published through the gateway.")
	for i, l := range layers[:len(m.pubFrames)] {
		fmt.Fprintf(&b, "vidhub_web_published_frames_total{layer=%q} %d\n", l, m.pubFrames[i].Load())
	}
	metric("vidhub_web_published_bytes_total", "counter", "Bytes (JPEG and H.264) browsers published through the gateway.")
	fmt.Fprintf(&b, "vidhub_web_published_bytes_total %d\n", m.pubBytes.Load())
	metric("vidhub_web_published_h264_dropped_total", "counter", "H.264 frames from publishing browsers not published: a delta after a break in the chain (a gap in the browser's numbering, a frame the broker did not take), until the next keyframe.")
	fmt.Fprintf(&b, "vidhub_web_published_h264_dropped_total %d\n", m.pubWaited.Load())
	metric("vidhub_web_presence_dropped_total", "counter", "Presence beats the room directory dropped: too many rooms, or participants, where no one publishes.")
	fmt.Fprintf(&b, "vidhub_web_presence_dropped_total %d\n", g.dir.dropped.Load())
	metric("vidhub_web_refused_total", "counter", "Requests and sockets refused, by reason.")
	m.refusedMu.Lock()
	kinds := make([]string, 0, len(m.refused))
	for k := range m.refused {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "vidhub_web_refused_total{reason=%q} %d\n", k, m.refused[k])
	}
	m.refusedMu.Unlock()
	metric("vidhub_web_websocket_clients", "gauge", "Open WebSockets, by kind.")
	fmt.Fprintf(&b, "vidhub_web_websocket_clients{kind=\"view\"} %d\n", m.socketsNow[0].Load())
	fmt.Fprintf(&b, "vidhub_web_websocket_clients{kind=\"publish\"} %d\n", m.socketsNow[1].Load())
	metric("vidhub_web_replays", "gauge", "Viewing sockets that replay a recording (counted in the view sockets too).")
	fmt.Fprintf(&b, "vidhub_web_replays %d\n", m.replaysNow.Load())

	g.mu.Lock()
	perRoom := map[string]int{}
	for v := range g.viewers {
		perRoom[v.room]++
	}
	pubRoom := map[string]int{}
	for a := range g.pubs {
		pubRoom[a.Room()]++
	}
	g.mu.Unlock()
	fs := g.hub.stats()
	if g.roomsVisible(r) {
		metric("vidhub_web_viewers", "gauge", "Browsers watching, by room.")
		for _, room := range sortedKeys(perRoom) {
			fmt.Fprintf(&b, "vidhub_web_viewers{room=%q} %d\n", room, perRoom[room])
		}
		metric("vidhub_web_publishers", "gauge", "Browsers publishing, by room.")
		for _, room := range sortedKeys(pubRoom) {
			fmt.Fprintf(&b, "vidhub_web_publishers{room=%q} %d\n", room, pubRoom[room])
		}
		metric("vidhub_web_subscription_viewers", "gauge", "Browsers on each of the gateway's NATS frame subscriptions (one per room and layer).")
		slices.SortFunc(fs, func(a, b feedStat) int {
			return strings.Compare(a.room+"."+string(a.layer), b.room+"."+string(b.layer))
		})
		for _, f := range fs {
			fmt.Fprintf(&b, "vidhub_web_subscription_viewers{room=%q,layer=%q} %d\n", f.room, f.layer, f.viewers)
		}
	} else {
		const why = " (all rooms: per-room series need a token for every room)."
		metric("vidhub_web_viewers", "gauge", "Browsers watching"+why)
		fmt.Fprintf(&b, "vidhub_web_viewers %d\n", sum(perRoom))
		metric("vidhub_web_publishers", "gauge", "Browsers publishing"+why)
		fmt.Fprintf(&b, "vidhub_web_publishers %d\n", sum(pubRoom))
		metric("vidhub_web_subscription_viewers", "gauge", "Browsers on the gateway's NATS frame subscriptions, by layer"+why)
		var byLayer [len(allLayers)]int
		for _, f := range fs {
			byLayer[layerIndex(f.layer)] += f.viewers
		}
		for i, l := range layers {
			fmt.Fprintf(&b, "vidhub_web_subscription_viewers{layer=%q} %d\n", l, byLayer[i])
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

// roomsVisible reports whether /metrics may name rooms to r: always on an
// open gateway; with a token key only for a valid token (?token= or a
// cookie) that may view every room. Anything less is not refused, it just
// sees totals.
func (g *Gateway) roomsVisible(r *http.Request) bool {
	if g.cfg.Tokens == nil {
		return true
	}
	for _, c := range g.grants(r) {
		if c.Room == webtoken.AnyRoom && c.View {
			return true
		}
	}
	return false
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

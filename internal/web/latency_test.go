package web

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
)

// TestPingPong: a viewing socket answers clock probes with when it got
// them and when the answer left; probes it cannot read and messages of
// unknown types are ignored (the socket stays open and serves), and
// probes that come faster than pingGap get no answer. (A message that is
// not JSON at all still closes the socket, as a bad control message.)
func TestPingPong(t *testing.T) {
	h := startHub(t, broker.Config{}, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dial(t, ctx, h.url, "/ws/view/clock?presence=0")
	pongs := make(chan pong, 64)
	go func() {
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				close(pongs)
				return
			}
			var p pong
			if typ == websocket.MessageText && json.Unmarshal(b, &p) == nil && p.Type == "pong" {
				pongs <- p
			}
		}
	}()
	next := func() (pong, bool) {
		select {
		case p, ok := <-pongs:
			return p, ok
		case <-time.After(5 * time.Second):
			return pong{}, false
		}
	}

	for _, garbage := range []string{`{"type":"ping"}`, `{"type":"ping","t0":"x"}`, `{"type":"ping","t0":1e999}`,
		`{"type":"ping","t0":[1]}`, `{"type":"ping","t0":null}`, `{"type":7}`, `{"type":"future","t0":1}`, `{"type":["ping"],"t0":1}`} {
		if err := c.Write(ctx, websocket.MessageText, []byte(garbage)); err != nil {
			t.Fatalf("write %s: %v", garbage, err)
		}
	}
	t0 := unixMillis(time.Now())
	sendJSON(t, ctx, c, ping{Type: "ping", T0: t0})
	p, ok := next()
	if !ok {
		t.Fatal("no pong to a good ping after garbage ones")
	}
	if p.T0 != t0 {
		t.Errorf("pong echoes t0 %v, want %v (a garbage ping was answered?)", p.T0, t0)
	}
	t3 := unixMillis(time.Now())
	if !(t0 <= p.T1 && p.T1 <= p.T2 && p.T2 <= t3) {
		t.Errorf("times out of order: t0 %.3f t1 %.3f t2 %.3f t3 %.3f", t0, p.T1, p.T2, t3)
	}

	// A flood: at most one answer per pingGap. Then a marker probe, sent
	// until it is answered: every pong before it answers the flood.
	start := time.Now()
	for i := range 50 {
		sendJSON(t, ctx, c, ping{Type: "ping", T0: float64(i)})
	}
	sendJSON(t, ctx, c, map[string]any{"hi": []string{}}) // the socket still takes control messages
	const marker = -1
	answered := 0
	deadline := time.Now().Add(10 * time.Second)
	for marked := false; !marked; {
		if time.Now().After(deadline) {
			t.Fatal("the marker probe was never answered")
		}
		sendJSON(t, ctx, c, ping{Type: "ping", T0: marker})
		for waiting := true; waiting; {
			select {
			case p, ok := <-pongs:
				if !ok {
					t.Fatal("the socket closed after a flood of pings")
				}
				if p.T0 == marker {
					marked, waiting = true, false
				} else {
					answered++
				}
			case <-time.After(2 * pingGap):
				waiting = false
			}
		}
	}
	if limit := int(time.Since(start)/pingGap) + 1; answered > limit {
		t.Errorf("%d pongs to a flood of 50 pings in %v, want at most %d", answered, time.Since(start), limit)
	}
	if code, body := get(t, h.url+"/healthz"); code != 200 {
		t.Errorf("healthz after the flood: %d %s", code, body)
	}
}

// TestBrowserLatency: the room page measures the gateway's clock with
// NTP-style probes, and its latency label shows a plausible, non-zero
// figure on loopback (capture to screen takes some time), from a probe
// with a small round trip.
func TestBrowserLatency(t *testing.T) {
	ctx := browser(t)
	h := startHub(t, broker.Config{}, Config{})
	startPattern(t, h.b.ClientURL(), "clock", "alice", 15, 320, 180)
	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(h.url+"/rooms/clock")); err != nil {
		t.Fatal(err)
	}
	type reading struct {
		Latency    string  `json:"latency"`
		LatencyErr string  `json:"latencyErr"`
		Text       string  `json:"text"`
		Label      string  `json:"label"`
		Offset     float64 `json:"offset"`
		RTT        float64 `json:"rtt"`
		Samples    int     `json:"samples"`
	}
	read := func() reading {
		return eval[reading](t, ctx, `(() => {
			const v = window.vidhubRoom, e = document.querySelector('.tile[data-name="alice"]');
			const b = v && v.clock.best;
			return {latency: e && e.dataset.latency || "", latencyErr: e && e.dataset.latencyErr || "", text: e && e.dataset.latencyText || "",
				label: e ? e.querySelector('.stat').textContent : "",
				offset: b ? b.offset : 0, rtt: b ? b.rtt : -1, samples: v ? v.clock.samples.length : 0};
		})()`)
	}
	var r reading
	hubtest.Eventually(t, 30*time.Second, func() bool {
		r = read()
		// The first probes, sent while the page loads, may take long; the
		// figure to judge is one labelled from a probe with a small round
		// trip (the label's error is half of it).
		e, err := strconv.ParseFloat(r.LatencyErr, 64)
		return r.Latency != "" && r.Samples >= 3 && err == nil && e < 5
	}, "no latency from a good clock probe on the tile: %+v", hubtest.Lazy(func() any { return read() }))
	t.Logf("label %q, latency %s ± %s ms, clock offset %.3f ms, round trip %.3f ms over %d probes", r.Label, r.Latency, r.LatencyErr, r.Offset, r.RTT, r.Samples)

	var lat float64
	if err := json.Unmarshal([]byte(r.Latency), &lat); err != nil {
		t.Fatalf("latency %q: %v", r.Latency, err)
	}
	// The estimate is the true latency (>= 0) plus the clock offset's
	// error, which NTP's arithmetic bounds by half the probe's round trip:
	// a figure below -err is wrong, not unlucky. 0.2 ms allows for the
	// coarsened timers of the page (performance.now: 0.1 ms).
	var latErr float64
	if err := json.Unmarshal([]byte(r.LatencyErr), &latErr); err != nil {
		t.Fatalf("latency error %q: %v", r.LatencyErr, err)
	}
	if !(lat > -latErr-0.2 && lat < 500) {
		t.Errorf("latency %.3f ± %.3f ms, want a plausible figure: above -%.3f, under 500 ms", lat, latErr, latErr)
	}
	if !(r.RTT >= 0 && r.RTT < 100) {
		t.Errorf("best probe's round trip %.3f ms on loopback, want under 100", r.RTT)
	}
	// The page and the gateway read the same system clock.
	if math.Abs(r.Offset) > r.RTT/2+20 {
		t.Errorf("clock offset %.3f ms between two clocks of one machine (round trip %.3f ms)", r.Offset, r.RTT)
	}
	if r.Text == "" || strings.HasPrefix(r.Text, "0 ms") || strings.HasPrefix(r.Text, "clock") || !strings.Contains(r.Label, r.Text) {
		t.Errorf("label %q (latency text %q), want a figure in ms", r.Label, r.Text)
	}
}

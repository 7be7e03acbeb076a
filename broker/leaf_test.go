package broker_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// idleLeafKbps is the most the leaf link may carry, beyond presence,
// while nobody at the hub watches (issue 13's target).
const idleLeafKbps = 50

// hubBroker starts a broker that accepts leaf nodes on leafListen.
func hubBroker(t *testing.T, cfg broker.Config) *broker.Broker {
	t.Helper()
	if cfg.LeafListen == "" {
		cfg.LeafListen = "127.0.0.1:0"
	}
	b := hubtest.Broker(t, cfg)
	if b.LeafURL() == "" {
		t.Fatal("the hub has no leaf URL")
	}
	return b
}

// waitLinked waits until hub and edge hold their leaf link.
func waitLinked(t *testing.T, hub, edge *broker.Broker, timeout time.Duration) {
	t.Helper()
	hubtest.Eventually(t, timeout, func() bool {
		return hub.Server().NumLeafNodes() == 1 && edge.Server().NumLeafNodes() == 1
	}, "the edge broker did not link to the hub as a leaf node")
}

// leafBytes is what has crossed b's leaf links so far, both ways: the
// message bytes (headers and payload) the server counts.
func leafBytes(t *testing.T, b *broker.Broker) int64 {
	t.Helper()
	lz, err := b.Server().Leafz(nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range lz.Leafs {
		n += l.InBytes + l.OutBytes
	}
	return n
}

// leafRate measures b's leaf traffic, in kbit/s, from now until until
// holds.
func leafRate(t *testing.T, b *broker.Broker, until func() bool, what string) (float64, time.Duration) {
	t.Helper()
	n0, t0 := leafBytes(t, b), time.Now()
	hubtest.Eventually(t, 20*time.Second, until, "%s: the window did not close", what)
	d := time.Since(t0)
	return float64(leafBytes(t, b)-n0) * 8 / 1000 / d.Seconds(), d
}

// viewer joins room lobby on url, watching layer.
func viewer(t *testing.T, url string, layer subscriber.LayerMode) *watcher {
	t.Helper()
	nc, err := natsconn.Connect(natsconn.Config{URL: url, Name: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	room, err := subscriber.Join(nc, subscriber.Config{Room: "lobby", Layer: layer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(room.Close)
	return &watcher{nc: nc, room: room}
}

// watchedPublisher runs a pattern publisher as cam in lobby on url that
// encodes only the layers someone watches (vidhub publish --encode watched).
func watchedPublisher(t *testing.T, url string) *hubtest.Publisher {
	t.Helper()
	cfg := hubtest.Pattern("lobby", "cam")
	cfg.Encode = publisher.EncodeWatched
	return hubtest.Publish(t, hubtest.Connect(t, url), cfg)
}

// TestLeafInterest is the edge camera's promise: a publisher on an edge
// broker linked to a hub as a leaf node sends its video over the link
// only while someone at the hub watches. A viewer at the edge watches lo
// all along (the publisher encodes, the edge broker carries it); a room
// directory at the hub hears presence. Nobody watching at the hub, the
// link carries less than 50 kbit/s; a hub viewer of hi gets video; when
// it leaves, the link goes quiet again.
func TestLeafInterest(t *testing.T) {
	hub := hubBroker(t, broker.Config{})
	edge := hubtest.Broker(t, broker.Config{Leaf: []string{hub.LeafURL()}})
	waitLinked(t, hub, edge, 10*time.Second)

	// The hub's room directory: presence crosses the link, video does not.
	dir := hubtest.Connect(t, hub.ClientURL())
	heard := make(chan struct{}, 1)
	if _, err := dir.Subscribe(protocol.AllPresence, func(m *nats.Msg) {
		if strings.HasSuffix(m.Subject, ".cam.presence") {
			select {
			case heard <- struct{}{}:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := dir.Flush(); err != nil {
		t.Fatal(err)
	}

	pub := watchedPublisher(t, edge.ClientURL())
	local := viewer(t, edge.ClientURL(), subscriber.LayerLo)
	hubtest.Eventually(t, 10*time.Second, func() bool { return local.frames() >= 10 },
		"the edge viewer got no frames from the edge publisher")
	select {
	case <-heard:
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher's presence did not reach the hub's room directory")
	}

	// 60 frames at the edge: 3 s of video the hub does not watch.
	idle := func(what string) float64 {
		from := local.frames()
		kbps, d := leafRate(t, edge, func() bool { return local.frames() >= from+60 }, what)
		t.Logf("%s: leaf link %.1f kbit/s over %v (publisher encodes %v)", what, kbps, d.Round(time.Millisecond), pub.Stats().Encoding)
		if kbps > idleLeafKbps {
			t.Errorf("%s: the leaf link carried %.1f kbit/s; want at most %d with nobody watching at the hub", what, kbps, idleLeafKbps)
		}
		return kbps
	}
	idle("nobody at the hub watches")
	if got := pub.Stats().Encoding; !slices.Equal(got, []protocol.Layer{protocol.Lo}) {
		t.Errorf("publisher encodes %v; want lo only, for the edge viewer", got)
	}

	remote := viewer(t, hub.ClientURL(), subscriber.LayerHi)
	hubtest.Eventually(t, 10*time.Second, func() bool { return remote.frames() >= 10 },
		"the hub viewer got no frames from the edge publisher")
	from := remote.frames()
	kbps, d := leafRate(t, edge, func() bool { return remote.frames() >= from+40 }, "watched")
	t.Logf("a hub viewer watches hi: leaf link %.1f kbit/s over %v", kbps, d.Round(time.Millisecond))
	if kbps < 4*idleLeafKbps {
		t.Errorf("a hub viewer watches, yet the leaf link carried only %.1f kbit/s", kbps)
	}

	remote.room.Close()
	hubtest.Eventually(t, 10*time.Second, func() bool {
		return slices.Equal(pub.Stats().Encoding, []protocol.Layer{protocol.Lo})
	}, "the publisher still encodes %v after the hub viewer left", hubtest.Lazy(func() any { return pub.Stats().Encoding }))
	idle("the hub viewer left")
}

// TestLeafLocalFirst: while the hub is down, edge viewers keep watching
// the edge publisher; when the hub is back on the same addresses, the
// edge links again by itself and the hub viewer is live again.
func TestLeafLocalFirst(t *testing.T) {
	hub := hubBroker(t, broker.Config{})
	hubCfg := broker.Config{
		Listen:     strings.TrimPrefix(hub.ClientURL(), "nats://"),
		LeafListen: strings.TrimPrefix(hub.LeafURL(), "nats://"),
	}
	edge := hubtest.Broker(t, broker.Config{Leaf: []string{hub.LeafURL()}})
	waitLinked(t, hub, edge, 10*time.Second)

	watchedPublisher(t, edge.ClientURL())
	local := viewer(t, edge.ClientURL(), subscriber.LayerLo)
	remote := viewer(t, hub.ClientURL(), subscriber.LayerHi)
	hubtest.Eventually(t, 10*time.Second, func() bool { return local.frames() >= 10 && remote.frames() >= 10 },
		"frames did not reach both the edge and the hub viewer")

	hub.Close()
	hubtest.Eventually(t, 5*time.Second, func() bool { return edge.Server().NumLeafNodes() == 0 },
		"the edge still has a leaf link after the hub stopped")
	// 40 frames (2 s) at the edge with the hub gone.
	from := local.frames()
	hubtest.Eventually(t, 10*time.Second, func() bool { return local.frames() >= from+40 },
		"the edge viewer stopped getting frames while the hub was down")

	remoteFrom := remote.frames()
	start := time.Now()
	hub2 := hubtest.Broker(t, hubCfg)
	started := time.Since(start)
	var linked time.Duration
	hubtest.Eventually(t, 5*time.Second, func() bool {
		if linked == 0 && hub2.Server().NumLeafNodes() == 1 {
			linked = time.Since(start)
		}
		return remote.frames() >= remoteFrom+3
	}, "the hub viewer was not live again after the hub came back")
	t.Logf("hub back: started in %v, edge linked after %v, hub viewer live again after %v (leaf reconnect interval %v)",
		started.Round(time.Millisecond), linked.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), broker.LeafReconnect)
	if n := local.nc.Reconnects; n != 0 {
		t.Errorf("the edge viewer reconnected %d times; the hub's outage must not touch it", n)
	}
}

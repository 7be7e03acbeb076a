package subscriber_test

import (
	"bytes"
	"context"
	"image/jpeg"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/access"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// publish runs a publisher on its own connection until the test ends or
// it is stopped; a pattern defaults to 320x180, and every source to 20 fps.
func publish(t *testing.T, url string, cfg publisher.Config) *hubtest.Publisher {
	t.Helper()
	if cfg.FPS == 0 {
		cfg.FPS = 20
	}
	if cfg.Width == 0 && cfg.Source == "pattern" {
		cfg.Width, cfg.Height = 320, 180
	}
	return hubtest.Publish(t, hubtest.Connect(t, url, nats.ReconnectBufSize(-1)), cfg)
}

func join(t *testing.T, url string, cfg subscriber.Config) *subscriber.Room {
	t.Helper()
	nc := hubtest.Connect(t, url)
	r, err := subscriber.Join(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func tileNames(r *subscriber.Room) []string {
	var names []string
	for _, t := range r.Tiles() {
		names = append(names, t.Name())
	}
	return names
}

func tile(r *subscriber.Room, name string) *subscriber.Tile {
	for _, t := range r.Tiles() {
		if t.Name() == name {
			return t
		}
	}
	return nil
}

// framesFrom reports whether the room has counted at least n frames from
// each of names.
func framesFrom(r *subscriber.Room, n uint64, names ...string) bool {
	for _, name := range names {
		t := tile(r, name)
		if t == nil || t.Stats().Frames < n {
			return false
		}
	}
	return true
}

// brokers start the two kinds of broker a room runs through, the embedded
// one and a stock nats-server process, and return its client URL.
var brokers = map[string]func(t *testing.T) string{
	"embedded": func(t *testing.T) string { return hubtest.Broker(t, broker.Config{}).ClientURL() },
	"nats-server": func(t *testing.T) string {
		return hubtest.StartNatsServer(t, 0).URL
	},
}

// TestRooms runs publishers into two rooms through the embedded broker and
// through a stock nats-server process, and checks what viewers get.
func TestRooms(t *testing.T) {
	for name, start := range brokers {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			publish(t, url, publisher.Config{Room: "alpha", Name: "alice", Source: "pattern"})
			publish(t, url, publisher.Config{Room: "alpha", Name: "bob", Source: cameraSource()})
			publish(t, url, publisher.Config{Room: "beta", Name: "carol", Source: "pattern"})

			a := join(t, url, subscriber.Config{Room: "alpha", KeepFrames: true})
			b := join(t, url, subscriber.Config{Room: "beta", KeepFrames: true, Layer: subscriber.LayerHi})
			hubtest.Eventually(t, 15*time.Second, func() bool { return framesFrom(a, 5, "alice", "bob") && framesFrom(b, 5, "carol") },
				"viewers did not get frames from every publisher: alpha %v, beta %v", tileNames(a), tileNames(b))
			if got := tileNames(a); !slices.Equal(got, []string{"alice", "bob"}) {
				t.Errorf("alpha tiles %v, want alice and bob only", got)
			}
			if got := tileNames(b); !slices.Equal(got, []string{"carol"}) {
				t.Errorf("beta tiles %v, want carol only", got)
			}
			// Two publishers: auto takes lo. The frames are valid JPEGs of
			// the size their headers claim.
			if a.Layer() != protocol.Lo || b.Layer() != protocol.Hi {
				t.Errorf("layers: alpha %s (want lo), beta %s (want hi)", a.Layer(), b.Layer())
			}
			for _, r := range []*subscriber.Room{a, b} {
				for _, tl := range r.Tiles() {
					var f *subscriber.Frame
					hubtest.Eventually(t, 15*time.Second, func() bool { f = tl.Take(); return f != nil }, "no frame to take from %s", tl.Name())
					img, err := jpeg.Decode(bytes.NewReader(f.JPEG))
					if err != nil {
						t.Fatalf("%s: %v", tl.Name(), err)
					}
					if sz := img.Bounds().Size(); sz.X != f.Meta.Width || sz.Y != f.Meta.Height {
						t.Errorf("%s: JPEG %v, header %dx%d", tl.Name(), sz, f.Meta.Width, f.Meta.Height)
					}
					st := tl.Stats()
					if st.Bad != 0 || st.Room != r.Name() || st.Participant != tl.Name() {
						t.Errorf("stats %+v", st)
					}
				}
			}
		})
	}
}

// TestTwentyViewers checks, through each kind of broker, that every one of
// 20 viewers of a room gets frames from every publisher in it, one of them
// a GStreamer camera in the full build. Counts only: no timing.
func TestTwentyViewers(t *testing.T) {
	for name, start := range brokers {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			publish(t, url, publisher.Config{Room: "big", Name: "p1", Source: "pattern"})
			publish(t, url, publisher.Config{Room: "big", Name: "cam", Source: cameraSource()})
			var rooms []*subscriber.Room
			for i := range 20 {
				rooms = append(rooms, join(t, url, subscriber.Config{Room: "big", Name: "v" + strconv.Itoa(i)}))
			}
			starved := func() []string {
				var names []string
				for _, r := range rooms {
					if !framesFrom(r, 20, "p1", "cam") {
						names = append(names, r.ViewerName())
					}
				}
				return names
			}
			hubtest.Eventually(t, 30*time.Second, func() bool { return len(starved()) == 0 }, "viewers starved: %v", starved())
			for _, r := range rooms {
				if got := tileNames(r); !slices.Equal(got, []string{"cam", "p1"}) {
					t.Errorf("%s has tiles %v, want cam and p1", r.ViewerName(), got)
				}
			}
			// Each viewer is in the room's presence.
			rs := rooms[0]
			hubtest.Eventually(t, 15*time.Second, func() bool { return len(rs.Viewers()) == 20 }, "viewers seen: %v", rs.Viewers())
		})
	}
}

func TestBadMessagesCounted(t *testing.T) {
	url := hubtest.Broker(t, broker.Config{}).ClientURL()
	publish(t, url, publisher.Config{Room: "r", Name: "alice", Source: "pattern"})
	r := join(t, url, subscriber.Config{Room: "r", Layer: subscriber.LayerLo, KeepFrames: true})
	hubtest.Eventually(t, 10*time.Second, func() bool { return framesFrom(r, 3, "alice") }, "no frames from alice")

	nc := hubtest.Connect(t, url)
	good := protocol.FrameMeta{Seq: 1, Time: time.Now().UnixNano(), Width: 2, Height: 2}
	jpegish := []byte{0xFF, 0xD8, 1, 2, 0xFF, 0xD9}
	send := func(subject string, h nats.Header, data []byte) {
		if err := nc.PublishMsg(&nats.Msg{Subject: subject, Header: h, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	withTime := func(at time.Time) nats.Header { m := good; m.Time = at.UnixNano(); return protocol.FrameHeaders(m) }
	bad := []func(){
		func() { send("vidhub.r.alice.lo", nil, []byte("garbage")) },                            // no headers
		func() { send("vidhub.r.alice.lo", protocol.FrameHeaders(good), []byte("not a jpeg")) }, // not JPEG
		func() { send("vidhub.r.alice.lo", protocol.FrameHeaders(good), jpegish[:4]) },          // truncated
		func() {
			h := protocol.FrameHeaders(good)
			h.Set(protocol.HeaderSize, "big")
			send("vidhub.r.alice.lo", h, jpegish)
		},
		func() { send("vidhub.r.alice.lo", withTime(time.Now().Add(time.Hour)), jpegish) },  // future
		func() { send("vidhub.r.alice.lo", withTime(time.Now().Add(-time.Hour)), jpegish) }, // stale
		func() { send("vidhub.r.alice.presence", nil, []byte(`{"v":1,"role":"emperor"}`)) }, // bad presence
		func() { send("vidhub.r.alice.presence", nil, bytes.Repeat([]byte("x"), 100000)) },  // huge presence
	}
	for _, f := range bad {
		f()
	}
	send("vidhub.r.ghost.lo", nil, []byte("garbage from nobody"))
	const flood = 200
	for range flood {
		send("vidhub.r.alice.lo", nil, []byte("flood"))
	}
	want := uint64(len(bad) + flood)
	alice := tile(r, "alice")
	hubtest.Eventually(t, 10*time.Second, func() bool { return alice.Stats().Bad >= want-10 }, "bad frames counted: %d of %d", alice.Stats().Bad, want)
	hubtest.Eventually(t, 15*time.Second, func() bool { return r.Bad() == 1 }, "garbage of an unknown participant not counted: %d", r.Bad())
	if tile(r, "ghost") != nil {
		t.Error("garbage created a tile")
	}
	// Good frames keep coming, and the bad ones never reach the slot.
	before := alice.Stats().Frames
	hubtest.Eventually(t, 10*time.Second, func() bool { return alice.Stats().Frames >= before+5 }, "alice's frames stopped after the garbage")
	for range 20 {
		if f := alice.Take(); f != nil {
			if err := protocol.CheckJPEG(f.JPEG); err != nil || f.Meta.Width != 320 {
				t.Fatalf("a bad frame reached the tile: %+v", f.Meta)
			}
		}
	}
}

func TestLeavingAndMissedBeats(t *testing.T) {
	url := hubtest.Broker(t, broker.Config{})
	clean := publish(t, url.ClientURL(), publisher.Config{Room: "r", Name: "clean", Source: "pattern"})
	// "gone" vanishes without a word: its connection is cut.
	nc := hubtest.Connect(t, url.ClientURL())
	gone := hubtest.Publish(t, nc, publisher.Config{Room: "r", Name: "gone", Source: "pattern", FPS: 20, Width: 160, Height: 90})
	r := join(t, url.ClientURL(), subscriber.Config{Room: "r"})
	hubtest.Eventually(t, 10*time.Second, func() bool { return framesFrom(r, 3, "clean", "gone") }, "tiles %v", tileNames(r))
	if r.Layer() != protocol.Lo {
		t.Errorf("two publishers, layer %s", r.Layer())
	}

	if err := clean.Stop(); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 2*time.Second, func() bool { return tile(r, "clean") == nil }, "a publisher that said it was leaving kept its tile")

	nc.Close() // no leaving beat
	cut := time.Now()
	hubtest.Eventually(t, 8*time.Second, func() bool { return tile(r, "gone") == nil }, "silent publisher not removed")
	if d := time.Since(cut); d < 2*time.Second {
		t.Errorf("silent publisher removed after %v, before 3 missed beats", d)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { return r.Layer() == protocol.Hi }, "empty room did not go back to hi")
	_ = gone.Stop() // its connection was cut under it: an error is expected
}

// TestRestartUnderSameName crashes a publisher (its connection cut, no
// leaving beat) and starts it again under the same name before its tile
// is swept: the one tile goes on, showing the new stream whose sequence
// starts from 1 again.
func TestRestartUnderSameName(t *testing.T) {
	url := hubtest.Broker(t, broker.Config{}).ClientURL()
	r := join(t, url, subscriber.Config{Room: "r", KeepFrames: true})
	nc := hubtest.Connect(t, url)
	old := hubtest.Publish(t, nc, hubtest.Pattern("r", "cam"))
	// Well into the old stream's sequence.
	var oldSeq uint64
	hubtest.Eventually(t, 15*time.Second, func() bool {
		if f := takeFrom(r, "cam"); f != nil {
			oldSeq = f.Meta.Seq
		}
		return oldSeq >= 40
	}, "old stream at seq %d, want 40", oldSeq)

	// The crash: the connection goes at once, so the leaving beat the
	// publisher tries when it stops can never reach the room.
	nc.Close()
	crashed := time.Now()
	_ = old.Stop() // its connection is gone: an error is expected
	oldTile := tile(r, "cam")
	if oldTile == nil {
		t.Fatal("tile gone at once although no leaving beat was sent")
	}
	publish(t, url, publisher.Config{Room: "r", Name: "cam", Source: "pattern"})
	// A frame captured after the crash with a sequence below the old one
	// is the new stream's.
	var f *subscriber.Frame
	hubtest.Eventually(t, 10*time.Second, func() bool {
		f = takeFrom(r, "cam")
		return f != nil && f.Meta.CaptureTime().After(crashed) && f.Meta.Seq < oldSeq
	}, "the tile does not show the restarted stream (old stream ended at seq %d)", oldSeq)
	if tile(r, "cam") != oldTile {
		t.Fatalf("the old tile was swept before the restart (%v after the crash): the restart came too late to test taking over a tile", time.Since(crashed))
	}
	before := tile(r, "cam").Stats().Frames
	hubtest.Eventually(t, 10*time.Second, func() bool { return framesFrom(r, before+20, "cam") }, "no frames after the restart")
	if got := tileNames(r); !slices.Equal(got, []string{"cam"}) {
		t.Errorf("tiles %v after a restart under the same name, want cam once", got)
	}
	// A restart miscounted as lost frames shows up as about oldSeq gaps
	// (or, with unsigned wrap-around, about 2^64). Frames really lost on a
	// loaded machine (the publisher's mailbox overwriting one, a pending
	// limit shedding one) are a few, so half of oldSeq tells them apart.
	if st := tile(r, "cam").Stats(); st.Gaps >= oldSeq/2 {
		t.Errorf("a restart (sequence from 1 again) counted as %d lost frames (old stream ended at seq %d)", st.Gaps, oldSeq)
	}
}

// takeFrom takes the newest frame of name's tile, or nil.
func takeFrom(r *subscriber.Room, name string) *subscriber.Frame {
	if t := tile(r, name); t != nil {
		return t.Take()
	}
	return nil
}

func TestOverwrittenFramesAreDrops(t *testing.T) {
	url := hubtest.Broker(t, broker.Config{}).ClientURL()
	publish(t, url, publisher.Config{Room: "r", Name: "cam", Source: "pattern", FPS: 30})
	r := join(t, url, subscriber.Config{Room: "r", KeepFrames: true}) // never takes a frame
	hubtest.Eventually(t, 10*time.Second, func() bool { return framesFrom(r, 20, "cam") }, "no frames")
	st := tile(r, "cam").Stats()
	if st.Overwritten < st.Frames-2 || st.Drops < st.Overwritten {
		t.Errorf("a renderer that never takes: %+v; want every frame but the newest counted as dropped", st)
	}
}

func TestStatsInterval(t *testing.T) {
	url := hubtest.Broker(t, broker.Config{}).ClientURL()
	publish(t, url, publisher.Config{Room: "r", Name: "cam", Source: "pattern", FPS: 20})
	got := make(chan []subscriber.TileStats, 100)
	join(t, url, subscriber.Config{Room: "r", StatsEvery: 200 * time.Millisecond, OnStats: func(s []subscriber.TileStats) {
		select {
		case got <- s:
		default:
		}
	}})
	deadline := time.After(15 * time.Second)
	for {
		select {
		case <-deadline:
			t.Fatal("no stats with frames")
		case s := <-got:
			if len(s) != 1 || s[0].Frames < 10 {
				continue
			}
			st := s[0]
			if st.FPS <= 0 || st.Kbps <= 0 || st.LatencyP50 <= 0 || st.LatencyP99 < st.LatencyP50 || st.LatencyMax < st.LatencyP99 {
				t.Fatalf("stats %+v", st)
			}
			return
		}
	}
}

func TestViewerResumesAfterBrokerRestart(t *testing.T) {
	srv := hubtest.StartNatsServer(t, 0)
	publish(t, srv.URL, publisher.Config{Room: "r", Name: "cam", Source: "pattern"})
	vnc, err := natsconn.Connect(natsconn.Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer vnc.Close()
	r, err := subscriber.Join(vnc, subscriber.Config{Room: "r"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hubtest.Eventually(t, 10*time.Second, func() bool { return framesFrom(r, 5, "cam") }, "no frames")
	srv.Kill()
	hubtest.StartNatsServer(t, srv.Port)
	before := tile(r, "cam")
	var n uint64
	if before != nil {
		n = before.Stats().Frames
	}
	hubtest.Eventually(t, 15*time.Second, func() bool { return framesFrom(r, n+10, "cam") }, "viewer did not resume after the broker came back")
}

func TestListRooms(t *testing.T) {
	url := hubtest.Broker(t, broker.Config{}).ClientURL()
	publish(t, url, publisher.Config{Room: "one", Name: "cam", Source: "pattern", Width: 640, Height: 360, FPS: 15})
	join(t, url, subscriber.Config{Room: "one", Name: "watcher", Layer: subscriber.LayerLo})
	publish(t, url, publisher.Config{Room: "two", Name: "cam2", Source: "pattern"})
	nc := hubtest.Connect(t, url)
	var rooms []protocol.RoomInfo
	hubtest.Eventually(t, 10*time.Second, func() bool {
		var err error
		rooms, err = subscriber.ListRooms(context.Background(), nc, 0)
		return err == nil && len(rooms) == 2 && len(rooms[0].Members) == 2
	}, "rooms %+v", rooms)
	one := rooms[0]
	if one.Room != "one" || one.Members[0].Name != "cam" || one.Members[1].Name != "watcher" {
		t.Fatalf("room one: %+v", one)
	}
	cam, w := one.Members[0], one.Members[1]
	if cam.Role != protocol.RolePublisher || len(cam.Layers) != 2 || cam.Layers[0].Width != 640 || cam.Layers[0].FPS != 15 {
		t.Errorf("publisher %+v", cam)
	}
	if w.Role != protocol.RoleViewer || !slices.Equal(w.Views, []protocol.Layer{protocol.Lo}) {
		t.Errorf("viewer %+v", w)
	}
}

// TestListRoomsAsksWatchedPublishers: a publisher that encodes only
// watched layers, watched by nobody, sends no frame until ListRooms asks
// for one; it is listed, the lister is not, and the lister leaves: the
// publisher stops encoding again.
func TestListRoomsAsksWatchedPublishers(t *testing.T) {
	url := hubtest.Broker(t, broker.Config{}).ClientURL()
	pub := publish(t, url, publisher.Config{Room: "quiet", Name: "cam", Source: "pattern", Encode: publisher.EncodeWatched})
	nc := hubtest.Connect(t, url)
	hubtest.Eventually(t, 10*time.Second, func() bool { return len(pub.Stats().Encoding) == 0 },
		"nobody watches, yet the publisher encodes %v", hubtest.Lazy(func() any { return pub.Stats().Encoding }))
	if sent := pub.Stats().Published; sent != 0 {
		t.Fatalf("nobody watches, yet the publisher sent %d frames", sent)
	}
	rooms, err := subscriber.ListRooms(context.Background(), nc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0].Room != "quiet" || len(rooms[0].Members) != 1 || rooms[0].Members[0].Name != "cam" || rooms[0].Members[0].Unverified {
		t.Fatalf("rooms %+v, want room quiet with cam alone, verified", rooms)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { return len(pub.Stats().Encoding) == 0 },
		"the lister left, yet the publisher encodes %v", hubtest.Lazy(func() any { return pub.Stats().Encoding }))

	// On a broker that requires a login, a user announces presence under
	// its own name only: the lister does not ask, and draws no refusal.
	f, err := access.Parse([]byte(impostorAccess))
	if err != nil {
		t.Fatal(err)
	}
	url = hubtest.Broker(t, broker.Config{Access: f}).ClientURL()
	hubtest.Publish(t, hubtest.Connect(t, url, nats.UserInfo("alice", "a")), publisher.Config{Room: "lobby", Name: "alice", Source: "pattern",
		Width: 320, Height: 180, FPS: 20, Encode: publisher.EncodeWatched})
	var refused atomic.Value
	wall := hubtest.Connect(t, url, nats.UserInfo("wall", "w"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused.Store(err) }))
	if rooms, err = subscriber.ListRooms(context.Background(), wall, 0); err != nil || len(rooms) != 0 {
		t.Errorf("listing with a login: %+v, %v; want no room (nobody watches alice)", rooms, err)
	}
	if err := wall.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := refused.Load(); err != nil {
		t.Errorf("listing with a login drew %v", err)
	}
}

func TestJoinRejectsBadNames(t *testing.T) {
	nc := hubtest.Connect(t, hubtest.Broker(t, broker.Config{}).ClientURL())
	for _, cfg := range []subscriber.Config{{Room: "a.b"}, {Room: ">"}, {Room: "ok", Name: "x y"}, {Room: "ok", Layer: "mid"}} {
		if _, err := subscriber.Join(nc, cfg); err == nil {
			t.Errorf("Join(%+v) accepted", cfg)
		}
	}
}

package publisher_test

import (
	"bytes"
	"errors"
	"image/jpeg"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// recorder keeps what arrives on a subject, per subject.
type recorder struct {
	mu   sync.Mutex
	msgs map[string][]*nats.Msg
}

func record(t *testing.T, nc *nats.Conn, subject string) *recorder {
	t.Helper()
	r := &recorder{msgs: map[string][]*nats.Msg{}}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		r.mu.Lock()
		r.msgs[m.Subject] = append(r.msgs[m.Subject], m)
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return r
}

func (r *recorder) get(subject string) []*nats.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*nats.Msg(nil), r.msgs[subject]...)
}

func (r *recorder) count(subject string) int { return len(r.get(subject)) }

func TestPatternPublishes(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	viewer := hubtest.Connect(t, b.ClientURL())
	rec := record(t, viewer, "vidhub.room1.>")
	nc := hubtest.Connect(t, b.ClientURL())
	pub := hubtest.Publish(t, nc, publisher.Config{Room: "room1", Name: "alice", Source: "pattern", FPS: 30, Width: 640, Height: 360})

	a, _ := protocol.NewAddress("room1", "alice")
	hubtest.Eventually(t, 10*time.Second, func() bool {
		return rec.count(a.FrameSubject(protocol.Hi)) >= 10 && rec.count(a.FrameSubject(protocol.Lo)) >= 10 && rec.count(a.PresenceSubject()) >= 1
	}, "no hi, lo and presence from the pattern publisher")
	if err := pub.Stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	for _, tc := range []struct {
		layer protocol.Layer
		w, h  int
	}{{protocol.Hi, 640, 360}, {protocol.Lo, 320, 180}} {
		msgs := rec.get(a.FrameSubject(tc.layer))
		var last uint64
		for i, m := range msgs {
			meta, err := protocol.ParseFrame(m.Header, m.Data)
			if err != nil {
				t.Fatalf("%s frame %d: %v", tc.layer, i, err)
			}
			if meta.Width != tc.w || meta.Height != tc.h {
				t.Errorf("%s frame %d: header size %dx%d, want %dx%d", tc.layer, i, meta.Width, meta.Height, tc.w, tc.h)
			}
			if meta.Seq <= last {
				t.Errorf("%s frame %d: seq %d after %d", tc.layer, i, meta.Seq, last)
			}
			if i == 0 && meta.Seq != 1 {
				t.Errorf("%s: first seq %d, want 1", tc.layer, meta.Seq)
			}
			last = meta.Seq
			if age := time.Since(meta.CaptureTime()); age < 0 || age > time.Minute {
				t.Errorf("%s frame %d: capture time %v ago", tc.layer, i, age)
			}
		}
		img, err := jpeg.Decode(bytes.NewReader(msgs[0].Data))
		if err != nil {
			t.Fatalf("%s: not a JPEG: %v", tc.layer, err)
		}
		if got := img.Bounds().Size(); got.X != tc.w || got.Y != tc.h {
			t.Errorf("%s: JPEG is %v, want %dx%d", tc.layer, got, tc.w, tc.h)
		}
	}

	beats := rec.get(a.PresenceSubject())
	first, err := protocol.DecodePresence(beats[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if first.Role != protocol.RolePublisher || !first.Sends(protocol.Hi) || !first.Sends(protocol.Lo) || first.Leaving {
		t.Errorf("first presence %+v", first)
	}
	last, err := protocol.DecodePresence(beats[len(beats)-1].Data)
	if err != nil || !last.Leaving {
		t.Errorf("last presence %+v, %v: want leaving", last, err)
	}
}

func TestOversizeFramesLowerQuality(t *testing.T) {
	// 1280x720 pattern frames at quality 100 are over 100 KB; a few
	// quality steps down they fit in 32 KB.
	const limit = 32 << 10
	b := hubtest.Broker(t, broker.Config{MaxPayload: limit})
	viewer := hubtest.Connect(t, b.ClientURL())
	rec := record(t, viewer, "vidhub.big.cam.hi")
	var logs hubtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	nc := hubtest.Connect(t, b.ClientURL())
	p := hubtest.Publish(t, nc, publisher.Config{Room: "big", Name: "cam", Source: "pattern", FPS: 30, Quality: 100, Logger: log})
	hubtest.Eventually(t, 20*time.Second, func() bool { return rec.count("vidhub.big.cam.hi") >= 3 }, "no frame fits after lowering quality")
	_ = p.Stop()
	st := p.Stats()
	if st.Oversize < 3 || st.Quality > 70 {
		t.Errorf("stats %+v: want oversize frames counted and quality stepped down a few times", st)
	}
	for _, m := range rec.get("vidhub.big.cam.hi") {
		if len(m.Data) > limit {
			t.Errorf("frame of %d bytes over the limit was delivered", len(m.Data))
		}
	}
	// Logged once, naming the limit and what is done about it, and once
	// more when frames fit: not once per frame or quality step.
	lines := payloadLines(logs.String())
	if len(lines) != 2 || !strings.Contains(lines[0], "stepping JPEG quality down") || !strings.Contains(lines[0], "max_payload="+strconv.Itoa(limit)) ||
		!strings.Contains(lines[1], "fit the broker's max payload again") {
		t.Errorf("%d oversize frames, logged as:\n%s\nwant one line naming the limit and the quality step-down, one when frames fit",
			st.Oversize, strings.Join(lines, "\n"))
	}
}

func TestOversizeFramesAtLowestQuality(t *testing.T) {
	// Even at the lowest quality a 1280x720 frame is over 4 KB: quality
	// goes down to the floor, and the log says so once more, with advice.
	b := hubtest.Broker(t, broker.Config{MaxPayload: 4 << 10})
	var logs hubtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	nc := hubtest.Connect(t, b.ClientURL())
	p := hubtest.Publish(t, nc, publisher.Config{Room: "big", Name: "cam", Source: "pattern", FPS: 30, Quality: 100, Logger: log})
	// 9 steps from 100 to 10, then frames at the floor.
	hubtest.Eventually(t, 20*time.Second, func() bool { return p.Stats().Oversize >= 15 }, "oversize frames not counted")
	_ = p.Stop()
	st := p.Stats()
	if st.Quality != 10 || st.Published != 0 {
		t.Errorf("stats %+v: want quality at the floor (10) and nothing published", st)
	}
	lines := payloadLines(logs.String())
	if len(lines) != 2 || !strings.Contains(lines[0], "max_payload=4096") ||
		!strings.Contains(lines[1], "lowest JPEG quality") || !strings.Contains(lines[1], "raise the broker's max_payload") {
		t.Errorf("%d oversize frames, logged as:\n%s\nwant one line naming the limit, one at the lowest quality",
			st.Oversize, strings.Join(lines, "\n"))
	}
}

// payloadLines returns the log lines about the broker's max payload.
func payloadLines(logs string) []string {
	var out []string
	for l := range strings.Lines(logs) {
		if strings.Contains(l, "max payload") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

func TestBrokerRestartResumes(t *testing.T) {
	srv := hubtest.StartNatsServer(t, 0)
	nc, err := natsconn.Connect(natsconn.Config{URL: srv.URL, Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p := hubtest.Publish(t, nc, publisher.Config{Room: "r", Name: "cam", Source: "pattern", FPS: 30, Width: 320, Height: 180})

	var mu sync.Mutex
	got := 0
	watch := func(url string) *nats.Conn {
		c := hubtest.Connect(t, url)
		if _, err := c.Subscribe("vidhub.r.cam.hi", func(*nats.Msg) { mu.Lock(); got++; mu.Unlock() }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return got }
	watch(srv.URL)
	hubtest.Eventually(t, 10*time.Second, func() bool { return count() >= 5 }, "no frames before the restart")

	srv.Kill()
	hubtest.Eventually(t, 10*time.Second, func() bool { return p.Stats().DroppedOffline >= 5 }, "frames not dropped while the broker is down")
	before := count()
	hubtest.StartNatsServer(t, srv.Port)
	hubtest.Eventually(t, 15*time.Second, func() bool { return count() >= before+10 }, "publisher did not resume after the broker came back")
}

// TestBrokerNoLongerAdmits: a broker that comes back with another
// password for this user refuses the reconnects, nats.go closes the
// connection for good, and the publisher ends with ErrConnClosed instead
// of running on, dropping every frame.
func TestBrokerNoLongerAdmits(t *testing.T) {
	srv := hubtest.StartNatsServer(t, 0, "--user", "cam", "--pass", "old-secret")
	nc, err := natsconn.Connect(natsconn.Config{URL: srv.URL, User: "cam", Password: "old-secret", Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pub := hubtest.Publish(t, nc, publisher.Config{Room: "r", Name: "cam", Source: "pattern", FPS: 30, Width: 160, Height: 90})
	hubtest.Eventually(t, 10*time.Second, func() bool { return pub.Stats().Published >= 3 }, "no frames published")

	srv.Kill()
	hubtest.StartNatsServer(t, srv.Port, "--user", "cam", "--pass", "new-secret")
	select {
	case <-pub.Done():
		if err := pub.Err(); !errors.Is(err, publisher.ErrConnClosed) || !strings.Contains(err.Error(), "admits this user") {
			t.Errorf("Run: %v, want ErrConnClosed saying what to check", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the publisher runs on with a connection the broker refuses")
	}
}

func TestWaitsForBroker(t *testing.T) {
	port := hubtest.FreePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	nc, err := natsconn.Connect(natsconn.Config{URL: url, Wait: true})
	if err != nil {
		t.Fatalf("Connect with Wait must not fail without a broker: %v", err)
	}
	defer nc.Close()
	p := hubtest.Publish(t, nc, publisher.Config{Room: "r", Name: "early", Source: "pattern", FPS: 30, Width: 160, Height: 90})
	hubtest.Eventually(t, 20*time.Second, func() bool { return p.Stats().DroppedOffline > 0 }, "no frames counted as dropped while waiting")
	srv := hubtest.StartNatsServer(t, port)
	viewer := hubtest.Connect(t, srv.URL)
	rec := record(t, viewer, "vidhub.r.early.hi")
	hubtest.Eventually(t, 10*time.Second, func() bool { return rec.count("vidhub.r.early.hi") >= 3 }, "no frames once the broker is up")
}

func TestBadConfig(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	nc := hubtest.Connect(t, b.ClientURL())
	for _, tc := range []struct {
		cfg  publisher.Config
		want error
	}{
		{publisher.Config{Room: "a.b", Name: "x", Source: "pattern"}, protocol.ErrBadName},
		{publisher.Config{Room: "r", Name: "", Source: "pattern"}, protocol.ErrBadName},
		{publisher.Config{Room: "r", Name: "x", Source: "pattern", FPS: -1}, publisher.ErrBadConfig},
		{publisher.Config{Room: "r", Name: "x", Source: "pattern", Quality: 101}, publisher.ErrBadConfig},
		{publisher.Config{Room: "r", Name: "x", Source: "pattern", Width: 10}, publisher.ErrBadConfig},
	} {
		if _, err := publisher.New(nc, tc.cfg); !errors.Is(err, tc.want) {
			t.Errorf("New(%+v) = %v, want %v", tc.cfg, err, tc.want)
		}
	}
}

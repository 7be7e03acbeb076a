package web

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
)

// TestThumbnailsOfWatchedPublisher: a publisher that encodes only watched
// layers, watched by nobody but the directory page's thumbnail socket
// (presence=0), still gets its lo layer to the page, because the gateway
// announces what it shows; when the page goes, the gateway leaves the
// room and the publisher stops encoding.
func TestThumbnailsOfWatchedPublisher(t *testing.T) {
	h := startHub(t, broker.Config{}, Config{})
	pub := hubtest.Publish(t, hubtest.Connect(t, h.b.ClientURL()), publisher.Config{Room: "quiet", Name: "cam", Source: "pattern", FPS: 15, Width: 320, Height: 180,
		Encode: publisher.EncodeWatched})

	// The gateway's presence in the room, as any participant sees it.
	spy := hubtest.Connect(t, h.b.ClientURL())
	var gw presenceLog
	if _, err := spy.Subscribe(protocol.RoomPresence("quiet"), func(m *nats.Msg) {
		if s, err := protocol.ParseSubject(m.Subject); err == nil && s.Participant() == h.g.self {
			gw.add(m)
		}
	}); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { return h.g.dir.has("quiet", "cam", protocol.RolePublisher) }, "the publisher is not in the directory")
	hubtest.Eventually(t, 10*time.Second, func() bool { return pub.Stats().Skipped > 0 }, "an unwatched publisher encodes: %+v", pub.Stats())

	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	thumbs := dial(t, rctx, h.url, "/ws/view/quiet?fps=2&presence=0") // as index.js opens it
	f, err := readFrame(rctx, thumbs, nil)
	if err != nil {
		t.Fatalf("no thumbnail of a watched-mode publisher: %v (publisher %+v)", err, pub.Stats())
	}
	if f.Participant != "cam" || f.Layer != protocol.Lo {
		t.Errorf("thumbnail from %s layer %s, want cam lo", f.Participant, f.Layer)
	}
	// The beat that made the publisher encode and the frame it sent
	// travel on different connections (gateway, publisher, spy): the spy
	// may read the beat after the page got the frame.
	hubtest.Eventually(t, 10*time.Second, func() bool {
		p, n := gw.last()
		return n > 0 && p.Role == protocol.RoleViewer && slices.Equal(p.Views, []protocol.Layer{protocol.Lo}) && !p.Leaving
	}, "the gateway announced %v, want a viewer of lo", hubtest.Lazy(func() any { p, n := gw.last(); return fmt.Sprintf("%+v (%d beats)", p, n) }))

	_ = thumbs.CloseNow()
	hubtest.Eventually(t, 10*time.Second, func() bool { p, _ := gw.last(); return p.Leaving }, "the gateway did not leave the room it no longer shows")
	hubtest.Eventually(t, 10*time.Second, func() bool { return len(pub.Stats().Encoding) == 0 }, "lo still encoded after the page went: %+v", pub.Stats())
}

// TestWatchedPublisherListed: a publisher that encodes only watched
// layers, with nobody watching, is still listed by /api/rooms: the
// directory lists publishers whose frames arrive, so while it awaits the
// first one the gateway announces itself as a viewer of lo there.
func TestWatchedPublisherListed(t *testing.T) {
	h := startHub(t, broker.Config{}, Config{})
	pub := hubtest.Publish(t, hubtest.Connect(t, h.b.ClientURL()), publisher.Config{Room: "shy", Name: "cam", Source: "pattern", FPS: 15, Width: 320, Height: 180,
		Encode: publisher.EncodeWatched})

	listed := func() bool {
		for _, ri := range h.g.dir.list() {
			for _, m := range ri.Members {
				if ri.Room == "shy" && m.Name == "cam" && m.Role == protocol.RolePublisher {
					return true
				}
			}
		}
		return false
	}
	hubtest.Eventually(t, 15*time.Second, listed, "a watched-mode publisher nobody watches is not listed: %v (publisher %v)",
		hubtest.Lazy(func() any { return h.g.dir.list() }), hubtest.Lazy(func() any { return pub.Stats() }))
	code, body := get(t, h.url+"/api/rooms")
	if code != 200 || !strings.Contains(body, `"cam"`) {
		t.Errorf("/api/rooms: %d %s, want room shy with cam", code, body)
	}
}

// TestWatchedH264Publisher: a publisher that encodes only watched layers
// and sends H.264, watched only by a socket that announces nothing
// (presence=0) and takes it in H.264, gets the gateway's presence
// watching its H.264 layer, and nothing else once its first frame has
// listed it: it encodes h264lo, then h264 when the socket asks for full
// size, and no JPEG. Each layer the socket gets starts at a keyframe.
func TestWatchedH264Publisher(t *testing.T) {
	h := startHub(t, broker.Config{}, Config{})
	pub := hubtest.Publish(t, hubtest.Connect(t, h.b.ClientURL()), publisher.Config{Room: "quiet", Name: "cam", Source: "pattern", FPS: 15, Width: 320, Height: 180,
		Encode: publisher.EncodeWatched, Codec: protocol.CodecH264})
	spy := hubtest.Connect(t, h.b.ClientURL())
	var gw presenceLog
	if _, err := spy.Subscribe(protocol.RoomPresence("quiet"), func(m *nats.Msg) {
		if s, err := protocol.ParseSubject(m.Subject); err == nil && s.Participant() == h.g.self {
			gw.add(m)
		}
	}); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 15*time.Second, func() bool {
		return slices.ContainsFunc(h.g.dir.room("quiet").Members, func(m protocol.Member) bool { return m.Name == "cam" })
	}, "the publisher is not listed")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, h.url, "/ws/view/quiet?presence=0")
	no := false
	for _, tt := range []struct {
		ctl   control
		layer protocol.Layer
	}{
		{control{H264: []string{"cam"}, JPEG: &no}, protocol.H264Lo},
		{control{Hi: []string{"cam"}, H264: []string{"cam"}, JPEG: &no}, protocol.H264},
	} {
		sendJSON(t, ctx, c, tt.ctl)
		for {
			f, err := readFrame(ctx, c, nil)
			if err != nil {
				t.Fatalf("waiting for %s: %v (publisher %+v)", tt.layer, err, pub.Stats())
			}
			if f.Layer != tt.layer {
				continue // sent before the switch
			}
			if f.Participant != "cam" || !f.Meta.Key || f.Meta.Codec != protocol.CodecH264 {
				t.Fatalf("first frame of %s: %s %+v, want a keyframe of cam", tt.layer, f.Participant, f.Meta)
			}
			break
		}
		hubtest.Eventually(t, 10*time.Second, func() bool {
			p, _ := gw.last()
			return slices.Equal(p.Watches, []protocol.Layer{tt.layer}) && len(p.Views) == 0 && !p.Leaving
		}, "the gateway announced %v, want watches [%s] and no views", hubtest.Lazy(func() any { p, _ := gw.last(); return p }), tt.layer)
		hubtest.Eventually(t, 10*time.Second, func() bool { return slices.Equal(pub.Stats().Encoding, []protocol.Layer{tt.layer}) },
			"the publisher encodes %v, want only %s", hubtest.Lazy(func() any { return pub.Stats().Encoding }), tt.layer)
	}
}

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

package publisher_test

import (
	"slices"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// TestEncodeWatched: a publisher nobody watches encodes nothing and says
// so; a viewer of lo turns lo on (and only lo); when it leaves, lo stops.
func TestEncodeWatched(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{})
	spy := hubtest.Connect(t, b.ClientURL())
	rec := record(t, spy, "vidhub.idle.>")
	nc := hubtest.Connect(t, b.ClientURL())
	p := hubtest.Publish(t, nc, publisher.Config{Room: "idle", Name: "cam", Source: "pattern", FPS: 20, Width: 320, Height: 180, Encode: publisher.EncodeWatched})
	hubtest.Eventually(t, 10*time.Second, func() bool { return p.Stats().Skipped >= 20 }, "unwatched layers still encoded: %+v", p.Stats())
	if st := p.Stats(); len(st.Encoding) != 0 || rec.count("vidhub.idle.cam.hi")+rec.count("vidhub.idle.cam.lo") != 0 {
		t.Fatalf("idle publisher: %+v, frames hi %d lo %d", st, rec.count("vidhub.idle.cam.hi"), rec.count("vidhub.idle.cam.lo"))
	}
	if rec.count("vidhub.idle.cam.presence") == 0 {
		t.Fatal("an idle publisher still beats presence")
	}

	vc := hubtest.Connect(t, b.ClientURL())
	room, err := subscriber.Join(vc, subscriber.Config{Room: "idle", Layer: subscriber.LayerLo})
	if err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { return rec.count("vidhub.idle.cam.lo") >= 10 }, "lo not encoded for its viewer")
	if got := p.Stats().Encoding; !slices.Equal(got, []protocol.Layer{protocol.Lo}) {
		t.Errorf("encoding %v, want lo only", got)
	}
	if n := rec.count("vidhub.idle.cam.hi"); n != 0 {
		t.Errorf("%d hi frames with only a lo viewer", n)
	}
	room.Close()
	hubtest.Eventually(t, 10*time.Second, func() bool { return len(p.Stats().Encoding) == 0 }, "lo still encoded after its viewer left")
}

func TestEncodeModeChecked(t *testing.T) {
	nc := hubtest.Connect(t, hubtest.Broker(t, broker.Config{}).ClientURL())
	if _, err := publisher.New(nc, publisher.Config{Room: "r", Name: "n", Source: "pattern", Encode: "some"}); err == nil {
		t.Error("unknown encode mode accepted")
	}
}

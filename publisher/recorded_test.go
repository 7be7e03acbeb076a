package publisher_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	recording "github.com/vidhub/vidhub/record"
)

// TestRecordedLayers: a publisher that encodes only what is watched, in a
// room nobody watches, encodes and sends a layer once the room records
// it, with every frame acknowledged by the recording and none sent to a
// retry subject, and stops when the recording stops.
func TestRecordedLayers(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{StoreDir: t.TempDir()})
	spy := hubtest.Connect(t, b.ClientURL())
	retries := record(t, spy, protocol.RoomRetries("rec"))
	nc := hubtest.Connect(t, b.ClientURL())
	p := hubtest.Publish(t, nc, publisher.Config{Room: "rec", Name: "cam", Source: "pattern", FPS: 20, Width: 320, Height: 180, Encode: publisher.EncodeWatched})
	hubtest.Eventually(t, 10*time.Second, func() bool { return p.Stats().Skipped >= 20 }, "unwatched layers still encoded: %+v", p.Stats())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := recording.Start(ctx, spy, recording.Config{Room: "rec", Layers: []protocol.Layer{protocol.Lo}}); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 2*publisher.RecordCheckEvery+5*time.Second, func() bool { return p.Stats().Record.Acked >= 20 },
		"the recorded layer was not published with acknowledgements: %+v", hubtest.Lazy(func() any { return p.Stats() }))
	st := p.Stats()
	if !slices.Equal(st.Record.Layers, []protocol.Layer{protocol.Lo}) || !slices.Equal(st.Encoding, []protocol.Layer{protocol.Lo}) {
		t.Fatalf("recording lo: recorded %v, encoding %v; want lo and lo", st.Record.Layers, st.Encoding)
	}
	if st.Record.Lost+st.Record.Refused != 0 || retries.count("vidhub.rec.cam.lo.retry") != 0 {
		t.Fatalf("a healthy recording: %+v, %d frames on retry subjects", st.Record, retries.count("vidhub.rec.cam.lo.retry"))
	}

	if err := recording.Stop(ctx, spy, "rec"); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 2*publisher.RecordCheckEvery+5*time.Second, func() bool { return len(p.Stats().Record.Layers) == 0 },
		"the publisher still thinks the room is recorded")
	hubtest.Eventually(t, 5*time.Second, func() bool { return len(p.Stats().Encoding) == 0 },
		"lo still encoded after the recording stopped: %+v", hubtest.Lazy(func() any { return p.Stats() }))
}

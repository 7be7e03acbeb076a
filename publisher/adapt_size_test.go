//go:build cgo && !vidhub_lite

package publisher_test

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// TestAdaptSizeViewers: a publisher whose viewers report a path too slow
// even for its floor at half the frame rate halves its size; viewers of
// both H.264 layers decode on across the change and back, without a
// decode error or a corrupt picture. The congestion is two viewers'
// receiver reports saying a third of the frames were lost, sent on the
// real broker; a real viewer on each layer decodes what comes.
func TestAdaptSizeViewers(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s run")
	}
	hub := hubtest.Broker(t, broker.Config{})
	const bitrate = 400_000
	pub := hubtest.Publish(t, hubtest.Connect(t, hub.ClientURL()), publisher.Config{
		Room: "size", Name: "cam", Source: "pattern", FPS: 30, Width: 640, Height: 360,
		Codec: protocol.CodecH264, Bitrate: bitrate, MinBitrate: bitrate, Adapt: true,
		Logger: slog.New(slog.NewTextHandler(tlog{t}, nil))})
	adapt := func() publisher.AdaptStats {
		a, ok := pub.Stats().AdaptOf(protocol.H264)
		if !ok {
			t.Fatalf("the publisher does not adapt its h264 layer: %+v", pub.Stats())
		}
		return a
	}
	viewer := func(name string, l subscriber.LayerMode) *subscriber.Room {
		r, err := subscriber.Join(hubtest.Connect(t, hub.ClientURL()), subscriber.Config{Room: "size", Name: name,
			Layer: l, KeepFrames: true, StatsEvery: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	hi, lo := viewer("hiviewer", subscriber.LayerHi), viewer("loviewer", subscriber.LayerLo)
	// decodes waits until r shows cam's picture decoded at w x h.
	decodes := func(r *subscriber.Room, layer protocol.Layer, w, h int, within time.Duration) {
		t.Helper()
		var last string
		hubtest.Eventually(t, within, func() bool {
			tiles := r.Tiles()
			i := slices.IndexFunc(tiles, func(t *subscriber.Tile) bool { return t.Name() == "cam" })
			if i < 0 {
				return false
			}
			f := tiles[i].Take()
			if f == nil {
				return false
			}
			last = fmt.Sprintf("%s %dx%d, %d bytes decoded", f.Layer, f.Meta.Width, f.Meta.Height, len(f.BGR))
			return f.Layer == layer && f.Meta.Width == w && f.Meta.Height == h && len(f.BGR) == w*h*3
		}, "%s does not decode cam's %s at %dx%d (last frame %s)", r.ViewerName(), layer, w, h, hubtest.Lazy(func() any { return last }))
	}
	decodes(hi, protocol.H264, 640, 360, 20*time.Second)
	decodes(lo, protocol.H264Lo, 320, 180, 20*time.Second)

	// Two fake viewers of three say a third of the frames are lost, until
	// the size halves.
	nc := hubtest.Connect(t, hub.ClientURL())
	start := time.Now()
	congestion := hubtest.Congest(t, nc, "size", "cam", 2)
	hubtest.Eventually(t, 15*time.Second, func() bool { return adapt().Width == 320 },
		"the size did not halve: %+v", hubtest.Lazy(func() any { return adapt() }))
	congestion.Stop()
	a := adapt()
	t.Logf("size halved %v after the reports began: %+v", time.Since(start).Round(10*time.Millisecond), a)
	// The floor's bits per pixel at a quarter of the pixels, at half the
	// frame rate: an eighth of the floor's bits per second.
	if a.Height != 180 || a.FPS != 15 || a.Bitrate != bitrate/8 {
		t.Errorf("at half the size: %+v, want 320x180 at 15 fps, %d bit/s", a, bitrate/8)
	}
	if s := presenceOf(t, nc); s.Width != 320 || s.Height != 180 || s.Codec == "" {
		t.Errorf("presence announces %+v at half the size", s)
	}
	decodes(hi, protocol.H264, 320, 180, 10*time.Second)
	// h264lo codes the full layer's picture, now its own size.
	decodes(lo, protocol.H264Lo, 320, 180, 5*time.Second)

	// The fake viewers fall silent; the real ones see no congestion: the
	// size comes back first.
	hubtest.Eventually(t, 40*time.Second, func() bool { return adapt().Width == 640 },
		"the size did not come back: %+v", hubtest.Lazy(func() any { return adapt() }))
	decodes(hi, protocol.H264, 640, 360, 10*time.Second)
	decodes(lo, protocol.H264Lo, 320, 180, 5*time.Second)
	for _, r := range []*subscriber.Room{hi, lo} {
		for _, s := range r.Stats() {
			t.Logf("%s: %s %dx%d %d frames, %d keyframes, %d decode errors, %d corrupt shown, %d gaps",
				r.ViewerName(), s.Layer, s.Width, s.Height, s.Frames, s.Keyframes, s.DecodeErrors, s.CorruptShown, s.Gaps)
			if s.Participant == "cam" && (s.DecodeErrors != 0 || s.CorruptShown != 0 || s.Keyframes < 3) {
				t.Errorf("%s across two size changes: %d decode errors, %d corrupt pictures shown, %d keyframes", r.ViewerName(), s.DecodeErrors, s.CorruptShown, s.Keyframes)
			}
		}
	}
}

// presenceOf returns the first presence of cam on hub's broker that
// announces its h264 layer below 640 wide.
func presenceOf(t *testing.T, nc *nats.Conn) protocol.LayerInfo {
	t.Helper()
	sub, err := nc.SubscribeSync(protocol.ParticipantPresence("size", "cam"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("no presence of cam announces the half size: %v", err)
		}
		p, err := protocol.DecodePresence(m.Data)
		if err != nil {
			continue
		}
		if l, ok := p.Layer(protocol.H264); ok && l.Width < 640 {
			return l
		}
	}
}

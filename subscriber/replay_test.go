package subscriber_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/record"
	"github.com/vidhub/vidhub/subscriber"
)

// TestReplay records a room while an H.264 publisher sends into it, then
// replays it from three seconds back: the replay decodes from a keyframe
// at or before that moment, shows no corrupt picture, measures latency
// from each frame's original capture time (about the rewind), and never
// announces itself or asks the live publisher for keyframes.
func TestReplay(t *testing.T) {
	if !subscriber.DecodesH264() {
		hubtest.Unavailable(t, "this build cannot decode H.264")
	}
	b := hubtest.Broker(t, broker.Config{StoreDir: t.TempDir()})
	nc := hubtest.Connect(t, b.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := record.Start(ctx, nc, record.Config{Room: "past"}); err != nil {
		t.Fatal(err)
	}
	pub := publish(t, b.ClientURL(), publisher.Config{Room: "past", Name: "cam", Source: "pattern", FPS: 30,
		Width: 320, Height: 180, Codec: protocol.CodecH264, KeyInt: time.Second})
	began := time.Now()
	hubtest.WaitRecorded(t, nc, "past", 4*time.Second)

	var presence []string
	spy := hubtest.Connect(t, b.ClientURL())
	if _, err := spy.Subscribe(protocol.RoomPresence("past"), func(m *nats.Msg) {
		if s, err := protocol.ParseSubject(m.Subject); err == nil && s.Participant() != "cam" {
			presence = append(presence, s.Participant())
		}
	}); err != nil {
		t.Fatal(err)
	}
	_ = spy.Flush()
	keysBefore := pub.Stats().KeyRequests

	const rewind = 3 * time.Second
	from := time.Now().Add(-rewind)
	if from.Before(began) {
		t.Fatalf("the recording began after %v", from)
	}
	r := join(t, b.ClientURL(), subscriber.Config{Room: "past", From: from, StatsEvery: 200 * time.Millisecond})
	var st subscriber.TileStats
	hubtest.Eventually(t, 20*time.Second, func() bool {
		if tl := tile(r, "cam"); tl != nil {
			st = tl.Stats()
		}
		return st.Frames >= 45 && st.LatencyP50 > 0
	}, "the replay shows no frames: %+v", hubtest.Lazy(func() any { return st }))
	t.Logf("replay from %v back: %+v", rewind, st)
	if st.CorruptShown != 0 || st.DecodeErrors != 0 || st.Keyframes < 1 || st.Codec == "jpeg" {
		t.Errorf("replay %+v: want H.264 from a keyframe on, nothing corrupt", st)
	}
	// Latency counts from each frame's original capture time: about the
	// rewind, give or take the replay's start and the publisher's pace.
	if st.LatencyP50 < float64((rewind-time.Second)/time.Millisecond) || st.LatencyP50 > float64((rewind+3*time.Second)/time.Millisecond) {
		t.Errorf("replay latency p50 %.0f ms, want about %v: it is not measured from the capture times", st.LatencyP50, rewind)
	}
	r.Close()
	_ = spy.Flush()
	if len(presence) != 0 {
		t.Errorf("the replay announced itself: presence from %v", presence)
	}
	if n := pub.Stats().KeyRequests - keysBefore; n != 0 {
		t.Errorf("the replay asked the live publisher for %d keyframes", n)
	}
}

// TestReplayErrors: replays that cannot start say why.
func TestReplayErrors(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{StoreDir: t.TempDir()})
	nc := hubtest.Connect(t, b.ClientURL())
	past := time.Now().Add(-time.Minute)
	if _, err := subscriber.Join(nc, subscriber.Config{Room: "none", From: past}); !errors.Is(err, record.ErrNotRecording) {
		t.Errorf("replaying a room never recorded: %v, want ErrNotRecording", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := record.Start(ctx, nc, record.Config{Room: "r"}); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []subscriber.Config{
		{Room: "r", From: past, Speed: -1}, {Room: "r", From: past, Speed: 100}, {Room: "r", From: time.Now().Add(time.Hour)},
	} {
		if _, err := subscriber.Join(nc, cfg); !errors.Is(err, subscriber.ErrBadReplay) {
			t.Errorf("Join(speed %v from %v): %v, want ErrBadReplay", cfg.Speed, cfg.From, err)
		}
	}
	plain := hubtest.Connect(t, hubtest.Broker(t, broker.Config{}).ClientURL())
	if _, err := subscriber.Join(plain, subscriber.Config{Room: "r", From: past}); !errors.Is(err, record.ErrNoJetStream) {
		t.Errorf("replaying on a broker without JetStream: %v, want ErrNoJetStream", err)
	}
}

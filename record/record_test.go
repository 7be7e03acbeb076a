package record_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/record"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// recording starts a broker with a store and a recording as cfg says; it
// returns the broker's client URL and a connection to it.
func recording(t *testing.T, cfg record.Config) (url string, nc *nats.Conn) {
	t.Helper()
	b := hubtest.Broker(t, broker.Config{StoreDir: t.TempDir()})
	nc = hubtest.Connect(t, b.ClientURL())
	if _, err := record.Start(ctx(t), nc, cfg); err != nil {
		t.Fatal(err)
	}
	return b.ClientURL(), nc
}

// startStore starts a broker with JetStream in dir.
func startStore(t *testing.T, dir string) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Config{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// recorded reads every message of subject the recording of room holds,
// in order.
func recorded(t *testing.T, nc *nats.Conn, room, subject string) []jetstream.Msg {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := js.OrderedConsumer(ctx(t), record.StreamName(room), jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	n := c.CachedInfo().NumPending
	var out []jetstream.Msg
	for uint64(len(out)) < n {
		batch, err := c.FetchNoWait(int(min(n-uint64(len(out)), 500)))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			out = append(out, m)
			got++
		}
		if got == 0 {
			if err := batch.Error(); err != nil {
				t.Fatal(err)
			}
			t.Fatalf("read %d of %d messages of %s, then nothing", len(out), n, subject)
		}
	}
	return out
}

// TestRecordKeepsFrames records a room while a publisher sends into it:
// the recording holds its frames untouched (headers and numbering), and
// its presence, and nothing of layers it was not asked to keep.
func TestRecordKeepsFrames(t *testing.T) {
	b := hubtest.Broker(t, broker.Config{StoreDir: t.TempDir()})
	nc := hubtest.Connect(t, b.ClientURL())
	codec, layer := publisher.DefaultCodec(), protocol.H264
	if codec != protocol.CodecH264 {
		layer = protocol.Lo // a build without an H.264 encoder
	}
	info, err := record.Start(ctx(t), nc, record.Config{Room: "r1", Layers: []protocol.Layer{layer}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Stream != "VIDHUB_r1" || !slices.Equal(info.Layers, []protocol.Layer{layer}) || info.MaxAge != record.DefaultMaxAge ||
		info.MaxBytes != record.DefaultMaxBytes || info.Replicas != 1 || info.Msgs != 0 {
		t.Errorf("new recording: %+v", info)
	}
	hubtest.Publish(t, hubtest.Connect(t, b.ClientURL()), publisher.Config{Room: "r1", Name: "cam", Source: "pattern",
		FPS: 30, Width: 320, Height: 180, Codec: codec, Encode: publisher.EncodeAll})
	a, _ := protocol.NewAddress("r1", "cam")
	hubtest.Eventually(t, 20*time.Second, func() bool {
		i, err := record.Get(ctx(t), nc, "r1")
		return err == nil && i.Msgs >= 90
	}, "the recording holds fewer than 90 messages")

	frames := recorded(t, nc, "r1", a.FrameSubject(layer))
	var last uint64
	for i, m := range frames {
		meta, err := protocol.ParseLayerFrame(layer, m.Headers(), m.Data())
		if err != nil {
			t.Fatalf("recorded frame %d: %v", i, err)
		}
		if last != 0 && meta.Seq != last+1 {
			t.Errorf("recorded frame %d: seq %d after %d: the recording lost a frame", i, meta.Seq, last)
		}
		last = meta.Seq
	}
	if len(frames) < 60 {
		t.Errorf("%d frames of %s recorded, want 60 or more", len(frames), layer)
	}
	if pres := recorded(t, nc, "r1", a.PresenceSubject()); len(pres) == 0 {
		t.Error("no presence recorded: a replay would not know who was there")
	} else if p, err := protocol.DecodePresence(pres[0].Data()); err != nil || p.Role != protocol.RolePublisher {
		t.Errorf("recorded presence %+v: %v", p, err)
	}
	other := protocol.Hi // published (EncodeAll), not asked for
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx(t), record.StreamName("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetLastMsgForSubject(ctx(t), a.FrameSubject(other)); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("a frame of %s, which the recording was not asked to keep: %v", other, err)
	}

	list, err := record.List(ctx(t), nc)
	if err != nil || len(list) != 1 || list[0].Room != "r1" || list[0].Msgs == 0 || list[0].First.IsZero() {
		t.Errorf("List: %+v, %v", list, err)
	}
	if err := record.Stop(ctx(t), nc, "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := record.Get(ctx(t), nc, "r1"); !errors.Is(err, record.ErrNotRecording) {
		t.Errorf("Get after Stop: %v, want ErrNotRecording", err)
	}
	if err := record.Stop(ctx(t), nc, "r1"); !errors.Is(err, record.ErrNotRecording) {
		t.Errorf("Stop twice: %v, want ErrNotRecording", err)
	}
}

// TestRecordSurvivesRestart restarts the broker on the same store: the
// recording and everything in it are still there, and recording goes on.
func TestRecordSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := startStore(t, dir)
	nc := hubtest.Connect(t, b.ClientURL())
	if _, err := record.Start(ctx(t), nc, record.Config{Room: "door"}); err != nil {
		t.Fatal(err)
	}
	a, _ := protocol.NewAddress("door", "cam")
	for i := range 50 {
		if err := nc.Publish(a.FrameSubject(protocol.H264), []byte{byte(i), 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	var before record.Info
	hubtest.Eventually(t, 10*time.Second, func() bool {
		var err error
		before, err = record.Get(ctx(t), nc, "door")
		return err == nil && before.Msgs == 50
	}, "the recording does not hold the 50 frames: %+v", hubtest.Lazy(func() any { return before }))
	nc.Close()
	b.Close()

	b2 := startStore(t, dir)
	nc2 := hubtest.Connect(t, b2.ClientURL())
	after, err := record.Get(ctx(t), nc2, "door")
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if after.Msgs != before.Msgs || after.Bytes != before.Bytes || !after.First.Equal(before.First) || !after.Last.Equal(before.Last) {
		t.Errorf("after the restart %+v, before %+v", after, before)
	}
	if err := nc2.Publish(a.FrameSubject(protocol.H264), []byte{9}); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		i, err := record.Get(ctx(t), nc2, "door")
		return err == nil && i.Msgs == 51
	}, "recording did not go on after the restart")
}

// TestRecordLimits fills a recording past its size: the oldest frames
// go, it never holds more than its limit, and publishing never fails.
func TestRecordLimits(t *testing.T) {
	const limit = 64 << 10
	_, nc := recording(t, record.Config{Room: "full", MaxBytes: limit})
	a, _ := protocol.NewAddress("full", "cam")
	frame := make([]byte, 4<<10)
	for range 100 {
		if err := nc.Publish(a.FrameSubject(protocol.H264), frame); err != nil {
			t.Fatalf("publishing into a full recording: %v", err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx(t), record.StreamName("full"))
	if err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		si, err := s.Info(ctx(t))
		return err == nil && si.State.LastSeq == 100
	}, "the recording did not take all 100 frames")
	si, _ := s.Info(ctx(t))
	if si.State.Bytes > limit || si.State.FirstSeq <= 1 || si.State.Msgs == 0 {
		t.Errorf("a recording limited to %d bytes holds %d bytes, frames %d to %d", limit, si.State.Bytes, si.State.FirstSeq, si.State.LastSeq)
	}
}

// TestRecordErrors: what is wrong is said, and nothing is created.
func TestRecordErrors(t *testing.T) {
	plain := hubtest.Broker(t, broker.Config{})
	nc := hubtest.Connect(t, plain.ClientURL())
	if _, err := record.Start(ctx(t), nc, record.Config{Room: "r"}); !errors.Is(err, record.ErrNoJetStream) {
		t.Errorf("recording on a broker without JetStream: %v, want ErrNoJetStream", err)
	}
	if _, err := record.List(ctx(t), nc); !errors.Is(err, record.ErrNoJetStream) {
		t.Errorf("listing on a broker without JetStream: %v, want ErrNoJetStream", err)
	}

	b := hubtest.Broker(t, broker.Config{StoreDir: t.TempDir()})
	nc = hubtest.Connect(t, b.ClientURL())
	for _, cfg := range []record.Config{
		{Room: "a.b"}, {Room: ""}, {Room: "r", Layers: []protocol.Layer{"h265"}},
		{Room: "r", Layers: []protocol.Layer{protocol.H264, protocol.H264}},
		{Room: "r", MaxAge: -time.Second}, {Room: "r", MaxBytes: -1}, {Room: "r", Replicas: 7},
	} {
		if _, err := record.Start(ctx(t), nc, cfg); !errors.Is(err, record.ErrBadConfig) {
			t.Errorf("Start(%+v): %v, want ErrBadConfig", cfg, err)
		}
	}
	if _, err := record.Start(ctx(t), nc, record.Config{Room: "r", Replicas: 3}); err == nil || !strings.Contains(err.Error(), "cluster") {
		t.Errorf("three replicas on a single broker: %v, want an error that speaks of a cluster", err)
	}
	if list, err := record.List(ctx(t), nc); err != nil || len(list) != 0 {
		t.Errorf("after refused starts: %+v, %v; want no recordings", list, err)
	}
}

package record_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/record"
)

// TestRecordRidesThroughLeaderLoss is issue 12's "nothing lost": three
// stock nats-server processes in a JetStream cluster keep a recording on
// all three; a publisher sends into it through the stream's leader; the
// leader is killed with SIGKILL. The publisher moves to another broker,
// the others elect a new leader, and the recording goes on without
// losing a frame: every Vidhub-Seq from the first frame recorded to the
// last is there, once, in order.
func TestRecordRidesThroughLeaderLoss(t *testing.T) {
	const room = "failover"
	ports := hubtest.FreePorts(t, 3)
	routes := make([]string, len(ports))
	for i, p := range ports {
		routes[i] = "nats://127.0.0.1:" + strconv.Itoa(p)
	}
	servers := map[string]*hubtest.NatsServer{}
	var urls []string
	for i := range ports {
		name := "n" + strconv.Itoa(i+1)
		s := hubtest.StartNatsServer(t, 0, "-n", name, "-js", "-sd", t.TempDir(),
			"--cluster_name", "vidhub-rec", "--cluster", routes[i], "--routes", strings.Join(routes, ","))
		servers[name] = s
		urls = append(urls, s.URL)
	}
	ctl := hubtest.Connect(t, strings.Join(urls, ","))
	var err error
	hubtest.Eventually(t, 30*time.Second, func() bool {
		c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = record.Start(c, ctl, record.Config{Room: room, Replicas: 3, Layers: recordedLayers()})
		return err == nil
	}, "the cluster did not take a recording with 3 replicas: %v", hubtest.Lazy(func() any { return err }))
	leader := func() string {
		js, err := jetstream.New(ctl)
		if err != nil {
			return ""
		}
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(c, record.StreamName(room))
		if err != nil || s.CachedInfo().Cluster == nil {
			return ""
		}
		return s.CachedInfo().Cluster.Leader
	}
	var first string
	hubtest.Eventually(t, 20*time.Second, func() bool { first = leader(); return servers[first] != nil },
		"the recording has no leader")

	// The publisher's home is the leader: killing it costs the publisher
	// its broker and the recording its leader at once.
	order := []string{servers[first].URL}
	for _, u := range urls {
		if u != servers[first].URL {
			order = append(order, u)
		}
	}
	nc, err := natsconn.Connect(natsconn.Config{URL: strings.Join(order, ","), Name: "cam",
		Options: []nats.Option{nats.DontRandomize()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg := hubtest.Pattern(room, "cam")
	cfg.FPS, cfg.Codec = 30, publisher.DefaultCodec()
	pub := hubtest.Publish(t, nc, cfg)
	hubtest.Eventually(t, 20*time.Second, func() bool { return pub.Stats().Record.Acked >= 60 },
		"the publisher's recorded frames were not acknowledged: %+v", hubtest.Lazy(func() any { return pub.Stats().Record }))

	killed := time.Now()
	if err := servers[first].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	before := pub.Stats().Record.Acked
	hubtest.Eventually(t, 30*time.Second, func() bool { l := leader(); return l != "" && l != first },
		"no new leader after %s was killed", first)
	elected := time.Since(killed)
	hubtest.Eventually(t, 30*time.Second, func() bool {
		st := pub.Stats().Record
		return st.Acked >= before+90 && st.Unacked < 10
	}, "recording did not go on after the leader's loss: %+v", hubtest.Lazy(func() any { return pub.Stats().Record }))
	if err := pub.Stop(); err != nil {
		t.Fatal(err)
	}
	st := pub.Stats()
	if st.Record.Resent == 0 {
		t.Fatalf("no frame was sent again, though the recording had no leader for %v: %+v", elected, st.Record)
	}
	if st.Record.Lost != 0 || st.Record.Refused != 0 {
		t.Fatalf("the publisher gave up or had refused recorded frames: %+v", st.Record)
	}
	if st.Record.Unacked != 0 {
		t.Fatalf("the publisher stopped with frames the recording did not acknowledge: %+v", st.Record)
	}

	layer := recordedLayers()[0]
	a, _ := protocol.NewAddress(room, "cam")
	// Right after the loss, the cluster may still be settling: a read
	// that fails is tried again.
	var seqs []uint64
	var rd *record.Reader
	read := func() error {
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		seqs = seqs[:0]
		if rd, err = record.NewReader(c, ctl, record.ReadConfig{Room: room, From: killed.Add(-time.Hour), Subjects: []string{a.FrameSubject(layer)}}); err != nil {
			return err
		}
		defer rd.Close()
		for {
			it, err := rd.Next(c)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if it.Frame {
				seqs = append(seqs, it.Meta.Seq)
			}
		}
	}
	hubtest.Eventually(t, 60*time.Second, func() bool { err = read(); return err == nil },
		"reading the recording: %v", hubtest.Lazy(func() any { return err }))
	if len(seqs) < 150 {
		t.Fatalf("the recording holds %d frames of %s; want the 150 and more published", len(seqs), layer)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("the recording lost frames across the leader's loss: frame %d follows %d (%d frames recorded, %+v)",
				seqs[i], seqs[i-1], len(seqs), st.Record)
		}
	}
	t.Logf("leader %s killed; new leader after %v; %d frames of %s recorded, %d to %d, none missing; %d sent again, reader %+v",
		first, elected.Round(time.Millisecond), len(seqs), layer, seqs[0], seqs[len(seqs)-1], st.Record.Resent, rd.Stats())
}

// recordedLayers are the layers the failover test records: H.264 where
// this build encodes it, else JPEG.
func recordedLayers() []protocol.Layer {
	if publisher.DefaultCodec() == protocol.CodecH264 {
		return []protocol.Layer{protocol.H264}
	}
	return []protocol.Layer{protocol.Hi}
}

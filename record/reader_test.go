package record_test

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/record"
)

// Smallest access units that pass protocol.CheckH264: SPS, PPS and an IDR
// slice; one non-IDR slice.
var (
	tinyKey   = []byte{0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88}
	tinyDelta = []byte{0, 0, 0, 1, 0x41, 0x9a}
)

// TestReaderPutsRetriesInPlace stores a publisher's frames the way a
// failover leaves them: frames 3 and 4 arrive after 5, sent again on their
// retry subject, and frame 2 twice (once with its Nats-Msg-Id, which the
// recording drops, once without, which the Reader drops). The Reader
// hands on 1 to 6 in order, under the frame subject, each once, and
// starts from the keyframe before From.
func TestReaderPutsRetriesInPlace(t *testing.T) {
	b := startStore(t, t.TempDir())
	nc := hubtest.Connect(t, b.ClientURL())
	if _, err := record.Start(ctx(t), nc, record.Config{Room: "rr"}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := protocol.NewAddress("rr", "cam")
	subj := a.FrameSubject(protocol.H264)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	at := func(seq uint64) time.Time { return t0.Add(time.Duration(seq) * 100 * time.Millisecond) }
	send := func(seq uint64, retry, id bool) {
		t.Helper()
		body := tinyDelta
		if seq == 1 || seq == 4 {
			body = tinyKey
		}
		h := protocol.FrameHeaders(protocol.FrameMeta{Seq: seq, Time: at(seq).UnixNano(), Width: 64, Height: 48, Codec: protocol.CodecH264, Key: seq == 1 || seq == 4})
		m := &nats.Msg{Subject: subj, Header: h, Data: body}
		if retry {
			m.Subject = protocol.RetrySubject(subj)
		}
		if id {
			m.Header.Set(jetstream.MsgIDHeader, subj+"."+at(seq).String())
		}
		ack, err := js.PublishMsg(ctx(t), m)
		if err != nil {
			t.Fatalf("frame %d: %v", seq, err)
		}
		if ack.Duplicate != (seq == 2 && retry) {
			t.Fatalf("frame %d (retry %v): stored as a duplicate: %v", seq, retry, ack.Duplicate)
		}
	}
	send(1, false, true)
	send(2, false, true)
	send(5, false, true)
	send(3, true, true)
	send(4, true, true)
	send(2, true, true)   // dropped by the recording: its id was stored
	send(2, false, false) // stored: no id; dropped by the Reader
	send(6, false, true)

	read := func(from time.Time) ([]uint64, []bool, record.ReadStats) {
		t.Helper()
		rd, err := record.NewReader(ctx(t), nc, record.ReadConfig{Room: "rr", From: from})
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		var seqs []uint64
		var before []bool
		for {
			it, err := rd.Next(ctx(t))
			if errors.Is(err, io.EOF) {
				return seqs, before, rd.Stats()
			}
			if err != nil {
				t.Fatal(err)
			}
			if !it.Frame {
				continue
			}
			if it.Msg.Subject != subj || !it.At.Equal(at(it.Meta.Seq)) {
				t.Fatalf("frame %d on %s at %v; want %s at %v", it.Meta.Seq, it.Msg.Subject, it.At, subj, at(it.Meta.Seq))
			}
			seqs, before = append(seqs, it.Meta.Seq), append(before, it.Before)
		}
	}
	seqs, before, st := read(t0)
	if want := []uint64{1, 2, 3, 4, 5, 6}; !slices.Equal(seqs, want) {
		t.Fatalf("read frames %v, want %v", seqs, want)
	}
	if slices.Contains(before, true) {
		t.Fatalf("frames after From flagged Before: %v", before)
	}
	if st.Reordered != 1 || st.Dropped != 1 {
		t.Fatalf("stats %+v, want 1 reordered (5, stored before 3 and 4) and 1 dropped (2 again)", st)
	}
	// From between 5 and 6: the run from keyframe 4 leads into it.
	seqs, before, _ = read(at(5).Add(time.Millisecond))
	if want := []uint64{4, 5, 6}; !slices.Equal(seqs, want) || !slices.Equal(before, []bool{true, true, false}) {
		t.Fatalf("from just after 5: frames %v before %v, want %v before [true true false]", seqs, before, want)
	}
}

// publishAt stores, with js, frame seq of participant name in room, as
// captured at at; keyframes carry tinyKey.
func publishAt(t *testing.T, js jetstream.JetStream, room, name string, seq uint64, at time.Time, key bool) {
	t.Helper()
	a, err := protocol.NewAddress(room, name)
	if err != nil {
		t.Fatal(err)
	}
	body := tinyDelta
	if key {
		body = tinyKey
	}
	h := protocol.FrameHeaders(protocol.FrameMeta{Seq: seq, Time: at.UnixNano(), Width: 64, Height: 48, Codec: protocol.CodecH264, Key: key})
	if _, err := js.PublishMsg(ctx(t), &nats.Msg{Subject: a.FrameSubject(protocol.H264), Header: h, Data: body}); err != nil {
		t.Fatalf("%s frame %d: %v", name, seq, err)
	}
}

// TestReaderLeadInReadLate: publisher b's frames reach the recording
// half a second behind a's, so the Reader reads a's first frames from
// From on before b's last ones before it. b's run from its keyframe
// before From still comes first, flagged Before, and in one piece.
func TestReaderLeadInReadLate(t *testing.T) {
	b := startStore(t, t.TempDir())
	nc := hubtest.Connect(t, b.ClientURL())
	if _, err := record.Start(ctx(t), nc, record.Config{Room: "late"}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	at := func(seq uint64) time.Time { return t0.Add(time.Duration(seq) * 100 * time.Millisecond) }
	const lag = 5 // frames
	for seq := uint64(1); seq <= 10+lag; seq++ {
		if seq <= 10 {
			publishAt(t, js, "late", "a", seq, at(seq), seq == 1)
		}
		if seq > lag {
			publishAt(t, js, "late", "b", seq-lag, at(seq-lag), seq-lag == 2)
		}
	}
	from := at(4).Add(time.Millisecond)
	rd, err := record.NewReader(ctx(t), nc, record.ReadConfig{Room: "late", From: from})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	type got struct {
		name   string
		seq    uint64
		before bool
	}
	var items []got
	for {
		it, err := rd.Next(ctx(t))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if s, err := protocol.ParseSubject(it.Msg.Subject); err == nil && it.Frame {
			items = append(items, got{s.Participant(), it.Meta.Seq, it.Before})
			if it.Before != it.At.Before(from) {
				t.Errorf("%s frame %d captured at %v flagged Before %v; From %v", s.Participant(), it.Meta.Seq, it.At, it.Before, from)
			}
		}
	}
	var bs []got
	for _, g := range items {
		if g.name == "b" {
			bs = append(bs, g)
		}
	}
	want := []got{{"b", 2, true}, {"b", 3, true}, {"b", 4, true}}
	for seq := uint64(5); seq <= 10; seq++ {
		want = append(want, got{"b", seq, false})
	}
	if !slices.Equal(bs, want) {
		t.Fatalf("b's frames %v, want %v (the run from keyframe 2, flagged, then the rest); all %v", bs, want, items)
	}
	if items[0] != (got{"a", 1, true}) {
		t.Fatalf("first item %v, want a's keyframe 1 leading into From; all %v", items[0], items)
	}
}

// TestPlayPacesInCaptureOrder: publisher b's frames reach the recording
// 600 ms behind a's. Play hands the room on in capture order all the
// same, never before an item's time.
func TestPlayPacesInCaptureOrder(t *testing.T) {
	b := startStore(t, t.TempDir())
	nc := hubtest.Connect(t, b.ClientURL())
	if _, err := record.Start(ctx(t), nc, record.Config{Room: "pace"}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const (
		step  = 20 * time.Millisecond
		lag   = 30 // frames: 600 ms
		total = 60
	)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	at := func(seq uint64) time.Time { return t0.Add(time.Duration(seq) * step) }
	for seq := uint64(1); seq <= total+lag; seq++ {
		if seq <= total {
			publishAt(t, js, "pace", "a", seq, at(seq), seq == 1)
		}
		if seq > lag {
			publishAt(t, js, "pace", "b", seq-lag, at(seq-lag), seq-lag == 1)
		}
	}
	from := at(1)
	rd, err := record.NewReader(ctx(t), nc, record.ReadConfig{Room: "pace", From: from})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var (
		start time.Time
		last  time.Time
		n     int
	)
	err = record.Play(ctx(t), rd, from, 1, func(it record.Item) {
		if !it.Frame {
			return
		}
		now := time.Now()
		if start.IsZero() {
			start = now
		}
		if it.At.Before(last) {
			t.Errorf("frame captured at +%v handed on after one at +%v", it.At.Sub(t0), last.Sub(t0))
		}
		last = it.At
		if due := start.Add(it.At.Sub(from)); now.Before(due) {
			t.Errorf("frame captured at +%v handed on %v before its time", it.At.Sub(t0), due.Sub(now))
		}
		n++
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2*total {
		t.Fatalf("Play handed on %d frames, want %d", n, 2*total)
	}
}

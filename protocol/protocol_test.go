package protocol

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"lobby", true},
		{"a", true},
		{"Room_1-b", true},
		{strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), false},
		{"", false},
		{"a.b", false},
		{"*", false},
		{">", false},
		{"a b", false},
		{"tab\t", false},
		{"ü", false},
		{"a/b", false},
	}
	for _, tt := range tests {
		err := ValidateName("room", tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Errorf("ValidateName(%q) error %v is not ErrBadName", tt.name, err)
			}
			if !strings.Contains(err.Error(), NameRule) {
				t.Errorf("ValidateName(%q) error %q does not state the rule", tt.name, err)
			}
		}
	}
}

func TestSubjects(t *testing.T) {
	a, err := NewAddress("lobby", "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ got, want string }{
		{a.FrameSubject(Hi), "vidhub.lobby.alice.hi"},
		{a.FrameSubject(Lo), "vidhub.lobby.alice.lo"},
		{a.PresenceSubject(), "vidhub.lobby.alice.presence"},
		{a.AllSubjects(), "vidhub.lobby.alice.>"},
		{RoomFrames("lobby", Hi), "vidhub.lobby.*.hi"},
		{RoomPresence("lobby"), "vidhub.lobby.*.presence"},
		{RoomAll("lobby"), "vidhub.lobby.>"},
		{AllPresence, "vidhub.*.*.presence"},
		{a.SubjectPrefix(), "vidhub.lobby.alice."},
		{RoomPrefix("lobby"), "vidhub.lobby."},
		{ParticipantAll("lobby", "alice"), "vidhub.lobby.alice.>"},
		{ParticipantPresence("lobby", "alice"), "vidhub.lobby.alice.presence"},
		// Every room at once: the permissions of "*" in an access file.
		{RoomPrefix(AnyRoom), "vidhub.*."},
		{RoomAll(AnyRoom), "vidhub.*.>"},
		{RoomPresence(AnyRoom), AllPresence},
		{RoomFrames(AnyRoom, Lo), "vidhub.*.*.lo"},
		{ParticipantAll(AnyRoom, "alice"), "vidhub.*.alice.>"},
		{ParticipantPresence(AnyRoom, "alice"), "vidhub.*.alice.presence"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	// An address's subjects and the per-room helpers agree.
	if a.AllSubjects() != ParticipantAll(a.Room(), a.Participant()) || a.PresenceSubject() != ParticipantPresence(a.Room(), a.Participant()) {
		t.Errorf("address and helpers disagree: %s %s", a.AllSubjects(), a.PresenceSubject())
	}
	if err := ValidRoom(AnyRoom); err == nil {
		t.Errorf("AnyRoom %q is a valid room name: it would mean one room, not all", AnyRoom)
	}
	if _, err := NewAddress("a.b", "x"); !errors.Is(err, ErrBadName) {
		t.Errorf("NewAddress with dotted room: %v", err)
	}
	if _, err := NewAddress("a", "*"); !errors.Is(err, ErrBadName) {
		t.Errorf("NewAddress with wildcard participant: %v", err)
	}
}

func TestParseSubject(t *testing.T) {
	tests := []struct {
		in       string
		ok       bool
		room, p  string
		presence bool
		layer    Layer
	}{
		{"vidhub.lobby.alice.hi", true, "lobby", "alice", false, Hi},
		{"vidhub.lobby.alice.lo", true, "lobby", "alice", false, Lo},
		{"vidhub.lobby.alice.presence", true, "lobby", "alice", true, ""},
		{"vidhub.lobby.alice.h264lo", true, "lobby", "alice", false, H264Lo},
		{"vidhub.lobby.alice.rr.bob", true, "lobby", "alice", false, ""},
		{"vidhub.lobby.alice.rr", false, "", "", false, ""},
		{"vidhub.lobby.rr.hi", true, "lobby", "rr", false, Hi},
		{"vidhub.lobby.*.rr", false, "", "", false, ""},
		{"vidhub.lobby.alice.mid", false, "", "", false, ""},
		{"vidhub.lobby.*.hi", false, "", "", false, ""},
		{"vidhub.lobby.alice.hi.x", false, "", "", false, ""},
		{"vidhub.lobby.hi", false, "", "", false, ""},
		{"other.lobby.alice.hi", false, "", "", false, ""},
		{"vidhub..alice.hi", false, "", "", false, ""},
		{"", false, "", "", false, ""},
	}
	for _, tt := range tests {
		s, err := ParseSubject(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseSubject(%q) = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if !tt.ok {
			if !errors.Is(err, ErrBadSubject) {
				t.Errorf("ParseSubject(%q) error %v is not ErrBadSubject", tt.in, err)
			}
			continue
		}
		if s.Room() != tt.room || s.Participant() != tt.p || s.Presence != tt.presence || s.Layer != tt.layer {
			t.Errorf("ParseSubject(%q) = %+v", tt.in, s)
		}
	}
}

func TestFrameHeaderRoundTrip(t *testing.T) {
	fh := NewFrameHeader()
	for i, m := range []FrameMeta{
		{Seq: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano(), Width: 1280, Height: 720, Codec: CodecJPEG, Key: true},
		{Seq: 2, Time: 1, Width: 320, Height: 180, Codec: CodecJPEG, Key: true},
		{Seq: 1<<64 - 1, Time: 1<<63 - 1, Width: 16384, Height: 1, Codec: CodecJPEG, Key: true},
	} {
		h := fh.Set(m)
		if got := h.Get(HeaderContentType); got != ContentTypeJPEG {
			t.Errorf("%d: Content-Type %q", i, got)
		}
		got, err := ParseFrameHeader(h)
		if err != nil || got != m {
			t.Errorf("%d: ParseFrameHeader = %+v, %v; want %+v", i, got, err, m)
		}
		// Header keys travel as spelled: check the wire form.
		if _, ok := h[HeaderSeq]; !ok {
			t.Errorf("%d: header key %q missing", i, HeaderSeq)
		}
	}
}

func TestParseFrameHeaderRejects(t *testing.T) {
	good := func() nats.Header { return FrameHeaders(FrameMeta{Seq: 3, Time: 42, Width: 4, Height: 2}) }
	tests := []struct {
		name string
		mod  func(nats.Header)
		want string
	}{
		{"no content type", func(h nats.Header) { h.Del(HeaderContentType) }, HeaderContentType},
		{"png", func(h nats.Header) { h.Set(HeaderContentType, "image/png") }, HeaderContentType},
		{"seq zero", func(h nats.Header) { h.Set(HeaderSeq, "0") }, HeaderSeq},
		{"seq text", func(h nats.Header) { h.Set(HeaderSeq, "x") }, HeaderSeq},
		{"seq negative", func(h nats.Header) { h.Set(HeaderSeq, "-1") }, HeaderSeq},
		{"no time", func(h nats.Header) { h.Del(HeaderTime) }, HeaderTime},
		{"time negative", func(h nats.Header) { h.Set(HeaderTime, "-5") }, HeaderTime},
		{"size missing", func(h nats.Header) { h.Del(HeaderSize) }, HeaderSize},
		{"size zero", func(h nats.Header) { h.Set(HeaderSize, "0x10") }, HeaderSize},
		{"size huge", func(h nats.Header) { h.Set(HeaderSize, "99999x10") }, HeaderSize},
		{"size garbage", func(h nats.Header) { h.Set(HeaderSize, "1280*720") }, HeaderSize},
	}
	for _, tt := range tests {
		h := good()
		tt.mod(h)
		_, err := ParseFrameHeader(h)
		if !errors.Is(err, ErrBadFrame) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want ErrBadFrame naming %s", tt.name, err, tt.want)
		}
	}
	if _, err := ParseFrameHeader(nil); !errors.Is(err, ErrBadFrame) {
		t.Errorf("nil header: %v", err)
	}
}

func TestCheckJPEG(t *testing.T) {
	for _, tt := range []struct {
		b  []byte
		ok bool
	}{
		{[]byte{0xFF, 0xD8, 0xFF, 0xD9}, true},
		{[]byte{0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9}, true},
		{[]byte{0xFF, 0xD8, 1, 2, 3}, false},
		{[]byte("hello world"), false},
		{nil, false},
		{[]byte{0xFF, 0xD9}, false},
		{[]byte{0x89, 'P', 'N', 'G', 0xFF, 0xD9}, false},
	} {
		if err := CheckJPEG(tt.b); (err == nil) != tt.ok {
			t.Errorf("CheckJPEG(% x) = %v, want ok=%v", tt.b, err, tt.ok)
		}
	}
}

func TestLoSize(t *testing.T) {
	for _, tt := range []struct{ w, h, lw, lh int }{
		{1280, 720, 320, 180},
		{1920, 1080, 320, 180},
		{640, 480, 320, 240},
		{160, 120, 160, 120},
		{1, 1, 1, 1},
		{4000, 10, 320, 1},
	} {
		lw, lh := LoSize(tt.w, tt.h)
		if lw != tt.lw || lh != tt.lh {
			t.Errorf("LoSize(%d,%d) = %d,%d want %d,%d", tt.w, tt.h, lw, lh, tt.lw, tt.lh)
		}
	}
}

func TestPresenceRoundTrip(t *testing.T) {
	p := Presence{
		Role:    RolePublisher,
		Layers:  []LayerInfo{{Layer: Hi, Width: 1280, Height: 720, FPS: 30}, {Layer: Lo, Width: 320, Height: 180, FPS: 30}},
		Views:   []Layer{Lo},
		Started: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
	}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"v":1`)) || !bytes.Contains(b, []byte(`"role":"publisher"`)) {
		t.Errorf("encoded presence %s lacks version or role", b)
	}
	got, err := DecodePresence(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Role != p.Role || len(got.Layers) != 2 || got.Layers[0] != p.Layers[0] || !got.Started.Equal(p.Started) || got.Leaving || !got.Sends(Lo) {
		t.Errorf("round trip: got %+v, want %+v", got, p)
	}
	p.Leaving = true
	b, _ = p.Encode()
	if got, _ := DecodePresence(b); !got.Leaving {
		t.Errorf("leaving lost: %s", b)
	}
}

func TestDecodePresenceRejects(t *testing.T) {
	for _, in := range []string{
		``,
		`not json`,
		`{"v":2,"role":"viewer"}`,
		`{"v":1,"role":"boss"}`,
		`{"v":1,"role":"publisher","layers":[{"layer":"mid"}]}`,
		`{"v":1,"role":"publisher","layers":[{"layer":"hi","width":-1}]}`,
		`{"v":1,"role":"viewer","views":["x"]}`,
		`{"v":1,"role":"viewer","pad":"` + strings.Repeat("a", MaxPresenceSize) + `"}`,
	} {
		if _, err := DecodePresence([]byte(in)); !errors.Is(err, ErrBadPresence) {
			t.Errorf("DecodePresence(%.40q) = %v, want ErrBadPresence", in, err)
		}
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"lobby", "a.b", "*", ">", "", strings.Repeat("x", 65), "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateName("room", s) != nil {
			return
		}
		// A valid name never lets a subject grow or lose tokens.
		if strings.ContainsAny(s, ".*> \t\r\n") {
			t.Fatalf("accepted %q", s)
		}
		a, err := NewAddress(s, s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseSubject(a.FrameSubject(Hi))
		if err != nil || got.Room() != s || got.Participant() != s {
			t.Fatalf("round trip of %q: %+v, %v", s, got, err)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"vidhub.lobby.alice.hi", "vidhub.a.b.presence", "vidhub.a.b.key", "vidhub.a.rr.rr", "vidhub.>", "vidhub.a..hi", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sub, err := ParseSubject(s)
		if err != nil {
			return
		}
		if n := btoi(sub.Presence) + btoi(sub.Key) + btoi(sub.Report) + btoi(sub.Frame()); n != 1 {
			t.Fatalf("ParseSubject(%q) = %+v: %d kinds at once", s, sub, n)
		}
		if want := sub.String(); want != s {
			t.Fatalf("ParseSubject(%q) rebuilds as %q", s, want)
		}
	})
}

func FuzzParseFrame(f *testing.F) {
	f.Add("image/jpeg", "1", "1700000000000000000", "1280x720", []byte{0xFF, 0xD8, 0xFF, 0xD9})
	f.Add("image/jpeg", "0", "-1", "0x0", []byte("garbage"))
	f.Add("", "", "", "", []byte{})
	f.Add("video/h264", "2", "1700000000000000000", "320x180", []byte{0, 0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x41, 0x40})
	f.Add("video/h264", "1", "1700000000000000000", "320x180", []byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88})
	f.Fuzz(func(t *testing.T, ct, seq, tm, size string, body []byte) {
		h := nats.Header{}
		h.Set(HeaderContentType, ct)
		h.Set(HeaderSeq, seq)
		h.Set(HeaderTime, tm)
		h.Set(HeaderSize, size)
		m, err := ParseFrame(h, body)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error %v is not ErrBadFrame", err)
			}
			return
		}
		if m.Seq == 0 || m.Time <= 0 || m.Width < 1 || m.Height < 1 || m.Width > MaxDimension || m.Height > MaxDimension {
			t.Fatalf("accepted out-of-range %+v", m)
		}
		again, err := ParseFrameHeader(FrameHeaders(m))
		if err != nil || again != m {
			t.Fatalf("re-encode of %+v: %+v, %v", m, again, err)
		}
	})
}

// FuzzSplitGOP: whatever a GOP reply body holds, SplitGOP returns access
// units that each pass CheckH264 (the first a keyframe), or ErrBadFrame;
// what AppendGOP writes splits back as it was; and ParseGOP, given the
// body with good headers, takes what SplitGOP takes and numbers it.
func FuzzSplitGOP(f *testing.F) {
	key := []byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88}
	delta := []byte{0, 0, 0, 1, 0x41, 0x9a}
	f.Add(AppendGOP(AppendGOP(nil, 1, key), 2, delta), 2)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, 1)
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		aus, err := SplitGOP(body, n)
		h := gopHeader(strconv.Itoa(n), "7")
		gop, perr := ParseGOP(h, body)
		if (err == nil) != (perr == nil) {
			t.Fatalf("SplitGOP: %v, but ParseGOP: %v", err, perr)
		}
		if err != nil {
			if !errors.Is(err, ErrBadFrame) || !errors.Is(perr, ErrBadFrame) {
				t.Fatalf("errors %v, %v are not ErrBadFrame", err, perr)
			}
			return
		}
		for i, g := range gop {
			want := FrameMeta{Seq: 7 + uint64(i), Time: aus[i].Time, Width: 64, Height: 48, Codec: CodecH264, Key: i == 0}
			if g.Meta != want || !bytes.Equal(g.AU, aus[i].AU) {
				t.Fatalf("ParseGOP's access unit %d: %+v, want %+v and SplitGOP's bytes", i, g.Meta, want)
			}
		}
		var again []byte
		for i, u := range aus {
			if err := CheckH264(u.AU, i == 0); err != nil || u.Time <= 0 {
				t.Fatalf("access unit %d accepted: %v, time %d", i, err, u.Time)
			}
			again = AppendGOP(again, u.Time, u.AU)
		}
		if !bytes.Equal(again, body) {
			t.Fatal("AppendGOP does not give back the body SplitGOP split")
		}
	})
}

func FuzzDecodePresence(f *testing.F) {
	f.Add([]byte(`{"v":1,"role":"publisher","layers":[{"layer":"hi","width":1280,"height":720,"fps":30}],"started":"2026-11-23T10:00:00Z"}`))
	f.Add([]byte(`{"v":1,"role":"viewer","views":["lo"],"leaving":true,"started":"2026-11-23T10:00:00Z"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePresence(b)
		if err != nil {
			if !errors.Is(err, ErrBadPresence) {
				t.Fatalf("error %v is not ErrBadPresence", err)
			}
			return
		}
		again, err := p.Encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := DecodePresence(again); err != nil {
			t.Fatalf("re-decode of %s: %v", again, err)
		}
	})
}

func BenchmarkFrameHeaderSet(b *testing.B) {
	fh := NewFrameHeader()
	b.ReportAllocs()
	for i := range b.N {
		fh.Set(FrameMeta{Seq: uint64(i + 1), Time: int64(i + 1), Width: 1280, Height: 720})
	}
}

func BenchmarkParseFrameHeader(b *testing.B) {
	h := FrameHeaders(FrameMeta{Seq: 7, Time: 1700000000000000000, Width: 1280, Height: 720})
	b.ReportAllocs()
	for range b.N {
		if _, err := ParseFrameHeader(h); err != nil {
			b.Fatal(err)
		}
	}
}

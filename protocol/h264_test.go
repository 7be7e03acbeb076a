package protocol

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

var (
	spsNAL   = []byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f}
	ppsNAL   = []byte{0, 0, 0, 1, 0x68, 0xce}
	idrNAL   = []byte{0, 0, 1, 0x65, 0x88}
	sliceNAL = []byte{0, 0, 0, 1, 0x41, 0x9a}
)

func cat(bs ...[]byte) []byte { return slices.Concat(bs...) }

func TestCheckH264(t *testing.T) {
	for _, tc := range []struct {
		name string
		au   []byte
		key  bool
		ok   bool
	}{
		{"keyframe", cat(spsNAL, ppsNAL, idrNAL), true, true},
		{"delta", sliceNAL, false, true},
		{"keyframe without SPS", cat(ppsNAL, idrNAL), true, false},
		{"keyframe marked as delta", cat(spsNAL, ppsNAL, idrNAL), false, false},
		{"delta marked as keyframe", sliceNAL, true, false},
		{"no start code", []byte{0x41, 0x9a}, false, false},
		{"parameter sets only", cat(spsNAL, ppsNAL), false, false},
		{"empty NAL unit", []byte{0, 0, 1, 0, 0, 1, 0x41}, false, false},
		{"forbidden bit", []byte{0, 0, 1, 0xc1, 0x9a}, false, false},
		{"JPEG", []byte{0xff, 0xd8, 0xff, 0xd9}, false, false},
	} {
		err := CheckH264(tc.au, tc.key)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadFrame)) {
			t.Errorf("%s: CheckH264 = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if !IsKeyframe(cat(spsNAL, ppsNAL, idrNAL)) || IsKeyframe(sliceNAL) {
		t.Error("IsKeyframe")
	}
	if c, err := H264CodecString(cat(spsNAL, ppsNAL, idrNAL)); err != nil || c != "avc1.42C01F" {
		t.Errorf("H264CodecString = %q, %v; want avc1.42C01F", c, err)
	}
	if _, err := H264CodecString(sliceNAL); err == nil {
		t.Error("a codec string from an access unit without SPS")
	}
}

func TestH264Subjects(t *testing.T) {
	a, _ := NewAddress("lobby", "alice")
	if got := a.FrameSubject(H264Lo); got != "vidhub.lobby.alice.h264lo" {
		t.Errorf("FrameSubject(H264Lo) = %q", got)
	}
	s, err := ParseSubject(a.KeySubject())
	if err != nil || !s.Key || s.Presence || s.Participant() != "alice" {
		t.Errorf("ParseSubject(%q) = %+v, %v", a.KeySubject(), s, err)
	}
	for l, want := range map[Layer][3]any{Hi: {CodecJPEG, false, H264}, Lo: {CodecJPEG, true, H264Lo}, H264: {CodecH264, false, H264}, H264Lo: {CodecH264, true, H264Lo}} {
		if l.Codec() != want[0] || l.Small() != want[1] || l.As(CodecH264) != want[2] || l.As(CodecJPEG).Small() != l.Small() {
			t.Errorf("layer %s: codec %s small %v as h264 %s", l, l.Codec(), l.Small(), l.As(CodecH264))
		}
	}
	if _, err := ParseLayer("h265"); err == nil {
		t.Error("ParseLayer accepts h265")
	}
}

// TestPresenceV2 checks the presence fields protocol v2 adds: they round
// trip, a v1 reader finds only v1 layers where it looks, bad codec strings
// are refused and later codecs' layers skipped.
func TestPresenceV2(t *testing.T) {
	p := Presence{Role: RolePublisher, Started: time.Unix(1, 0).UTC()}
	p.SetLayers([]LayerInfo{{Layer: Hi, Width: 1280, Height: 720, FPS: 30}, {Layer: H264, Width: 1280, Height: 720, FPS: 30, Codec: "avc1.42C01F", Bitrate: 1382400}})
	p.SetViews([]Layer{Lo, H264Lo})
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePresence(b)
	if err != nil || !got.Sends(H264) || !got.Sends(Hi) || !slices.Equal(got.AllViews(), []Layer{Lo, H264Lo}) {
		t.Fatalf("round trip of %s: %+v, %v", b, got, err)
	}
	// What a v1 reader reads: "v", "layers" and "views", JPEG only.
	var v1 struct {
		V      int `json:"v"`
		Layers []struct {
			Layer string `json:"layer"`
		} `json:"layers"`
		Views []string `json:"views"`
	}
	if err := json.Unmarshal(b, &v1); err != nil || v1.V != 1 || len(v1.Layers) != 1 || v1.Layers[0].Layer != "hi" || !slices.Equal(v1.Views, []string{"lo"}) {
		t.Errorf("a v1 reader of %s gets %+v, %v", b, v1, err)
	}
	for _, bad := range []string{
		`{"v":1,"role":"publisher","streams":[{"layer":"h264","codec":"vp8"}]}`,
		`{"v":1,"role":"publisher","layers":[{"layer":"h264"}]}`,
		`{"v":1,"role":"viewer","views":["h264"]}`,
		`{"v":1,"role":"publisher","streams":[{"layer":"h264","codec":"avc1.42C01F","bitrate":-1}]}`,
	} {
		if _, err := DecodePresence([]byte(bad)); !errors.Is(err, ErrBadPresence) {
			t.Errorf("DecodePresence(%s) = %v, want ErrBadPresence", bad, err)
		}
	}
	later, err := DecodePresence([]byte(`{"v":1,"role":"viewer","watches":["av1","h264"],"streams":[{"layer":"av1","codec":"av01.0.04M.08"}]}`))
	if err != nil || !slices.Equal(later.Watches, []Layer{H264}) || len(later.Streams) != 0 {
		t.Errorf("later codecs: %+v, %v; want them skipped", later, err)
	}
}

func TestGOP(t *testing.T) {
	key, delta := cat(spsNAL, ppsNAL, idrNAL), sliceNAL
	body := AppendGOP(AppendGOP(nil, 10, key), 20, delta)
	us, err := SplitGOP(body, 2)
	if err != nil || len(us) != 2 || us[0].Time != 10 || us[1].Time != 20 || !slices.Equal(us[1].AU, delta) {
		t.Fatalf("SplitGOP = %+v, %v", us, err)
	}
	for _, tc := range []struct {
		body []byte
		n    int
	}{
		{body, 3},                                  // fewer than it says
		{body, 1},                                  // more than it says
		{AppendGOP(nil, 10, delta), 1},             // not starting at a keyframe
		{body[:len(body)-1], 2},                    // truncated
		{AppendGOP(nil, 0, key), 1},                // no capture time
		{AppendGOP(nil, 10, key), MaxGOP + 1},      // too many
		{append(AppendGOP(nil, 10, key), 0, 0), 1}, // trailing bytes
	} {
		if _, err := SplitGOP(tc.body, tc.n); !errors.Is(err, ErrBadFrame) {
			t.Errorf("SplitGOP(%d bytes, %d) = %v, want ErrBadFrame", len(tc.body), tc.n, err)
		}
	}
}

// gopHeader is a GOP reply's headers: count access units from seq, the
// first captured at 1, 64x48.
func gopHeader(count, seq string) nats.Header {
	return nats.Header{
		HeaderContentType: {ContentTypeGOP},
		HeaderCount:       {count},
		HeaderSeq:         {seq},
		HeaderTime:        {"1"},
		HeaderSize:        {"64x48"},
	}
}

func TestGOPRun(t *testing.T) {
	var r GOPRun[int]
	check := func(step string, want []int, bytes int) {
		t.Helper()
		if got := r.Units(); !slices.Equal(got, want) || r.Bytes() != bytes {
			t.Fatalf("%s: run %v of %d bytes, want %v of %d", step, got, r.Bytes(), want, bytes)
		}
	}
	if r.Add(1, false, 10) {
		t.Fatal("kept an access unit that no keyframe leads to")
	}
	check("no keyframe yet", nil, 0)
	if !r.Add(2, true, 100) || !r.Add(3, false, 10) {
		t.Fatal("did not keep a keyframe and the unit after it")
	}
	check("one GOP", []int{2, 3}, 110)
	r.Add(4, true, 50)
	check("the next keyframe", []int{4}, 50)

	// Too many units: the run is dropped and nothing is kept until the
	// next keyframe.
	for i := 1; i < MaxGOP; i++ {
		if !r.Add(i, false, 1) {
			t.Fatalf("unit %d of %d was not kept", i+1, MaxGOP)
		}
	}
	if len(r.Units()) != MaxGOP || r.Add(0, false, 1) {
		t.Fatalf("a run of %d units took one more, want it dropped at %d", len(r.Units()), MaxGOP)
	}
	check("too many units", nil, 0)
	if r.Add(5, false, 1) {
		t.Fatal("kept a unit after a dropped run, before a keyframe")
	}

	// Too many bytes, a keyframe alone included.
	r.Add(6, true, MaxGOPBytes-10)
	if r.Add(7, false, 11) {
		t.Fatal("kept a unit past MaxGOPBytes")
	}
	check("too many bytes", nil, 0)
	if r.Add(8, true, MaxGOPBytes+1) {
		t.Fatal("kept a keyframe larger than MaxGOPBytes")
	}
	r.Add(9, true, MaxGOPBytes)
	check("a keyframe of MaxGOPBytes", []int{9}, MaxGOPBytes)
	r.Reset()
	check("reset", nil, 0)
}

func TestParseGOP(t *testing.T) {
	key, delta := cat(spsNAL, ppsNAL, idrNAL), sliceNAL
	body := AppendGOP(AppendGOP(AppendGOP(nil, 10, key), 20, delta), 30, delta)
	gop, err := ParseGOP(gopHeader("3", "41"), body)
	if err != nil || len(gop) != 3 {
		t.Fatalf("ParseGOP = %+v, %v", gop, err)
	}
	for i, g := range gop {
		want := FrameMeta{Seq: 41 + uint64(i), Time: int64(10 * (i + 1)), Width: 64, Height: 48, Codec: CodecH264, Key: i == 0}
		if g.Meta != want || !slices.Equal(g.AU, [][]byte{key, delta, delta}[i]) {
			t.Errorf("access unit %d: %+v, want %+v", i, g.Meta, want)
		}
	}
	with := func(k, v string) nats.Header {
		h := gopHeader("3", "41")
		h.Set(k, v)
		return h
	}
	for _, tc := range []struct {
		name string
		h    nats.Header
		body []byte
	}{
		{"a frame's content type", with(HeaderContentType, ContentTypeH264), body},
		{"no count", with(HeaderCount, ""), body},
		{"count not a number", with(HeaderCount, "three"), body},
		{"count wrong", gopHeader("2", "41"), body},
		{"no seq", with(HeaderSeq, ""), body},
		{"seq 0", with(HeaderSeq, "0"), body},
		{"numbers overflow", with(HeaderSeq, strconv.FormatUint(math.MaxUint64-1, 10)), body},
		{"no time", with(HeaderTime, ""), body},
		{"bad size", with(HeaderSize, "64"), body},
		{"not starting at a keyframe", gopHeader("1", "41"), AppendGOP(nil, 10, delta)},
	} {
		if gop, err := ParseGOP(tc.h, tc.body); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: ParseGOP = %d access units, %v; want ErrBadFrame", tc.name, len(gop), err)
		}
	}
	if gop, err := ParseGOP(with(HeaderSeq, strconv.FormatUint(math.MaxUint64-3, 10)), body); err != nil || gop[2].Meta.Seq != math.MaxUint64-1 {
		t.Errorf("numbers near the last: %v", err)
	}
}

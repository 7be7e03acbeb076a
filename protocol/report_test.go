package protocol

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReport(t *testing.T) {
	r := Report{Layer: H264Lo, Interval: 500, Frames: 15, Missed: 1,
		Bytes: 1 << 30, DelayMin: -3_600_000, DelayMax: 120}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) >= 200 {
		t.Errorf("a report is %d bytes, want < 200: %s", len(b), b)
	}
	got, err := DecodeReport(b)
	if err != nil || got != r {
		t.Fatalf("DecodeReport(%s) = %+v, %v; want %+v", b, got, err, r)
	}
	if rate := (Report{Interval: 500, Bytes: 62_500}).ReceiveRate(); rate != 1_000_000 {
		t.Errorf("62500 bytes in 500 ms = %v bit/s, want 1e6", rate)
	}
	// A name in the document says nothing: the subject names the sender.
	if got, err := DecodeReport([]byte(`{"from":"bob","l":"h264","ms":500}`)); err != nil || got.From != "" {
		t.Errorf("DecodeReport took a sender from the document: %+v, %v", got, err)
	}
	for _, bad := range []string{
		`{"l":"hi","ms":500}`,
		`{"l":"h264","ms":0}`,
		`{"l":"h264","ms":500,"n":-1}`,
		`{"l":"h264","ms":500,"dmin":5,"dmax":4}`,
		`{"l":"h264","ms":500,"b":` + strings.Repeat("9", 300) + `}`,
		`not json`,
	} {
		if _, err := DecodeReport([]byte(bad)); !errors.Is(err, ErrBadReport) {
			t.Errorf("DecodeReport(%.60s) = %v, want ErrBadReport", bad, err)
		}
	}
	long := strings.Repeat("v", MaxNameLen)
	if s, err := ParseSubject(ParticipantReport("lobby", "cam", long)); err != nil || !s.Report || s.Frame() || s.Participant() != "cam" || s.From != long || s.String() != ParticipantReport("lobby", "cam", long) {
		t.Errorf("ParseSubject(%q) = %+v, %v", ParticipantReport("lobby", "cam", long), s, err)
	}
	for _, bad := range []string{"vidhub.lobby.cam.rr", "vidhub.lobby.cam.rr.*", "vidhub.lobby.cam.rr.a.b", "vidhub.lobby.cam.rr."} {
		if s, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) = %+v, want an error", bad, s)
		}
	}
}

func FuzzDecodeReport(f *testing.F) {
	f.Add([]byte(`{"from":"v","l":"h264","ms":500,"n":15,"miss":0,"b":90000,"dmin":10,"dmax":30}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReport(b)
		if err != nil {
			return
		}
		if r.ReceiveRate() < 0 || r.Layer.Codec() != CodecH264 {
			t.Fatalf("DecodeReport(%q) = %+v", b, r)
		}
	})
}

func TestReportCount(t *testing.T) {
	var r Report
	r.Count(0, 40*time.Millisecond, 1000)
	r.Count(2, 25*time.Millisecond, 500)
	r.Count(1<<40, 90*time.Millisecond, 10)
	want := Report{Frames: 3, Missed: 2 + 1<<20, Bytes: 1510, DelayMin: 25, DelayMax: 90}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
	var neg Report
	neg.Count(0, -3*time.Hour, 1) // a viewer's clock behind the publisher's
	if neg.DelayMin != -10_800_000 || neg.DelayMax != neg.DelayMin {
		t.Errorf("a negative delay: %+v", neg)
	}
}

package media

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/vidhub/vidhub/protocol"
)

func nal(b ...byte) []byte { return append([]byte{0, 0, 0, 1}, b...) }

func nalTypes(au []byte) []int {
	var ts []int
	_ = protocol.SplitAnnexB(au, func(n []byte) bool { ts = append(ts, protocol.NALType(n)); return true })
	return ts
}

// TestAssembler joins the slices of one picture that an RTSP demuxer
// hands out one by one, drops parameter sets repeated between them, and
// starts a new access unit at each picture's first slice.
func TestAssembler(t *testing.T) {
	sps, pps, aud := nal(0x67, 0x42, 0xc0, 0x1e), nal(0x68, 0xce), nal(0x09, 0xf0)
	idr0, idr1 := nal(0x65, 0x88, 0x01), nal(0x65, 0x40, 0x02) // first_mb 0, then not
	p0, p1 := nal(0x41, 0x9a, 0x03), nal(0x41, 0x40, 0x04)
	var a assembler
	var got [][]byte
	var pts []time.Duration
	for i, pkt := range [][]byte{
		bytes.Join([][]byte{aud, sps, pps, idr0}, nil), // picture 1, first slice
		bytes.Join([][]byte{sps, pps, idr1}, nil),      // its second slice, parameter sets repeated
		bytes.Join([][]byte{aud, p0, p1}, nil),         // picture 2, whole
		p0,                                             // picture 3, first slice
		p1,                                             // its second slice
	} {
		if au, at, ok := a.push(pkt, time.Duration(i)); ok {
			got = append(got, bytes.Clone(au))
			pts = append(pts, at)
		}
	}
	if au, at, ok := a.flush(); ok {
		got = append(got, bytes.Clone(au))
		pts = append(pts, at)
	}
	want := [][]int{{9, 7, 8, 5, 5}, {9, 1, 1}, {1, 1}}
	if len(got) != len(want) {
		t.Fatalf("%d access units, want %d", len(got), len(want))
	}
	for i := range want {
		if ts := nalTypes(got[i]); !slices.Equal(ts, want[i]) {
			t.Errorf("access unit %d holds NAL units %v, want %v", i, ts, want[i])
		}
	}
	if pts[0] != 0 || pts[1] != 2 || pts[2] != 3 {
		t.Errorf("timestamps %v, want 0, 2, 3", pts)
	}
	if err := protocol.CheckH264(got[0], true); err != nil {
		t.Errorf("the keyframe: %v", err)
	}
}

package protocol

import (
	"math"
	"testing"
)

// TestChain runs frames through a Chain and checks which pass: latest
// decodable frame wins.
func TestChain(t *testing.T) {
	// A step offers a frame (key or delta, numbered seq, on layer l, H264
	// if unset) and wants pass and restart; or, with op set, breaks or
	// mends the chain.
	type step struct {
		op            string // "", "break", "mend" (to seq) or "old" (a delta seq that Old must find old, or not: pass)
		l             Layer
		key           bool
		seq           uint64
		pass, restart bool
	}
	k := func(seq uint64, pass, restart bool) step {
		return step{key: true, seq: seq, pass: pass, restart: restart}
	}
	d := func(seq uint64, pass, restart bool) step { return step{seq: seq, pass: pass, restart: restart} }
	on := func(l Layer, s step) step { s.l = l; return s }
	const top = math.MaxUint64
	for _, tc := range []struct {
		name  string
		steps []step
		// after all steps
		layer Layer
		seq   uint64
	}{
		{"starts at a keyframe", []step{k(1, true, true), d(2, true, false), d(3, true, false)}, H264, 3},
		{"joins mid-GOP", []step{d(5, false, true), d(6, false, false), k(7, true, false), d(8, true, false)}, H264, 8},
		{"gap", []step{k(1, true, true), d(2, true, false), d(4, false, false), d(5, false, false), k(6, true, false), d(7, true, false)}, H264, 7},
		{"gap before a keyframe", []step{k(1, true, true), d(2, true, false), k(4, true, false), d(5, true, false)}, H264, 5},
		{"gap just after a keyframe", []step{d(1, false, true), k(2, true, false), d(4, false, false)}, H264, 4},
		{"duplicate", []step{k(1, true, true), d(2, true, false), d(2, false, true), d(3, false, false), k(4, true, false)}, H264, 4},
		{"older frame", []step{k(1, true, true), d(2, true, false), d(3, true, false), d(2, false, true), d(3, false, false)}, H264, 3},
		{"publisher starts again at a keyframe", []step{k(1, true, true), d(2, true, false), d(3, true, false), k(1, true, true), d(2, true, false)}, H264, 2},
		{"publisher starts again mid-GOP", []step{k(7, true, true), d(8, true, false), d(1, false, true), d(2, false, false), k(3, true, false)}, H264, 3},
		{"numbers run out", []step{k(top-1, true, true), d(top, true, false), d(1, false, true), k(2, true, false)}, H264, 2},
		{"another layer", []step{
			k(1, true, true), d(2, true, false),
			on(H264Lo, d(3, false, true)), on(H264Lo, d(4, false, false)), on(H264Lo, k(5, true, false)), on(H264Lo, d(6, true, false)),
			d(7, false, true), k(8, true, false),
		}, H264, 8},
		{"a new layer at a keyframe", []step{k(1, true, true), on(H264Lo, k(9, true, true)), on(H264Lo, d(10, true, false))}, H264Lo, 10},
		{"not numbered", []step{d(0, false, true), k(0, true, false), d(0, true, false), d(0, true, false)}, H264, 0},
		{"numbered later", []step{k(0, true, true), d(5, true, false), d(6, true, false), d(8, false, false)}, H264, 8},
		{"not numbered between", []step{k(1, true, true), d(0, true, false), d(2, true, false), d(0, true, false), d(4, false, false)}, H264, 4},
		{"broken", []step{k(1, true, true), d(2, true, false), {op: "break"}, d(3, false, false), d(4, false, false), k(5, true, false), d(6, true, false)}, H264, 6},
		{"broken at a keyframe", []step{k(1, true, true), {op: "break"}, k(2, true, false), d(3, true, false)}, H264, 3},
		{"mended", []step{d(4, false, true), d(5, false, false), {op: "mend", seq: 5}, d(6, true, false), d(8, false, false)}, H264, 8},
		{"mended ahead of live frames", []step{
			d(4, false, true), d(5, false, false), {op: "mend", seq: 8},
			{op: "old", seq: 6, pass: true}, {op: "old", seq: 7, pass: true}, {op: "old", seq: 8, pass: true},
			{op: "old", seq: 9}, d(9, true, false), {op: "old", seq: 7}, d(10, true, false),
		}, H264, 10},
		{"a keyframe after mending is not old", []step{
			d(4, false, true), {op: "mend", seq: 8}, k(7, true, true), {op: "old", seq: 8}, d(8, true, false), d(9, true, false),
		}, H264, 9},
	} {
		var c Chain
		if !c.NeedKey() {
			t.Fatalf("%s: a new Chain does not wait for a keyframe", tc.name)
		}
		for i, s := range tc.steps {
			switch s.op {
			case "break":
				c.Break()
				if !c.NeedKey() {
					t.Errorf("%s: step %d: broken, yet NeedKey is false", tc.name, i)
				}
				continue
			case "mend":
				c.Mend(s.seq)
				if c.NeedKey() {
					t.Errorf("%s: step %d: mended, yet NeedKey is true", tc.name, i)
				}
				continue
			case "old":
				if old := c.Old(H264, FrameMeta{Seq: s.seq, Codec: CodecH264}); old != s.pass {
					t.Errorf("%s: step %d: Old(delta %d) = %v, want %v", tc.name, i, s.seq, old, s.pass)
				}
				continue
			}
			l := s.l
			if l == "" {
				l = H264
			}
			pass, restart := c.Offer(l, FrameMeta{Seq: s.seq, Key: s.key, Codec: CodecH264})
			if pass != s.pass || restart != s.restart {
				t.Errorf("%s: step %d (%s key %v seq %d): pass %v restart %v, want %v %v", tc.name, i, l, s.key, s.seq, pass, restart, s.pass, s.restart)
			}
			if c.NeedKey() == pass {
				t.Errorf("%s: step %d: NeedKey %v after a frame that passed: %v", tc.name, i, c.NeedKey(), pass)
			}
		}
		if c.Layer() != tc.layer || c.Seq() != tc.seq {
			t.Errorf("%s: ends on layer %s seq %d, want %s %d", tc.name, c.Layer(), c.Seq(), tc.layer, tc.seq)
		}
	}
}

package media

import (
	"time"

	"github.com/vidhub/vidhub/protocol"
)

// assembler turns a demuxer's packets into whole access units. Packets
// do not always hold one picture each: FFmpeg's RTSP demuxer hands out a
// picture coded in several slices (x264's sliced threads, most IP
// cameras) one slice at a time, and some senders repeat SPS and PPS
// before every slice of an IDR picture. Published one packet per message,
// each slice would be a "picture" that decoders conceal. The assembler
// joins the slices of one picture: a picture starts at a slice whose
// first_mb_in_slice is 0; the parameter sets, SEI and delimiters ahead of
// it belong to it, and parameter sets repeated between the slices of one
// picture are dropped. An access unit is complete when the next one
// starts (or at the end), so it comes out one packet late.
type assembler struct {
	cur     []byte        // the access unit being assembled (Annex B)
	curPTS  time.Duration // of its first slice
	hasVCL  bool          // cur holds a slice
	prefix  []byte        // non-slice NAL units since cur's last slice
	out     []byte        // the access unit handed out last
	outPTS  time.Duration
	emitted bool
}

var startCode4 = []byte{0, 0, 0, 1}

// push adds one packet (Annex B) with the timestamp pts. It returns a
// complete access unit when this packet starts the next one; the bytes
// are valid until the next call.
func (a *assembler) push(pkt []byte, pts time.Duration) (au []byte, auPTS time.Duration, ok bool) {
	_ = protocol.SplitAnnexB(pkt, func(nal []byte) bool {
		switch t := protocol.NALType(nal); t {
		case protocol.NALSlice, protocol.NALIDR, 2, 3, 4:
			first := len(nal) > 1 && nal[1]&0x80 != 0 // first_mb_in_slice == 0: ue(v) "1"
			if first && a.hasVCL {
				// The next picture starts: cur is complete.
				a.out = append(a.out[:0], a.cur...)
				a.outPTS, a.emitted = a.curPTS, true
				au, auPTS, ok = a.out, a.outPTS, true
				a.cur = append(a.cur[:0], a.prefix...)
				a.hasVCL = false
			} else if a.hasVCL {
				// Another slice of the same picture: what came between
				// the slices (repeated parameter sets) is dropped.
			} else {
				a.cur = append(a.cur, a.prefix...)
			}
			a.prefix = a.prefix[:0]
			if !a.hasVCL {
				a.curPTS = pts
			}
			a.cur = append(append(a.cur, startCode4...), nal...)
			a.hasVCL = true
		default:
			if a.hasVCL {
				a.prefix = append(append(a.prefix, startCode4...), nal...)
			} else {
				a.cur = append(append(a.cur, startCode4...), nal...)
			}
		}
		return true
	})
	return au, auPTS, ok
}

// flush returns the access unit still being assembled (at the end of a
// file).
func (a *assembler) flush() (au []byte, pts time.Duration, ok bool) {
	if !a.hasVCL {
		return nil, 0, false
	}
	a.out = append(a.out[:0], a.cur...)
	a.cur, a.prefix, a.hasVCL = a.cur[:0], a.prefix[:0], false
	return a.out, a.curPTS, true
}

//go:build cgo && !vidhub_lite

package media

import (
	"fmt"

	"github.com/vidhub/vidhub/protocol"
)

// frameNums follows the frame_num of the slices a decoder is given, to
// find the gaps FFmpeg conceals without saying so: a lost reference
// picture shows as a frame_num that skips one (H.264 7.4.3, "gaps in
// frame_num"). It reads only what it needs of SPS, PPS and slice headers;
// what it cannot read it lets pass.
type frameNums struct {
	sps     [32]spsInfo
	ppsSPS  [256]int // the SPS each PPS refers to, plus one (0: unknown)
	prevRef int      // the frame_num of the last reference picture, or -1
	valid   bool     // prevRef is known
}

type spsInfo struct {
	known          bool
	log2MaxFrame   uint
	gapsAllowed    bool
	separateColour bool
}

// check reads the access unit au and returns an error if a reference
// picture is missing ahead of it.
func (f *frameNums) check(au []byte) error {
	var gap error
	_ = protocol.SplitAnnexB(au, func(nal []byte) bool {
		switch protocol.NALType(nal) {
		case protocol.NALSPS:
			f.readSPS(nal)
		case protocol.NALPPS:
			f.readPPS(nal)
		case protocol.NALSlice, protocol.NALIDR:
			gap = f.slice(nal)
			return false // the first slice says all
		}
		return true
	})
	return gap
}

func (f *frameNums) readSPS(nal []byte) {
	r := newBitReader(nal[1:])
	profile := r.bits(8)
	r.bits(16) // constraint flags, level
	id := r.ue()
	if r.err || id >= uint(len(f.sps)) {
		return
	}
	var s spsInfo
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma := r.ue()
		if chroma == 3 {
			s.separateColour = r.bits(1) == 1
		}
		r.ue() // bit_depth_luma_minus8
		r.ue() // bit_depth_chroma_minus8
		r.bits(1)
		if r.bits(1) == 1 { // seq_scaling_matrix_present_flag
			n := 8
			if chroma == 3 {
				n = 12
			}
			for i := 0; i < n && !r.err; i++ {
				if r.bits(1) == 1 {
					size := 16
					if i >= 6 {
						size = 64
					}
					last, next := 8, 8
					for j := 0; j < size && !r.err; j++ {
						if next != 0 {
							next = (last + r.se() + 256) % 256
						}
						if next != 0 {
							last = next
						}
					}
				}
			}
		}
	}
	s.log2MaxFrame = r.ue() + 4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue()
	case 1:
		r.bits(1)
		r.se()
		r.se()
		n := r.ue()
		for i := uint(0); i < n && i < 256 && !r.err; i++ {
			r.se()
		}
	}
	r.ue() // max_num_ref_frames
	s.gapsAllowed = r.bits(1) == 1
	if r.err || s.log2MaxFrame > 16 {
		f.sps[id] = spsInfo{}
		return
	}
	s.known = true
	f.sps[id] = s
}

func (f *frameNums) readPPS(nal []byte) {
	r := newBitReader(nal[1:])
	id := r.ue()
	sps := r.ue()
	if !r.err && id < uint(len(f.ppsSPS)) && sps < uint(len(f.sps)) {
		f.ppsSPS[id] = int(sps) + 1
	}
}

func (f *frameNums) slice(nal []byte) error {
	idr := protocol.NALType(nal) == protocol.NALIDR
	ref := nal[0]&0x60 != 0
	r := newBitReader(nal[1:])
	r.ue() // first_mb_in_slice
	r.ue() // slice_type
	pps := r.ue()
	if r.err || pps >= uint(len(f.ppsSPS)) || f.ppsSPS[pps] == 0 {
		f.valid = false
		return nil
	}
	s := f.sps[f.ppsSPS[pps]-1]
	if !s.known {
		f.valid = false
		return nil
	}
	if s.separateColour {
		r.bits(2)
	}
	num := int(r.bits(s.log2MaxFrame))
	if r.err {
		f.valid = false
		return nil
	}
	var gap error
	if !idr && f.valid && !s.gapsAllowed && num != f.prevRef && num != (f.prevRef+1)%(1<<s.log2MaxFrame) {
		gap = fmt.Errorf("a reference picture is missing: frame_num went from %d to %d", f.prevRef, num)
	}
	if idr || ref {
		f.prevRef, f.valid = num, true
	}
	return gap
}

// bitReader reads an RBSP (emulation prevention bytes dropped) bit by
// bit; reading past its end sets err and yields zeros.
type bitReader struct {
	b   []byte
	pos uint
	err bool
}

func newBitReader(nal []byte) *bitReader {
	const most = 256 // enough for any header media reads
	rbsp := make([]byte, 0, min(len(nal), most))
	zeros := 0
	for _, c := range nal {
		if len(rbsp) == most {
			break
		}
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		rbsp = append(rbsp, c)
	}
	return &bitReader{b: rbsp}
}

func (r *bitReader) bits(n uint) uint {
	var v uint
	for range n {
		if r.pos >= uint(len(r.b))*8 {
			r.err = true
			return 0
		}
		v = v<<1 | uint(r.b[r.pos/8]>>(7-r.pos%8))&1
		r.pos++
	}
	return v
}

// ue reads an unsigned Exp-Golomb code.
func (r *bitReader) ue() uint {
	zeros := uint(0)
	for r.bits(1) == 0 {
		if r.err || zeros == 31 {
			r.err = true
			return 0
		}
		zeros++
	}
	return (1<<zeros - 1) + r.bits(zeros)
}

// se reads a signed Exp-Golomb code.
func (r *bitReader) se() int {
	v := r.ue()
	if v%2 == 1 {
		return int(v/2) + 1
	}
	return -int(v / 2)
}

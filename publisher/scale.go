package publisher

import (
	"encoding/binary"
	"image"
)

// scaleRGBA resizes src into dst (any sizes, dst allocated by caller), with
// area averaging when shrinking and nearest neighbour when growing.
//
// It runs once per frame to derive the ~320-px "lo" layer from the full
// frame, so it allocates nothing and does only integer work. Each axis is
// handled independently: a shrinking axis maps every destination pixel to a
// run of whole source pixels (a box filter whose width varies by at most one
// pixel for non-integer ratios, which is exact for the common 2x/4x cases and
// needs no weight tables), a growing axis samples the nearest source pixel
// centre. Pixels are averaged as stored; image.RGBA is alpha-premultiplied so
// that is the correct way to blend them. Either image may be a sub-image
// (non-zero Rect.Min, Stride wider than the row); empty images are a no-op.
func scaleRGBA(dst, src *image.RGBA) {
	dw, dh := dst.Rect.Dx(), dst.Rect.Dy()
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	if dw <= 0 || dh <= 0 || sw <= 0 || sh <= 0 {
		return
	}
	// Pix[0] is the pixel at Rect.Min for any image.RGBA, including
	// sub-images, so row y starts at y*Stride.
	if dw == sw && dh == sh {
		for y := 0; y < dh; y++ {
			copy(dst.Pix[y*dst.Stride:y*dst.Stride+dw*4], src.Pix[y*src.Stride:y*src.Stride+sw*4])
		}
		return
	}

	ys := newScaleSpan(sh, dh)
	prevY0, prevY1 := -1, -1
	var prevRow []byte
	for dy := 0; dy < dh; dy++ {
		y0, y1 := ys.next()
		drow := dst.Pix[dy*dst.Stride : dy*dst.Stride+dw*4]
		// When growing vertically several destination rows sample the same
		// source row; copying the finished row is much cheaper than
		// recomputing it.
		if y0 == prevY0 && y1 == prevY1 {
			copy(drow, prevRow)
			continue
		}
		prevY0, prevY1, prevRow = y0, y1, drow
		rows := y1 - y0
		srcRow0 := y0 * src.Stride

		xs := newScaleSpan(sw, dw)
		var lastN, m uint64
		for dx := 0; dx < dw; dx++ {
			x0, x1 := xs.next()
			d := drow[dx*4 : dx*4+4 : dx*4+4]
			cw := x1 - x0
			n := uint64(cw * rows)
			if n == 1 {
				s := src.Pix[srcRow0+x0*4 : srcRow0+x0*4+4 : srcRow0+x0*4+4]
				d[0], d[1], d[2], d[3] = s[0], s[1], s[2], s[3]
				continue
			}
			var r, g, b, a uint64
			off := srcRow0 + x0*4
			if (cw+1)/2*rows <= scaleMaxLaneCount {
				// SWAR: read two pixels as one uint64 and add the even
				// bytes (R, B) and odd bytes (G, A) into 16-bit lanes of
				// two accumulators. This is about three times faster than
				// adding byte by byte, and is the path the lo layer takes.
				// Four pixels per step into two accumulator pairs, so the
				// 4x4 boxes of the lo layer take one step per row and the
				// additions do not wait on each other.
				var even, odd, even2, odd2 uint64
				for y := 0; y < rows; y++ {
					s := src.Pix[off : off+cw*4]
					i := 0
					for ; i+16 <= len(s); i += 16 {
						q := s[i : i+16 : i+16]
						v := binary.LittleEndian.Uint64(q)
						w := binary.LittleEndian.Uint64(q[8:])
						even += v & scaleLaneMask
						odd += v >> 8 & scaleLaneMask
						even2 += w & scaleLaneMask
						odd2 += w >> 8 & scaleLaneMask
					}
					if i+8 <= len(s) {
						v := binary.LittleEndian.Uint64(s[i:])
						even += v & scaleLaneMask
						odd += v >> 8 & scaleLaneMask
						i += 8
					}
					if i < len(s) {
						v := uint64(binary.LittleEndian.Uint32(s[i:]))
						even += v & scaleLaneMask
						odd += v >> 8 & scaleLaneMask
					}
					off += src.Stride
				}
				// Each lane of the merged sums still holds at most
				// scaleMaxLaneCount bytes.
				even += even2
				odd += odd2
				r = even&0xffff + even>>32&0xffff
				b = even>>16&0xffff + even>>48
				g = odd&0xffff + odd>>32&0xffff
				a = odd>>16&0xffff + odd>>48
			} else {
				// 64-bit sums cannot overflow for any image that fits in
				// memory.
				for y := 0; y < rows; y++ {
					s := src.Pix[off : off+cw*4]
					for i := 0; i+3 < len(s); i += 4 {
						r += uint64(s[i])
						g += uint64(s[i+1])
						b += uint64(s[i+2])
						a += uint64(s[i+3])
					}
					off += src.Stride
				}
			}
			h := n / 2
			if n <= scaleMaxRecipCount {
				// Multiply by a 48-bit fixed-point reciprocal instead of
				// four hardware divides per pixel. The box size rarely
				// changes along a row, so the one division is cached too.
				if n != lastN {
					lastN, m = n, (1<<48+n-1)/n
				}
				d[0] = uint8((r + h) * m >> 48)
				d[1] = uint8((g + h) * m >> 48)
				d[2] = uint8((b + h) * m >> 48)
				d[3] = uint8((a + h) * m >> 48)
			} else {
				d[0] = uint8((r + h) / n)
				d[1] = uint8((g + h) / n)
				d[2] = uint8((b + h) / n)
				d[3] = uint8((a + h) / n)
			}
		}
	}
}

// scaleLaneMask selects bytes 0, 2, 4 and 6 of a uint64 into four 16-bit
// lanes for the SWAR box sum.
const scaleLaneMask = 0x00ff00ff00ff00ff

// scaleMaxLaneCount is how many bytes of up to 255 a 16-bit lane can sum
// without carrying into its neighbour: 257*255 = 65535.
const scaleMaxLaneCount = 257

// scaleMaxRecipCount bounds the pixel count for which x*ceil(2^48/n)>>48 equals
// x/n for every x <= 256*n: the rounding error of the reciprocal is below
// x/2^48, which stays under 1/n while 256*n*n < 2^48, i.e. n < 2^20, and the
// product stays below 2^57. Larger boxes only occur when shrinking something
// like 4K to a handful of pixels, so they simply take plain division.
const scaleMaxRecipCount = 1<<20 - 1

// scaleSpan walks destination pixels along one axis, yielding the half-open
// source range each maps to. It steps an exact rational position with a
// quotient/remainder pair so there is no division per pixel.
type scaleSpan struct {
	q, r   int // current position: q + r/den source pixels
	qs, rs int // step per destination pixel: qs + rs/den
	den    int
	grow   bool
}

// newScaleSpan prepares the walk for scaling srcN pixels to dstN pixels.
// Shrinking (srcN >= dstN) yields [floor(i*srcN/dstN), floor((i+1)*srcN/dstN)),
// which is never empty and tiles the source exactly. Growing yields the single
// source pixel under the destination pixel's centre,
// floor((2i+1)*srcN/(2*dstN)).
func newScaleSpan(srcN, dstN int) scaleSpan {
	if srcN >= dstN {
		return scaleSpan{qs: srcN / dstN, rs: srcN % dstN, den: dstN}
	}
	den := 2 * dstN
	return scaleSpan{q: srcN / den, r: srcN % den, qs: 2 * srcN / den, rs: 2 * srcN % den, den: den, grow: true}
}

// next returns the source range for the next destination pixel.
func (s *scaleSpan) next() (lo, hi int) {
	lo = s.q
	s.q += s.qs
	s.r += s.rs
	if s.r >= s.den {
		s.r -= s.den
		s.q++
	}
	if s.grow {
		return lo, lo + 1
	}
	return lo, s.q
}

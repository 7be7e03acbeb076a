package publisher

import (
	"encoding/binary"
	"hash/fnv"
	"image"
	"math"
	"time"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

const (
	// patternBands is how many horizontal stripes the background has. The
	// stripes alternate between a smooth hue gradient and hard-edged colour
	// bars and scroll at different speeds and directions, so motion is
	// obvious to a viewer and an encoder sees real edges moving.
	patternBands = 6

	// patternMaxNameRunes caps the burned-in name so a silly name cannot make
	// the renderer allocate huge text buffers; longer names are truncated.
	patternMaxNameRunes = 48

	// patternInfoMaxChars is the longest info line, "#<20 digits>  HH:MM:SS.mmm",
	// sized for the largest uint64 so the buffers never need to grow.
	patternInfoMaxChars = 1 + 20 + 2 + 12

	// patternTextPad is the box margin around text in unscaled font pixels.
	patternTextPad = 1
)

// patternFace is the font for all burned-in text: a fixed 7x13 bitmap font
// that needs no files and no cgo, and whose 1-bit glyphs stay crisp when
// integer-scaled with nearest neighbour.
var patternFace = basicfont.Face7x13

// patternRenderer draws frames of a synthetic moving picture with the
// participant name, a frame counter and a clock burned in.
//
// It is the "pattern" video source: it lets the hub be exercised end to end
// without a camera, and the counter and millisecond clock make latency and
// dropped frames visible on the receiving side. Everything that does not
// change from frame to frame (background stripes, the rendered name) is
// prepared in newPatternRenderer, so Render only copies rows and never
// allocates. A renderer is not safe for concurrent use.
type patternRenderer struct {
	w, h int
	img  *image.RGBA // returned by Render, reused every frame

	// Background: each band is one precomputed row holding period+w
	// pixels of a pattern that repeats every period pixels, so any
	// scroll offset in [0, period) is a single copy of w pixels.
	period    int
	bands     [patternBands][]byte
	bandSpeed [patternBands]int // pixels per frame; negative scrolls right
	nBands    int

	// Bouncing square, drawn by copying from solid rows.
	sq, sqBorder int
	sqVX, sqVY   int
	sqDark       []byte
	sqLight      []byte

	// Name box: text rendered once at 1:1 and blitted scaled every frame.
	nameImg          *image.RGBA
	nameW, nameScale int
	nameX, nameY     int
	nameFG, nameBG   uint32

	// Info box: counter and clock re-rendered at 1:1 every frame.
	infoImg        *image.RGBA
	infoDrawer     font.Drawer
	infoBuf        [patternInfoMaxChars]byte
	infoScale      int
	infoBottom     int // y of the box's bottom edge
	infoFG, infoBG uint32

	textH   int    // unscaled text box height including padding
	advance int    // glyph advance of patternFace in pixels
	ascent  int    // glyph ascent of patternFace in pixels
	line    []byte // one scaled row of a text box, reused

	// nameRect and infoRect are the visible (clipped) boxes of the last
	// Render; tests use them to find the text.
	nameRect, infoRect image.Rectangle
}

// newPatternRenderer prepares a renderer for w x h frames showing name.
// Sizes below 1 are raised to 1; the name is truncated to
// patternMaxNameRunes runes. The name also picks the picture's hues so that
// participants' tiles can be told apart at a glance.
func newPatternRenderer(name string, w, h int) *patternRenderer {
	w, h = max(w, 1), max(h, 1)
	if utf8.RuneCountInString(name) > patternMaxNameRunes {
		i, n := 0, 0
		for i = range name {
			if n == patternMaxNameRunes {
				break
			}
			n++
		}
		name = name[:i]
	}
	hash := fnv.New32a()
	hash.Write([]byte(name))
	hue := float64(hash.Sum32() % 360)

	m := patternFace.Metrics()
	p := &patternRenderer{
		w:       w,
		h:       h,
		img:     image.NewRGBA(image.Rect(0, 0, w, h)),
		period:  w,
		nBands:  min(patternBands, h),
		ascent:  m.Ascent.Ceil(),
		textH:   m.Ascent.Ceil() + m.Descent.Ceil() + 2*patternTextPad,
		advance: patternFace.Advance,
	}

	// Background bands. Scroll speed scales with width so the motion looks
	// the same at every resolution (about one screen width per 8 s at 30
	// fps for the slowest band).
	base := max(1, w/256)
	for b := 0; b < p.nBands; b++ {
		row := make([]byte, (p.period+w)*4)
		for x := 0; x < p.period+w; x++ {
			px := x % p.period
			var c uint32
			if b%2 == 0 {
				// Smooth gradient through all hues, darker further down.
				v := 0.95 - 0.25*float64(b)/float64(patternBands)
				c = patternHSV(hue+360*float64(px)/float64(p.period)+float64(b)*40, 0.75, v)
			} else {
				// Eight hard-edged bars alternating bright and dim.
				bar := px * 8 / p.period
				v := 0.95
				if bar%2 == 1 {
					v = 0.55
				}
				c = patternHSV(hue+float64(bar)*45+float64(b)*20, 0.9, v)
			}
			binary.LittleEndian.PutUint32(row[x*4:], c)
		}
		p.bands[b] = row
		speed := base * (1 + b%3)
		if b%2 == 1 {
			speed = -speed
		}
		p.bandSpeed[b] = speed
	}

	// Bouncing square with a dark border so it stands out on any band.
	p.sq = max(2, min(w, h)/5)
	p.sqBorder = max(1, p.sq/10)
	p.sqVX = max(1, w/160)
	p.sqVY = max(1, h/120)
	p.sqDark = patternSolidRow(p.sq, patternPack(16, 16, 16, 255))
	p.sqLight = patternSolidRow(p.sq, patternHSV(hue+180, 0.25, 1))

	// Name: big, centred near the top. Scale 1 per 90 rows (8x at 720p, so
	// still 26 px tall after a 4x downscale), reduced so it fits the width.
	p.nameW = font.MeasureString(patternFace, name).Ceil() + 2*patternTextPad
	p.nameImg = image.NewRGBA(image.Rect(0, 0, p.nameW, p.textH))
	d := font.Drawer{Dst: p.nameImg, Src: image.White, Face: patternFace,
		Dot: fixed.P(patternTextPad, patternTextPad+p.ascent)}
	d.DrawString(name)
	p.nameScale = max(1, min(h/90, (w*9/10)/p.nameW))
	// Box corners sit on multiples of the scale so that a downscale by the
	// same factor (720p to the 180-row "lo" layer) maps each font pixel to
	// exactly one output pixel instead of smearing it over two. A name
	// wider than the frame is left-aligned so it is cut at its end.
	p.nameX = max(0, (w-p.nameW*p.nameScale)/2/p.nameScale*p.nameScale)
	p.nameY = h / 10 / p.nameScale * p.nameScale
	p.nameFG = patternPack(255, 255, 255, 255)
	p.nameBG = patternHSV(hue, 0.7, 0.3)
	if name == "" {
		p.nameW = 0 // nothing to show; skip the empty box
	}

	// Info line: half the name's height (4x at 720p, native size after a
	// 4x downscale), reduced so the usual 21-character line with a 6-digit
	// counter fits the width, centred near the bottom.
	infoMaxW := patternInfoMaxChars*p.advance + 2*patternTextPad
	p.infoImg = image.NewRGBA(image.Rect(0, 0, infoMaxW, p.textH))
	p.infoDrawer = font.Drawer{Dst: p.infoImg, Src: image.White, Face: patternFace}
	p.infoScale = max(1, min(h/180, w/(len("#000123  19:22:01.123")*p.advance+2*patternTextPad)))
	p.infoBottom = h - h/10
	p.infoFG = patternPack(255, 255, 96, 255)
	p.infoBG = patternPack(0, 0, 0, 255)

	p.line = make([]byte, max(p.nameW*p.nameScale, infoMaxW*p.infoScale)*4)
	return p
}

// Render draws frame number n (from 1) captured at t into an *image.RGBA of
// w x h owned by the renderer and returned; the next call reuses the buffer.
//
// The picture is a pure function of n, t and the constructor arguments, so
// a receiver can check exactly which frame and capture time it is showing.
// The clock shows t in t's own location.
func (p *patternRenderer) Render(n uint64, t time.Time) *image.RGBA {
	p.drawBackground(n)
	p.drawSquare(n)

	p.nameRect = image.Rectangle{}
	if p.nameW > 0 {
		p.nameRect = p.blitText(p.nameImg, p.nameW, p.nameScale, p.nameX, p.nameY, p.nameFG, p.nameBG)
	}

	k := p.formatInfo(n, t)
	clear(p.infoImg.Pix)
	p.infoDrawer.Dot = fixed.P(patternTextPad, patternTextPad+p.ascent)
	p.infoDrawer.DrawBytes(p.infoBuf[:k])
	infoW := k*p.advance + 2*patternTextPad
	// Aligned to the scale for the same reason as the name box.
	x := max(0, (p.w-infoW*p.infoScale)/2/p.infoScale*p.infoScale)
	y := (p.infoBottom - p.textH*p.infoScale) / p.infoScale * p.infoScale
	p.infoRect = p.blitText(p.infoImg, infoW, p.infoScale, x, y, p.infoFG, p.infoBG)
	return p.img
}

// drawBackground fills the frame with the scrolled bands: one row copy per
// output row, which is what keeps 720p well under a millisecond.
func (p *patternRenderer) drawBackground(n uint64) {
	var off [patternBands]int
	period := uint64(p.period)
	for b := 0; b < p.nBands; b++ {
		s := p.bandSpeed[b]
		// Reduce before multiplying so huge frame numbers cannot overflow.
		o := int((n % period) * uint64(max(s, -s)) % period)
		if s < 0 && o != 0 {
			o = p.period - o
		}
		off[b] = o * 4
	}
	rowBytes := p.w * 4
	for y := 0; y < p.h; y++ {
		b := y * p.nBands / p.h
		copy(p.img.Pix[y*p.img.Stride:y*p.img.Stride+rowBytes], p.bands[b][off[b]:off[b]+rowBytes])
	}
}

// drawSquare draws the square bouncing off the frame edges. Its position
// moves on both axes every frame, which makes frozen or repeated frames
// easy to spot even where the background is flat.
func (p *patternRenderer) drawSquare(n uint64) {
	x0 := patternBounce(n, p.sqVX, p.w-p.sq)
	y0 := patternBounce(n, p.sqVY, p.h-p.sq)
	// The square may be larger than a tiny frame; clip it.
	x1, y1 := min(x0+p.sq, p.w), min(y0+p.sq, p.h)
	bd := p.sqBorder
	for y := y0; y < y1; y++ {
		row := p.img.Pix[y*p.img.Stride+x0*4 : y*p.img.Stride+x1*4]
		if y-y0 < bd || y0+p.sq-1-y < bd {
			copy(row, p.sqDark)
			continue
		}
		copy(row, p.sqLight)
		copy(row, p.sqDark[:bd*4])
		if r := (p.sq - bd) * 4; r < len(row) {
			copy(row[r:], p.sqDark[:bd*4])
		}
	}
}

// blitText draws the first tw columns of the 1:1 text image src scaled by s
// with its top-left at (ox, oy), clipped to the frame. Pixels covered by a
// glyph get fg, all others bg, so the text sits on an opaque box and stays
// legible over the moving background and after downscaling. Every scaled
// row is built once and copied s times. It returns the visible rectangle.
//
// Text taller than the whole frame (only in frames under 15 rows) is not
// drawn at all: cut-off glyphs are unreadable, and the box would hide the
// moving background, leaving nothing that changes between frames.
func (p *patternRenderer) blitText(src *image.RGBA, tw, s, ox, oy int, fg, bg uint32) image.Rectangle {
	th := src.Rect.Dy()
	if th*s > p.h {
		return image.Rectangle{}
	}
	vis := image.Rect(ox, oy, ox+tw*s, oy+th*s).Intersect(p.img.Rect)
	if vis.Empty() {
		return image.Rectangle{}
	}
	line := p.line[:tw*s*4]
	lx0, lx1 := (vis.Min.X-ox)*4, (vis.Max.X-ox)*4
	for sy := 0; sy < th; sy++ {
		y0, y1 := max(oy+sy*s, vis.Min.Y), min(oy+(sy+1)*s, vis.Max.Y)
		if y0 >= y1 {
			continue
		}
		srow := src.Pix[sy*src.Stride : sy*src.Stride+tw*4]
		i := 0
		for sx := 3; sx < len(srow); sx += 4 {
			c := bg
			if srow[sx] >= 0x80 {
				c = fg
			}
			for k := 0; k < s; k++ {
				binary.LittleEndian.PutUint32(line[i:], c)
				i += 4
			}
		}
		for y := y0; y < y1; y++ {
			o := y * p.img.Stride
			copy(p.img.Pix[o+vis.Min.X*4:o+vis.Max.X*4], line[lx0:lx1])
		}
	}
	return vis
}

// formatInfo writes "#000123  19:22:01.123" for frame n at t into p.infoBuf
// and returns its length. It is hand-rolled because fmt and time.Format
// allocate, and Render must not.
func (p *patternRenderer) formatInfo(n uint64, t time.Time) int {
	b := p.infoBuf[:0]
	b = append(b, '#')
	var digits [20]byte
	i := len(digits)
	for v := n; ; {
		i--
		digits[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	for pad := 6 - (len(digits) - i); pad > 0; pad-- {
		b = append(b, '0')
	}
	b = append(b, digits[i:]...)
	hh, mm, ss := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	b = append(b, ' ', ' ',
		byte('0'+hh/10), byte('0'+hh%10), ':',
		byte('0'+mm/10), byte('0'+mm%10), ':',
		byte('0'+ss/10), byte('0'+ss%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	return len(b)
}

// patternBounce returns the position after n steps of speed v on a path that
// reflects off 0 and span, i.e. a triangle wave with period 2*span.
func patternBounce(n uint64, v, span int) int {
	if span <= 0 {
		return 0
	}
	period := uint64(2 * span)
	pos := int((n % period) * uint64(v) % period)
	if pos > span {
		pos = 2*span - pos
	}
	return pos
}

// patternSolidRow returns n pixels of colour c, a source for filling with copy().
func patternSolidRow(n int, c uint32) []byte {
	row := make([]byte, n*4)
	for i := 0; i < len(row); i += 4 {
		binary.LittleEndian.PutUint32(row[i:], c)
	}
	return row
}

// patternPack packs a colour so that binary.LittleEndian.PutUint32 stores it in
// image.RGBA's R, G, B, A byte order.
func patternPack(r, g, b, a uint8) uint32 {
	return uint32(r) | uint32(g)<<8 | uint32(b)<<16 | uint32(a)<<24
}

// patternHSV converts an opaque HSV colour (hue in degrees, any range; s and v
// in [0, 1]) to a packed RGBA. Only used while precomputing, so floats are
// fine.
func patternHSV(h, s, v float64) uint32 {
	h = math.Mod(h, 360)
	if h < 0 {
		h += 360
	}
	c := v * s
	x := c * (1 - math.Abs(math.Mod(h/60, 2)-1))
	var r, g, b float64
	switch {
	case h < 60:
		r, g = c, x
	case h < 120:
		r, g = x, c
	case h < 180:
		g, b = c, x
	case h < 240:
		g, b = x, c
	case h < 300:
		r, b = x, c
	default:
		r, b = c, x
	}
	m := v - c
	to8 := func(f float64) uint8 { return uint8(math.Round((f + m) * 255)) }
	return patternPack(to8(r), to8(g), to8(b), 255)
}

package publisher

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/jpeg"
	"testing"
	"time"
)

// patternTestTime is a fixed capture time so renders are reproducible.
var patternTestTime = time.Date(2024, 5, 6, 19, 22, 1, 123_456_789, time.UTC)

func TestPatternRenderSizes(t *testing.T) {
	tests := []struct{ w, h int }{
		{16, 16}, {17, 9}, {1, 1}, {320, 180}, {640, 360}, {1280, 720}, {1921, 1081}, {3840, 2160},
	}
	for _, tc := range tests {
		p := newPatternRenderer("alice", tc.w, tc.h)
		for n := uint64(1); n <= 3; n++ {
			img := p.Render(n, patternTestTime)
			if got := img.Bounds(); got != image.Rect(0, 0, tc.w, tc.h) {
				t.Fatalf("%dx%d: bounds %v", tc.w, tc.h, got)
			}
		}
		// Far-away frame numbers exercise the modular arithmetic.
		p.Render(1<<64-1, patternTestTime)
	}
}

func TestPatternConsecutiveFramesDiffer(t *testing.T) {
	tests := []struct{ w, h int }{{17, 9}, {320, 180}, {1280, 720}, {1921, 1081}}
	for _, tc := range tests {
		p := newPatternRenderer("alice", tc.w, tc.h)
		prev := bytes.Clone(p.Render(1, patternTestTime).Pix)
		for n := uint64(2); n <= 5; n++ {
			// Same clock on purpose: the motion alone must change the picture.
			cur := p.Render(n, patternTestTime).Pix
			if bytes.Equal(prev, cur) {
				t.Errorf("%dx%d: frame %d equals frame %d", tc.w, tc.h, n, n-1)
			}
			prev = bytes.Clone(cur)
		}
	}
}

func TestPatternNamesDiffer(t *testing.T) {
	tests := []struct{ a, b string }{{"alice", "bob"}, {"cam1", "cam2"}, {"", "x"}}
	for _, tc := range tests {
		a := newPatternRenderer(tc.a, 320, 180).Render(7, patternTestTime)
		b := newPatternRenderer(tc.b, 320, 180).Render(7, patternTestTime)
		if bytes.Equal(a.Pix, b.Pix) {
			t.Errorf("%q and %q render identically", tc.a, tc.b)
		}
	}
}

// distinctColours counts the different pixels in r, stopping early at limit.
func distinctColours(img *image.RGBA, r image.Rectangle, limit int) int {
	seen := map[[4]byte]bool{}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			i := img.PixOffset(x, y)
			seen[[4]byte(img.Pix[i:i+4])] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}

func TestPatternTextRegionNotUniform(t *testing.T) {
	tests := []struct{ w, h int }{{320, 180}, {1280, 720}, {1921, 1081}, {3840, 2160}}
	for _, tc := range tests {
		p := newPatternRenderer("alice", tc.w, tc.h)
		img := p.Render(123, patternTestTime)
		for _, box := range []struct {
			name string
			r    image.Rectangle
		}{{"name", p.nameRect}, {"info", p.infoRect}} {
			if box.r.Empty() {
				t.Errorf("%dx%d: %s box not drawn", tc.w, tc.h, box.name)
				continue
			}
			if !box.r.In(img.Rect) {
				t.Errorf("%dx%d: %s box %v outside frame", tc.w, tc.h, box.name, box.r)
			}
			// Opaque box plus glyphs: exactly two colours.
			if n := distinctColours(img, box.r, 3); n != 2 {
				t.Errorf("%dx%d: %s box has %d colours, want 2", tc.w, tc.h, box.name, n)
			}
		}
		if p.nameRect.Overlaps(p.infoRect) {
			t.Errorf("%dx%d: name %v overlaps info %v", tc.w, tc.h, p.nameRect, p.infoRect)
		}
	}
}

// TestPatternTextSurvivesDownscale checks that the text of a 720p frame is
// still crisp after making the 320x180 "lo" layer: the downscaled boxes must
// still hold pure glyph and pure box pixels, not only a blend of the two.
func TestPatternTextSurvivesDownscale(t *testing.T) {
	p := newPatternRenderer("alice", 1280, 720)
	img := p.Render(42, patternTestTime)
	lo := image.NewRGBA(image.Rect(0, 0, 320, 180))
	scaleRGBA(lo, img)
	for _, box := range []struct {
		r      image.Rectangle
		fg, bg uint32
	}{{p.nameRect, p.nameFG, p.nameBG}, {p.infoRect, p.infoFG, p.infoBG}} {
		q := image.Rect(box.r.Min.X/4, box.r.Min.Y/4, box.r.Max.X/4, box.r.Max.Y/4)
		var fg, bg int
		for y := q.Min.Y; y < q.Max.Y; y++ {
			for x := q.Min.X; x < q.Max.X; x++ {
				switch binary.LittleEndian.Uint32(lo.Pix[lo.PixOffset(x, y):]) {
				case box.fg:
					fg++
				case box.bg:
					bg++
				}
			}
		}
		if fg == 0 || bg == 0 {
			t.Errorf("downscaled box %v: %d glyph and %d box pixels, want both", q, fg, bg)
		}
	}
}

func TestPatternFormatInfo(t *testing.T) {
	tests := []struct {
		n    uint64
		t    time.Time
		want string
	}{
		{1, patternTestTime, "#000001  19:22:01.123"},
		{123, time.Date(2024, 1, 1, 0, 0, 0, 999_999_999, time.UTC), "#000123  00:00:00.999"},
		{1234567, time.Date(2024, 1, 1, 23, 59, 59, 0, time.UTC), "#1234567  23:59:59.000"},
		{1<<64 - 1, patternTestTime, "#18446744073709551615  19:22:01.123"},
	}
	p := newPatternRenderer("x", 16, 16)
	for _, tc := range tests {
		k := p.formatInfo(tc.n, tc.t)
		if got := string(p.infoBuf[:k]); got != tc.want {
			t.Errorf("formatInfo(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestPatternLongName(t *testing.T) {
	long := string(bytes.Repeat([]byte("é"), 1000))
	p := newPatternRenderer(long, 1280, 720)
	img := p.Render(1, patternTestTime)
	if p.nameRect.Empty() || !p.nameRect.In(img.Rect) {
		t.Fatalf("name box %v", p.nameRect)
	}
	if want := patternMaxNameRunes*patternFace.Advance + 2*patternTextPad; p.nameW != want {
		t.Errorf("name width %d, want %d (truncated)", p.nameW, want)
	}
}

func TestPatternRenderNoAllocs(t *testing.T) {
	if !inCleanProcess(t) {
		return
	}
	for _, sz := range []struct{ w, h int }{{17, 9}, {1280, 720}} {
		p := newPatternRenderer("alice", sz.w, sz.h)
		n := uint64(0)
		now := patternTestTime
		allocs := allocsPerCall(func() {
			n++
			now = now.Add(33 * time.Millisecond)
			p.Render(n, now)
		})
		if allocs != 0 {
			t.Errorf("%dx%d: %v allocs per Render, want 0", sz.w, sz.h, allocs)
		}
	}
}

func TestPatternJPEGRoundTrip(t *testing.T) {
	img := newPatternRenderer("alice", 1280, 720).Render(1, patternTestTime)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	dec, err := jpeg.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := dec.Bounds().Size(); got != image.Pt(1280, 720) {
		t.Fatalf("decoded size %v, want 1280x720", got)
	}
}

func BenchmarkPatternRender720p(b *testing.B) {
	p := newPatternRenderer("alice", 1280, 720)
	now := patternTestTime
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		n++
		p.Render(n, now)
	}
}

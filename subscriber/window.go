//go:build cgo && !vidhub_lite

package subscriber

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"log/slog"
	"os"
	"runtime"
	"time"

	"gocv.io/x/gocv"
)

// WindowConfig says how to show a room.
type WindowConfig struct {
	Title         string
	Width, Height int // of the canvas; 0 means 1280x720
	Logger        *slog.Logger
	// OnFrame, if set, is called after each frame shown, with the number
	// of tiles that held a picture. Tests and the demo watch it.
	OnFrame func(tiles int)
}

var (
	background = color.RGBA{R: 24, G: 24, B: 28}
	labelBG    = color.RGBA{R: 0, G: 0, B: 0}
	labelFG    = color.RGBA{R: 255, G: 255, B: 255}
	selfColor  = color.RGBA{R: 60, G: 200, B: 90}
	stallColor = color.RGBA{R: 255, G: 160, B: 0}
)

// gridCell is what one tile contributes to the canvas.
type gridCell struct {
	img     *gocv.Mat // BGR; nil when there is no picture yet
	label   string
	self    bool
	stalled bool
}

// WindowAvailable reports why a window cannot be opened, or nil.
func WindowAvailable(getenv func(string) string) error {
	// macOS and Windows always have their own window system; elsewhere a
	// window needs X11 or Wayland.
	if runtime.GOOS != "darwin" && runtime.GOOS != "windows" && getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "" {
		return fmt.Errorf("%w: no display (DISPLAY is not set); use --headless for stats in the terminal, watch in a browser through vidhub web, or run under a desktop session", ErrNoWindow)
	}
	return nil
}

// framePicture is f's picture as a BGR Mat: a JPEG decoded here, or an
// H.264 picture the tile's decoder already made.
func framePicture(f *Frame) (gocv.Mat, error) {
	if f.BGR != nil {
		m, err := gocv.NewMatFromBytes(f.Meta.Height, f.Meta.Width, gocv.MatTypeCV8UC3, f.BGR)
		if err != nil {
			return m, err
		}
		defer func() { _ = m.Close() }()
		return m.Clone(), nil // NewMatFromBytes shares Go memory: own a copy
	}
	return gocv.IMDecode(f.JPEG, gocv.IMReadColor)
}

// RunWindow shows room in a desktop window until q or Esc is pressed, the
// window is closed, or ctx is done. It must run on the main OS thread
// (HighGUI's rule), so package main locks it in init.
func RunWindow(ctx context.Context, room *Room, cfg WindowConfig) error {
	if err := WindowAvailable(os.Getenv); err != nil {
		return err
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		cfg.Width, cfg.Height = 1280, 720
	}
	if cfg.Title == "" {
		cfg.Title = "vidhub: " + room.Name()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	win := gocv.NewWindow(cfg.Title)
	defer win.Close()
	win.ResizeWindow(cfg.Width, cfg.Height)
	canvas := gocv.NewMatWithSize(cfg.Height, cfg.Width, gocv.MatTypeCV8UC3)
	defer canvas.Close()
	pictures := map[string]*gocv.Mat{}
	undecodable := map[string]time.Time{} // when each was last logged
	defer func() {
		for _, m := range pictures {
			_ = m.Close()
		}
	}()
	log.Info("window open", "title", cfg.Title)
	for shown := 0; ctx.Err() == nil; shown++ {
		tiles := room.Tiles()
		cells := make([]gridCell, 0, len(tiles))
		alive := make(map[string]bool, len(tiles))
		withPicture := 0
		for _, t := range tiles {
			alive[t.Name()] = true
			if f := t.Take(); f != nil {
				m, err := framePicture(f)
				if err != nil || m.Empty() {
					_ = m.Close()
					t.CountBad()
					if now := time.Now(); now.Sub(undecodable[t.Name()]) > 10*time.Second {
						undecodable[t.Name()] = now
						log.Warn("skipping a frame that does not decode", "participant", t.Name(), "bytes", len(f.JPEG))
					}
				} else {
					if old := pictures[t.Name()]; old != nil {
						_ = old.Close()
					}
					pictures[t.Name()] = &m
				}
			}
			st := t.Stats()
			label := fmt.Sprintf("%s  %.0f fps  %.0f ms", t.Name(), st.FPS, st.LatencyP50)
			if t.Self() {
				label += "  (you)"
			}
			pic := pictures[t.Name()]
			if pic != nil {
				withPicture++
			}
			cells = append(cells, gridCell{img: pic, label: label, self: t.Self(), stalled: st.Stalled})
		}
		for name, m := range pictures {
			if !alive[name] {
				_ = m.Close()
				delete(pictures, name)
			}
		}
		composeGrid(&canvas, cells, "waiting for publishers in room "+room.Name())
		win.IMShow(canvas)
		if cfg.OnFrame != nil {
			cfg.OnFrame(withPicture)
		}
		switch key := win.WaitKey(15); key {
		case 'q', 'Q', 27:
			log.Info("window closed by key")
			return nil
		}
		if shown > 0 && win.GetWindowProperty(gocv.WindowPropertyVisible) < 1 {
			log.Info("window closed")
			return nil
		}
	}
	return nil
}

// composeGrid draws cells into canvas as a grid: each picture letterboxed
// in its cell, labelled, the viewer's own tile framed.
func composeGrid(canvas *gocv.Mat, cells []gridCell, empty string) {
	canvas.SetTo(gocv.NewScalar(float64(background.B), float64(background.G), float64(background.R), 0))
	bounds := image.Rect(0, 0, canvas.Cols(), canvas.Rows())
	if len(cells) == 0 {
		drawLabel(canvas, empty, image.Pt(bounds.Dx()/2-len(empty)*6, bounds.Dy()/2), labelFG)
		return
	}
	scaled := gocv.NewMat()
	defer scaled.Close()
	for i, r := range gridCells(len(cells), bounds, 4) {
		c := cells[i]
		// The label sits at the foot of the picture, or of the cell when
		// there is no picture yet.
		foot := r
		if c.img != nil {
			foot = fitRect(c.img.Cols(), c.img.Rows(), r)
			gocv.Resize(*c.img, &scaled, foot.Size(), 0, 0, gocv.InterpolationArea)
			region := canvas.Region(foot)
			scaled.CopyTo(&region)
			_ = region.Close()
		}
		if c.self {
			gocv.Rectangle(canvas, foot.Inset(1), selfColor, 3)
		}
		fg := labelFG
		label := c.label
		if c.stalled {
			fg, label = stallColor, label+"  stalled"
		}
		drawLabel(canvas, label, image.Pt(foot.Min.X+8, foot.Max.Y-10), fg)
	}
}

// drawLabel writes text with a dark box behind it, baseline at at.
func drawLabel(canvas *gocv.Mat, text string, at image.Point, fg color.RGBA) {
	const scale, thick = 0.6, 1
	size, base := gocv.GetTextSizeWithBaseline(text, gocv.FontHersheySimplex, scale, thick)
	box := image.Rect(at.X-4, at.Y-size.Y-4, at.X+size.X+4, at.Y+base+2).Intersect(image.Rect(0, 0, canvas.Cols(), canvas.Rows()))
	if !box.Empty() {
		gocv.Rectangle(canvas, box, labelBG, -1)
	}
	gocv.PutTextWithParams(canvas, text, at, gocv.FontHersheySimplex, scale, fg, thick, gocv.LineAA, false)
}

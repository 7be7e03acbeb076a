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

	"github.com/vidhub/vidhub/internal/media"
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
	img     media.Picture // nil when there is no picture yet
	label   string
	self    bool
	stalled bool
}

// errNoOpenCV is what a window does in a build without OpenCV.
var errNoOpenCV = fmt.Errorf("%w: this build of vidhub has no OpenCV (built with CGO_ENABLED=0); use --headless for stats in the terminal, watch in a browser through vidhub web, or use the full build", ErrNoWindow)

// WindowAvailable reports why a window cannot be opened, or nil.
func WindowAvailable(getenv func(string) string) error {
	if !media.OpenCVAvailable() {
		return errNoOpenCV
	}
	// macOS and Windows always have their own window system; elsewhere a
	// window needs X11 or Wayland.
	if runtime.GOOS != "darwin" && runtime.GOOS != "windows" && getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "" {
		return fmt.Errorf("%w: no display (DISPLAY is not set); use --headless for stats in the terminal, watch in a browser through vidhub web, or run under a desktop session", ErrNoWindow)
	}
	return nil
}

// framePicture is f's picture: a JPEG decoded here, or a copy of an
// H.264 picture the tile's decoder already made.
func framePicture(f *Frame) (media.Picture, error) {
	if f.BGR != nil {
		w, h := f.Meta.Width, f.Meta.Height
		return media.PictureFrom(media.Image{Fmt: media.BGR24, Width: w, Height: h, Stride: 3 * w, Pix: f.BGR})
	}
	return media.DecodeJPEG(f.JPEG)
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
	win, err := media.NewWindow(cfg.Title, cfg.Width, cfg.Height)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoWindow, err)
	}
	defer win.Close()
	canvas, err := media.NewCanvas(cfg.Width, cfg.Height)
	if err != nil {
		return fmt.Errorf("window canvas: %w", err)
	}
	defer canvas.Close()
	pictures := map[string]media.Picture{}
	undecodable := map[string]time.Time{} // when each was last logged
	defer func() {
		for _, m := range pictures {
			m.Close()
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
				if err != nil {
					t.CountBad()
					if now := time.Now(); now.Sub(undecodable[t.Name()]) > 10*time.Second {
						undecodable[t.Name()] = now
						log.Warn("skipping a frame that does not decode", "participant", t.Name(), "bytes", len(f.JPEG))
					}
				} else {
					if old := pictures[t.Name()]; old != nil {
						old.Close()
					}
					pictures[t.Name()] = m
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
				m.Close()
				delete(pictures, name)
			}
		}
		composeGrid(canvas, cells, "waiting for publishers in room "+room.Name())
		win.Show(canvas)
		if cfg.OnFrame != nil {
			cfg.OnFrame(withPicture)
		}
		switch key := win.WaitKey(15); key {
		case 'q', 'Q', 27:
			log.Info("window closed by key")
			return nil
		}
		if shown > 0 && !win.Visible() {
			log.Info("window closed")
			return nil
		}
	}
	return nil
}

// composeGrid draws cells into canvas as a grid: each picture letterboxed
// in its cell, labelled, the viewer's own tile framed.
func composeGrid(canvas media.Canvas, cells []gridCell, empty string) {
	canvas.Fill(background)
	w, h := canvas.Size()
	bounds := image.Rect(0, 0, w, h)
	if len(cells) == 0 {
		drawLabel(canvas, empty, image.Pt(bounds.Dx()/2-len(empty)*6, bounds.Dy()/2), labelFG)
		return
	}
	for i, r := range gridCells(len(cells), bounds, 4) {
		c := cells[i]
		// The label sits at the foot of the picture, or of the cell when
		// there is no picture yet.
		foot := r
		if c.img != nil {
			iw, ih := c.img.Size()
			foot = fitRect(iw, ih, r)
			canvas.Draw(c.img, foot)
		}
		if c.self {
			canvas.Rect(foot.Inset(1), selfColor, 3)
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
func drawLabel(canvas media.Canvas, text string, at image.Point, fg color.RGBA) {
	const scale, thick = 0.6, 1
	size, base := canvas.TextSize(text, scale, thick)
	w, h := canvas.Size()
	box := image.Rect(at.X-4, at.Y-size.Y-4, at.X+size.X+4, at.Y+base+2).Intersect(image.Rect(0, 0, w, h))
	if !box.Empty() {
		canvas.Rect(box, labelBG, -1)
	}
	canvas.Text(text, at, scale, fg, thick)
}

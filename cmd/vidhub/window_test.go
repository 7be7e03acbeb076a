//go:build cgo && !vidhub_lite

package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// xvfb starts a virtual display for the test, with the tools the window
// tests drive it with, and returns its name.
func xvfb(t *testing.T) string {
	t.Helper()
	hubtest.NeedTools(t, "xdotool", "ffmpeg")
	return hubtest.Xvfb(t)
}

// grab takes a screenshot of the display.
func grab(t *testing.T, display string) *image.RGBA {
	t.Helper()
	out := filepath.Join(t.TempDir(), "shot.png")
	if p := hubtest.Run(t, 30*time.Second, nil, "ffmpeg", "-loglevel", "error", "-f", "x11grab", "-video_size", "1280x800", "-i", display, "-frames:v", "1", "-y", out); p.Code() != 0 {
		t.Fatalf("screenshot: exit %d\n%s", p.Code(), p.Output())
	}
	f, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	rgba := image.NewRGBA(img.Bounds())
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			rgba.Set(x, y, img.At(x, y))
		}
	}
	return rgba
}

// colourful counts pixels that are neither black nor grey: video, not
// an empty window or background.
func colourful(img *image.RGBA) int {
	n := 0
	for i := 0; i+3 < len(img.Pix); i += 16 {
		r, g, b := int(img.Pix[i]), int(img.Pix[i+1]), int(img.Pix[i+2])
		if max(r, g, b)-min(r, g, b) > 60 {
			n++
		}
	}
	return n
}

func differ(a, b *image.RGBA) int {
	n := 0
	for i := 0; i < len(a.Pix) && i < len(b.Pix); i += 16 {
		if a.Pix[i] != b.Pix[i] || a.Pix[i+1] != b.Pix[i+1] {
			n++
		}
	}
	return n
}

// TestWindowUnderXvfb shows a room in the real OpenCV window on a virtual
// display: moving video appears, and q closes it with status 0.
func TestWindowUnderXvfb(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a window on a virtual display")
	}
	display := xvfb(t)
	bin := hubtest.Vidhub(t)
	b := hubtest.Broker(t, broker.Config{})
	hubtest.PublishPattern(t, b.ClientURL(), "win", "alice")
	hubtest.PublishPattern(t, b.ClientURL(), "win", "bob")
	// A third participant sends frames that pass every check but do not
	// decode: the window must skip them and keep showing the others.
	junk := hubtest.Connect(t, b.ClientURL())
	stopJunk := make(chan struct{})
	junkDone := make(chan struct{})
	go func() {
		defer close(junkDone)
		pres, _ := protocol.Presence{Role: protocol.RolePublisher, Started: time.Now(),
			Layers: []protocol.LayerInfo{{Layer: protocol.Lo, Width: 320, Height: 180, FPS: 10}}}.Encode()
		body := append([]byte{0xFF, 0xD8}, append(bytes.Repeat([]byte{0x42}, 2000), 0xFF, 0xD9)...)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(1); seq < 3000; seq++ {
			select {
			case <-stopJunk:
				return
			case <-tick.C:
			}
			_ = junk.Publish("vidhub.win.junk.presence", pres)
			for _, l := range []protocol.Layer{protocol.Hi, protocol.Lo} {
				h := protocol.FrameHeaders(protocol.FrameMeta{Seq: seq, Time: time.Now().UnixNano(), Width: 320, Height: 180})
				_ = junk.PublishMsg(&nats.Msg{Subject: "vidhub.win.junk." + string(l), Header: h, Data: body})
			}
		}
	}()
	t.Cleanup(func() { close(stopJunk); <-junkDone })

	w := startWindow(t, bin, display, "--nats", b.ClientURL(), "--room", "win")
	w.WaitOutput(30*time.Second, "window open")

	var first *image.RGBA
	w.WaitFor(30*time.Second, func() bool { first = grab(t, display); return colourful(first) > 5000 }, "no video on the screen")
	w.WaitFor(20*time.Second, func() bool { return differ(first, grab(t, display)) > 1000 }, "the picture does not move")

	pressKey(t, display, "vidhub: win", "q")
	if code, ok := w.Wait(20 * time.Second); !ok || code != 0 {
		t.Fatalf("viewer did not exit 0 on q (exit %d, exited %v)", code, ok)
	}
	if !strings.Contains(w.Stderr.String(), "window closed by key") {
		t.Errorf("log: %s", w.Stderr.String())
	}
	if !strings.Contains(w.Stderr.String(), "does not decode") {
		t.Errorf("undecodable frames not noticed: %s", w.Stderr.String())
	}
}

// startWindow runs "vidhub view args..." on display until the test ends.
func startWindow(t *testing.T, bin, display string, args ...string) *hubtest.Proc {
	t.Helper()
	rundir := t.TempDir()
	if err := os.Chmod(rundir, 0o700); err != nil { // as Qt wants it
		t.Fatal(err)
	}
	return hubtest.StartProc(t, hubtest.ProcConfig{Env: []string{"DISPLAY=" + display, "XDG_RUNTIME_DIR=" + rundir}},
		bin, append([]string{"view"}, args...)...)
}

// pressKey focuses the window titled title and presses key in it.
func pressKey(t *testing.T, display, title, key string) {
	t.Helper()
	// xdotool may complain about the window it just closed: its exit
	// status says nothing; the window's does.
	hubtest.Run(t, 30*time.Second, []string{"DISPLAY=" + display}, "xdotool", "search", "--sync", "--name", title, "windowfocus", "--sync", "key", key)
}

// TestWindowEscQuits: Esc closes the window as q does, with status 0.
func TestWindowEscQuits(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a window on a virtual display")
	}
	display := xvfb(t)
	bin := hubtest.Vidhub(t)
	b := hubtest.Broker(t, broker.Config{})
	hubtest.PublishPattern(t, b.ClientURL(), "esc", "alice")
	w := startWindow(t, bin, display, "--nats", b.ClientURL(), "--room", "esc")
	// Showing video: the window is up and takes keys.
	w.WaitFor(30*time.Second, func() bool { return colourful(grab(t, display)) > 5000 }, "no video")
	pressKey(t, display, "vidhub: esc", "Escape")
	if code, ok := w.Wait(20 * time.Second); !ok || code != 0 {
		t.Fatalf("viewer did not exit 0 on Esc (exit %d, exited %v)", code, ok)
	}
	if !strings.Contains(w.Stderr.String(), "window closed by key") {
		t.Errorf("log: %s", w.Stderr.String())
	}
}

// TestWindowResumesAfterBrokerRestart: the desktop viewer, like the
// headless one, comes back by itself when a killed broker returns: the
// picture, frozen during the outage, moves again.
func TestWindowResumesAfterBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a window on a virtual display")
	}
	display := xvfb(t)
	bin := hubtest.Vidhub(t)
	srv := hubtest.StartNatsServer(t, 0)
	hubtest.PublishProcess(t, hubtest.ProcConfig{}, bin, srv.URL, "again", "cam", "--size", "640x360")
	w := startWindow(t, bin, display, "--nats", srv.URL, "--room", "again")
	w.WaitFor(30*time.Second, func() bool { return colourful(grab(t, display)) > 5000 }, "no video")

	srv.Kill()
	// Frozen: two grabs in a row are the same picture once frames stop.
	var frozen *image.RGBA
	w.WaitFor(20*time.Second, func() bool {
		a := grab(t, display)
		b := grab(t, display)
		frozen = b
		return differ(a, b) < 200
	}, "the picture still moves with the broker down")
	hubtest.StartNatsServer(t, srv.Port)
	back := time.Now()
	// The first grab that shows movement again started at most one grab's
	// time after the picture moved: so the picture moved again within 2 s
	// of the broker's return if that grab started within 2 s plus a grab.
	var start, end time.Time
	w.WaitFor(30*time.Second, func() bool {
		start = time.Now()
		moved := differ(frozen, grab(t, display)) > 1000
		end = time.Now()
		return moved
	}, "the window did not resume after the broker came back")
	grabTime := end.Sub(start)
	t.Logf("window moving again %v after the broker came back (a screen grab takes %v)", start.Sub(back).Round(time.Millisecond), grabTime.Round(time.Millisecond))
	if d := start.Sub(back); d > 2*time.Second+grabTime {
		t.Errorf("the window moved again %v after the broker came back; want within 2 s (plus one %v screen grab)", d, grabTime)
	}
	if w.Exited() {
		t.Fatalf("viewer exited: %v", w.Err())
	}
}

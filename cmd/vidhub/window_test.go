//go:build cgo

package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidhub/vidhub/broker"
	"github.com/vidhub/vidhub/internal/hubtest"
	"github.com/vidhub/vidhub/protocol"
)

// xvfb starts a virtual display for the test and returns its name.
func xvfb(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"Xvfb", "xdotool", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: run make deps-test (scripts/deps.sh test) to install it", tool)
		}
	}
	for n := 90; n < 190; n++ {
		sock := fmt.Sprintf("/tmp/.X11-unix/X%d", n)
		if _, err := os.Stat(sock); err == nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		display := fmt.Sprintf(":%d", n)
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, "Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp")
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		hubtest.Eventually(t, 10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }, "Xvfb %s did not start", display)
		return display
	}
	t.Fatal("no free X display number")
	return ""
}

// grab takes a screenshot of the display.
func grab(t *testing.T, display string) *image.RGBA {
	t.Helper()
	out := filepath.Join(t.TempDir(), "shot.png")
	cmd := exec.Command("ffmpeg", "-loglevel", "error", "-f", "x11grab", "-video_size", "1280x800", "-i", display, "-frames:v", "1", "-y", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("screenshot: %v\n%s", err, b)
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
		t.Skip("needs Xvfb, xdotool and ffmpeg")
	}
	display := xvfb(t)
	bin := hubtest.GoBuild(t, "vidhub", ".", nil)
	b := hubtest.Broker(t, broker.Config{})
	publishPattern(t, b.ClientURL(), "win", "alice")
	publishPattern(t, b.ClientURL(), "win", "bob")
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
	hubtest.Eventually(t, 20*time.Second, func() bool { return strings.Contains(w.stderr.String(), "window open") }, "no window: %s", w.stderr.String())

	var first *image.RGBA
	hubtest.Eventually(t, 20*time.Second, func() bool { first = grab(t, display); return colourful(first) > 5000 }, "no video on the screen")
	hubtest.Eventually(t, 10*time.Second, func() bool { return differ(first, grab(t, display)) > 1000 }, "the picture does not move")

	pressKey(display, "vidhub: win", "q")
	if err := w.wait(10 * time.Second); err != nil {
		t.Fatalf("viewer did not exit 0 on q: %v\n%s", err, w.stderr.String())
	}
	if !strings.Contains(w.stderr.String(), "window closed by key") {
		t.Errorf("log: %s", w.stderr.String())
	}
	if !strings.Contains(w.stderr.String(), "does not decode") {
		t.Errorf("undecodable frames not noticed: %s", w.stderr.String())
	}
}

// windowProc is "vidhub view" showing a window on a virtual display.
type windowProc struct {
	cmd    *exec.Cmd
	stderr hubtest.Buffer
	exited bool
}

// startWindow runs "vidhub view args..." on display; it is killed when
// the test ends unless it has exited.
func startWindow(t *testing.T, bin, display string, args ...string) *windowProc {
	t.Helper()
	w := &windowProc{cmd: exec.Command(bin, append([]string{"view"}, args...)...)}
	w.cmd.Env = append(os.Environ(), "DISPLAY="+display, "XDG_RUNTIME_DIR="+t.TempDir())
	w.cmd.Stderr = &w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !w.exited {
			_ = w.cmd.Process.Kill()
			_ = w.cmd.Wait()
		}
	})
	return w
}

// wait waits for the window to exit, with status 0.
func (w *windowProc) wait(timeout time.Duration) error {
	err := waitTimeout(w.cmd, timeout)
	w.exited = true
	return err
}

// pressKey focuses the window titled title and presses key in it.
func pressKey(display, title, key string) {
	cmd := exec.Command("xdotool", "search", "--sync", "--name", title, "windowfocus", "--sync", "key", key)
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	_ = cmd.Run() // it may complain about the window it just closed
}

// TestWindowEscQuits: Esc closes the window as q does, with status 0.
func TestWindowEscQuits(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Xvfb, xdotool and ffmpeg")
	}
	display := xvfb(t)
	bin := hubtest.GoBuild(t, "vidhub", ".", nil)
	b := hubtest.Broker(t, broker.Config{})
	publishPattern(t, b.ClientURL(), "esc", "alice")
	w := startWindow(t, bin, display, "--nats", b.ClientURL(), "--room", "esc")
	// Showing video: the window is up and takes keys.
	hubtest.Eventually(t, 20*time.Second, func() bool { return colourful(grab(t, display)) > 5000 }, "no video: %s", w.stderr.String())
	pressKey(display, "vidhub: esc", "Escape")
	if err := w.wait(10 * time.Second); err != nil {
		t.Fatalf("viewer did not exit 0 on Esc: %v\n%s", err, w.stderr.String())
	}
	if !strings.Contains(w.stderr.String(), "window closed by key") {
		t.Errorf("log: %s", w.stderr.String())
	}
}

// TestWindowResumesAfterBrokerRestart: the desktop viewer, like the
// headless one, comes back by itself when a killed broker returns: the
// picture, frozen during the outage, moves again.
func TestWindowResumesAfterBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Xvfb, xdotool and ffmpeg")
	}
	display := xvfb(t)
	bin := hubtest.GoBuild(t, "vidhub", ".", nil)
	srv := hubtest.StartNatsServer(t, 0)
	startProc(t, bin, io.Discard, "publish", "--nats", srv.URL, "--room", "again", "--name", "cam",
		"--source", "pattern", "--size", "640x360", "--fps", "20")
	cmd := exec.Command(bin, "view", "--nats", srv.URL, "--room", "again")
	cmd.Env = append(os.Environ(), "DISPLAY="+display, "XDG_RUNTIME_DIR="+t.TempDir())
	var stderr hubtest.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	hubtest.Eventually(t, 20*time.Second, func() bool { return colourful(grab(t, display)) > 5000 }, "no video: %s", stderr.String())

	srv.Kill()
	// Frozen: two grabs in a row are the same picture once frames stop.
	var frozen *image.RGBA
	hubtest.Eventually(t, 10*time.Second, func() bool {
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
	hubtest.Eventually(t, 15*time.Second, func() bool {
		start = time.Now()
		moved := differ(frozen, grab(t, display)) > 1000
		end = time.Now()
		return moved
	}, "the window did not resume after the broker came back: %s", stderr.String())
	grabTime := end.Sub(start)
	t.Logf("window moving again %v after the broker came back (a screen grab takes %v)", start.Sub(back).Round(time.Millisecond), grabTime.Round(time.Millisecond))
	if d := start.Sub(back); d > 2*time.Second+grabTime {
		t.Errorf("the window moved again %v after the broker came back; want within 2 s (plus one %v screen grab)", d, grabTime)
	}
	select {
	case err := <-done:
		t.Fatalf("viewer exited: %v\n%s", err, stderr.String())
	default:
	}
}

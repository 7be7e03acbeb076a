//go:build cgo && !vidhub_lite

package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vidhub/vidhub/protocol"
)

// ffmpeg runs the ffmpeg CLI, failing the test if it fails.
func ffmpeg(t *testing.T, args ...string) {
	t.Helper()
	needTools(t, "ffmpeg")
	out, err := exec.Command("ffmpeg", append([]string{"-v", "error", "-y"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestDemuxFiles reads three seconds of H.264 at 30 fps, a keyframe a
// second, from an .mp4 (SPS and PPS only in the avcC extradata), a raw
// .h264 (in band) and an .mkv.
func TestDemuxFiles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "3", "-c:v", "libx264",
		"-g", "30", "-bf", "0", "-x264-params", "scenecut=0", src)
	for _, ext := range []string{"h264", "mkv"} {
		ffmpeg(t, "-i", src, "-c", "copy", filepath.Join(dir, "src."+ext))
	}
	for _, ext := range []string{"mp4", "h264", "mkv"} {
		t.Run(ext, func(t *testing.T) {
			dmx, err := OpenH264(filepath.Join(dir, "src."+ext))
			if err != nil {
				t.Fatal(err)
			}
			defer dmx.Close()
			if w, h := dmx.Size(); w != 640 || h != 360 {
				t.Errorf("Size %dx%d, want 640x360", w, h)
			}
			if fps := dmx.FPS(); fps < 29.9 || fps > 30.1 {
				t.Errorf("FPS %v, want 30", fps)
			}
			if dmx.Live() {
				t.Error("a file is Live")
			}
			if c := dmx.Codec(); !strings.HasPrefix(c, "avc1.64") {
				t.Errorf("Codec %q, want avc1.64xxxx (libx264's default High profile)", c)
			}
			dec, err := NewDecoder()
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			var keys []int
			frames := 0
			last := time.Duration(-1)
			for {
				au, err := dmx.Read()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("frame %d: %v", frames, err)
				}
				if err := protocol.CheckH264(au.Data, au.Key); err != nil {
					t.Fatalf("frame %d (key %v): %v", frames, au.Key, err)
				}
				if au.Key {
					keys = append(keys, frames)
				}
				if want := time.Duration(frames) * time.Second / 30; au.PTS < want-time.Millisecond || au.PTS > want+time.Millisecond || au.PTS <= last {
					t.Errorf("frame %d at %v, want %v", frames, au.PTS, want)
				}
				last = au.PTS
				if ok, err := dec.Decode(au.Data); !ok || err != nil {
					t.Fatalf("decoding frame %d: ok %v, %v", frames, ok, err)
				}
				frames++
			}
			if frames != 90 || fmt.Sprint(keys) != "[0 30 60]" {
				t.Errorf("%d frames, keyframes at %v; want 90, [0 30 60]", frames, keys)
			}
			if _, err := dmx.Read(); err != io.EOF {
				t.Errorf("Read after the end: %v, want io.EOF", err)
			}
			if err := dmx.Close(); err != nil {
				t.Error(err)
			}
			if err := dmx.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := dmx.Read(); err == nil || err == io.EOF {
				t.Errorf("Read after Close: %v, want an error", err)
			}
		})
	}
}

// TestDemuxPrependsParameterSets gives the demuxer a stream whose SPS and
// PPS come once, ahead of the first IDR only, as many cameras send them
// (or only in the SDP): later IDRs get them put in front.
func TestDemuxPrependsParameterSets(t *testing.T) {
	aus := encodeAll(t, EncoderConfig{Width: 320, Height: 180, FPS: 30, KeyInt: 5}, 11, scene)
	d := &demuxer{}
	for i, au := range aus {
		in := au.Data
		if i > 0 && au.Key {
			in = stripParameterSets(t, in)
			if err := protocol.CheckH264(in, true); err == nil {
				t.Fatal("stripping SPS and PPS left a valid keyframe")
			}
		}
		out, ok := d.annexB(in)
		if !ok {
			t.Fatalf("frame %d: no slice", i)
		}
		if err := protocol.CheckH264(out, au.Key); err != nil {
			t.Errorf("frame %d: %v", i, err)
		}
		if !au.Key && !bytes.Equal(out, in) {
			t.Errorf("frame %d: a P-frame was changed", i)
		}
	}
	if !strings.HasPrefix(d.codec, "avc1.42") {
		t.Errorf("codec %q, want avc1.42xxxx", d.codec)
	}
}

func stripParameterSets(t *testing.T, au []byte) []byte {
	var out []byte
	err := protocol.SplitAnnexB(au, func(nal []byte) bool {
		if typ := protocol.NALType(nal); typ != protocol.NALSPS && typ != protocol.NALPPS {
			out = append(append(out, 0, 0, 0, 1), nal...)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDemuxNotH264(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mjpeg.avi")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-t", "1", "-c:v", "mjpeg", file)
	dmx, err := OpenH264(file)
	if !errors.Is(err, ErrNotH264) {
		if dmx != nil {
			dmx.Close()
		}
		t.Fatalf("opening an MJPEG .avi: %v, want ErrNotH264", err)
	}
	if !strings.Contains(err.Error(), "mjpeg") {
		t.Errorf("error %q does not name the codec", err)
	}
	if _, err := OpenH264(filepath.Join(t.TempDir(), "missing.mp4")); err == nil {
		t.Error("opening a missing file succeeded")
	}
}

// silentListener accepts TCP connections and never answers: a camera
// that hangs. It returns its address and a channel that gets each
// connection accepted.
func silentListener(t *testing.T) (string, <-chan net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	})
	return l.Addr().String(), conns
}

// TestDemuxRTSPCancel opens an rtsp:// camera that accepts the connection
// and never answers, and cancels the opening: it returns at once.
func TestDemuxRTSPCancel(t *testing.T) {
	t.Parallel()
	addr, conns := silentListener(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		dmx, err := OpenH264Context(ctx, "rtsp://"+addr+"/cam")
		if dmx != nil {
			dmx.Close()
		}
		done <- err
	}()
	c := <-conns
	defer c.Close()
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled opening: %v, want context.Canceled", err)
		}
		t.Logf("cancelled opening returned in %v: %v", time.Since(start), err)
	case <-time.After(3 * time.Second):
		t.Fatal("cancelling the opening of a silent rtsp:// camera did not return within 3s")
	}
}

// TestDemuxRTSPTimeout opens an rtsp:// camera that accepts the connection
// and never answers: it fails after DemuxTimeout, not never.
func TestDemuxRTSPTimeout(t *testing.T) {
	t.Parallel()
	addr, _ := silentListener(t)
	start := time.Now()
	dmx, err := OpenH264("rtsp://" + addr + "/cam")
	took := time.Since(start)
	if err == nil {
		dmx.Close()
		t.Fatal("opening a silent rtsp:// camera succeeded")
	}
	t.Logf("after %v: %v", took, err)
	if took < DemuxTimeout-time.Second || took > DemuxTimeout+3*time.Second {
		t.Errorf("opening a silent camera failed after %v, want about %v", took, DemuxTimeout)
	}
}

// stallingServer serves a live H.264 stream over HTTP that sends three
// seconds of video and then nothing, holding the connection open.
func stallingServer(t *testing.T) string {
	aus := encodeAll(t, EncoderConfig{Width: 320, Height: 180, FPS: 30, KeyInt: 30}, 90, scene)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/h264")
		for _, au := range aus {
			if _, err := w.Write(au.Data); err != nil {
				return
			}
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv.URL + "/live.h264"
}

// TestDemuxCloseDuringRead closes a demuxer from another goroutine while
// its Read waits for a stalled live stream: Read returns at once.
func TestDemuxCloseDuringRead(t *testing.T) {
	t.Parallel()
	dmx, err := OpenH264(stallingServer(t))
	if err != nil {
		t.Fatal(err)
	}
	if !dmx.Live() {
		t.Error("an http:// stream is not Live")
	}
	var frames atomic.Int32
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := dmx.Read(); err != nil {
				done <- err
				return
			}
			frames.Add(1)
		}
	}()
	// The h264 parser and the assembler each hold an access unit back
	// until they see what follows it, so Read blocks once it has handed
	// out 88.
	for frames.Load() < 88 {
		select {
		case err := <-done:
			t.Fatalf("Read failed after %d frames: %v", frames.Load(), err)
		case <-time.After(time.Millisecond):
		}
	}
	start := time.Now()
	if err := dmx.Close(); err != nil {
		t.Error(err)
	}
	select {
	case err := <-done:
		t.Logf("Read returned %v after Close, in %v", err, time.Since(start))
		if err == nil || err == io.EOF {
			t.Errorf("Read after Close: %v, want an error", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Read did not return within 3s of Close")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Close and Read took %v, want under 3s", took)
	}
}

// TestDemuxReadTimeout reads a live stream that stalls: Read fails after
// DemuxTimeout instead of hanging.
func TestDemuxReadTimeout(t *testing.T) {
	t.Parallel()
	dmx, err := OpenH264(stallingServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer dmx.Close()
	frames := 0
	var stall time.Time
	for {
		_, err := dmx.Read()
		if err != nil {
			took := time.Since(stall)
			t.Logf("after %d frames and %v: %v", frames, took, err)
			// The last access units come out only when the parser and
			// the assembler give up on what would follow them.
			if frames < 88 || !strings.Contains(err.Error(), "stalled") {
				t.Errorf("Read failed after %d frames with %v; want 88 to 90 frames, then a stall", frames, err)
			}
			if took < DemuxTimeout-time.Second || took > DemuxTimeout+3*time.Second {
				t.Errorf("a stalled Read failed after %v, want about %v", took, DemuxTimeout)
			}
			return
		}
		frames++
		if frames == 88 {
			stall = time.Now()
		}
	}
}

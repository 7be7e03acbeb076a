package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/vidhub/vidhub/internal/media"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/publisher"
	"github.com/vidhub/vidhub/subscriber"
)

// RTSPResult is a publisher of a real RTSP H.264 camera (GStreamer's RTSP
// server, x264) with one viewer, of the h264 layer: no JPEG layer and no
// h264lo watched.
type RTSPResult struct {
	// Case is passthrough (--source rtsp://..., the camera's access
	// units published as they come) or re-encode (the same camera
	// through a gst: pipeline that decodes it, encoded again).
	Case   string  `json:"case"`
	Source string  `json:"source"`
	Size   string  `json:"size"`         // as the viewer got it
	Codec  string  `json:"codec_string"` // the viewer's, e.g. avc1.42c01e
	FPS    float64 `json:"fps"`          // the viewer's
	Cores  float64 `json:"cores"`        // the publisher's; -1: in the bench process
	// Skipped says why this case was not measured.
	Skipped string `json:"skipped,omitempty"`
}

// rtspCameraScript is the RTSP camera of the tests, from the module root.
const rtspCameraScript = "subscriber/testdata/rtsp_camera.py"

// rtspCameraPython is the interpreter the camera needs (its GObject
// bindings come with the system's).
const rtspCameraPython = "/usr/bin/python3"

// rtspCamera runs the RTSP camera and publishes it twice, passed through
// and re-encoded. What cannot run (tools missing, a build that cannot
// pass through or decode) is reported as skipped, not as a failure.
func rtspCamera(ctx context.Context, env *runEnv) ([]RTSPResult, error) {
	script, err := findCameraScript()
	if err == nil {
		err = rtspTools()
	}
	if err != nil {
		return []RTSPResult{{Case: "passthrough", Cores: -1, Skipped: err.Error()}}, nil
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cam, err := startChild("rtsp camera", rtspCameraPython, script, strconv.Itoa(port), "60")
	if err != nil {
		return []RTSPResult{{Case: "passthrough", Cores: -1, Skipped: err.Error()}}, nil
	}
	defer cam.stop()
	if _, err := cam.waitLine("ready", 20*time.Second); err != nil {
		return []RTSPResult{{Case: "passthrough", Cores: -1, Skipped: err.Error()}}, nil
	}
	url := "rtsp://127.0.0.1:" + strconv.Itoa(port) + "/cam"
	// The publisher passes the camera through only if this build can
	// demux it; else it would decode and encode it, unnoticed.
	camCodec, err := probeH264(ctx, url)
	if err != nil {
		return []RTSPResult{{Case: "passthrough", Source: url, Cores: -1,
			Skipped: "this build cannot pass an RTSP H.264 stream through: " + err.Error()}}, nil
	}
	cases := []struct{ name, source string }{
		{"passthrough", url},
		{"re-encode", "gst:rtspsrc location=" + url + " latency=0 ! rtph264depay ! avdec_h264 ! videoconvert ! appsink"},
	}
	var out []RTSPResult
	for i, c := range cases {
		r, err := rtspOnce(ctx, env, "bench-h264-rtsp-"+strconv.Itoa(i), c.source)
		r.Case, r.Source = c.name, c.source
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r.Skipped = err.Error()
		} else if c.name == "passthrough" && r.Codec != camCodec {
			r.Skipped = fmt.Sprintf("not passed through: the viewer got %s, the camera sends %s", r.Codec, camCodec)
		}
		out = append(out, r)
	}
	return out, nil
}

// rtspOnce publishes source with --codec h264 and measures the publisher
// with one viewer of its h264 layer.
func rtspOnce(ctx context.Context, env *runEnv, room, source string) (RTSPResult, error) {
	r := RTSPResult{Cores: -1}
	g, err := joinRooms(env.url, room, []roomSpec{{subscriber.LayerHi, ""}}, false, nil)
	if err != nil {
		return r, err
	}
	defer g.close()
	lp, err := startPublisher(env, liveConfig{room: room, name: "cam", enc: publisher.EncodeAuto, codec: protocol.CodecH264, source: source})
	if err != nil {
		return r, err
	}
	defer lp.stop()
	if err := g.waitFrames(ctx, flowWait); err != nil {
		return r, err
	}
	if err := sleep(ctx, env.warmup); err != nil {
		return r, err
	}
	var m *cpuMeter
	if pid := lp.pid(); pid != 0 {
		m = startCPU(pid)
	}
	fps, err := g.rates(ctx, env.d)
	if m != nil {
		r.Cores = round3(m.cores())
	}
	if err != nil {
		return r, err
	}
	s := g.stats()[0]
	r.FPS, r.Codec, r.Size = fps[0], s.Codec, protocol.FormatSize(s.Width, s.Height)
	return r, nil
}

// probeH264 opens url as an H.264 stream and returns its codec string.
func probeH264(ctx context.Context, url string) (string, error) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := media.OpenH264Context(pctx, url)
	if err != nil {
		return "", err
	}
	defer d.Close()
	return d.Codec(), nil
}

// rtspTools checks what the camera needs.
func rtspTools() error {
	if _, err := os.Stat(rtspCameraPython); err != nil {
		return fmt.Errorf("no %s for the RTSP camera", rtspCameraPython)
	}
	if _, err := exec.LookPath("gst-inspect-1.0"); err != nil {
		return errors.New("no gst-inspect-1.0: GStreamer is not installed (make deps-test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "gst-inspect-1.0", "x264enc").CombinedOutput(); err != nil {
		return fmt.Errorf("GStreamer's x264enc is missing (gstreamer1.0-plugins-ugly): %v %.200s", err, out)
	}
	return nil
}

// findCameraScript looks for the camera script in the module root above
// the working directory, else beside this source file.
func findCameraScript() (string, error) {
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		for d, i := wd, 0; i < 8; d, i = filepath.Dir(d), i+1 {
			dirs = append(dirs, d)
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		dirs = append(dirs, filepath.Join(filepath.Dir(file), "..", ".."))
	}
	for _, d := range dirs {
		p := filepath.Join(d, filepath.FromSlash(rtspCameraScript))
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s: run the bench from the vidhub source tree", rtspCameraScript)
}

// freePort is a TCP port on loopback that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: finding a free port for the RTSP camera: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

//go:build cgo

package media

import (
	"syscall"
	"testing"
	"time"
)

// These tests and benchmarks run in both native builds: the full build's
// encoder (FFmpeg's libavcodec) and the lite build's (libx264's own API).

// TestEncodeBitrate checks that the rate control hits its target on a
// picture that is hard to code.
func TestEncodeBitrate(t *testing.T) {
	for _, target := range []int{400_000, 1_500_000} {
		const n = 90
		cfg := EncoderConfig{Width: 640, Height: 360, FPS: 30, Bitrate: target}
		bytes := 0
		for _, au := range encodeAll(t, cfg, n, busyScene) {
			bytes += len(au.Data)
		}
		got := float64(bytes*8) / (n / cfg.FPS)
		t.Logf("target %d bit/s, got %.0f (%+.1f%%)", target, got, 100*(got/float64(target)-1))
		if got < 0.6*float64(target) || got > 1.4*float64(target) {
			t.Errorf("target %d bit/s, got %.0f: more than 40%% off", target, got)
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEncode720p encodes a camera-like 720p picture (a still
// background with sensor noise and a moving box) at the default bitrate,
// and reports the share of one core a 30 fps encode takes.
func BenchmarkEncode720p(b *testing.B) {
	imgs := cameraScenes(1280, 720, 30)
	enc, err := NewEncoder(EncoderConfig{Width: 1280, Height: 720, FPS: 30})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	bytes := 0
	c0 := cpuTime()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		au, err := enc.Encode(imgs[i%len(imgs)], false)
		if err != nil {
			b.Fatal(err)
		}
		bytes += len(au.Data)
	}
	cpu := cpuTime() - c0
	b.ReportMetric(100*cpu.Seconds()/float64(b.N)*30, "%core@30fps")
	b.ReportMetric(float64(bytes*8)/float64(b.N)*30/1000, "kbit/s")
}

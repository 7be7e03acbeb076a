//go:build cgo && !vidhub_lite

package publisher

import (
	"errors"
	"testing"
)

// TestCameraOf checks how each platform names a camera: Linux opens V4L2
// device paths, macOS and Windows open an index through their own camera
// API and refuse a Linux path with what to give instead.
func TestCameraOf(t *testing.T) {
	for _, tc := range []struct {
		goos, src string
		want      camera
		bad       bool
	}{
		{"linux", "0", camera{dev: "/dev/video0"}, false},
		{"linux", "2", camera{dev: "/dev/video2"}, false},
		{"linux", "/dev/video1", camera{dev: "/dev/video1"}, false},
		{"darwin", "0", camera{index: 0}, false},
		{"windows", "1", camera{index: 1}, false},
		{"windows", "/dev/video0", camera{}, true},
		{"darwin", "-1", camera{}, true},
	} {
		got, err := cameraOf(tc.goos, tc.src)
		if tc.bad {
			if !errors.Is(err, ErrSource) {
				t.Errorf("%s %q: %v, want ErrSource", tc.goos, tc.src, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %q: %+v, %v; want %+v", tc.goos, tc.src, got, err, tc.want)
		}
	}
}

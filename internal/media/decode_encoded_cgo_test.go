//go:build cgo && !vidhub_lite

package media

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vidhub/vidhub/protocol"
)

func TestH264Available(t *testing.T) {
	if !H264Available() {
		t.Fatal("H264Available is false in a cgo build: libavcodec lacks libx264 or the h264 decoder")
	}
}

// TestEncodeDecode encodes a moving picture, checks the access units
// the way a viewer does, decodes them back and checks what ffprobe makes
// of them.
func TestEncodeDecode(t *testing.T) {
	needTools(t, "ffprobe")
	for _, size := range [][2]int{{1280, 720}, {320, 180}} {
		w, h := size[0], size[1]
		t.Run(fmt.Sprintf("%dx%d", w, h), func(t *testing.T) {
			const n, keyInt, forced = 75, 30, 40
			cfg := EncoderConfig{Width: w, Height: h, FPS: 30, KeyInt: keyInt}
			aus := encodeAll(t, cfg, n, scene, forced)
			var keys []int
			for i, au := range aus {
				if err := protocol.CheckH264(au.Data, au.Key); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if au.Key {
					keys = append(keys, i)
				}
			}
			// A forced IDR restarts the GOP: the next one comes KeyInt
			// frames after it.
			if want := []int{0, 30, forced, forced + keyInt}; !slices.Equal(keys, want) {
				t.Errorf("keyframes at %v, want %v", keys, want)
			}
			c, err := protocol.H264CodecString(aus[0].Data)
			if err != nil || !strings.HasPrefix(c, "avc1.42C0") {
				t.Errorf("codec string %q (%v), want Constrained Baseline avc1.42C0xx", c, err)
			}

			dec, err := NewDecoder()
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			out := Image{Fmt: BGR24, Width: w, Height: h, Stride: w * 3, Pix: make([]byte, w*h*3)}
			var sum float64
			for i, au := range aus {
				ok, err := dec.Decode(au.Data)
				if !ok || err != nil {
					t.Fatalf("decoding frame %d: ok %v, %v", i, ok, err)
				}
				if dw, dh := dec.Size(); dw != w || dh != h {
					t.Fatalf("decoded %dx%d, want %dx%d", dw, dh, w, h)
				}
				if err := dec.Picture(out); err != nil {
					t.Fatal(err)
				}
				p := psnr(out, scene(w, h, i))
				if p < 27 {
					t.Errorf("frame %d decodes to %.1f dB PSNR, want 27 or more", i, p)
				}
				sum += p
			}
			// The whole picture changes every frame: 30 dB is good at
			// the default bitrate (100 kbit/s for 320x180).
			if mean := sum / n; mean < 30 {
				t.Errorf("mean PSNR %.1f dB, want 30 or more", mean)
			}

			file := filepath.Join(t.TempDir(), "out.h264")
			var all []byte
			for _, au := range aus {
				all = append(all, au.Data...)
			}
			if err := os.WriteFile(file, all, 0o644); err != nil {
				t.Fatal(err)
			}
			probe, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries",
				"stream=codec_name,width,height,nb_read_frames", "-of", "default=noprint_wrappers=1", file).CombinedOutput()
			if err != nil {
				t.Fatalf("ffprobe: %v\n%s", err, probe)
			}
			want := fmt.Sprintf("codec_name=h264\nwidth=%d\nheight=%d\nnb_read_frames=%d\n", w, h, n)
			if string(probe) != want {
				t.Errorf("ffprobe says\n%s\nwant\n%s", probe, want)
			}
		})
	}
}

// BenchmarkDecode720p decodes 720p access units, two seconds' worth
// (a keyframe and 59 P-frames) over and over.
func BenchmarkDecode720p(b *testing.B) {
	aus := encodeAll(b, EncoderConfig{Width: 1280, Height: 720, FPS: 30}, 60, func(w, h, i int) Image { return cameraScenes(w, h, 60)[i] })
	dec, err := NewDecoder()
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if ok, err := dec.Decode(aus[i%len(aus)].Data); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

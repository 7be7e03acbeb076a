// Package media is vidhub's one home for native (cgo) media code: H.264
// encoding with libx264's own API, decoding and demuxing through FFmpeg's
// libraries (libavcodec, libavformat, libswscale) over a small cgo layer,
// and OpenCV through gocv: capture from cameras, files, streams and
// GStreamer pipelines (Capture), BGR pictures with JPEG coding and
// scaling by libjpeg-turbo (Picture), drawing (Canvas) and the desktop
// window (Window). Every other package of vidhub is pure Go.
//
// The full build (cgo) has all of it. The lite build (cgo, build tag
// vidhub_lite: a static binary for the container image) has only the
// encoder, which both builds share: NewDecoder and OpenH264 return
// ErrUnavailable, and it has no OpenCV. The static build (CGO_ENABLED=0)
// has none: every constructor returns ErrUnavailable, which says so
// plainly (ErrNoOpenCV, an ErrUnavailable, for OpenCV's). CanEncodeH264,
// CanDecodeH264 and OpenCVAvailable say what a build has, so that
// callers fall back to JPEG, the standard library's codec or the
// headless viewer where it lacks a part.
package media

import (
	"errors"
	"time"
)

// ErrUnavailable is returned (wrapped) by every constructor of a build
// without native media code.
var ErrUnavailable = errors.New("this build of vidhub lacks that part of H.264 (the static build, built with CGO_ENABLED=0, has no H.264 codec; the lite build only encodes, without FFmpeg); use the full build, or --codec jpeg")

// H264Available reports whether this build can both encode and decode
// H.264: only the full build can.
func H264Available() bool { return CanEncodeH264() && CanDecodeH264() }

// ErrNotH264 is returned (wrapped) by OpenH264 for a source whose video is
// not H.264: it cannot be passed through.
var ErrNotH264 = errors.New("the source's video is not H.264")

// PixFmt is the layout of an Image's pixels.
type PixFmt int

// Pixel formats the encoder takes and the decoder gives.
const (
	BGR24 PixFmt = iota + 1 // 3 bytes per pixel, B G R: OpenCV's Mat
	RGBA                    // 4 bytes per pixel, R G B A: Go's image.RGBA
	// I420 is YUV 4:2:0 in three planes one after another: luma (Height
	// rows Stride bytes apart), then U and V (Height/2 rows Stride/2
	// bytes apart). Width and Height are even. Encoders take it; it is
	// what Encoder.Input gives.
	I420
)

// Image is a picture in memory that media reads or writes. Pix may point
// into C memory (a gocv Mat's data); media never keeps it past a call.
type Image struct {
	Fmt           PixFmt
	Width, Height int
	Stride        int // bytes per row
	Pix           []byte
}

// EncoderConfig says how to encode.
type EncoderConfig struct {
	// Width and Height of the coded picture; input images of another size
	// are scaled to it. Both must be even.
	Width, Height int
	// FPS is the frame rate the rate control plans for.
	FPS float64
	// Bitrate is the target in bits per second; 0 picks one from the
	// picture size and frame rate (DefaultBitrate).
	Bitrate int
	// KeyInt is the most frames between two keyframes; 0 means two
	// seconds' worth.
	KeyInt int
}

// DefaultBitrate is the bitrate an encoder targets for w x h at fps when
// EncoderConfig.Bitrate is 0.
func DefaultBitrate(w, h int, fps float64) int {
	// About 0.05 bit per pixel per frame: ~1.4 Mbit/s for 720p30, a
	// seventeenth of what JPEG quality 80 takes for the same scene. It
	// buys a little less than JPEG's SSIM on a detailed, noisy one
	// (BENCHMARKS.md, "H.264 against JPEG"): raise --bitrate for more.
	b := int(float64(w*h) * fps * 0.05)
	return max(b, 100_000)
}

// AU is one coded access unit.
type AU struct {
	// Data is Annex B, with SPS and PPS ahead of every IDR. It is valid
	// until the next call on what returned it.
	Data []byte
	Key  bool          // an IDR: decodable on its own
	PTS  time.Duration // presentation time from the source's start (demuxer only)
}

// Encoder is what NewEncoder returns: H.264 with real-time settings
// (libx264: zero latency, no B-frames, no lookahead): every Encode returns
// the access unit of the image it was given.
type Encoder interface {
	// Encode codes img, scaled to the encoder's size; forceKey makes it
	// an IDR.
	Encode(img Image, forceKey bool) (AU, error)
	// Codec is the codec string (e.g. "avc1.42E01F") of what it encodes.
	Codec() string
	// Size is the coded picture's size.
	Size() (w, h int)
	// SetBitrate changes the target bitrate (bits per second) from the
	// next picture on, without a keyframe: what adapting to the network
	// needs.
	SetBitrate(bps int) error
	// Input is the I420 picture the last Encode coded, at the encoder's
	// size (a zero Image before the first): valid until the next Encode
	// or Close. A smaller encoder codes it for less than the source.
	Input() Image
	Close()
}

// Decoder is what NewDecoder returns: H.264 access units in, pictures
// out.
type Decoder interface {
	// Decode decodes one access unit. ok reports whether a picture came
	// out; err reports data the decoder could not decode (corrupt, or a
	// reference it never got). After an error, feed it a keyframe.
	Decode(au []byte) (ok bool, err error)
	// Size is the size of the last picture.
	Size() (w, h int)
	// Picture converts the last picture into dst (w x h), scaling if
	// dst's size differs.
	Picture(dst Image) error
	Close()
}

// Demuxer is what OpenH264 returns: the H.264 access units of a file or
// stream (RTSP, a .mp4, .mkv or .h264 file), untouched, in Annex B.
type Demuxer interface {
	// Read returns the next access unit; io.EOF at the end of a file.
	Read() (AU, error)
	// Size is the video's size.
	Size() (w, h int)
	// FPS is the video's frame rate as the container states it (0 when
	// it states none).
	FPS() float64
	// Codec is the codec string of the video.
	Codec() string
	// Live reports whether the source delivers at its own pace (a
	// network stream) rather than as fast as it is read (a file).
	Live() bool
	Close() error
}

// MP4Writer is what CreateMP4 returns: H.264 access units into an MP4
// file, as they are.
type MP4Writer interface {
	// Write adds one Annex B access unit at pts; the first must be a
	// keyframe. Timestamps that do not go forward are nudged so they do.
	Write(au []byte, pts time.Duration, key bool) error
	// Close finishes the file.
	Close() error
}

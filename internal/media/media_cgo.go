//go:build cgo && !vidhub_lite

package media

/*
#cgo pkg-config: libavcodec libavformat libavutil libswscale
#include "media_cgo.h"
*/
import "C"

import "sync"

var initOnce sync.Once

// setup routes FFmpeg's log into the errors media returns, once.
func setup() { initOnce.Do(func() { C.vm_init() }) }

// CanDecodeH264 reports whether this build can decode H.264 and pass it
// through: FFmpeg's libavcodec has the h264 decoder.
func CanDecodeH264() bool {
	setup()
	return C.vm_h264_decoder_available() != 0
}

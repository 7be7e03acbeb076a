//go:build cgo

package media

/*
#cgo pkg-config: libavcodec libavformat libavutil libswscale
#include "media_cgo.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

var initOnce sync.Once

// setup routes FFmpeg's log into the errors media returns, once.
func setup() { initOnce.Do(func() { C.vm_init() }) }

// H264Available reports whether this build can encode and decode H.264:
// FFmpeg's libavcodec has the libx264 encoder and the h264 decoder.
func H264Available() bool {
	setup()
	return C.vm_h264_available() != 0
}

// msgBuf carries an error's text back from C.
type msgBuf [C.VM_MSG]C.char

func (m *msgBuf) ptr() *C.char { return &m[0] }

func (m *msgBuf) String() string { return C.GoString(&m[0]) }

// errNoFrame is what the encoder and the decoder return after Close.
var errClosed = errors.New("used after Close")

// checkImage checks that img's pixels cover its size, so that C never
// reads or writes past Pix.
func checkImage(img Image) error {
	bpp := 0
	switch img.Fmt {
	case BGR24:
		bpp = 3
	case RGBA:
		bpp = 4
	default:
		return fmt.Errorf("image has an unknown pixel format %d: use media.BGR24 or media.RGBA", img.Fmt)
	}
	switch {
	case img.Width <= 0 || img.Height <= 0 || img.Width > 1<<14 || img.Height > 1<<14:
		return fmt.Errorf("image is %dx%d: want a size from 1x1 to 16384x16384", img.Width, img.Height)
	case img.Stride < img.Width*bpp:
		return fmt.Errorf("image stride %d is less than its width %d times %d bytes a pixel", img.Stride, img.Width, bpp)
	case len(img.Pix) < img.Stride*(img.Height-1)+img.Width*bpp:
		return fmt.Errorf("image of %dx%d with stride %d needs %d bytes, has %d", img.Width, img.Height, img.Stride,
			img.Stride*(img.Height-1)+img.Width*bpp, len(img.Pix))
	}
	return nil
}

// pixPtr is the address of img's first pixel.
func pixPtr(img Image) *C.uint8_t { return (*C.uint8_t)(unsafe.Pointer(&img.Pix[0])) }

package publisher

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"sync"
)

var jpegBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// encodeRGBAStd encodes with the standard library: the static build's
// encoder, and the fallback for images OpenCV cannot wrap.
func encodeRGBAStd(img *image.RGBA, q int, use func([]byte) error) error {
	buf := jpegBufs.Get().(*bytes.Buffer)
	defer jpegBufs.Put(buf)
	buf.Reset()
	if err := jpeg.Encode(buf, img, &jpeg.Options{Quality: q}); err != nil {
		return fmt.Errorf("JPEG encoding: %w", err)
	}
	return use(buf.Bytes())
}

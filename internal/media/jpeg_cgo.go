//go:build cgo && !vidhub_lite

package media

/*
#cgo LDFLAGS: -ljpeg
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

// The H.264 encoder's pictures are BT.601 YUV 4:2:0 in limited range
// (luma 16 to 235, chroma 16 to 240); a JPEG's (JFIF) are the same in
// full range. Each sample is mapped on the way into libjpeg.
static uint8_t vj_luma[256], vj_chroma[256];

static void vj_tables(void) {
	for (int i = 0; i < 256; i++) {
		int y = ((i - 16) * 255 * 2 + 219) / (219 * 2);
		int c = 128 + ((i - 128) * 255 * 2 + (i >= 128 ? 224 : -224)) / (224 * 2);
		vj_luma[i] = y < 0 ? 0 : y > 255 ? 255 : y;
		vj_chroma[i] = c < 0 ? 0 : c > 255 ? 255 : c;
	}
}

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	char msg[JMSG_LENGTH_MAX];
} vj_error;

static void vj_error_exit(j_common_ptr c) {
	vj_error *e = (vj_error *)c->err;
	(*c->err->format_message)(c, e->msg);
	longjmp(e->jump, 1);
}

static void vj_quiet(j_common_ptr c, int level) { (void)c; (void)level; }

// vj_rows maps rows [y0, y0+n) of a plane w x h (rows stride apart) into
// dst, each row padded to pw by repeating its last sample, and rows past
// the picture's last by repeating it: libjpeg reads whole 8x8 blocks.
static void vj_rows(uint8_t *dst, int pw, const uint8_t *src, size_t stride, int w, int h, int y0, int n,
                    const uint8_t *lut) {
	for (int r = 0; r < n; r++) {
		int y = y0 + r < h ? y0 + r : h - 1;
		const uint8_t *in = src + (size_t)y * stride;
		uint8_t *out = dst + (size_t)r * pw;
		for (int x = 0; x < w; x++) out[x] = lut[in[x]];
		memset(out + w, out[w - 1], pw - w);
	}
}

// vj_encode codes the w x h I420 picture (luma rows stride bytes apart,
// then both chroma planes, rows stride/2 apart) as a baseline JPEG of
// quality q. *out is libjpeg's buffer: free it with free().
static int vj_encode(const uint8_t *pix, int w, int h, int stride, int q, unsigned char **out, unsigned long *size,
                     char *msg, int msgsize) {
	int cw = (w + 1) / 2, ch = (h + 1) / 2;
	int pw = (w + 15) & ~15, pcw = pw / 2;
	const uint8_t *py = pix, *pu = pix + (size_t)stride * h, *pv = pu + (size_t)(stride / 2) * ch;
	uint8_t *scratch = malloc((size_t)pw * 16 + (size_t)pcw * 8 * 2);
	if (!scratch) {
		snprintf(msg, msgsize, "out of memory");
		return -1;
	}
	uint8_t *sy = scratch, *su = sy + (size_t)pw * 16, *sv = su + (size_t)pcw * 8;
	struct jpeg_compress_struct c;
	vj_error err;
	c.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = vj_error_exit;
	err.pub.emit_message = vj_quiet;
	*out = NULL;
	*size = 0;
	if (setjmp(err.jump)) {
		snprintf(msg, msgsize, "%s", err.msg);
		jpeg_destroy_compress(&c);
		free(*out);
		*out = NULL;
		free(scratch);
		return -1;
	}
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, out, size);
	c.image_width = w;
	c.image_height = h;
	c.input_components = 3;
	c.in_color_space = JCS_YCbCr;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, q, TRUE);
	c.raw_data_in = TRUE;
	c.comp_info[0].h_samp_factor = 2;
	c.comp_info[0].v_samp_factor = 2;
	c.comp_info[1].h_samp_factor = 1;
	c.comp_info[1].v_samp_factor = 1;
	c.comp_info[2].h_samp_factor = 1;
	c.comp_info[2].v_samp_factor = 1;
	jpeg_start_compress(&c, TRUE);
	JSAMPROW ry[16], ru[8], rv[8];
	JSAMPARRAY planes[3] = {ry, ru, rv};
	for (int i = 0; i < 16; i++) ry[i] = sy + (size_t)i * pw;
	for (int i = 0; i < 8; i++) {
		ru[i] = su + (size_t)i * pcw;
		rv[i] = sv + (size_t)i * pcw;
	}
	while (c.next_scanline < c.image_height) {
		int y0 = c.next_scanline;
		vj_rows(sy, pw, py, stride, w, h, y0, 16, vj_luma);
		vj_rows(su, pcw, pu, stride / 2, cw, ch, y0 / 2, 8, vj_chroma);
		vj_rows(sv, pcw, pv, stride / 2, cw, ch, y0 / 2, 8, vj_chroma);
		jpeg_write_raw_data(&c, planes, 16);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(scratch);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

var jpegTables sync.Once

// CanEncodeJPEGI420 reports whether EncodeJPEGI420 works in this build:
// in the full build, through libjpeg(-turbo).
func CanEncodeJPEGI420() bool { return true }

// EncodeJPEGI420 encodes img, an I420 picture in limited range (what an
// Encoder's Input holds), as a baseline JPEG (JFIF: full range, 4:2:0)
// of quality q, and calls use with it; the bytes are valid only during
// the call. Taking a JPEG layer from the picture the H.264 encoder
// already converted saves converting the frame to YCbCr a second time.
func EncodeJPEGI420(img Image, q int, use func([]byte) error) error {
	err := checkImage(img)
	if err == nil && img.Fmt != I420 {
		err = fmt.Errorf("pixel format %d", img.Fmt)
	}
	if err != nil {
		return fmt.Errorf("JPEG from I420: %w; want even sizes and the whole I420 picture", err)
	}
	if q < 1 || q > 100 {
		return fmt.Errorf("JPEG from I420: quality %d: want 1 to 100", q)
	}
	jpegTables.Do(func() { C.vj_tables() })
	var out *C.uchar
	var size C.ulong
	var msg [256]C.char
	if C.vj_encode((*C.uint8_t)(unsafe.Pointer(&img.Pix[0])), C.int(img.Width), C.int(img.Height), C.int(img.Stride),
		C.int(q), &out, &size, &msg[0], C.int(len(msg))) != 0 {
		return fmt.Errorf("JPEG encoding: %s", C.GoString(&msg[0]))
	}
	defer C.free(unsafe.Pointer(out))
	return use(unsafe.Slice((*byte)(unsafe.Pointer(out)), int(size)))
}

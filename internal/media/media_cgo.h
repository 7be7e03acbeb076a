//go:build cgo

// The C half of package media: thin wrappers over libavcodec's h264
// decoder, libavformat and libswscale (the full build), and over libx264
// (both native builds, encoder.h), that keep every native object in C memory,
// so that Go holds only opaque pointers.

#ifndef VIDHUB_MEDIA_H
#define VIDHUB_MEDIA_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

// Pixel formats, as media.PixFmt numbers them.
enum { VM_BGR24 = 1, VM_RGBA = 2, VM_I420 = 3 };

// Error codes of our own, beside FFmpeg's negative AVERROR codes.
enum {
	VM_ECLOSED = -0x7fff0001,   // interrupted by Close (or a cancelled context)
	VM_ETIMEDOUT = -0x7fff0002, // the source sent nothing within the timeout
	VM_ENOTH264 = -0x7fff0003,  // the best video stream is not H.264
	VM_ENOVIDEO = -0x7fff0004,  // the source has no video stream
	VM_EHELD = -0x7fff0005,     // the encoder kept a frame back
	VM_ECORRUPT = -0x7fff0006,  // the decoder flagged its picture corrupt
};

// VM_EOF is AVERROR_EOF, which cgo cannot evaluate.
enum { VM_EOF = -0x20464f45 };

// vm_keep_line formats a library's log line into dst (size bytes), without
// its trailing newline and spaces, unless it comes out empty: what the
// log callbacks keep of the last error for the error text.
void vm_keep_line(char *dst, size_t size, const char *fmt, va_list vl);

// VM_MSG is the size of the buffers that carry error text back to Go.
#define VM_MSG 320

void vm_init(void);
int vm_h264_decoder_available(void);

typedef struct vdec vdec;
vdec *vdec_open(char *msg);
// vdec_decode returns 1 when a picture came out, 0 when none did, or a
// negative error code.
int vdec_decode(vdec *d, const uint8_t *data, int size, char *msg);
void vdec_size(vdec *d, int *w, int *h);
int vdec_picture(vdec *d, uint8_t *pix, int fmt, int w, int h, int stride, char *msg);
void vdec_close(vdec *d);

typedef struct vdmx vdmx;
vdmx *vdmx_alloc(void);
void vdmx_interrupt(vdmx *d);
int vdmx_open(vdmx *d, const char *url, int rtsp, int64_t timeout_us, char *msg);
int vdmx_read(vdmx *d, char *msg);
const uint8_t *vdmx_packet(vdmx *d, int *size, int64_t *pts_ns, int *key);
const uint8_t *vdmx_extradata(vdmx *d, int *size);
void vdmx_info(vdmx *d, int *w, int *h, double *fps);
void vdmx_free(vdmx *d);

typedef struct vmux vmux;
// vmux_open creates an MP4 file at path for H.264 of w x h, whose SPS and
// PPS (Annex B) are extra.
vmux *vmux_open(const char *path, int w, int h, const uint8_t *extra, int extra_size, char *msg);
// vmux_write adds one Annex B access unit at pts_90k, lasting dur_90k
// (90 kHz ticks).
int vmux_write(vmux *m, const uint8_t *data, int size, int64_t pts_90k, int64_t dur_90k, int key, char *msg);
int vmux_finish(vmux *m, char *msg);
void vmux_close(vmux *m);

#endif

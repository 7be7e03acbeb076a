//go:build cgo

#include "encoder.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <x264.h>

// last_log holds the last error libx264 logged on this thread. Each entry
// point below runs on one thread from start to end (cgo pins it), so an
// entry point can clear it, call libx264 and quote it in its error text.
// Errors logged from x264's own threads land in their own copy, unseen.
static _Thread_local char last_log[160];

static void log_cb(void *priv, int level, const char *fmt, va_list vl) {
	(void)priv;
	if (level > X264_LOG_ERROR) {
		return;
	}
	vm_keep_line(last_log, sizeof last_log, fmt, vl);
}

// fail writes "what (libx264's last log line)" into msg and returns code.
static int fail(char *msg, int code, const char *what) {
	if (last_log[0]) {
		snprintf(msg, VM_MSG, "%s (libx264: %s)", what, last_log);
	} else {
		snprintf(msg, VM_MSG, "%s", what);
	}
	return code;
}

// spans is a box filter's plan along one axis: for each of n outputs, the
// span [lo, hi) of the src inputs it averages (the nearest input where
// the picture grows).
typedef struct {
	int n, src;
	int *lo, *hi;
} spans;

static void spans_free(spans *s) {
	free(s->lo);
	free(s->hi);
	s->lo = s->hi = NULL;
	s->n = s->src = 0;
}

// spans_plan makes s the plan from src inputs to n outputs; 0 when out of
// memory.
static int spans_plan(spans *s, int n, int src) {
	if (s->n == n && s->src == src) {
		return 1;
	}
	spans_free(s);
	s->lo = malloc(sizeof(int) * (size_t)n);
	s->hi = malloc(sizeof(int) * (size_t)n);
	if (!s->lo || !s->hi) {
		spans_free(s);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		int a = (int)((int64_t)i * src / n);
		int b = (int)((int64_t)(i + 1) * src / n);
		s->lo[i] = a;
		s->hi[i] = b > a ? b : a + 1;
	}
	s->n = n;
	s->src = src;
	return 1;
}

struct vx264 {
	x264_t *x;
	x264_picture_t pic; // the I420 picture handed to x264, at its size
	uint8_t *yuv;       // pic's planes, one after another, rows unpadded
	int w, h;
	int64_t pts;
	// the scaler's plans, and the picture it scales RGB into
	spans sx, sy;
	uint8_t *rgb; // R G B, w x h
	const uint8_t *out;
	int out_size, out_key;
	// vbv_after is the VBV buffer (kbit) to restore after the next
	// picture, 0 for none: see vx264_set_bitrate.
	int vbv_after;
};

void vx264_close(vx264 *e) {
	if (!e) {
		return;
	}
	if (e->x) {
		x264_encoder_close(e->x);
	}
	spans_free(&e->sx);
	spans_free(&e->sy);
	free(e->yuv);
	free(e->rgb);
	free(e);
}

vx264 *vx264_open(const vx264_config *cfg, char *msg) {
	last_log[0] = 0;
	x264_param_t p;
	if (x264_param_default_preset(&p, cfg->preset, cfg->tune) < 0) {
		fail(msg, -1, "libx264 does not know the preset or the tune");
		return NULL;
	}
	p.pf_log = log_cb;
	p.i_log_level = X264_LOG_ERROR;
	p.i_csp = X264_CSP_I420;
	p.i_width = cfg->width;
	p.i_height = cfg->height;
	p.i_fps_num = cfg->fps_num;
	p.i_fps_den = cfg->fps_den;
	p.i_timebase_num = cfg->fps_den;
	p.i_timebase_den = cfg->fps_num;
	p.b_vfr_input = 0;
	p.i_threads = cfg->threads;
	p.b_sliced_threads = 1;
	p.i_sync_lookahead = 0;
	p.i_bframe = 0;
	// Two reference pictures instead of superfast's one: on the panned,
	// noisy clip of BENCHMARKS.md, SSIM 0.9647 against 0.9612 at the same
	// bitrate, for about a millisecond more per 720p picture.
	p.i_frame_reference = 2;
	p.i_keyint_max = cfg->keyint;
	p.i_scenecut_threshold = 0;
	p.b_repeat_headers = 1;
	p.b_annexb = 1;
	p.rc.i_rc_method = X264_RC_ABR;
	p.rc.i_bitrate = cfg->bitrate / 1000;
	p.rc.i_vbv_max_bitrate = cfg->bitrate / 1000;
	p.rc.i_vbv_buffer_size = cfg->vbv_bufsize / 1000;
	p.rc.i_lookahead = 0;
	// BT.601, limited range: what the conversion below writes.
	p.vui.i_colmatrix = 6; // SMPTE 170M
	p.vui.b_fullrange = 0;
	if (x264_param_apply_profile(&p, cfg->profile) < 0) {
		fail(msg, -1, "applying the H.264 profile");
		return NULL;
	}
	vx264 *e = calloc(1, sizeof *e);
	if (!e) {
		fail(msg, -1, "allocating the encoder: out of memory");
		return NULL;
	}
	e->w = cfg->width;
	e->h = cfg->height;
	e->x = x264_encoder_open(&p);
	if (!e->x) {
		fail(msg, -1, "opening the libx264 encoder");
		vx264_close(e);
		return NULL;
	}
	size_t luma = (size_t)e->w * e->h, chroma = luma / 4;
	e->yuv = malloc(luma + 2 * chroma);
	if (!e->yuv) {
		fail(msg, -1, "allocating the encoder's picture: out of memory");
		vx264_close(e);
		return NULL;
	}
	x264_picture_init(&e->pic);
	e->pic.img.i_csp = X264_CSP_I420;
	e->pic.img.i_plane = 3;
	e->pic.img.plane[0] = e->yuv;
	e->pic.img.plane[1] = e->yuv + luma;
	e->pic.img.plane[2] = e->yuv + luma + chroma;
	e->pic.img.i_stride[0] = e->w;
	e->pic.img.i_stride[1] = e->pic.img.i_stride[2] = e->w / 2;
	return e;
}

const uint8_t *vx264_headers(vx264 *e, int *size, char *msg) {
	last_log[0] = 0;
	x264_nal_t *nal;
	int n;
	int bytes = x264_encoder_headers(e->x, &nal, &n);
	if (bytes < 0 || n < 1) {
		*size = 0;
		fail(msg, -1, "getting the encoder's SPS and PPS");
		return NULL;
	}
	// x264 keeps the payloads of the NAL units it returns in one run.
	*size = bytes;
	return nal[0].p_payload;
}

// scale_rgb writes the w x h picture pix (bpp bytes a pixel, red at byte
// ri, green at 1, blue at bi) into e->rgb (R G B) at the encoder's size.
static void scale_rgb(vx264 *e, const uint8_t *pix, int w, int h, size_t stride, int bpp, int ri, int bi) {
	const int *x0s = e->sx.lo, *x1s = e->sx.hi, *y0s = e->sy.lo, *y1s = e->sy.hi;
	uint8_t *out = e->rgb;
	(void)w;
	(void)h;
	for (int oy = 0; oy < e->h; oy++) {
		int y0 = y0s[oy], y1 = y1s[oy];
		for (int ox = 0; ox < e->w; ox++, out += 3) {
			int x0 = x0s[ox], x1 = x1s[ox];
			unsigned r = 0, g = 0, b = 0, n = (unsigned)((x1 - x0) * (y1 - y0));
			for (int y = y0; y < y1; y++) {
				const uint8_t *s = pix + (size_t)y * stride + (size_t)x0 * bpp;
				for (int x = x0; x < x1; x++, s += bpp) {
					r += s[ri];
					g += s[1];
					b += s[bi];
				}
			}
			out[0] = (uint8_t)((r + n / 2) / n);
			out[1] = (uint8_t)((g + n / 2) / n);
			out[2] = (uint8_t)((b + n / 2) / n);
		}
	}
}

// to_i420 converts the w x h picture src (bpp bytes a pixel, red at byte
// ri, green at 1, blue at bi) into the I420 picture img, BT.601 limited
// range; each chroma sample is that of its 2 x 2 pixels' mean colour. It
// goes a row at a time, in loops the compiler vectorizes, and is inlined
// with constant bpp, ri and bi, once per layout.
static inline __attribute__((always_inline)) void to_i420(x264_image_t *img, const uint8_t *restrict src, size_t stride,
                                                          int w, int h, const int bpp, const int ri, const int bi) {
	for (int y = 0; y < h; y += 2) {
		const uint8_t *restrict s0 = src + (size_t)y * stride, *restrict s1 = s0 + stride;
		uint8_t *restrict y0 = img->plane[0] + (size_t)y * img->i_stride[0];
		uint8_t *restrict y1 = y0 + img->i_stride[0];
		uint8_t *restrict u = img->plane[1] + (size_t)(y / 2) * img->i_stride[1];
		uint8_t *restrict v = img->plane[2] + (size_t)(y / 2) * img->i_stride[2];
		for (int x = 0; x < w; x++) {
			const uint8_t *s = s0 + x * bpp;
			y0[x] = (uint8_t)(((66 * s[ri] + 129 * s[1] + 25 * s[bi] + 128) >> 8) + 16);
		}
		for (int x = 0; x < w; x++) {
			const uint8_t *s = s1 + x * bpp;
			y1[x] = (uint8_t)(((66 * s[ri] + 129 * s[1] + 25 * s[bi] + 128) >> 8) + 16);
		}
		for (int x = 0; x < w / 2; x++) {
			const uint8_t *a = s0 + 2 * x * bpp, *b = s1 + 2 * x * bpp;
			int r = (a[ri] + a[bpp + ri] + b[ri] + b[bpp + ri] + 2) >> 2;
			int g = (a[1] + a[bpp + 1] + b[1] + b[bpp + 1] + 2) >> 2;
			int bl = (a[bi] + a[bpp + bi] + b[bi] + b[bpp + bi] + 2) >> 2;
			u[x] = (uint8_t)(((-38 * r - 74 * g + 112 * bl + 128) >> 8) + 128);
			v[x] = (uint8_t)(((112 * r - 94 * g - 18 * bl + 128) >> 8) + 128);
		}
	}
}

// shrink_plane writes the sw x sh plane src into the dw x dh plane dst,
// each output the mean of the k x k inputs it covers (sw = k dw, sh =
// k dh, k <= 8): the rows of each band summed first, in a loop the
// compiler vectorizes, then the columns.
static inline __attribute__((always_inline)) void shrink_plane(uint8_t *restrict dst, size_t dstride, int dw, int dh,
                                                               const uint8_t *restrict src, size_t sstride, const int k) {
	int sw = dw * k;
	uint16_t col[sw]; // at most 8 x 255 per column
	for (int oy = 0; oy < dh; oy++) {
		const uint8_t *restrict s = src + (size_t)oy * k * sstride;
		for (int x = 0; x < sw; x++) {
			col[x] = s[x];
		}
		for (int i = 1; i < k; i++) {
			s += sstride;
			for (int x = 0; x < sw; x++) {
				col[x] += s[x];
			}
		}
		uint8_t *restrict d = dst + (size_t)oy * dstride;
		for (int ox = 0; ox < dw; ox++) {
			unsigned t = 0;
			for (int j = 0; j < k; j++) {
				t += col[ox * k + j];
			}
			d[ox] = (uint8_t)((t + k * k / 2) / (k * k));
		}
	}
}

// box_plane writes the sw x sh plane src into the dw x dh plane dst
// through the plans sx and sy: a box filter of any ratio.
static void box_plane(uint8_t *dst, size_t dstride, int dw, int dh, const uint8_t *src, size_t sstride, const spans *sx,
                      const spans *sy) {
	for (int oy = 0; oy < dh; oy++) {
		int y0 = sy->lo[oy], y1 = sy->hi[oy];
		uint8_t *d = dst + (size_t)oy * dstride;
		for (int ox = 0; ox < dw; ox++) {
			int x0 = sx->lo[ox], x1 = sx->hi[ox];
			unsigned t = 0, n = (unsigned)((x1 - x0) * (y1 - y0));
			for (int y = y0; y < y1; y++) {
				const uint8_t *s = src + (size_t)y * sstride;
				for (int x = x0; x < x1; x++) {
					t += s[x];
				}
			}
			d[ox] = (uint8_t)((t + n / 2) / n);
		}
	}
}

// copy_plane copies a w x h plane between strides.
static void copy_plane(uint8_t *dst, size_t dstride, const uint8_t *src, size_t sstride, int w, int h) {
	for (int y = 0; y < h; y++) {
		memcpy(dst + (size_t)y * dstride, src + (size_t)y * sstride, (size_t)w);
	}
}

// from_i420 fills the encoder's picture from the I420 picture pix (w x h,
// luma rows stride bytes apart, then the two chroma planes, rows stride/2
// apart): copied at the encoder's size, shrunk by a whole factor, or else
// box-filtered plane by plane. 0 when out of memory.
static int from_i420(vx264 *e, const uint8_t *pix, int w, int h, size_t stride) {
	x264_image_t *img = &e->pic.img;
	const uint8_t *src[3] = {pix, pix + stride * h, pix + stride * h + (stride / 2) * (h / 2)};
	size_t sstride[3] = {stride, stride / 2, stride / 2};
	int k = w / e->w;
	int whole = k > 1 && k <= 8 && w == k * e->w && h == k * e->h;
	for (int i = 0; i < 3; i++) {
		int dw = i ? e->w / 2 : e->w, dh = i ? e->h / 2 : e->h, sw = i ? w / 2 : w, sh = i ? h / 2 : h;
		uint8_t *dst = img->plane[i];
		size_t dstride = (size_t)img->i_stride[i];
		if (w == e->w && h == e->h) {
			copy_plane(dst, dstride, src[i], sstride[i], dw, dh);
		} else if (whole && k == 2) {
			shrink_plane(dst, dstride, dw, dh, src[i], sstride[i], 2);
		} else if (whole && k == 4) {
			shrink_plane(dst, dstride, dw, dh, src[i], sstride[i], 4);
		} else if (whole) {
			shrink_plane(dst, dstride, dw, dh, src[i], sstride[i], k);
		} else {
			if (!spans_plan(&e->sx, dw, sw) || !spans_plan(&e->sy, dh, sh)) {
				return 0;
			}
			box_plane(dst, dstride, dw, dh, src[i], sstride[i], &e->sx, &e->sy);
		}
	}
	return 1;
}

// convert fills the encoder's picture from pix. 0 when out of memory.
static int convert(vx264 *e, const uint8_t *pix, int fmt, int w, int h, int stride) {
	x264_image_t *img = &e->pic.img;
	if (fmt == VM_I420) {
		return from_i420(e, pix, w, h, (size_t)stride);
	}
	int bpp = fmt == VM_RGBA ? 4 : 3;
	int ri = fmt == VM_RGBA ? 0 : 2, bi = fmt == VM_RGBA ? 2 : 0;
	if (w != e->w || h != e->h) {
		if (!e->rgb) {
			e->rgb = malloc((size_t)e->w * e->h * 3);
		}
		if (!e->rgb || !spans_plan(&e->sx, e->w, w) || !spans_plan(&e->sy, e->h, h)) {
			return 0;
		}
		scale_rgb(e, pix, w, h, (size_t)stride, bpp, ri, bi);
		to_i420(img, e->rgb, (size_t)e->w * 3, e->w, e->h, 3, 0, 2);
	} else if (fmt == VM_RGBA) {
		to_i420(img, pix, (size_t)stride, w, h, 4, 0, 2);
	} else {
		to_i420(img, pix, (size_t)stride, w, h, 3, 2, 0);
	}
	return 1;
}

int vx264_encode(vx264 *e, const uint8_t *pix, int fmt, int w, int h, int stride, int force_key, char *msg) {
	last_log[0] = 0;
	e->out = NULL;
	e->out_size = 0;
	e->out_key = 0;
	if (fmt != VM_BGR24 && fmt != VM_RGBA && fmt != VM_I420) {
		return fail(msg, -1, "unknown pixel format");
	}
	if (!convert(e, pix, fmt, w, h, stride)) {
		return fail(msg, -1, "scaling the picture: out of memory");
	}
	e->pic.i_pts = e->pts++;
	e->pic.i_type = force_key ? X264_TYPE_IDR : X264_TYPE_AUTO;
	x264_nal_t *nal;
	int n;
	x264_picture_t out;
	int bytes = x264_encoder_encode(e->x, &nal, &n, &e->pic, &out);
	if (e->vbv_after > 0 && bytes >= 0) {
		x264_param_t p;
		x264_encoder_parameters(e->x, &p);
		p.rc.i_vbv_buffer_size = e->vbv_after;
		e->vbv_after = 0;
		if (x264_encoder_reconfig(e->x, &p) < 0) {
			return fail(msg, -1, "restoring the VBV buffer after a lower bitrate");
		}
	}
	if (bytes < 0) {
		return fail(msg, -1, "encoding a picture");
	}
	if (bytes == 0 || n < 1) {
		return fail(msg, VM_EHELD, "the encoder kept a picture back instead of coding it at once (not zero latency)");
	}
	// x264 keeps the payloads of the NAL units it returns in one run,
	// each with its Annex B start code: together, the access unit.
	e->out = nal[0].p_payload;
	e->out_size = bytes;
	e->out_key = out.b_keyframe != 0;
	return 0;
}

int vx264_set_bitrate(vx264 *e, int bitrate, int vbv_bufsize, char *msg) {
	last_log[0] = 0;
	x264_param_t p;
	x264_encoder_parameters(e->x, &p);
	int lower = bitrate / 1000 < p.rc.i_vbv_max_bitrate;
	p.rc.i_bitrate = bitrate / 1000;
	p.rc.i_vbv_max_bitrate = bitrate / 1000;
	p.rc.i_vbv_buffer_size = vbv_bufsize / 1000;
	e->vbv_after = 0;
	if (lower) {
		// x264 keeps the VBV buffer's fill across a change, up to the new
		// size: a full buffer, which it may spend at once. After a step
		// down that is a burst of up to a second's worth of bits on top
		// of the new rate (732 kbit/s in the first half second after
		// 1.5 Mbit/s -> 352 kbit/s), on the very link that was too slow.
		// So the next picture is coded with a buffer of one picture's
		// bits, which empties the fill; the one-second buffer comes back
		// after it (vx264_encode) and fills only as the rate allows.
		e->vbv_after = p.rc.i_vbv_buffer_size;
		int frame = (int)((int64_t)p.rc.i_vbv_max_bitrate * p.i_fps_den / p.i_fps_num);
		p.rc.i_vbv_buffer_size = frame > 1 ? frame : 1;
	}
	if (x264_encoder_reconfig(e->x, &p) < 0) {
		e->vbv_after = 0;
		return fail(msg, -1, "changing the bitrate");
	}
	return 0;
}

const uint8_t *vx264_packet(vx264 *e, int *size, int *key) {
	*size = e->out_size;
	*key = e->out_key;
	return e->out;
}

uint8_t *vx264_picture(vx264 *e) { return e->yuv; }

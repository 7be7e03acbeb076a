//go:build cgo && vidhub_lite

#include "x264_lite.h"

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
	char line[sizeof last_log];
	vsnprintf(line, sizeof line, fmt, vl);
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' ')) {
		line[--n] = 0;
	}
	if (n > 0) {
		memcpy(last_log, line, n + 1);
	}
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

struct vlite {
	x264_t *x;
	x264_picture_t pic; // the I420 picture handed to x264, at its size
	int w, h;
	int64_t pts;
	// the scaler's source size and, per output column and row, the first
	// and one-past-last source column and row it averages
	int sw, sh;
	int *x0, *x1, *y0, *y1;
	uint8_t *rgb; // the scaled picture, R G B, w x h
	const uint8_t *out;
	int out_size, out_key;
};

void vlite_close(vlite *e) {
	if (!e) {
		return;
	}
	if (e->x) {
		x264_encoder_close(e->x);
	}
	if (e->pic.img.plane[0]) {
		x264_picture_clean(&e->pic);
	}
	free(e->x0);
	free(e->x1);
	free(e->y0);
	free(e->y1);
	free(e->rgb);
	free(e);
}

vlite *vlite_open(const vlite_config *cfg, char *msg) {
	last_log[0] = 0;
	x264_param_t p;
	if (x264_param_default_preset(&p, cfg->preset, "zerolatency") < 0) {
		fail(msg, -1, "libx264 does not know the preset or the zerolatency tune");
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
	vlite *e = calloc(1, sizeof *e);
	if (!e) {
		fail(msg, -1, "allocating the encoder: out of memory");
		return NULL;
	}
	e->w = cfg->width;
	e->h = cfg->height;
	e->x = x264_encoder_open(&p);
	if (!e->x) {
		fail(msg, -1, "opening the libx264 encoder");
		vlite_close(e);
		return NULL;
	}
	e->x0 = malloc(sizeof(int) * e->w);
	e->x1 = malloc(sizeof(int) * e->w);
	e->y0 = malloc(sizeof(int) * e->h);
	e->y1 = malloc(sizeof(int) * e->h);
	e->rgb = malloc((size_t)e->w * e->h * 3);
	if (!e->x0 || !e->x1 || !e->y0 || !e->y1 || !e->rgb ||
	    x264_picture_alloc(&e->pic, X264_CSP_I420, e->w, e->h) < 0) {
		fail(msg, -1, "allocating the encoder's picture: out of memory");
		vlite_close(e);
		return NULL;
	}
	return e;
}

const uint8_t *vlite_headers(vlite *e, int *size, char *msg) {
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

// spans sets, for each of n outputs, the span [lo, hi) of the src inputs
// it averages: a box filter where it shrinks, the nearest input where it
// grows.
static void spans(int *lo, int *hi, int n, int src) {
	for (int i = 0; i < n; i++) {
		int a = (int)((int64_t)i * src / n);
		int b = (int)((int64_t)(i + 1) * src / n);
		lo[i] = a;
		hi[i] = b > a ? b : a + 1;
	}
}

// scale writes the w x h picture pix (BGR24 or RGBA) into e->rgb (R G B)
// at the encoder's size.
static void scale(vlite *e, const uint8_t *pix, int fmt, int w, int h, int stride) {
	if (e->sw != w || e->sh != h) {
		spans(e->x0, e->x1, e->w, w);
		spans(e->y0, e->y1, e->h, h);
		e->sw = w;
		e->sh = h;
	}
	int bpp = fmt == VM_RGBA ? 4 : 3;
	int ri = fmt == VM_RGBA ? 0 : 2, bi = fmt == VM_RGBA ? 2 : 0;
	uint8_t *out = e->rgb;
	for (int oy = 0; oy < e->h; oy++) {
		int y0 = e->y0[oy], y1 = e->y1[oy];
		for (int ox = 0; ox < e->w; ox++) {
			int x0 = e->x0[ox], x1 = e->x1[ox];
			if (x1 - x0 == 1 && y1 - y0 == 1) {
				const uint8_t *s = pix + (size_t)y0 * stride + (size_t)x0 * bpp;
				out[0] = s[ri];
				out[1] = s[1];
				out[2] = s[bi];
				out += 3;
				continue;
			}
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
			out += 3;
		}
	}
}

// to_i420 converts the w x h picture src (bpp bytes a pixel, red at byte
// ri and blue at bi, green at 1) into the I420 picture img, BT.601
// limited range; each chroma sample is that of its 2 x 2 pixels' mean
// colour. It is inlined with constant bpp, ri and bi, once per layout.
static inline __attribute__((always_inline)) void to_i420(x264_image_t *img, const uint8_t *src, size_t stride, int w,
                                                          int h, const int bpp, const int ri, const int bi) {
	for (int y = 0; y < h; y += 2) {
		const uint8_t *s0 = src + (size_t)y * stride, *s1 = s0 + stride;
		uint8_t *y0 = img->plane[0] + (size_t)y * img->i_stride[0], *y1 = y0 + img->i_stride[0];
		uint8_t *u = img->plane[1] + (size_t)(y / 2) * img->i_stride[1];
		uint8_t *v = img->plane[2] + (size_t)(y / 2) * img->i_stride[2];
		for (int x = 0; x < w; x += 2, s0 += 2 * bpp, s1 += 2 * bpp) {
			int r00 = s0[ri], g00 = s0[1], b00 = s0[bi];
			int r01 = s0[bpp + ri], g01 = s0[bpp + 1], b01 = s0[bpp + bi];
			int r10 = s1[ri], g10 = s1[1], b10 = s1[bi];
			int r11 = s1[bpp + ri], g11 = s1[bpp + 1], b11 = s1[bpp + bi];
			y0[x] = (uint8_t)(((66 * r00 + 129 * g00 + 25 * b00 + 128) >> 8) + 16);
			y0[x + 1] = (uint8_t)(((66 * r01 + 129 * g01 + 25 * b01 + 128) >> 8) + 16);
			y1[x] = (uint8_t)(((66 * r10 + 129 * g10 + 25 * b10 + 128) >> 8) + 16);
			y1[x + 1] = (uint8_t)(((66 * r11 + 129 * g11 + 25 * b11 + 128) >> 8) + 16);
			int r = (r00 + r01 + r10 + r11 + 2) >> 2;
			int g = (g00 + g01 + g10 + g11 + 2) >> 2;
			int b = (b00 + b01 + b10 + b11 + 2) >> 2;
			u[x / 2] = (uint8_t)(((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128);
			v[x / 2] = (uint8_t)(((112 * r - 94 * g - 18 * b + 128) >> 8) + 128);
		}
	}
}

// convert fills the encoder's picture from pix: straight from it at the
// encoder's size, else through the scaler.
static void convert(vlite *e, const uint8_t *pix, int fmt, int w, int h, int stride) {
	x264_image_t *img = &e->pic.img;
	if (w != e->w || h != e->h) {
		scale(e, pix, fmt, w, h, stride);
		to_i420(img, e->rgb, (size_t)e->w * 3, e->w, e->h, 3, 0, 2);
	} else if (fmt == VM_RGBA) {
		to_i420(img, pix, (size_t)stride, w, h, 4, 0, 2);
	} else {
		to_i420(img, pix, (size_t)stride, w, h, 3, 2, 0);
	}
}

int vlite_encode(vlite *e, const uint8_t *pix, int fmt, int w, int h, int stride, int force_key, char *msg) {
	last_log[0] = 0;
	e->out = NULL;
	e->out_size = 0;
	e->out_key = 0;
	if (fmt != VM_BGR24 && fmt != VM_RGBA) {
		return fail(msg, -1, "unknown pixel format");
	}
	convert(e, pix, fmt, w, h, stride);
	e->pic.i_pts = e->pts++;
	e->pic.i_type = force_key ? X264_TYPE_IDR : X264_TYPE_AUTO;
	x264_nal_t *nal;
	int n;
	x264_picture_t out;
	int bytes = x264_encoder_encode(e->x, &nal, &n, &e->pic, &out);
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

const uint8_t *vlite_packet(vlite *e, int *size, int *key) {
	*size = e->out_size;
	*key = e->out_key;
	return e->out;
}

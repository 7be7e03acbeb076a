//go:build cgo && vidhub_lite

// The C half of the lite build's encoder: libx264 through its own API
// (no FFmpeg), with a small scaler and RGB to YUV 4:2:0 conversion of
// its own, so that the lite binary links statically with libx264.a alone.

#ifndef VIDHUB_X264_LITE_H
#define VIDHUB_X264_LITE_H

#include <stdint.h>

#include "media_cgo.h"

typedef struct vlite vlite;
typedef struct {
	int width, height;
	int fps_num, fps_den;
	int bitrate, vbv_bufsize, keyint, threads; // bits per second; bits
	const char *preset, *profile;
} vlite_config;
vlite *vlite_open(const vlite_config *cfg, char *msg);
// vlite_headers returns SPS and PPS in Annex B.
const uint8_t *vlite_headers(vlite *e, int *size, char *msg);
int vlite_encode(vlite *e, const uint8_t *pix, int fmt, int w, int h, int stride, int force_key, char *msg);
// vlite_packet returns the access unit of the last successful
// vlite_encode.
const uint8_t *vlite_packet(vlite *e, int *size, int *key);
void vlite_close(vlite *e);

#endif

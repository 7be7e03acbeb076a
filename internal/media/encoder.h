//go:build cgo

// The C half of the encoder, in both native builds: libx264 through its
// own API, with the conversion to YUV 4:2:0 and a box-filter scaler of
// its own (no FFmpeg), so that the lite binary links statically with
// libx264.a alone and the full build spends no time in libswscale.

#ifndef VIDHUB_ENCODER_H
#define VIDHUB_ENCODER_H

#include <stdint.h>

#include "media_cgo.h"

typedef struct vx264 vx264;
typedef struct {
	int width, height;
	int fps_num, fps_den;
	int bitrate, vbv_bufsize, keyint, threads; // bits per second; bits
	const char *preset, *tune, *profile;
} vx264_config;
vx264 *vx264_open(const vx264_config *cfg, char *msg);
// vx264_headers returns SPS and PPS in Annex B.
const uint8_t *vx264_headers(vx264 *e, int *size, char *msg);
// vx264_encode codes the w x h picture pix: BGR24 or RGBA (rows stride
// bytes apart), or I420 (luma rows stride bytes apart, then both chroma
// planes, rows stride/2 apart).
int vx264_encode(vx264 *e, const uint8_t *pix, int fmt, int w, int h, int stride, int force_key, char *msg);
// vx264_set_bitrate changes the target bitrate and the VBV buffer (bits
// per second; bits) of an open encoder, from its next picture on.
int vx264_set_bitrate(vx264 *e, int bitrate, int vbv_bufsize, char *msg);
// vx264_packet returns the access unit of the last successful
// vx264_encode.
const uint8_t *vx264_packet(vx264 *e, int *size, int *key);
// vx264_picture returns the I420 picture the last vx264_encode coded, at
// the encoder's size, rows unpadded.
uint8_t *vx264_picture(vx264 *e);
void vx264_close(vx264 *e);

#endif

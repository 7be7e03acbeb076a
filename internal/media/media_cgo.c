//go:build cgo && !vidhub_lite

#include "media_cgo.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/time.h>
#include <libswscale/swscale.h>

_Static_assert(VM_EOF == AVERROR_EOF, "VM_EOF must be AVERROR_EOF");

// last_log holds the last error FFmpeg logged on this thread. Each entry
// point below runs on one thread from start to end (cgo pins it), so an
// entry point can clear it, call FFmpeg and quote it in its error text.
static _Thread_local char last_log[160];

static void log_cb(void *avcl, int level, const char *fmt, va_list vl) {
	(void)avcl;
	if (level > AV_LOG_ERROR) {
		return;
	}
	vm_keep_line(last_log, sizeof last_log, fmt, vl);
}

// vm_init routes FFmpeg's log into last_log instead of stderr: its errors
// reach the caller inside Go errors, and the rest is noise.
void vm_init(void) { av_log_set_callback(log_cb); }

static void clear_log(void) { last_log[0] = 0; }

// fail writes "what: FFmpeg's reason (its last log line)" into msg and
// returns code.
static int fail(char *msg, int code, const char *what) {
	char reason[AV_ERROR_MAX_STRING_SIZE] = "";
	if (code < 0 && code > -0x7fff0000) {
		av_strerror(code, reason, sizeof reason);
	}
	if (reason[0] && last_log[0]) {
		snprintf(msg, VM_MSG, "%s: %s (%s)", what, reason, last_log);
	} else if (reason[0] || last_log[0]) {
		snprintf(msg, VM_MSG, "%s: %s", what, reason[0] ? reason : last_log);
	} else {
		snprintf(msg, VM_MSG, "%s", what);
	}
	return code;
}

static enum AVPixelFormat pixfmt(int fmt) {
	switch (fmt) {
	case VM_BGR24:
		return AV_PIX_FMT_BGR24;
	case VM_RGBA:
		return AV_PIX_FMT_RGBA;
	}
	return AV_PIX_FMT_NONE;
}


int vm_h264_decoder_available(void) { return avcodec_find_decoder(AV_CODEC_ID_H264) != NULL; }

/* Decoder */

struct vdec {
	AVCodecContext *c;
	AVPacket *pkt;
	AVFrame *frame, *tmp;
	struct SwsContext *sws;
};

void vdec_close(vdec *d) {
	if (!d) {
		return;
	}
	avcodec_free_context(&d->c);
	av_packet_free(&d->pkt);
	av_frame_free(&d->frame);
	av_frame_free(&d->tmp);
	sws_freeContext(d->sws);
	free(d);
}

vdec *vdec_open(char *msg) {
	clear_log();
	const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
	if (!codec) {
		fail(msg, 0, "FFmpeg's libavcodec has no H.264 decoder");
		return NULL;
	}
	vdec *d = calloc(1, sizeof *d);
	if (!d) {
		fail(msg, AVERROR(ENOMEM), "allocating the decoder");
		return NULL;
	}
	d->c = avcodec_alloc_context3(codec);
	d->pkt = av_packet_alloc();
	d->frame = av_frame_alloc();
	d->tmp = av_frame_alloc();
	if (!d->c || !d->pkt || !d->frame || !d->tmp) {
		fail(msg, AVERROR(ENOMEM), "allocating the decoder");
		vdec_close(d);
		return NULL;
	}
	AVCodecContext *c = d->c;
	// One access unit in, its picture out: no frame threads, no delay.
	// One thread also keeps error concealment, and so its flags, on (the
	// h264 decoder turns it off with slice threads).
	c->thread_count = 1;
	c->flags |= AV_CODEC_FLAG_LOW_DELAY;
	c->flags &= ~AV_CODEC_FLAG_OUTPUT_CORRUPT;
	c->flags2 &= ~AV_CODEC_FLAG2_SHOW_ALL;
	c->err_recognition = AV_EF_CRCCHECK | AV_EF_EXPLODE;
	int ret = avcodec_open2(c, codec, NULL);
	if (ret < 0) {
		fail(msg, ret, "opening the H.264 decoder");
		vdec_close(d);
		return NULL;
	}
	return d;
}

int vdec_decode(vdec *d, const uint8_t *data, int size, char *msg) {
	clear_log();
	// A packet without a buffer: avcodec_send_packet copies it into one
	// with the padding the bitstream reader needs.
	d->pkt->data = (uint8_t *)data;
	d->pkt->size = size;
	int ret = avcodec_send_packet(d->c, d->pkt);
	d->pkt->data = NULL;
	d->pkt->size = 0;
	if (ret < 0) {
		return fail(msg, ret, "decoding H.264");
	}
	// One access unit gives one picture, but take all there are: the
	// last one counts.
	int got = 0;
	char corrupt[96] = "";
	for (;;) {
		ret = avcodec_receive_frame(d->c, d->tmp);
		if (ret == AVERROR(EAGAIN)) {
			return corrupt[0] ? fail(msg, VM_ECORRUPT, corrupt) : got;
		}
		if (ret < 0) {
			return fail(msg, ret, "decoding H.264");
		}
		if (d->tmp->decode_error_flags || (d->tmp->flags & AV_FRAME_FLAG_CORRUPT)) {
			snprintf(corrupt, sizeof corrupt,
			         "the H.264 decoder flagged its picture corrupt (decode_error_flags %#x, flags %#x)",
			         d->tmp->decode_error_flags, d->tmp->flags);
			av_frame_unref(d->tmp);
			continue;
		}
		corrupt[0] = 0;
		av_frame_unref(d->frame);
		av_frame_move_ref(d->frame, d->tmp);
		got = 1;
	}
}

void vdec_size(vdec *d, int *w, int *h) {
	*w = d->frame->width;
	*h = d->frame->height;
}

int vdec_picture(vdec *d, uint8_t *pix, int fmt, int w, int h, int stride, char *msg) {
	clear_log();
	AVFrame *f = d->frame;
	if (!f->data[0]) {
		return fail(msg, AVERROR(EINVAL), "no picture decoded yet");
	}
	d->sws = sws_getCachedContext(d->sws, f->width, f->height, f->format, w, h, pixfmt(fmt), SWS_BILINEAR, NULL,
	                              NULL, NULL);
	if (!d->sws) {
		return fail(msg, AVERROR(EINVAL), "setting up the conversion from the decoded picture");
	}
	uint8_t *dst[4] = {pix, NULL, NULL, NULL};
	int dst_stride[4] = {stride, 0, 0, 0};
	sws_scale(d->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, dst_stride);
	return 0;
}

/* Demuxer */

struct vdmx {
	AVFormatContext *fmt;
	AVBSFContext *bsf;
	AVPacket *pkt;
	int stream;
	int eof;
	int64_t start; // the first timestamp, in the stream's time base
	atomic_int closed;
	atomic_llong deadline; // av_gettime_relative() past which a blocking call gives up, or 0
	int timed_out;
	int64_t timeout_us;
};

static int interrupt_cb(void *opaque) {
	vdmx *d = opaque;
	if (atomic_load(&d->closed)) {
		return 1;
	}
	int64_t dl = atomic_load(&d->deadline);
	if (dl && av_gettime_relative() > dl) {
		d->timed_out = 1;
		return 1;
	}
	return 0;
}

vdmx *vdmx_alloc(void) {
	vdmx *d = calloc(1, sizeof *d);
	if (!d) {
		return NULL;
	}
	d->stream = -1;
	d->start = AV_NOPTS_VALUE;
	atomic_init(&d->closed, 0);
	atomic_init(&d->deadline, 0);
	return d;
}

void vdmx_interrupt(vdmx *d) { atomic_store(&d->closed, 1); }

void vdmx_free(vdmx *d) {
	if (!d) {
		return;
	}
	avformat_close_input(&d->fmt);
	av_bsf_free(&d->bsf);
	av_packet_free(&d->pkt);
	free(d);
}

// arm starts the timeout of a blocking call. timed_out stays set once a
// call timed out: the AVIOContext keeps failing after that, without asking
// interrupt_cb again.
static void arm(vdmx *d) {
	atomic_store(&d->deadline, av_gettime_relative() + d->timeout_us);
}

static void disarm(vdmx *d) { atomic_store(&d->deadline, 0); }

// io_fail reports a failed blocking call, saying whether Close or the
// timeout interrupted it.
static int io_fail(vdmx *d, char *msg, int ret, const char *what) {
	if (atomic_load(&d->closed)) {
		return fail(msg, VM_ECLOSED, what);
	}
	if (d->timed_out) {
		return fail(msg, VM_ETIMEDOUT, what);
	}
	return fail(msg, ret, what);
}

int vdmx_open(vdmx *d, const char *url, int rtsp, int64_t timeout_us, char *msg) {
	clear_log();
	d->timeout_us = timeout_us;
	d->pkt = av_packet_alloc();
	d->fmt = avformat_alloc_context();
	if (!d->pkt || !d->fmt) {
		return fail(msg, AVERROR(ENOMEM), "allocating the demuxer");
	}
	d->fmt->interrupt_callback.callback = interrupt_cb;
	d->fmt->interrupt_callback.opaque = d;
	AVDictionary *opts = NULL;
	if (rtsp) {
		// FFmpeg 5 calls the RTSP socket timeout "timeout" (in
		// microseconds); 4.x called it "stimeout".
		av_dict_set(&opts, "rtsp_transport", "tcp", 0);
		av_dict_set_int(&opts, "timeout", timeout_us, 0);
	}
	arm(d);
	int ret = avformat_open_input(&d->fmt, url, NULL, &opts);
	disarm(d);
	av_dict_free(&opts);
	if (ret < 0) {
		return io_fail(d, msg, ret, "opening the source");
	}
	// A second of video is enough to know a live stream's parameters
	// (the default, five, makes a camera slow to start).
	d->fmt->max_analyze_duration = AV_TIME_BASE;
	arm(d);
	ret = avformat_find_stream_info(d->fmt, NULL);
	disarm(d);
	// Interrupted, it returns what it found; but the connection is dead.
	if (ret < 0 || d->timed_out || atomic_load(&d->closed)) {
		return io_fail(d, msg, ret, "reading the source's streams");
	}
	ret = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	if (ret < 0) {
		return fail(msg, VM_ENOVIDEO, "the source has no video stream");
	}
	d->stream = ret;
	AVStream *st = d->fmt->streams[ret];
	if (st->codecpar->codec_id != AV_CODEC_ID_H264) {
		snprintf(msg, VM_MSG, "%s", avcodec_get_name(st->codecpar->codec_id));
		return VM_ENOTH264;
	}
	for (unsigned i = 0; i < d->fmt->nb_streams; i++) {
		if ((int)i != d->stream) {
			d->fmt->streams[i]->discard = AVDISCARD_ALL;
		}
	}
	const AVBitStreamFilter *f = av_bsf_get_by_name("h264_mp4toannexb");
	if (!f) {
		return fail(msg, AVERROR_BSF_NOT_FOUND, "FFmpeg has no h264_mp4toannexb bitstream filter");
	}
	if ((ret = av_bsf_alloc(f, &d->bsf)) < 0 || (ret = avcodec_parameters_copy(d->bsf->par_in, st->codecpar)) < 0) {
		return fail(msg, ret, "setting up the Annex B conversion");
	}
	d->bsf->time_base_in = st->time_base;
	if ((ret = av_bsf_init(d->bsf)) < 0) {
		return fail(msg, ret, "setting up the Annex B conversion");
	}
	if (st->start_time != AV_NOPTS_VALUE) {
		d->start = st->start_time;
	}
	return 0;
}

int vdmx_read(vdmx *d, char *msg) {
	clear_log();
	av_packet_unref(d->pkt);
	for (;;) {
		int ret = av_bsf_receive_packet(d->bsf, d->pkt);
		if (ret == 0) {
			return 0;
		}
		if (ret == AVERROR_EOF) {
			return ret;
		}
		if (ret != AVERROR(EAGAIN)) {
			return fail(msg, ret, "converting to Annex B");
		}
		if (atomic_load(&d->closed)) {
			return fail(msg, VM_ECLOSED, "reading");
		}
		arm(d);
		ret = av_read_frame(d->fmt, d->pkt);
		disarm(d);
		if (ret == AVERROR_EOF && !atomic_load(&d->closed) && !d->timed_out) {
			d->eof = 1;
			if ((ret = av_bsf_send_packet(d->bsf, NULL)) < 0) {
				return fail(msg, ret, "converting to Annex B");
			}
			continue;
		}
		if (ret < 0) {
			return io_fail(d, msg, ret, "reading");
		}
		if (d->pkt->stream_index != d->stream) {
			av_packet_unref(d->pkt);
			continue;
		}
		if ((ret = av_bsf_send_packet(d->bsf, d->pkt)) < 0) {
			av_packet_unref(d->pkt);
			return fail(msg, ret, "converting to Annex B");
		}
	}
}

const uint8_t *vdmx_packet(vdmx *d, int *size, int64_t *pts_ns, int *key) {
	AVPacket *p = d->pkt;
	*size = p->size;
	*key = (p->flags & AV_PKT_FLAG_KEY) != 0;
	int64_t ts = p->pts != AV_NOPTS_VALUE ? p->pts : p->dts;
	if (ts == AV_NOPTS_VALUE) {
		*pts_ns = -1;
	} else {
		if (d->start == AV_NOPTS_VALUE) {
			d->start = ts;
		}
		*pts_ns = av_rescale_q(ts - d->start, d->bsf->time_base_out, (AVRational){1, 1000000000});
	}
	return p->data;
}

const uint8_t *vdmx_extradata(vdmx *d, int *size) {
	*size = d->bsf->par_out->extradata_size;
	return d->bsf->par_out->extradata;
}

void vdmx_info(vdmx *d, int *w, int *h, double *fps) {
	AVStream *st = d->fmt->streams[d->stream];
	*w = st->codecpar->width;
	*h = st->codecpar->height;
	AVRational r = st->avg_frame_rate;
	if (r.num <= 0 || r.den <= 0) {
		r = st->r_frame_rate;
	}
	*fps = r.num > 0 && r.den > 0 ? av_q2d(r) : 0;
}

/* MP4 writer */

struct vmux {
	AVFormatContext *oc;
	AVStream *st;
	AVPacket *pkt;
	int header;
};

void vmux_close(vmux *m) {
	if (!m) {
		return;
	}
	if (m->oc) {
		if (m->oc->pb) {
			avio_closep(&m->oc->pb);
		}
		avformat_free_context(m->oc);
	}
	av_packet_free(&m->pkt);
	free(m);
}

vmux *vmux_open(const char *path, int w, int h, const uint8_t *extra, int extra_size, char *msg) {
	clear_log();
	vmux *m = calloc(1, sizeof *m);
	if (!m) {
		fail(msg, AVERROR(ENOMEM), "allocating the MP4 writer");
		return NULL;
	}
	int ret = avformat_alloc_output_context2(&m->oc, NULL, "mp4", path);
	if (ret < 0 || !m->oc) {
		fail(msg, ret, "setting up the MP4 writer");
		vmux_close(m);
		return NULL;
	}
	m->pkt = av_packet_alloc();
	m->st = avformat_new_stream(m->oc, NULL);
	if (!m->pkt || !m->st) {
		fail(msg, AVERROR(ENOMEM), "allocating the MP4 writer");
		vmux_close(m);
		return NULL;
	}
	AVCodecParameters *par = m->st->codecpar;
	par->codec_type = AVMEDIA_TYPE_VIDEO;
	par->codec_id = AV_CODEC_ID_H264;
	par->width = w;
	par->height = h;
	par->extradata = av_mallocz(extra_size + AV_INPUT_BUFFER_PADDING_SIZE);
	if (!par->extradata) {
		fail(msg, AVERROR(ENOMEM), "allocating the MP4 writer");
		vmux_close(m);
		return NULL;
	}
	memcpy(par->extradata, extra, extra_size);
	par->extradata_size = extra_size;
	m->st->time_base = (AVRational){1, 90000};
	if ((ret = avio_open(&m->oc->pb, path, AVIO_FLAG_WRITE)) < 0) {
		fail(msg, ret, "creating the file");
		vmux_close(m);
		return NULL;
	}
	if ((ret = avformat_write_header(m->oc, NULL)) < 0) {
		fail(msg, ret, "writing the MP4 header");
		vmux_close(m);
		return NULL;
	}
	m->header = 1;
	return m;
}

int vmux_write(vmux *m, const uint8_t *data, int size, int64_t pts_90k, int64_t dur_90k, int key, char *msg) {
	clear_log();
	av_packet_unref(m->pkt);
	int ret = av_new_packet(m->pkt, size);
	if (ret < 0) {
		return fail(msg, ret, "allocating a packet");
	}
	memcpy(m->pkt->data, data, size);
	m->pkt->pts = m->pkt->dts = av_rescale_q(pts_90k, (AVRational){1, 90000}, m->st->time_base);
	m->pkt->duration = av_rescale_q(dur_90k, (AVRational){1, 90000}, m->st->time_base);
	m->pkt->stream_index = m->st->index;
	if (key) {
		m->pkt->flags |= AV_PKT_FLAG_KEY;
	}
	if ((ret = av_write_frame(m->oc, m->pkt)) < 0) {
		return fail(msg, ret, "writing a frame");
	}
	return 0;
}

int vmux_finish(vmux *m, char *msg) {
	clear_log();
	int ret = av_write_trailer(m->oc);
	if (ret < 0) {
		return fail(msg, ret, "finishing the MP4 file");
	}
	return 0;
}

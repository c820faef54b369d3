/*
 * video.c - frame sources for enrollment and identification: video files and V4L2 cameras through
 * FFmpeg (libavformat/libavcodec/libavdevice), converted to the RGB fp_image the face pipeline reads.
 * Frames carry presentation timestamps in milliseconds so that blink and challenge logic can work at
 * whatever frame rate the source has (10-60 fps).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <libavcodec/avcodec.h>
#include <libavdevice/avdevice.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#include "core/core.h"

#define MAX_SIDE 8192

struct fp_video {
    AVFormatContext *fmt;
    AVCodecContext *dec;
    struct SwsContext *sws;
    AVPacket *pkt;
    AVFrame *frame;
    int stream;
    int eof_sent;   /* the decoder has been flushed */
    int64_t index;  /* frames returned so far */
    double fps;
    char name[256];
};

static pthread_once_t av_once = PTHREAD_ONCE_INIT;
static void av_init(void) {
    avdevice_register_all();
    av_log_set_level(AV_LOG_FATAL);
}

static fp_status av_fail(fp_status st, const char *name, const char *what, int err) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(err, buf, sizeof buf);
    return fp_fail(st, "%s: %s: %s", name, what, buf);
}

void fp_video_close(fp_video *v) {
    if (!v) return;
    sws_freeContext(v->sws);
    av_frame_free(&v->frame);
    av_packet_free(&v->pkt);
    avcodec_free_context(&v->dec);
    avformat_close_input(&v->fmt);
    free(v);
}

fp_status fp_video_open(const char *source, fp_video **out) {
    if (!source || !out) return fp_fail(FP_ERR_INVALID_ARG, "fp_video_open: NULL argument");
    *out = NULL;
    pthread_once(&av_once, av_init);
    fp_video *v = calloc(1, sizeof *v);
    if (!v) return fp_fail(FP_ERR_NOMEM, "out of memory");
    snprintf(v->name, sizeof v->name, "%s", source);
    const AVInputFormat *ifmt = NULL;
    if (!strncmp(source, "/dev/video", 10)) {
        ifmt = av_find_input_format("video4linux2");
        if (!ifmt) {
            free(v);
            return fp_fail(FP_ERR_UNSUPPORTED, "%s: this FFmpeg has no video4linux2 input", source);
        }
    }
    int rc = avformat_open_input(&v->fmt, source, ifmt, NULL);
    fp_status st = FP_OK;
    if (rc < 0) {
        st = av_fail(rc == AVERROR(ENOENT) ? FP_ERR_IO : FP_ERR_FORMAT, source, "cannot open", rc);
        goto fail;
    }
    if ((rc = avformat_find_stream_info(v->fmt, NULL)) < 0) {
        st = av_fail(FP_ERR_FORMAT, source, "no stream information", rc);
        goto fail;
    }
    const AVCodec *codec = NULL;
    v->stream = av_find_best_stream(v->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (v->stream < 0 || !codec) {
        st = fp_fail(FP_ERR_FORMAT, "%s: no decodable video stream", source);
        goto fail;
    }
    AVStream *s = v->fmt->streams[v->stream];
    if (!(v->dec = avcodec_alloc_context3(codec)) || avcodec_parameters_to_context(v->dec, s->codecpar) < 0) {
        st = fp_fail(FP_ERR_NOMEM, "%s: cannot set up the decoder", source);
        goto fail;
    }
    v->dec->thread_count = 1; /* the face pipeline owns the cores */
    if ((rc = avcodec_open2(v->dec, codec, NULL)) < 0) {
        st = av_fail(FP_ERR_UNSUPPORTED, source, "cannot open the decoder", rc);
        goto fail;
    }
    if (v->dec->width < 1 || v->dec->height < 1 || v->dec->width > MAX_SIDE || v->dec->height > MAX_SIDE) {
        st = fp_fail(FP_ERR_TOO_LARGE, "%s: frame size %dx%d outside 1..%d", source, v->dec->width, v->dec->height, MAX_SIDE);
        goto fail;
    }
    AVRational fr = av_guess_frame_rate(v->fmt, s, NULL);
    v->fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0;
    v->pkt = av_packet_alloc();
    v->frame = av_frame_alloc();
    if (!v->pkt || !v->frame) {
        st = fp_fail(FP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *out = v;
    return FP_OK;
fail:
    fp_video_close(v);
    return st;
}

fp_status fp_video_info(const fp_video *v, int *width, int *height, double *fps) {
    if (!v) return fp_fail(FP_ERR_INVALID_ARG, "fp_video_info: NULL video");
    if (width) *width = v->dec->width;
    if (height) *height = v->dec->height;
    if (fps) *fps = v->fps;
    return FP_OK;
}

/* Converts the decoded frame to RGB24. */
static fp_status to_rgb(fp_video *v, fp_image *img) {
    AVFrame *f = v->frame;
    if (f->width < 1 || f->height < 1 || f->width > MAX_SIDE || f->height > MAX_SIDE)
        return fp_fail(FP_ERR_FORMAT, "%s: frame size %dx%d", v->name, f->width, f->height);
    v->sws = sws_getCachedContext(v->sws, f->width, f->height, f->format, f->width, f->height, AV_PIX_FMT_RGB24,
                                  SWS_BILINEAR, NULL, NULL, NULL);
    if (!v->sws) return fp_fail(FP_ERR_UNSUPPORTED, "%s: cannot convert pixel format %d", v->name, f->format);
    /* swscale's SIMD paths write past the end of a tightly packed RGB24 row: convert into an
     * aligned, padded buffer, then copy the rows out */
    int row = 3 * f->width, pitch = (row + 63) & ~63;
    uint8_t *tmp = av_malloc((size_t)pitch * (f->height + 1) + 256);
    img->rgb = malloc((size_t)row * f->height);
    if (!tmp || !img->rgb) {
        av_free(tmp);
        free(img->rgb);
        img->rgb = NULL;
        return fp_fail(FP_ERR_NOMEM, "out of memory");
    }
    uint8_t *dst[4] = {tmp, NULL, NULL, NULL};
    int stride[4] = {pitch, 0, 0, 0};
    sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, stride);
    for (int y = 0; y < f->height; y++) memcpy(img->rgb + (size_t)y * row, tmp + (size_t)y * pitch, (size_t)row);
    av_free(tmp);
    img->width = f->width;
    img->height = f->height;
    return FP_OK;
}

fp_status fp_video_next(fp_video *v, fp_image *frame, double *t_ms, int *eof) {
    if (!v || !frame || !eof) return fp_fail(FP_ERR_INVALID_ARG, "fp_video_next: NULL argument");
    *eof = 0;
    frame->rgb = NULL;
    frame->width = frame->height = 0;
    for (;;) {
        int rc = avcodec_receive_frame(v->dec, v->frame);
        if (rc == 0) {
            AVStream *s = v->fmt->streams[v->stream];
            int64_t pts = v->frame->best_effort_timestamp;
            double t = pts != AV_NOPTS_VALUE ? pts * av_q2d(s->time_base) * 1000.0
                                             : (v->fps > 0 ? v->index * 1000.0 / v->fps : (double)v->index);
            fp_status st = to_rgb(v, frame);
            av_frame_unref(v->frame);
            if (st) return st;
            if (t_ms) *t_ms = t;
            v->index++;
            return FP_OK;
        }
        if (rc == AVERROR_EOF) {
            *eof = 1;
            return FP_OK;
        }
        if (rc != AVERROR(EAGAIN)) return av_fail(FP_ERR_FORMAT, v->name, "decoding failed", rc);
        if (v->eof_sent) {
            *eof = 1;
            return FP_OK;
        }
        rc = av_read_frame(v->fmt, v->pkt);
        if (rc == AVERROR_EOF) {
            avcodec_send_packet(v->dec, NULL);
            v->eof_sent = 1;
            continue;
        }
        if (rc < 0) return av_fail(FP_ERR_IO, v->name, "read failed", rc);
        if (v->pkt->stream_index == v->stream) {
            rc = avcodec_send_packet(v->dec, v->pkt);
            av_packet_unref(v->pkt);
            if (rc < 0 && rc != AVERROR(EAGAIN) && rc != AVERROR_INVALIDDATA)
                return av_fail(FP_ERR_FORMAT, v->name, "corrupt packet", rc);
        } else {
            av_packet_unref(v->pkt);
        }
    }
}

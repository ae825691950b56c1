/*
 * cudaMemcpy*, cudaMemset*: the asynchronous forms validate their arguments at once
 * (an error is returned by the call, as CUDA does for what it can check) and queue the
 * copy; the synchronous forms run all queued work first, then copy.
 *
 * Any pointer inside a device allocation is translated to the fake's alias whatever the
 * cudaMemcpyKind says (UVA: CUDA infers the direction from the pointer too). Host
 * memory of any kind is treated like pinned memory by the asynchronous forms: it is read
 * or written when the queue runs, not at the call, so a caller that reuses a host
 * buffer before waiting is caught. (CUDA stages pageable memory synchronously, but a
 * program relying on that breaks as soon as the buffer is pinned.)
 */
#include <stdlib.h>
#include <string.h>

#include "fakegpu.h"

/* A rectangle of height rows of width bytes; memset when src is NULL. */
struct copy {
  char *dst;
  const char *src;
  size_t dpitch, spitch, width, height;
  int value;
};

struct copy_work {
  struct fg_work w;
  struct copy c;
};

static void do_copy(const struct copy *c) {
  for (size_t row = 0; row < c->height; row++) {
    char *d = c->dst + row * c->dpitch;
    if (c->src)
      memmove(d, c->src + row * c->spitch, c->width);
    else
      memset(d, c->value, c->width);
  }
}

static void run_copy(struct fg_work *w) { do_copy(&((struct copy_work *)w)->c); }
static void release_copy(struct fg_work *w) { free(w); }

static bool kind_valid(enum cudaMemcpyKind kind) {
  return kind == cudaMemcpyHostToHost || kind == cudaMemcpyHostToDevice ||
         kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice ||
         kind == cudaMemcpyDefault;
}

/* Bytes spanned by height rows of width bytes pitch apart; SIZE_MAX on overflow. */
static size_t extent(size_t pitch, size_t width, size_t height) {
  if (width == 0 || height == 0) return 0;
  if (height - 1 > (SIZE_MAX - width) / pitch) return SIZE_MAX;
  return (height - 1) * pitch + width;
}

/* Checks and translates a copy (src != NULL) or memset (src == NULL, value). Returns
 * cudaSuccess with c->height == 0 when there is nothing to do. */
static cudaError_t prepare(struct copy *c, void *dst, size_t dpitch, const void *src, size_t spitch,
                           size_t width, size_t height, int value, bool is_set) {
  memset(c, 0, sizeof *c);
  if (fg_device_count() == 0) return cudaErrorNoDevice;
  if (width > dpitch || (!is_set && width > spitch)) return cudaErrorInvalidPitchValue;
  if (width == 0 || height == 0) return cudaSuccess;
  size_t dlen = extent(dpitch, width, height);
  size_t slen = is_set ? 0 : extent(spitch, width, height);
  if (dlen == SIZE_MAX || slen == SIZE_MAX) return cudaErrorInvalidValue;
  if (dst == NULL || (!is_set && src == NULL)) return cudaErrorInvalidValue;
  if (is_set && fg_lookup(dst).kind == FG_UNREGISTERED)
    return cudaErrorInvalidValue; /* cudaMemset wants memory CUDA knows */
  /* Past the end of an allocation: refused here, even for the asynchronous forms,
   * rather than corrupting a neighbour when the queue runs. */
  c->dst = fg_translate(dst, dlen);
  c->src = is_set ? NULL : fg_translate(src, slen);
  if (c->dst == NULL || (!is_set && c->src == NULL)) return cudaErrorInvalidValue;
  c->dpitch = dpitch;
  c->spitch = spitch;
  c->width = width;
  c->height = height;
  c->value = value;
  return cudaSuccess;
}

static cudaError_t run_now(cudaError_t e, const struct copy *c) {
  if (e != cudaSuccess) return fg_cuda_fail(e);
  fg_flush_all(); /* synchronous forms order after everything queued */
  do_copy(c);
  return cudaSuccess;
}

static cudaError_t defer(cudaError_t e, const struct copy *c, cudaStream_t stream) {
  if (e == cudaSuccess && !fg_stream_valid(stream)) e = cudaErrorInvalidResourceHandle;
  if (e != cudaSuccess) return fg_cuda_fail(e);
  if (c->height == 0) return cudaSuccess;
  struct copy_work *w = calloc(1, sizeof *w);
  if (w == NULL) return fg_cuda_fail(cudaErrorMemoryAllocation);
  w->c = *c;
  w->w.run = run_copy;
  w->w.release = release_copy;
  fg_enqueue(&w->w);
  return cudaSuccess;
}

FG_API cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
  if (!kind_valid(kind)) return fg_cuda_fail(cudaErrorInvalidMemcpyDirection);
  struct copy c;
  return run_now(prepare(&c, dst, count, src, count, count, 1, 0, false), &c);
}

FG_API cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count,
                                   enum cudaMemcpyKind kind, cudaStream_t stream) {
  if (!kind_valid(kind)) return fg_cuda_fail(cudaErrorInvalidMemcpyDirection);
  struct copy c;
  return defer(prepare(&c, dst, count, src, count, count, 1, 0, false), &c, stream);
}

FG_API cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch,
                                size_t width, size_t height, enum cudaMemcpyKind kind) {
  if (!kind_valid(kind)) return fg_cuda_fail(cudaErrorInvalidMemcpyDirection);
  struct copy c;
  return run_now(prepare(&c, dst, dpitch, src, spitch, width, height, 0, false), &c);
}

FG_API cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                                     size_t width, size_t height, enum cudaMemcpyKind kind,
                                     cudaStream_t stream) {
  if (!kind_valid(kind)) return fg_cuda_fail(cudaErrorInvalidMemcpyDirection);
  struct copy c;
  return defer(prepare(&c, dst, dpitch, src, spitch, width, height, 0, false), &c, stream);
}

FG_API cudaError_t cudaMemset(void *devPtr, int value, size_t count) {
  struct copy c;
  return run_now(prepare(&c, devPtr, count, NULL, 0, count, 1, value, true), &c);
}

FG_API cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count, cudaStream_t stream) {
  struct copy c;
  return defer(prepare(&c, devPtr, count, NULL, 0, count, 1, value, true), &c, stream);
}

/*
 * Streams and events. Streams are handles only: all work goes to the one queue of
 * queue.c. An event remembers the queue position at cudaEventRecord; cudaEventQuery
 * answers cudaErrorNotReady while any work up to that position has not run, and runs
 * it before answering, so a polling caller sees "not ready" once and "done" on the next
 * poll, and a caller that never waits sees stale data.
 *
 * Handles are kept in lists so that a destroyed or made-up handle is refused with
 * cudaErrorInvalidResourceHandle instead of being dereferenced.
 */
#include <pthread.h>
#include <stdlib.h>

#include "fakegpu.h"

struct CUstream_st {
  unsigned flags;
  struct CUstream_st *next;
};

struct CUevent_st {
  unsigned flags;
  bool recorded;
  uint64_t mark; /* queue position at the last cudaEventRecord */
  struct CUevent_st *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct CUstream_st *streams;
static struct CUevent_st *events;

static bool stream_listed(cudaStream_t s) {
  for (struct CUstream_st *p = streams; p; p = p->next)
    if (p == s) return true;
  return false;
}

bool fg_stream_valid(cudaStream_t s) {
  if (s == NULL || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
  pthread_mutex_lock(&lock);
  bool ok = stream_listed(s);
  pthread_mutex_unlock(&lock);
  return ok;
}

static bool event_listed(cudaEvent_t e) {
  for (struct CUevent_st *p = events; p; p = p->next)
    if (p == e) return true;
  return false;
}

FG_API cudaError_t cudaStreamCreateWithFlags(cudaStream_t *pStream, unsigned int flags) {
  if (pStream == NULL || (flags & ~(unsigned)cudaStreamNonBlocking))
    return fg_cuda_fail(cudaErrorInvalidValue);
  if (fg_device_count() == 0) return fg_cuda_fail(cudaErrorNoDevice);
  struct CUstream_st *s = calloc(1, sizeof *s);
  if (s == NULL) return fg_cuda_fail(cudaErrorMemoryAllocation);
  s->flags = flags;
  pthread_mutex_lock(&lock);
  s->next = streams;
  streams = s;
  pthread_mutex_unlock(&lock);
  *pStream = s;
  return cudaSuccess;
}

FG_API cudaError_t cudaStreamCreate(cudaStream_t *pStream) {
  return cudaStreamCreateWithFlags(pStream, cudaStreamDefault);
}

FG_API cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  struct CUstream_st *found = NULL;
  pthread_mutex_lock(&lock);
  for (struct CUstream_st **p = &streams; *p; p = &(*p)->next)
    if (*p == stream) {
      found = *p;
      *p = found->next;
      break;
    }
  pthread_mutex_unlock(&lock);
  if (found == NULL) return fg_cuda_fail(cudaErrorInvalidResourceHandle);
  /* Work queued on it still runs (CUDA completes it too): the queue does not refer to
   * streams. */
  free(found);
  return cudaSuccess;
}

FG_API cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (!fg_stream_valid(stream)) return fg_cuda_fail(cudaErrorInvalidResourceHandle);
  fg_flush_all();
  return cudaSuccess;
}

FG_API cudaError_t cudaStreamQuery(cudaStream_t stream) {
  if (!fg_stream_valid(stream)) return fg_cuda_fail(cudaErrorInvalidResourceHandle);
  uint64_t mark = fg_queue_tail();
  if (fg_done_until(mark)) return cudaSuccess;
  fg_flush_until(mark);
  return cudaErrorNotReady;
}

FG_API cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  (void)flags;
  if (!fg_stream_valid(stream)) return fg_cuda_fail(cudaErrorInvalidResourceHandle);
  pthread_mutex_lock(&lock);
  bool ok = event_listed(event);
  pthread_mutex_unlock(&lock);
  /* Nothing to do: the single queue already orders everything after the event. */
  return ok ? cudaSuccess : fg_cuda_fail(cudaErrorInvalidResourceHandle);
}

FG_API cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
  const unsigned known = cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess;
  if (event == NULL || (flags & ~known) ||
      ((flags & cudaEventInterprocess) && !(flags & cudaEventDisableTiming)))
    return fg_cuda_fail(cudaErrorInvalidValue);
  if (fg_device_count() == 0) return fg_cuda_fail(cudaErrorNoDevice);
  struct CUevent_st *e = calloc(1, sizeof *e);
  if (e == NULL) return fg_cuda_fail(cudaErrorMemoryAllocation);
  e->flags = flags;
  pthread_mutex_lock(&lock);
  e->next = events;
  events = e;
  pthread_mutex_unlock(&lock);
  *event = e;
  return cudaSuccess;
}

FG_API cudaError_t cudaEventCreate(cudaEvent_t *event) {
  return cudaEventCreateWithFlags(event, cudaEventDefault);
}

FG_API cudaError_t cudaEventDestroy(cudaEvent_t event) {
  struct CUevent_st *found = NULL;
  pthread_mutex_lock(&lock);
  for (struct CUevent_st **p = &events; *p; p = &(*p)->next)
    if (*p == event) {
      found = *p;
      *p = found->next;
      break;
    }
  pthread_mutex_unlock(&lock);
  if (found == NULL) return fg_cuda_fail(cudaErrorInvalidResourceHandle);
  free(found); /* allowed with work pending: only the marker goes */
  return cudaSuccess;
}

FG_API cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!fg_stream_valid(stream)) return fg_cuda_fail(cudaErrorInvalidResourceHandle);
  uint64_t mark = fg_queue_tail();
  pthread_mutex_lock(&lock);
  bool ok = event_listed(event);
  if (ok) {
    event->recorded = true;
    event->mark = mark;
  }
  pthread_mutex_unlock(&lock);
  return ok ? cudaSuccess : fg_cuda_fail(cudaErrorInvalidResourceHandle);
}

/* The event's mark, or false when the handle is unknown. *recorded false: never
 * recorded, which CUDA reports as complete. */
static bool event_mark(cudaEvent_t event, bool *recorded, uint64_t *mark) {
  pthread_mutex_lock(&lock);
  bool ok = event_listed(event);
  if (ok) {
    *recorded = event->recorded;
    *mark = event->mark;
  }
  pthread_mutex_unlock(&lock);
  return ok;
}

FG_API cudaError_t cudaEventQuery(cudaEvent_t event) {
  bool recorded;
  uint64_t mark;
  if (!event_mark(event, &recorded, &mark)) return fg_cuda_fail(cudaErrorInvalidResourceHandle);
  if (!recorded || fg_done_until(mark)) return cudaSuccess;
  /* Pending: make progress now so that polling terminates, but answer "not ready" so
   * that a caller that does not poll (reads after one query) is caught. */
  fg_flush_until(mark);
  return cudaErrorNotReady;
}

FG_API cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  bool recorded;
  uint64_t mark;
  if (!event_mark(event, &recorded, &mark)) return fg_cuda_fail(cudaErrorInvalidResourceHandle);
  if (recorded) fg_flush_until(mark);
  return cudaSuccess;
}

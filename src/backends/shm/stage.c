/*
 * Device buffers on the shared-memory transport. The algorithms only ever touch host
 * memory, so a collective whose buffers are CUDA device (or managed) memory runs on a
 * shadow of the call whose buffers are host copies:
 *
 *   start     each device input is copied to host with cudaMemcpyAsync on the
 *             communicator's stream (mlcommCommSetStream; NULL: the legacy default
 *             stream) and a CUDA event is recorded after the copies;
 *   queue     the op takes its place in the transport's queue at once (so every rank
 *             runs ops in the same order), but does not publish its arrival until
 *             cudaEventQuery says the inputs are on the host;
 *   algorithm the usual one, on the host copies;
 *   finish    the result is copied back with cudaMemcpyAsync and an event; the request
 *             completes when cudaEventQuery says so. Nothing here waits on the GPU
 *             except release after an abort (a bounded local copy).
 *
 * The host copies are taken from this rank's pool inside the segment when it has room
 * (the mlcommMemAlloc pool), so peers read them in place: the data goes device -> the
 * segment -> the peers, with no extra copy. When the pool is full or disabled they are
 * private host memory, which the algorithms stage through the segment's slots as they
 * do for any malloc'ed buffer. Mixed calls (one buffer on the host, one on the device)
 * stage only the device one. Pinned host memory is host memory here: it is used as is.
 */
#include <stdlib.h>
#include <string.h>

#include "backends/shm/shm.h"
#include "collectives/validate.h"
#include "core/cuda.h"

#if MLCOMM_HAVE_CUDA
enum { STAGE_IN, STAGE_READY, STAGE_OUT, STAGE_DONE };

struct shm_stage {
  struct mlcomm_op shadow; /* what the algorithms see: host buffers */
  void *host[2];           /* staging buffers: [0] send (or both, in place), [1] recv */
  void *cookie[2];         /* pool cookies; NULL: aligned_alloc */
  size_t out_len;          /* bytes copied back into the user's recvbuff */
  void *event;             /* cudaEvent_t after the copy in, then after the copy out */
  int phase;
};

static bool needs(enum mlcomm_mem_kind k) {
  return k == MLCOMM_MEM_DEVICE || k == MLCOMM_MEM_MANAGED;
}

bool shm_needs_stage(const struct shm_state *st, const struct mlcomm_op *op) {
  size_t send_len, recv_len;
  if (!mlcomm_op_is_collective(op->kind) || op->kind == MLCOMM_OP_BARRIER) return false;
  mlcomm_op_extents(st->comm, op, &send_len, &recv_len);
  return (send_len && needs(op->send_mem)) || (recv_len && needs(op->recv_mem));
}

static void *stage_alloc(struct shm_state *st, size_t bytes, void **cookie) {
  void *p = NULL;
  *cookie = NULL;
  if (bytes <= st->map->pool_bytes && shm_mem_alloc(st, bytes, &p, cookie) == mlcommSuccess)
    return p;
  *cookie = NULL;
  return aligned_alloc(SHM_PAGE, (bytes + SHM_PAGE - 1) / SHM_PAGE * SHM_PAGE);
}

static void stage_free_buffers(struct shm_stage *sg) {
  for (int k = 0; k < 2; k++) {
    if (sg->host[k] == NULL) continue;
    if (sg->cookie[k]) shm_mem_free(sg->cookie[k], sg->host[k]);
    else free(sg->host[k]);
    sg->host[k] = NULL;
  }
}

mlcommResult_t shm_stage_begin(struct shm_state *st, struct shm_op *o, struct mlcomm_op *op) {
  struct shm_stage *sg = calloc(1, sizeof *sg);
  if (sg == NULL) return mlcomm_error(st->comm, mlcommSystemError, "shm transport: out of memory");
  size_t send_len, recv_len;
  mlcomm_op_extents(st->comm, op, &send_len, &recv_len);
  sg->shadow = *op;
  sg->shadow.tstate = NULL;
  sg->out_len = needs(op->recv_mem) ? recv_len : 0;
  /* What is copied in to host[0]: nothing when only the result lives on the device. */
  const void *in = NULL;
  enum mlcomm_mem_kind in_mem = MLCOMM_MEM_HOST;
  size_t in_len = 0;
  if (op->in_place) {
    /* One allocation holds both buffers: stage all of it (the inputs are in it). */
    bool rs = op->kind == MLCOMM_OP_REDUCESCATTER;
    const char *base = rs ? op->sendbuf : op->recvbuf;
    size_t len = send_len > recv_len ? send_len : recv_len;
    if ((sg->host[0] = stage_alloc(st, len, &sg->cookie[0])) == NULL) goto oom;
    sg->shadow.sendbuf = (char *)sg->host[0] + ((const char *)op->sendbuf - base);
    sg->shadow.recvbuf = (char *)sg->host[0] + ((const char *)op->recvbuf - base);
    in = base, in_len = len, in_mem = rs ? op->send_mem : op->recv_mem;
  } else {
    if (send_len && needs(op->send_mem)) {
      if ((sg->host[0] = stage_alloc(st, send_len, &sg->cookie[0])) == NULL) goto oom;
      sg->shadow.sendbuf = sg->host[0];
      in = op->sendbuf, in_len = send_len, in_mem = op->send_mem;
    }
    if (recv_len && needs(op->recv_mem)) {
      if ((sg->host[1] = stage_alloc(st, recv_len, &sg->cookie[1])) == NULL) goto oom;
      sg->shadow.recvbuf = sg->host[1];
    }
  }
  sg->shadow.send_mem = sg->shadow.recv_mem = MLCOMM_MEM_HOST;
  sg->shadow.send_dev = sg->shadow.recv_dev = -1;
  mlcommResult_t res = mlcomm_cuda_copy_async(st->comm, op, sg->host[0], MLCOMM_MEM_HOST, in,
                                              in_mem, in_len, &sg->event);
  if (res != mlcommSuccess) {
    mlcomm_cuda_event_free(&sg->event, false);
    stage_free_buffers(sg);
    free(sg);
    return res;
  }
  sg->phase = STAGE_IN;
  o->stage = sg;
  o->op = &sg->shadow;
  return mlcommSuccess;
oom:
  stage_free_buffers(sg);
  free(sg);
  return mlcomm_error(st->comm, mlcommSystemError,
                      "%s (seq %llu) on the shared-memory transport: no host memory to stage "
                      "its device buffers (%zu + %zu bytes)",
                      mlcomm_op_kind_name(op->kind), (unsigned long long)op->seq, send_len,
                      recv_len);
}

/* SHM_ADVANCED once the inputs are on the host; SHM_FAILED (transport failed) on a CUDA
 * error. */
enum shm_step shm_stage_ready(struct shm_state *st, struct shm_op *o) {
  struct shm_stage *sg = o->stage;
  if (sg->phase != STAGE_IN) return SHM_ADVANCED;
  bool done;
  /* No op in the sentence: the transport's failure is reported for every later op,
   * each under its own name (report in transport.c). */
  mlcommResult_t res = mlcomm_cuda_event_done(st->comm, NULL, sg->event, &done);
  if (res != mlcommSuccess) {
    /* Peers already count on this op's arrival: the queue cannot skip it. */
    shm_fail(st, res,
             "copying device inputs to the host: %s; the communicator is unusable now: "
             "abort it",
             mlcommGetLastError(NULL));
    return SHM_FAILED;
  }
  if (!done) return SHM_BLOCKED;
  sg->phase = STAGE_READY;
  return SHM_ADVANCED;
}

enum shm_step shm_stage_finish(struct shm_state *st, struct shm_op *o, mlcommResult_t *res) {
  struct shm_stage *sg = o->stage;
  const struct mlcomm_op *user = o->user_op;
  *res = mlcommSuccess;
  if (sg->phase == STAGE_DONE) return SHM_DONE;
  if (sg->phase != STAGE_OUT) {
    if (sg->out_len == 0) {
      sg->phase = STAGE_DONE;
      return SHM_DONE;
    }
    *res = mlcomm_cuda_copy_async(st->comm, user, user->recvbuf, user->recv_mem,
                                  sg->shadow.recvbuf, MLCOMM_MEM_HOST, sg->out_len, &sg->event);
    if (*res != mlcommSuccess) {
      sg->phase = STAGE_DONE;
      return SHM_FAILED;
    }
    sg->phase = STAGE_OUT;
  }
  bool done;
  *res = mlcomm_cuda_event_done(st->comm, user, sg->event, &done);
  if (*res == mlcommSuccess && !done) return SHM_BLOCKED;
  sg->phase = STAGE_DONE;
  return *res == mlcommSuccess ? SHM_DONE : SHM_FAILED;
}

void shm_stage_free(struct shm_op *o) {
  struct shm_stage *sg = o->stage;
  if (sg == NULL) return;
  /* A copy may still be reading or writing the host buffers (an abort): let it end. */
  mlcomm_cuda_event_free(&sg->event, sg->phase == STAGE_IN || sg->phase == STAGE_OUT);
  stage_free_buffers(sg);
  free(sg);
  o->stage = NULL;
  o->op = o->user_op;
}
#else
bool shm_needs_stage(const struct shm_state *st, const struct mlcomm_op *op) {
  (void)st, (void)op;
  return false;
}
mlcommResult_t shm_stage_begin(struct shm_state *st, struct shm_op *o, struct mlcomm_op *op) {
  (void)o;
  return mlcomm_error(st->comm, mlcommUnsupported,
                      "%s: device buffers need CUDA, which this build lacks",
                      mlcomm_op_kind_name(op->kind));
}
enum shm_step shm_stage_ready(struct shm_state *st, struct shm_op *o) {
  (void)st, (void)o;
  return SHM_ADVANCED;
}
enum shm_step shm_stage_finish(struct shm_state *st, struct shm_op *o, mlcommResult_t *res) {
  (void)st, (void)o;
  *res = mlcommSuccess;
  return SHM_DONE;
}
void shm_stage_free(struct shm_op *o) { (void)o; }
#endif

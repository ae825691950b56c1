/*
 * The shared-memory transport's glue to the contract: availability (every rank on one
 * node), the op queue (ops run in the order they were started, on every rank alike),
 * failure reporting, abort, and zero-copy memory.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "backends/shm/shm.h"
#include "collectives/reduce.h"
#include "collectives/validate.h"

/* 1 keeps spinning while blocked even on an oversubscribed node. */
MLCOMM_PARAM(ShmSpin, "MLCOMM_SHM_SPIN", 0, 0, 1);
MLCOMM_PARAM_EXTERN(ShmLivenessMs);
MLCOMM_PARAM_EXTERN(ShmCmaAllreduceBytes);

static void shm_fini(void *state) {
  struct shm_state *st = state;
  if (st == NULL) return;
  while (st->head) { /* only after an abort or a failure */
    struct shm_op *o = st->head;
    st->head = o->next;
    o->user_op->tstate = NULL;
    shm_stage_free(o);
    free(o);
  }
  while (st->spare) {
    struct shm_op *o = st->spare;
    st->spare = o->next;
    free(o);
  }
  shm_mapping_unref(st->map);
  free(st->ctls);
  free(st->regions);
  free(st->scratch);
  free(st);
}

static mlcommResult_t shm_init(struct mlcomm_comm *comm, void **state) {
  struct shm_state *st = calloc(1, sizeof *st);
  if (st == NULL) return mlcomm_error(comm, mlcommSystemError, "shm transport: out of memory");
  st->comm = comm;
  st->rank = comm->rank;
  st->n = comm->nranks;
  mlcommResult_t res = shm_segment_create(st);
  if (res == mlcommSuccess) res = shm_cma_probe(st);
  /* Scratch: a reduced chunk plus one fetched chunk per rank (allreduce over CMA), or a
   * slice (reduce-scatter in place). */
  size_t scratch = (size_t)(st->n + 1) * SHM_CMA_CHUNK_BYTES;
  if (scratch < st->lay.slice_bytes) scratch = st->lay.slice_bytes;
  if (res == mlcommSuccess && posix_memalign(&st->scratch, SHM_PAGE, scratch) != 0)
    res = mlcomm_error(comm, mlcommSystemError, "shm transport: out of memory");
  if (res != mlcommSuccess) {
    shm_fini(st);
    return res;
  }
  st->oversubscribed =
      comm->node_ranks > comm->node_cpus && !mlcomm_param(comm, &mlcomm_param_ShmSpin);
  st->liveness_ms = (double)mlcomm_param(comm, &mlcomm_param_ShmLivenessMs);
  st->cma_allreduce_bytes = (size_t)mlcomm_param(comm, &mlcomm_param_ShmCmaAllreduceBytes);
  MLCOMM_INFO("shm transport: %d rank(s), %zu-byte segment + %zu-byte pool per rank, slices "
              "%zu x %zu bytes, one-shot up to %zu bytes, single-copy reads %s",
              st->n, st->lay.pool_off, st->lay.pool_bytes, st->lay.slots, st->lay.slice_bytes,
              st->lay.small_bytes, st->cma ? "on" : "off");
  *state = st;
  return mlcommSuccess;
}

static bool shm_supports(void *state, const struct mlcomm_op *op) {
  struct shm_state *st = state;
  /* Reduce-scatter stages one sub-slice per rank in a slot: a slot must hold n elements. */
  return op->kind != MLCOMM_OP_REDUCESCATTER ||
         st->lay.slice_bytes / ((size_t)st->n * mlcomm_type_size(op->dtype)) > 0;
}

typedef enum shm_step (*step_fn)(struct shm_state *, struct shm_op *);
static const step_fn steps[MLCOMM_OP_KIND_COUNT] = {
    [MLCOMM_OP_ALLREDUCE] = shm_allreduce_step,   [MLCOMM_OP_BROADCAST] = shm_broadcast_step,
    [MLCOMM_OP_REDUCE] = shm_reduce_step,         [MLCOMM_OP_ALLGATHER] = shm_allgather_step,
    [MLCOMM_OP_REDUCESCATTER] = shm_reduce_scatter_step, [MLCOMM_OP_BARRIER] = shm_barrier_step,
};

/* Runs the queue head-first until something must wait for a peer. */
static void drive(struct shm_state *st) {
  while (st->head) {
    struct shm_op *o = st->head;
    enum shm_step r = SHM_FAILED;
    if (st->failed == mlcommSuccess) {
      /* A staged op publishes nothing before its device inputs are on the host: its
       * peers wait on its arrival, so waiting on our own GPU here is no different. */
      r = o->stage ? shm_stage_ready(st, o) : SHM_ADVANCED;
      if (r == SHM_BLOCKED) return;
      uint64_t before = o->next_post + o->next_reduce + o->next_consume;
      if (r == SHM_ADVANCED) r = steps[o->op->kind](st, o);
      if (o->next_post + o->next_reduce + o->next_consume != before) st->comm->progress_ticks++;
    }
    if (r == SHM_BLOCKED) {
      shm_check_peers(st);
      /* More ranks than CPUs: the peer we wait for may need this CPU to get there. */
      if (st->oversubscribed) sched_yield();
      if (st->failed == mlcommSuccess) return;
      r = SHM_FAILED;
    }
    st->blocked_since = 0;
    o->finished = true;
    o->result = r == SHM_DONE ? mlcommSuccess : st->failed;
    st->head = o->next;
    if (st->head == NULL) st->tail = NULL;
  }
}

/* Slices and the one-shot decision: computed alike on every rank from the call. */
static void plan(struct shm_state *st, struct shm_op *o) {
  const struct mlcomm_op *op = o->op;
  size_t n = (size_t)st->n, slice = st->lay.slice_bytes;
  o->esize = op->kind == MLCOMM_OP_BARRIER ? 1 : mlcomm_type_size(op->dtype);
  size_t bytes = op->count * o->esize;
  o->bytes = bytes;
  size_t payload = op->kind == MLCOMM_OP_REDUCESCATTER ? bytes * n : bytes;
  /* A pinned algorithm that cannot serve the call (one-shot above the small slots)
   * leaves the choice to the size rule; a barrier is always one-shot. */
  o->pinned = o->user_op->alg;
  bool fits = payload <= st->lay.small_bytes;
  o->small = op->kind == MLCOMM_OP_BARRIER ||
             (fits && (o->pinned < 0 || o->pinned == SHM_ALG_SMALL));
  o->user_op->alg = o->small ? SHM_ALG_SMALL : SHM_ALG_PIPELINE;
  o->send_off = o->recv_off = SHM_NO_OFF;
  /* Inline in the arrive line only where every rank waits for every other (it has two
   * halves, so a rank runs at most one call ahead); a broadcast's or a reduce's
   * signature heads its small slot, of which there are eight. */
  bool rooted = op->kind == MLCOMM_OP_BROADCAST || op->kind == MLCOMM_OP_REDUCE;
  o->sig = o->small ? shm_inline_sig(op, o->sseq, payload) : 0;
  o->inl = !o->sig ? SHM_INL_NONE : rooted ? SHM_INL_SLOT : SHM_INL_ARRIVE;
  if (o->small) return;
  o->slice_elems = op->kind == MLCOMM_OP_REDUCESCATTER ? slice / (n * o->esize) : slice / o->esize;
  o->nslices = (op->count + o->slice_elems - 1) / o->slice_elems;
  o->ebase = st->epoch;
  st->epoch += o->nslices;
  size_t send_len, recv_len;
  mlcomm_op_extents(st->comm, op, &send_len, &recv_len);
  o->send_off = shm_pool_offset(st, op->sendbuf, send_len);
  o->recv_off = shm_pool_offset(st, op->recvbuf, recv_len);
  size_t total = op->kind == MLCOMM_OP_ALLGATHER ? bytes * n : payload;
  o->nt = st->lay.nt_bytes >= 0 && total >= (size_t)st->lay.nt_bytes;
}

static mlcommResult_t report(struct shm_state *st, const struct mlcomm_op *op, mlcommResult_t res) {
  return mlcomm_error(st->comm, res, "%s (seq %llu): %s", mlcomm_op_kind_name(op->kind),
                      (unsigned long long)op->seq, st->why);
}

static mlcommResult_t shm_start(void *state, struct mlcomm_op *op) {
  struct shm_state *st = state;
  if (st->failed != mlcommSuccess) return report(st, op, st->failed);
  struct shm_op *o = st->spare; /* reused, as requests are: see mlcomm_request_new */
  if (o) st->spare = o->next;
  else if ((o = malloc(sizeof *o)) == NULL)
    return mlcomm_error(st->comm, mlcommSystemError, "shm transport: out of memory");
  memset(o, 0, sizeof *o);
  o->op = o->user_op = op;
  if (shm_needs_stage(st, op)) {
    mlcommResult_t res = shm_stage_begin(st, o, op);
    if (res != mlcommSuccess) {
      o->next = st->spare;
      st->spare = o;
      return res;
    }
  }
  o->sseq = ++st->sseq;
  op->tstate = o;
  plan(st, o);
  if (st->tail) st->tail->next = o;
  else st->head = o;
  st->tail = o;
  drive(st);
  return mlcommSuccess;
}

static mlcommResult_t shm_progress(void *state, struct mlcomm_op *op, bool *done) {
  struct shm_state *st = state;
  struct shm_op *o = op->tstate;
  if (!o->finished) drive(st);
  *done = o->finished;
  if (o->finished && o->result != mlcommSuccess) return report(st, op, o->result);
  if (o->finished && o->stage) { /* the result still has to reach the device */
    mlcommResult_t res;
    enum shm_step r = shm_stage_finish(st, o, &res);
    *done = r != SHM_BLOCKED;
    return res;
  }
  return mlcommSuccess;
}

static void shm_release(void *state, struct mlcomm_op *op, bool aborting) {
  struct shm_state *st = state;
  struct shm_op *o = op->tstate;
  (void)aborting;
  if (o == NULL) return;
  if (!o->finished) { /* abandoned (abort): take it off the queue */
    struct shm_op **p = &st->head, *prev = NULL;
    while (*p && *p != o) prev = *p, p = &(*p)->next;
    if (*p) *p = o->next;
    if (st->tail == o) st->tail = prev;
  }
  op->tstate = NULL;
  shm_stage_free(o);
  o->next = st->spare;
  st->spare = o;
}

static void shm_abort(void *state) {
  struct shm_state *st = state;
  int32_t none = 0;
  atomic_compare_exchange_strong(&st->hdr->aborted_by, &none, st->rank + 1);
  shm_fini(st);
}

/* Releases the peers blocked on this rank: they fail naming the revoker and the rank
 * that failed first (sync.c). */
static void shm_revoke(void *state, int by, int failed_rank) {
  struct shm_state *st = state;
  int32_t none = 0;
  if (failed_rank >= 0) atomic_store(&st->hdr->revoke_failed, failed_rank + 1);
  atomic_compare_exchange_strong(&st->hdr->revoked_by, &none, by + 1);
  if (st->failed == mlcommSuccess)
    shm_fail(st, mlcommRemoteError, "the communicator was revoked (mlcommCommRevoke)");
}

/* Indexed by enum shm_alg (shm.h). */
static const char *const shm_algorithms[] = {"small", "direct", "pipeline", NULL};

const struct mlcomm_transport mlcomm_transport_shm = {
    .name = "shm",
    .id = mlcommTransportShm,
    /* Collectives among the ranks of one node; device and managed buffers are staged
     * through host copies (stage.c) when CUDA is in the build. */
    .caps = {.kinds = MLCOMM_KINDS_COLLECTIVE | MLCOMM_KIND_BIT(MLCOMM_OP_BARRIER),
             .mems = MLCOMM_MEMS_HOST | (MLCOMM_HAVE_CUDA ? MLCOMM_MEMS_CUDA : 0),
             .span = MLCOMM_SPAN_NODE},
    .tune = "all:0-inf:20",
    .algorithms = shm_algorithms,
    .init = shm_init,
    .fini = shm_fini,
    .supports = shm_supports,
    .start = shm_start,
    .progress = shm_progress,
    .release = shm_release,
    .describe = shm_describe,
    .abort = shm_abort,
    .revoke = shm_revoke,
    .mem_alloc = shm_mem_alloc,
    .mem_free = shm_mem_free,
};

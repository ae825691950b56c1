/*
 * Reduce-scatter for large payloads. Slice e holds the same element range of each of
 * the n blocks (n sub-slices side by side in the in-slot); rank r reduces sub-slice r
 * over ranks 0..n-1 straight into its output. Each rank reads its input once and
 * writes its block of the result once.
 */
#include <string.h>

#include "backends/shm/shm.h"
#include "collectives/reduce.h"

/* Rank j's sub-slice `blk` of epoch e. */
static const char *input(const struct shm_state *st, const struct shm_op *o, int j, uint64_t e,
                         int blk) {
  const struct shm_desc *d = shm_peer_desc(st, j, o->sseq);
  size_t lo = (size_t)(e - o->ebase) * o->slice_elems;
  if (d->send_off != SHM_NO_OFF)
    return shm_peer_buf(st, d->send_off) + ((size_t)blk * o->op->count + lo) * o->esize;
  return shm_in_slot(st, j, e) + (size_t)blk * o->slice_elems * o->esize;
}

static void post(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  while (o->next_post < o->nslices) {
    uint64_t e = o->ebase + o->next_post;
    if (!shm_slice_slot_free(st, e)) return;
    if (o->send_off == SHM_NO_OFF) {
      size_t lo, len;
      shm_slice(o, o->next_post, op->count, &lo, &len);
      for (int b = 0; b < st->n; b++)
        memcpy(shm_in_slot(st, st->rank, e) + (size_t)b * o->slice_elems * o->esize,
               (const char *)op->sendbuf + ((size_t)b * op->count + lo) * o->esize,
               len * o->esize);
    }
    o->next_post++;
    shm_store(&me->posted, e + 1);
  }
}

static void reduce_own(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  while (o->next_reduce < o->next_post) {
    uint64_t e = o->ebase + o->next_reduce;
    if (!SHM_ALL(st, posted, e + 1)) return;
    size_t lo, len;
    shm_slice(o, o->next_reduce, op->count, &lo, &len);
    const void *srcs[st->n];
    for (int j = 0; j < st->n; j++) srcs[j] = input(st, o, j, e, st->rank);
    char *dst = (char *)op->recvbuf + lo * o->esize;
    /* In place on mlcommMemAlloc memory, this rank's own input is dst: accumulating in
     * dst would overwrite it before its turn in the fixed order. */
    bool alias = srcs[st->rank] == dst && st->rank >= 2;
    shm_reduce_n(op, alias ? st->scratch : dst, srcs, st->n, len);
    if (alias) memcpy(dst, st->scratch, len * o->esize);
    if (op->redop == mlcommAvg) mlcomm_avg_finish(op->dtype, dst, len, st->n);
    o->next_reduce++;
    shm_store(&me->consumed, e + 1);
  }
}

enum shm_step shm_reduce_scatter_step(struct shm_state *st, struct shm_op *o) {
  if (o->small) return shm_small_step(st, o);
  enum shm_step r = shm_begin_large(st, o);
  if (r != SHM_ADVANCED) return r;
  for (;;) {
    uint64_t before = o->next_post + o->next_reduce;
    post(st, o);
    reduce_own(st, o);
    if (o->next_post + o->next_reduce == before) break;
  }
  bool finished = o->next_reduce == o->nslices &&
                  (o->send_off == SHM_NO_OFF || SHM_ALL(st, consumed, o->ebase + o->nslices));
  return finished ? shm_finish(st, o) : SHM_BLOCKED;
}

/*
 * Broadcast for large payloads. Every other rank copies the root's buffer into its own
 * output, slice by slice, from wherever it can be read: the root's mlcommMemAlloc
 * buffer in the segment, or the root's private buffer itself (cross-memory attach,
 * cma.c): one copy either way, and the root then stays until every rank has read it.
 * Failing both, the root stages slices through its rotating in-slots, at most `slots`
 * ahead of the slowest reader.
 */
#include <string.h>

#include "backends/shm/shm.h"

static void post(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  bool stage = !shm_reads_in_place(st, shm_peer_desc(st, st->rank, o->sseq));
  while (o->next_post < o->nslices) {
    uint64_t e = o->ebase + o->next_post;
    if (stage && !shm_slice_slot_free(st, e)) return;
    size_t lo, len;
    shm_slice(o, o->next_post, op->count, &lo, &len);
    const char *src = (const char *)op->sendbuf + lo * o->esize;
    if (stage) memcpy(shm_in_slot(st, st->rank, e), src, len * o->esize);
    if (!op->in_place) shm_copy((char *)op->recvbuf + lo * o->esize, src, len * o->esize, o->nt);
    if (!op->in_place && o->nt) shm_copy_fence();
    o->next_post++;
    shm_store(&me->posted, e + 1);
    shm_store(&me->consumed, e + 1); /* the root reads no one's slots */
  }
}

static bool copy_out(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  const struct shm_desc *d = shm_peer_desc(st, op->root, o->sseq);
  while (o->next_consume < o->nslices) {
    uint64_t e = o->ebase + o->next_consume;
    size_t lo, len;
    shm_slice(o, o->next_consume, op->count, &lo, &len);
    char *dst = (char *)op->recvbuf + lo * o->esize;
    if (d->send_off == SHM_NO_OFF && st->cma) {
      if (!shm_cma_read(st, op->root, dst, d->send_addr + lo * o->esize, len * o->esize))
        return false;
    } else {
      if (d->send_off == SHM_NO_OFF && shm_load(&st->ctls[op->root]->posted) < e + 1) return true;
      shm_copy(dst, shm_input(st, o, op->root, e, 0), len * o->esize, o->nt);
      if (o->nt) shm_copy_fence();
    }
    o->next_consume++;
    shm_store(&me->consumed, e + 1);
  }
  return true;
}

enum shm_step shm_broadcast_step(struct shm_state *st, struct shm_op *o) {
  if (o->small) return shm_small_step(st, o);
  enum shm_step r = shm_begin_large(st, o);
  if (r != SHM_ADVANCED) return r;
  uint64_t end = o->ebase + o->nslices;
  if (o->op->root == st->rank) {
    post(st, o);
    bool read_in_place = shm_reads_in_place(st, shm_peer_desc(st, st->rank, o->sseq));
    bool finished = o->next_post == o->nslices && (!read_in_place || SHM_ALL(st, consumed, end));
    return finished ? shm_finish(st, o) : SHM_BLOCKED;
  }
  if (!copy_out(st, o)) return SHM_FAILED;
  return o->next_consume == o->nslices ? shm_finish(st, o) : SHM_BLOCKED;
}

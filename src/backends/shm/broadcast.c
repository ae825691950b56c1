/*
 * Broadcast for large payloads: the root posts slices (or, for mlcommMemAlloc memory,
 * just says where its buffer is) and every other rank copies each slice out as soon as
 * it is posted. Slots rotate, so the root is at most `slots` slices ahead.
 */
#include <string.h>

#include "backends/shm/shm.h"

static void post(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  while (o->next_post < o->nslices) {
    uint64_t e = o->ebase + o->next_post;
    if (!shm_slice_slot_free(st, e)) return;
    size_t lo, len;
    shm_slice(o, o->next_post, op->count, &lo, &len);
    const char *src = (const char *)op->sendbuf + lo * o->esize;
    if (o->send_off == SHM_NO_OFF) memcpy(shm_in_slot(st, st->rank, e), src, len * o->esize);
    if (!op->in_place) shm_copy((char *)op->recvbuf + lo * o->esize, src, len * o->esize, o->nt);
    if (!op->in_place && o->nt) shm_copy_fence();
    o->next_post++;
    shm_store(&me->posted, e + 1);
    shm_store(&me->consumed, e + 1); /* the root reads no one's slots */
  }
}

static void copy_out(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  struct shm_ctl *root = st->ctls[op->root];
  while (o->next_consume < o->nslices) {
    uint64_t e = o->ebase + o->next_consume;
    if (shm_load(&root->posted) < e + 1) return;
    size_t lo, len;
    shm_slice(o, o->next_consume, op->count, &lo, &len);
    shm_copy((char *)op->recvbuf + lo * o->esize, shm_input(st, o, op->root, e, 0),
             len * o->esize, o->nt);
    if (o->nt) shm_copy_fence();
    o->next_consume++;
    shm_store(&me->consumed, e + 1);
  }
}

enum shm_step shm_broadcast_step(struct shm_state *st, struct shm_op *o) {
  if (o->small) return shm_small_step(st, o);
  enum shm_step r = shm_begin_large(st, o);
  if (r != SHM_ADVANCED) return r;
  uint64_t end = o->ebase + o->nslices;
  if (o->op->root == st->rank) {
    post(st, o);
    bool finished = o->next_post == o->nslices &&
                    (o->send_off == SHM_NO_OFF || SHM_ALL(st, consumed, end));
    return finished ? shm_finish(st, o) : SHM_BLOCKED;
  }
  copy_out(st, o);
  return o->next_consume == o->nslices ? shm_finish(st, o) : SHM_BLOCKED;
}

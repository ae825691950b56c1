/*
 * Allgather for large payloads: every rank posts slices of its own block (or exposes
 * its mlcommMemAlloc block in place), and copies every peer's slice e into its output
 * once all have posted e. Each rank reads its block once and writes the output once.
 */
#include <string.h>

#include "backends/shm/shm.h"

static void post(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  size_t block = op->count * o->esize;
  while (o->next_post < o->nslices) {
    uint64_t e = o->ebase + o->next_post;
    if (!shm_slice_slot_free(st, e)) return;
    size_t lo, len;
    shm_slice(o, o->next_post, op->count, &lo, &len);
    const char *src = (const char *)op->sendbuf + lo * o->esize;
    if (o->send_off == SHM_NO_OFF) memcpy(shm_in_slot(st, st->rank, e), src, len * o->esize);
    if (!op->in_place)
      shm_copy((char *)op->recvbuf + block * (size_t)st->rank + lo * o->esize, src,
               len * o->esize, o->nt);
    o->next_post++;
    shm_store(&me->posted, e + 1);
  }
}

static void copy_in(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  size_t block = op->count * o->esize;
  while (o->next_consume < o->next_post) {
    uint64_t e = o->ebase + o->next_consume;
    if (!SHM_ALL(st, posted, e + 1)) return;
    size_t lo, len;
    shm_slice(o, o->next_consume, op->count, &lo, &len);
    for (int j = 0; j < st->n; j++)
      if (j != st->rank)
        shm_copy((char *)op->recvbuf + block * (size_t)j + lo * o->esize,
                 shm_input(st, o, j, e, 0), len * o->esize, o->nt);
    if (o->nt) shm_copy_fence();
    o->next_consume++;
    shm_store(&me->consumed, e + 1);
  }
}

enum shm_step shm_allgather_step(struct shm_state *st, struct shm_op *o) {
  if (o->small) return shm_small_step(st, o);
  enum shm_step r = shm_begin_large(st, o);
  if (r != SHM_ADVANCED) return r;
  for (;;) {
    uint64_t before = o->next_post + o->next_consume;
    post(st, o);
    copy_in(st, o);
    if (o->next_post + o->next_consume == before) break;
  }
  bool finished = o->next_consume == o->nslices &&
                  (o->send_off == SHM_NO_OFF || SHM_ALL(st, consumed, o->ebase + o->nslices));
  return finished ? shm_finish(st, o) : SHM_BLOCKED;
}

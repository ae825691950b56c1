/*
 * Allgather for large payloads. Every rank copies each peer's block into its output,
 * slice by slice, from wherever it can be read: an mlcommMemAlloc buffer in the
 * segment, or the peer's private buffer (cross-memory attach, cma.c). Failing both,
 * ranks stage their block's slices through their in-slots first. A rank whose block
 * is read in place stays until every peer has read it.
 */
#include <string.h>

#include "backends/shm/shm.h"

static void post(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  size_t block = op->count * o->esize;
  bool stage = !shm_reads_in_place(st, shm_peer_desc(st, st->rank, o->sseq));
  while (o->next_post < o->nslices) {
    uint64_t e = o->ebase + o->next_post;
    if (stage && !shm_slice_slot_free(st, e)) return;
    size_t lo, len;
    shm_slice(o, o->next_post, op->count, &lo, &len);
    const char *src = (const char *)op->sendbuf + lo * o->esize;
    if (stage) memcpy(shm_in_slot(st, st->rank, e), src, len * o->esize);
    if (!op->in_place)
      shm_copy((char *)op->recvbuf + block * (size_t)st->rank + lo * o->esize, src,
               len * o->esize, o->nt);
    o->next_post++;
    shm_store(&me->posted, e + 1);
  }
}

static bool copy_in(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  size_t block = op->count * o->esize;
  while (o->next_consume < o->next_post) {
    uint64_t e = o->ebase + o->next_consume;
    if (!st->cma && !SHM_ALL(st, posted, e + 1)) return true;
    size_t lo, len;
    shm_slice(o, o->next_consume, op->count, &lo, &len);
    for (int j = 0; j < st->n; j++) {
      if (j == st->rank) continue;
      char *dst = (char *)op->recvbuf + block * (size_t)j + lo * o->esize;
      const struct shm_desc *d = shm_peer_desc(st, j, o->sseq);
      if (d->send_off == SHM_NO_OFF && st->cma) {
        if (!shm_cma_read(st, j, dst, d->send_addr + lo * o->esize, len * o->esize)) return false;
      } else {
        shm_copy(dst, shm_input(st, o, j, e, 0), len * o->esize, o->nt);
      }
    }
    if (o->nt) shm_copy_fence();
    o->next_consume++;
    shm_store(&me->consumed, e + 1);
  }
  return true;
}

enum shm_step shm_allgather_step(struct shm_state *st, struct shm_op *o) {
  if (o->small) return shm_small_step(st, o);
  enum shm_step r = shm_begin_large(st, o);
  if (r != SHM_ADVANCED) return r;
  for (;;) {
    uint64_t before = o->next_post + o->next_consume;
    post(st, o);
    if (!copy_in(st, o)) return SHM_FAILED;
    if (o->next_post + o->next_consume == before) break;
  }
  bool read_in_place = shm_reads_in_place(st, shm_peer_desc(st, st->rank, o->sseq));
  bool finished = o->next_consume == o->nslices &&
                  (!read_in_place || SHM_ALL(st, consumed, o->ebase + o->nslices));
  return finished ? shm_finish(st, o) : SHM_BLOCKED;
}

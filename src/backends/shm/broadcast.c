/*
 * Broadcast for large payloads. Every other rank copies the root's buffer into its own
 * output, slice by slice, from wherever it can be read: the root's mlcommMemAlloc
 * buffer in the segment, or the root's private buffer itself (cross-memory attach,
 * cma.c): one copy either way, and the root then stays until every rank has read it.
 * With CMA and an in-place root, the root also works: it writes the last 1/n of each
 * slice into every receiver (process_vm_writev) while they read the rest, so root and
 * receivers each copy (n-1)/n of the buffer. Without either, the root stages slices
 * through its rotating in-slots, at most `slots` ahead of the slowest reader.
 */
#include <string.h>

#include "backends/shm/shm.h"

/* With the root pushing, receivers read [0, split) of each slice and the root writes
 * [split, len) into every receiver. */
static bool root_pushes(const struct shm_state *st, const struct shm_op *o) {
  const struct shm_desc *root = shm_peer_desc(st, o->op->root, o->sseq);
  return st->cma && root->send_off == SHM_NO_OFF && root->send_addr == root->recv_addr;
}

static size_t split(const struct shm_state *st, size_t len) {
  return len - len / (size_t)st->n;
}

static bool post(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  bool stage = !shm_reads_in_place(st, shm_peer_desc(st, st->rank, o->sseq));
  bool push = root_pushes(st, o);
  while (o->next_post < o->nslices) {
    uint64_t e = o->ebase + o->next_post;
    if (stage && !shm_slice_slot_free(st, e)) return true;
    size_t lo, len;
    shm_slice(o, o->next_post, op->count, &lo, &len);
    const char *src = (const char *)op->sendbuf + lo * o->esize;
    if (stage) memcpy(shm_in_slot(st, st->rank, e), src, len * o->esize);
    if (!op->in_place) shm_copy((char *)op->recvbuf + lo * o->esize, src, len * o->esize, o->nt);
    if (!op->in_place && o->nt) shm_copy_fence();
    if (push) {
      size_t at = split(st, len);
      for (int j = 0; j < st->n && at < len; j++)
        if (j != st->rank &&
            !shm_cma_write(st, j, src + at * o->esize,
                           shm_peer_desc(st, j, o->sseq)->recv_addr + (lo + at) * o->esize,
                           (len - at) * o->esize))
          return false;
    }
    o->next_post++;
    shm_store(&me->posted, e + 1);
    shm_store(&me->consumed, e + 1); /* the root reads no one's slots */
  }
  return true;
}

static bool copy_out(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  const struct mlcomm_op *op = o->op;
  const struct shm_desc *d = shm_peer_desc(st, op->root, o->sseq);
  bool push = root_pushes(st, o);
  while (o->next_consume < o->nslices) {
    uint64_t e = o->ebase + o->next_consume;
    size_t lo, len;
    shm_slice(o, o->next_consume, op->count, &lo, &len);
    char *dst = (char *)op->recvbuf + lo * o->esize;
    if (d->send_off == SHM_NO_OFF && st->cma) {
      size_t mine = push ? split(st, len) : len;
      if (!shm_cma_read(st, op->root, dst, d->send_addr + lo * o->esize, mine * o->esize))
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
    if (!post(st, o)) return SHM_FAILED;
    bool read_in_place = shm_reads_in_place(st, shm_peer_desc(st, st->rank, o->sseq));
    bool finished = o->next_post == o->nslices && (!read_in_place || SHM_ALL(st, consumed, end));
    return finished ? shm_finish(st, o) : SHM_BLOCKED;
  }
  if (!copy_out(st, o)) return SHM_FAILED;
  /* When the root pushes part of each slice, the output is whole once it posted all. */
  bool whole = !root_pushes(st, o) || shm_load(&st->ctls[o->op->root]->posted) >= end;
  return o->next_consume == o->nslices && whole ? shm_finish(st, o) : SHM_BLOCKED;
}

/*
 * Allreduce for large payloads: reduce-scatter then all-gather, pipelined in slices
 * small enough to stay in cache, so each byte crosses DRAM about twice (input read,
 * result written) per rank. Slice e is split into n parts; rank p owns part p and
 * reduces it over ranks 0..n-1 in that order, so every rank gets the same bits.
 *
 *   post     copy the input slice into this rank's in-slot (skipped for mlcommMemAlloc
 *            input, which peers read in place)
 *   reduce   once every rank posted e: reduce the owned part; staged: into this
 *            rank's out-slot; direct (every rank's output is mlcommMemAlloc memory):
 *            straight into every rank's output
 *   gather   staged only: once every rank reduced e, copy the other parts out (the
 *            owned part went to the output as it was reduced, chunk by chunk, while
 *            still in L1)
 */
#include <string.h>

#include "backends/shm/shm.h"
#include "collectives/reduce.h"

const char *shm_input(const struct shm_state *st, const struct shm_op *o, int j, uint64_t e,
                      size_t elem) {
  const struct shm_desc *d = shm_peer_desc(st, j, o->sseq);
  size_t off = elem * o->esize, at = (size_t)(e - o->ebase) * o->slice_elems * o->esize + off;
  if (d->send_off != SHM_NO_OFF) return shm_peer_buf(st, d->send_off) + at;
  /* This rank's own part is never staged: it reads it where the caller put it. */
  if (j == st->rank && o->op->kind != MLCOMM_OP_BROADCAST && o->op->kind != MLCOMM_OP_ALLGATHER)
    return (const char *)o->op->sendbuf + at;
  return shm_in_slot(st, j, e) + off;
}

void shm_stage_inputs(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  while (o->next_post < o->nslices) {
    uint64_t e = o->ebase + o->next_post;
    if (!shm_slice_slot_free(st, e)) return;
    if (o->send_off == SHM_NO_OFF) {
      /* Stage the parts the other ranks reduce; this rank's own part stays put. */
      size_t lo, len, plo, phi;
      shm_slice(o, o->next_post, o->op->count, &lo, &len);
      for (int p = 0; p < st->n; p++) {
        shm_part(len, st->n, p, &plo, &phi);
        if (p != st->rank && phi > plo)
          memcpy(shm_in_slot(st, st->rank, e) + plo * o->esize,
                 (const char *)o->op->sendbuf + (lo + plo) * o->esize, (phi - plo) * o->esize);
      }
    }
    o->next_post++;
    shm_store(&me->posted, e + 1);
  }
}

#define SHM_CHUNK_BYTES 16384 /* reduce, then pass on, while it is still in L1 */

/* The owned part [plo, plo + plen) of slice e (starting at element lo of the buffer),
 * reduced over every rank in order, a chunk at a time. Direct: each chunk is written
 * into every rank's output. Staged: into this rank's out-slot for the peers, and
 * also into its own output when mine. */
static void reduce_part(struct shm_state *st, struct shm_op *o, uint64_t e, size_t lo,
                        size_t plo, size_t plen, bool mine) {
  const struct mlcomm_op *op = o->op;
  size_t chunk = SHM_CHUNK_BYTES / o->esize;
  const void *srcs[st->n];
  for (size_t c = 0; c < plen; c += chunk) {
    size_t m = plen - c < chunk ? plen - c : chunk, at = (lo + plo + c) * o->esize;
    for (int j = 0; j < st->n; j++) srcs[j] = shm_input(st, o, j, e, plo + c);
    char *dst = o->direct ? st->scratch : shm_out_slot(st, st->rank, e) + (plo + c) * o->esize;
    shm_reduce_n(op, dst, srcs, st->n, m);
    if (op->redop == mlcommAvg) mlcomm_avg_finish(op->dtype, dst, m, st->n);
    if (o->direct) {
      for (int j = 0; j < st->n; j++)
        shm_copy(shm_peer_buf(st, shm_peer_desc(st, j, o->sseq)->recv_off) + at, dst,
                 m * o->esize, o->nt);
    } else if (mine) {
      shm_copy((char *)op->recvbuf + at, dst, m * o->esize, o->nt);
    }
  }
  if (o->direct || (mine && o->nt)) shm_copy_fence();
}

void shm_reduce_parts(struct shm_state *st, struct shm_op *o, bool mine, bool consumed_too) {
  struct shm_ctl *me = st->ctls[st->rank];
  while (o->next_reduce < o->next_post) {
    uint64_t e = o->ebase + o->next_reduce;
    if (!SHM_ALL(st, posted, e + 1)) return;
    size_t lo, len, plo, phi;
    shm_slice(o, o->next_reduce, o->op->count, &lo, &len);
    shm_part(len, st->n, st->rank, &plo, &phi);
    if (phi > plo) reduce_part(st, o, e, lo, plo, phi - plo, mine);
    o->next_reduce++;
    shm_store(&me->reduced, e + 1);
    if (consumed_too) shm_store(&me->consumed, e + 1);
  }
}

void shm_gather_parts(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  while (o->next_consume < o->next_reduce) {
    uint64_t e = o->ebase + o->next_consume;
    if (!SHM_ALL(st, reduced, e + 1)) return;
    size_t lo, len;
    shm_slice(o, o->next_consume, o->op->count, &lo, &len);
    char *out = (char *)o->op->recvbuf + lo * o->esize;
    for (int j = 0; j < st->n; j++) {
      size_t plo, phi;
      shm_part(len, st->n, j, &plo, &phi);
      if (phi > plo && j != st->rank) /* its own part went out as it was reduced */
        shm_copy(out + plo * o->esize, shm_out_slot(st, j, e) + plo * o->esize,
                 (phi - plo) * o->esize, o->nt);
    }
    if (o->nt) shm_copy_fence();
    o->next_consume++;
    shm_store(&me->consumed, e + 1);
  }
}

/* Arrived everywhere and agreed; decides direct mode once. */
enum shm_step shm_begin_large(struct shm_state *st, struct shm_op *o) {
  if (shm_publish(st, o) == SHM_BLOCKED) return SHM_BLOCKED;
  bool first = !o->checked;
  enum shm_step r = shm_await(st, o, -1);
  if (r != SHM_ADVANCED || !first) return r;
  o->direct = o->op->kind == MLCOMM_OP_ALLREDUCE;
  for (int j = 0; j < st->n && o->direct; j++)
    if (shm_peer_desc(st, j, o->sseq)->recv_off == SHM_NO_OFF) o->direct = false;
  return SHM_ADVANCED;
}

enum shm_step shm_allreduce_step(struct shm_state *st, struct shm_op *o) {
  if (o->small) return shm_small_step(st, o);
  enum shm_step r = shm_begin_large(st, o);
  if (r != SHM_ADVANCED) return r;
  for (;;) {
    uint64_t before = o->next_post + o->next_reduce + o->next_consume;
    shm_stage_inputs(st, o);
    shm_reduce_parts(st, o, true, o->direct);
    if (!o->direct) shm_gather_parts(st, o);
    if (o->next_post + o->next_reduce + o->next_consume == before) break;
  }
  uint64_t end = o->ebase + o->nslices;
  bool finished = o->direct ? o->next_reduce == o->nslices && SHM_ALL(st, reduced, end)
                            : o->next_consume == o->nslices;
  return finished ? shm_finish(st, o) : SHM_BLOCKED;
}

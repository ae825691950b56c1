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
 *   gather   staged only: once every rank reduced e, copy all parts out
 */
#include <string.h>

#include "backends/shm/shm.h"
#include "collectives/reduce.h"

const char *shm_input(const struct shm_state *st, const struct shm_op *o, int j, uint64_t e,
                      size_t elem) {
  const struct shm_desc *d = shm_peer_desc(st, j, o->sseq);
  size_t off = elem * o->esize;
  if (d->send_off != SHM_NO_OFF)
    return shm_peer_buf(st, d->send_off) + (e - o->ebase) * o->slice_elems * o->esize + off;
  return shm_in_slot(st, j, e) + off;
}

void shm_stage_inputs(struct shm_state *st, struct shm_op *o) {
  struct shm_ctl *me = st->ctls[st->rank];
  while (o->next_post < o->nslices) {
    uint64_t e = o->ebase + o->next_post;
    if (!shm_slice_slot_free(st, e)) return;
    if (o->send_off == SHM_NO_OFF) {
      size_t lo, len;
      shm_slice(o, o->next_post, o->op->count, &lo, &len);
      memcpy(shm_in_slot(st, st->rank, e), (const char *)o->op->sendbuf + lo * o->esize,
             len * o->esize);
    }
    o->next_post++;
    shm_store(&me->posted, e + 1);
  }
}

/* The owned part of slice e, reduced into dst. */
static void reduce_part(struct shm_state *st, struct shm_op *o, uint64_t e, size_t plo,
                        size_t plen, void *dst) {
  const void *srcs[st->n];
  for (int j = 0; j < st->n; j++) srcs[j] = shm_input(st, o, j, e, plo);
  shm_reduce_n(o->op, dst, srcs, st->n, plen);
  if (o->op->redop == mlcommAvg) mlcomm_avg_finish(o->op->dtype, dst, plen, st->n);
}

void shm_reduce_parts(struct shm_state *st, struct shm_op *o, bool consumed_too) {
  struct shm_ctl *me = st->ctls[st->rank];
  while (o->next_reduce < o->next_post) {
    uint64_t e = o->ebase + o->next_reduce;
    if (!SHM_ALL(st, posted, e + 1)) return;
    size_t lo, len, plo, phi;
    shm_slice(o, o->next_reduce, o->op->count, &lo, &len);
    shm_part(len, st->n, st->rank, &plo, &phi);
    if (phi > plo && o->direct) {
      reduce_part(st, o, e, plo, phi - plo, st->scratch);
      size_t at = (lo + plo) * o->esize;
      for (int j = 0; j < st->n; j++) {
        const struct shm_desc *d = shm_peer_desc(st, j, o->sseq);
        shm_copy(shm_peer_buf(st, d->recv_off) + at, st->scratch, (phi - plo) * o->esize, o->nt);
      }
      shm_copy_fence();
    } else if (phi > plo) {
      reduce_part(st, o, e, plo, phi - plo, shm_out_slot(st, st->rank, e) + plo * o->esize);
    }
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
      if (phi > plo)
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
    shm_reduce_parts(st, o, o->direct);
    if (!o->direct) shm_gather_parts(st, o);
    if (o->next_post + o->next_reduce + o->next_consume == before) break;
  }
  uint64_t end = o->ebase + o->nslices;
  bool finished = o->direct ? o->next_reduce == o->nslices && SHM_ALL(st, reduced, end)
                            : o->next_consume == o->nslices;
  return finished ? shm_finish(st, o) : SHM_BLOCKED;
}

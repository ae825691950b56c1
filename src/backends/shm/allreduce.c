/*
 * Allreduce for large payloads: reduce-scatter then all-gather, pipelined in slices
 * small enough to stay in cache, so each byte crosses DRAM about twice (input read,
 * result written) per rank. Slice e is split into n parts; rank p owns part p and
 * reduces it over ranks 0..n-1 in that order, so every rank gets the same bits.
 *
 *   post     copy the input slice into this rank's in-slot (skipped for mlcommMemAlloc
 *            input, which peers read in place)
 *   reduce   once every rank posted e: reduce the owned part; staged: into this
 *            rank's out-slot; direct (every rank's output is mlcommMemAlloc memory, or
 *            a tune rule pinned @direct and CMA works): straight into every rank's
 *            output. With CMA the owner also
 *            fetches peers' inputs itself (process_vm_readv, 64 KiB a call) and writes
 *            their results (process_vm_writev): no slot, no copy-in, no gather, each
 *            rank reads its input and writes its output once
 *   gather   staged only: once every rank reduced e, copy the other parts out (the
 *            owned part went to the output as it was reduced, chunk by chunk, while
 *            still in L1)
 */
#include <string.h>

#include "backends/shm/shm.h"
#include "collectives/reduce.h"

/* Below this (per rank), with CMA, allreduce goes direct: owners fetch and write peers. */
MLCOMM_PARAM(ShmCmaAllreduceBytes, "MLCOMM_SHM_CMA_ALLREDUCE_BYTES", 0, 0, INT64_MAX);

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
  /* Direct with CMA: owners fetch this rank's input themselves and no slot is used, so
   * every slice is posted at once. Otherwise the out-slots still rotate: a slice is
   * posted only once its slots are free, even when the input needs no staging. */
  if (o->direct && o->cma && o->next_post < o->nslices) {
    o->next_post = o->nslices;
    shm_store(&me->posted, o->ebase + o->nslices);
    return;
  }
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

#define SHM_CHUNK_BYTES 16384     /* reduce, then pass on, while it is still in L1 */

/* Rank j's input for elements [elem, elem + m) of slice e: in the segment, in this
 * rank's own buffer, fetched from j's private buffer into fetch (CMA), or staged. */
static const void *input_chunk(struct shm_state *st, const struct shm_op *o, int j, uint64_t e,
                               size_t elem, size_t m, char *fetch) {
  const struct shm_desc *d = shm_peer_desc(st, j, o->sseq);
  if (d->send_off != SHM_NO_OFF || j == st->rank || !o->cma)
    return shm_input(st, o, j, e, elem);
  size_t at = ((size_t)(e - o->ebase) * o->slice_elems + elem) * o->esize;
  return shm_cma_read(st, j, fetch, d->send_addr + at, m * o->esize) ? fetch : NULL;
}

/* A reduced chunk to rank j's output at byte offset at (direct mode). */
static bool deliver(struct shm_state *st, struct shm_op *o, int j, size_t at, const char *src,
                    size_t bytes) {
  const struct shm_desc *d = shm_peer_desc(st, j, o->sseq);
  if (d->recv_off != SHM_NO_OFF) shm_copy(shm_peer_buf(st, d->recv_off) + at, src, bytes, o->nt);
  else if (j == st->rank) shm_copy((char *)o->op->recvbuf + at, src, bytes, o->nt);
  else return shm_cma_write(st, j, src, d->recv_addr + at, bytes);
  return true;
}

/* The owned part [plo, plo + plen) of slice e (starting at element lo of the buffer),
 * reduced over every rank in order, a chunk at a time. Direct: each chunk is written
 * into every rank's output. Staged: into this rank's out-slot for the peers, and
 * also into its own output when mine. False when a peer could not be reached. */
static bool reduce_part(struct shm_state *st, struct shm_op *o, uint64_t e, size_t lo,
                        size_t plo, size_t plen, bool mine) {
  const struct mlcomm_op *op = o->op;
  size_t chunk = (o->cma ? SHM_CMA_CHUNK_BYTES : SHM_CHUNK_BYTES) / o->esize;
  char *result = st->scratch, *fetch = (char *)st->scratch + SHM_CMA_CHUNK_BYTES;
  const void *srcs[st->n];
  for (size_t c = 0; c < plen; c += chunk) {
    size_t m = plen - c < chunk ? plen - c : chunk, at = (lo + plo + c) * o->esize;
    for (int j = 0; j < st->n; j++) {
      srcs[j] = input_chunk(st, o, j, e, plo + c, m, fetch + (size_t)j * SHM_CMA_CHUNK_BYTES);
      if (srcs[j] == NULL) return false;
    }
    char *dst = o->direct ? result : shm_out_slot(st, st->rank, e) + (plo + c) * o->esize;
    shm_reduce_n(op, dst, srcs, st->n, m);
    if (op->redop == mlcommAvg) mlcomm_avg_finish(op->dtype, dst, m, st->n);
    if (o->direct) {
      for (int j = 0; j < st->n; j++)
        if ((op->kind != MLCOMM_OP_REDUCE || j == op->root) &&
            !deliver(st, o, j, at, dst, m * o->esize))
          return false;
    } else if (mine) {
      shm_copy((char *)op->recvbuf + at, dst, m * o->esize, o->nt);
    }
  }
  if (o->direct || (mine && o->nt)) shm_copy_fence();
  return true;
}

bool shm_reduce_parts(struct shm_state *st, struct shm_op *o, bool mine, bool consumed_too) {
  struct shm_ctl *me = st->ctls[st->rank];
  while (o->next_reduce < o->next_post) {
    uint64_t e = o->ebase + o->next_reduce;
    if (!SHM_ALL(st, posted, e + 1)) return true;
    size_t lo, len, plo, phi;
    shm_slice(o, o->next_reduce, o->op->count, &lo, &len);
    shm_part(len, st->n, st->rank, &plo, &phi);
    if (phi > plo && !reduce_part(st, o, e, lo, plo, phi - plo, mine)) return false;
    o->next_reduce++;
    shm_store(&me->reduced, e + 1);
    if (consumed_too) shm_store(&me->consumed, e + 1);
  }
  return true;
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
  /* Direct: every output can be written by its owner, in the segment, or by CMA: for
   * reduce always (only the root's output is written), for allreduce when a tune rule
   * pins @direct or below MLCOMM_SHM_CMA_ALLREDUCE_BYTES (default 0: at 2 ranks here
   * staging won at 256 KiB-16 MiB, 11.5-17.0 against 2.6-10.4 GB/s, see docs/shm.md). */
  bool reduce = o->op->kind == MLCOMM_OP_REDUCE;
  bool cma = st->cma && (o->pinned == SHM_ALG_DIRECT || reduce || o->bytes < st->cma_allreduce_bytes);
  o->direct = (o->op->kind == MLCOMM_OP_ALLREDUCE || reduce) && o->pinned != SHM_ALG_PIPELINE;
  o->cma = o->direct && cma;
  for (int j = 0; j < st->n && o->direct && !cma; j++)
    if ((!reduce || j == o->op->root) && shm_peer_desc(st, j, o->sseq)->recv_off == SHM_NO_OFF)
      o->direct = false;
  if (o->direct) o->user_op->alg = SHM_ALG_DIRECT;
  return SHM_ADVANCED;
}

enum shm_step shm_allreduce_step(struct shm_state *st, struct shm_op *o) {
  if (o->small) return shm_small_step(st, o);
  enum shm_step r = shm_begin_large(st, o);
  if (r != SHM_ADVANCED) return r;
  for (;;) {
    uint64_t before = o->next_post + o->next_reduce + o->next_consume;
    shm_stage_inputs(st, o);
    if (!shm_reduce_parts(st, o, true, o->direct)) return SHM_FAILED;
    if (!o->direct) shm_gather_parts(st, o);
    if (o->next_post + o->next_reduce + o->next_consume == before) break;
  }
  uint64_t end = o->ebase + o->nslices;
  bool finished = o->direct ? o->next_reduce == o->nslices && SHM_ALL(st, reduced, end)
                            : o->next_consume == o->nslices;
  return finished ? shm_finish(st, o) : SHM_BLOCKED;
}

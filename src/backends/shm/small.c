/*
 * One-shot collectives for small payloads (and barrier): each rank copies its input
 * into its small slot, publishes its arrival, and reads what it needs from its peers'
 * slots directly; one round, no reset. Slot s % 2 is rewritten at op s + 2 only, once
 * every rank is done with s (shm_small_slot_free).
 */
#include <string.h>

#include "backends/shm/shm.h"
#include "collectives/reduce.h"

/* Bytes a writing rank puts in its slot (the root, for broadcast). */
static size_t payload(const struct shm_state *st, const struct mlcomm_op *op) {
  size_t bytes = op->count * mlcomm_type_size(op->dtype);
  switch (op->kind) {
  case MLCOMM_OP_BARRIER: return 0;
  case MLCOMM_OP_REDUCESCATTER: return bytes * (size_t)st->n;
  default: return bytes;
  }
}

static void reduce_slots(struct shm_state *st, const struct shm_op *o, void *dst, size_t skip) {
  const struct mlcomm_op *op = o->op;
  const void *srcs[st->n];
  for (int j = 0; j < st->n; j++) srcs[j] = shm_small_slot(st, o, j) + skip;
  shm_reduce_n(op, dst, srcs, st->n, op->count);
  if (op->redop == mlcommAvg) mlcomm_avg_finish(op->dtype, dst, op->count, st->n);
}

enum shm_step shm_small_step(struct shm_state *st, struct shm_op *o) {
  struct mlcomm_op *op = o->op;
  int me = st->rank;
  if (!o->published) {
    if (!shm_small_slot_free(st, o)) return SHM_BLOCKED;
    size_t bytes = payload(st, op);
    bool writes = op->kind != MLCOMM_OP_BROADCAST || op->root == me;
    if (bytes && writes) memcpy(shm_small_slot(st, o, me), op->sendbuf, bytes);
    if (shm_publish(st, o) == SHM_BLOCKED) return SHM_BLOCKED;
  }
  bool bcast = op->kind == MLCOMM_OP_BROADCAST;
  bool reader = !(bcast && op->root == me) && !(op->kind == MLCOMM_OP_REDUCE && op->root != me);
  if (reader) {
    enum shm_step r = shm_await(st, o, bcast ? op->root : -1);
    if (r != SHM_ADVANCED) return r;
  }
  size_t bytes = op->count * mlcomm_type_size(op->dtype);
  switch (op->kind) {
  case MLCOMM_OP_ALLREDUCE: reduce_slots(st, o, op->recvbuf, 0); break;
  case MLCOMM_OP_REDUCE:
    if (op->root == me) reduce_slots(st, o, op->recvbuf, 0);
    break;
  case MLCOMM_OP_REDUCESCATTER: reduce_slots(st, o, op->recvbuf, bytes * (size_t)me); break;
  case MLCOMM_OP_BROADCAST:
    if (op->root != me) memcpy(op->recvbuf, shm_small_slot(st, o, op->root), bytes);
    else if (!op->in_place) memcpy(op->recvbuf, op->sendbuf, bytes);
    break;
  case MLCOMM_OP_ALLGATHER:
    for (int j = 0; j < st->n; j++)
      if (j != me || !op->in_place)
        memcpy((char *)op->recvbuf + bytes * (size_t)j, shm_small_slot(st, o, j),
               bytes);
    break;
  default: break; /* barrier: arriving was all */
  }
  return shm_finish(st, o);
}

/*
 * Reduce for large payloads: the reduce-scatter half of allreduce (every rank reduces
 * its part of each slice, so every core works), then only the root gathers the parts.
 * A non-root is done with slice e once it has reduced its part.
 */
#include "backends/shm/shm.h"

enum shm_step shm_reduce_step(struct shm_state *st, struct shm_op *o) {
  if (o->small) return shm_small_step(st, o);
  enum shm_step r = shm_begin_large(st, o);
  if (r != SHM_ADVANCED) return r;
  bool root = o->op->root == st->rank;
  for (;;) {
    uint64_t before = o->next_post + o->next_reduce + o->next_consume;
    shm_stage_inputs(st, o);
    if (!shm_reduce_parts(st, o, root, !root)) return SHM_FAILED;
    if (root) shm_gather_parts(st, o);
    if (o->next_post + o->next_reduce + o->next_consume == before) break;
  }
  uint64_t end = o->ebase + o->nslices;
  bool finished = root ? o->next_consume == o->nslices
                       : o->next_reduce == o->nslices &&
                             (o->send_off == SHM_NO_OFF || SHM_ALL(st, reduced, end));
  return finished ? shm_finish(st, o) : SHM_BLOCKED;
}

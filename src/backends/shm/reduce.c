/*
 * Reduce for large payloads. Direct (the default where CMA works, or where the root's
 * output is mlcommMemAlloc memory): every rank reduces its part of each slice over all
 * inputs, read where they lie (process_vm_readv of peers' buffers, which are clean
 * lines), and writes it straight into the root's output; nothing is staged and only
 * the root's buffer is written. Measured on 2 ranks here, in one run: 5.1-7.7 GB/s at
 * 64 KiB-4 MiB against 1.4-2.8 for the staged form, MPI_Reduce 5.3-8.4 (the root
 * pulling everything itself, as MPI does, reached 4.8-6.3). Otherwise the
 * reduce-scatter half of allreduce runs through the slots, then only the root gathers
 * the parts; a non-root is done with slice e once it has reduced its part.
 */
#include "backends/shm/shm.h"

enum shm_step shm_reduce_step(struct shm_state *st, struct shm_op *o) {
  if (o->small) return shm_small_step(st, o);
  enum shm_step r = shm_begin_large(st, o);
  if (r != SHM_ADVANCED) return r;
  bool root = o->op->root == st->rank;
  if (o->direct) { /* owners write the root's output; inputs stay until all reduced */
    for (;;) {
      uint64_t before = o->next_post + o->next_reduce;
      shm_stage_inputs(st, o);
      if (!shm_reduce_parts(st, o, false, true)) return SHM_FAILED;
      if (o->next_post + o->next_reduce == before) break;
    }
    bool done = o->next_reduce == o->nslices && SHM_ALL(st, reduced, o->ebase + o->nslices);
    return done ? shm_finish(st, o) : SHM_BLOCKED;
  }
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

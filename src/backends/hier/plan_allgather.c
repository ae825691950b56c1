/*
 * Allgather across nodes: the rail gathers the blocks of its local index from every
 * node (each rank's block crosses the network once per other node, which every
 * allgather must do), then an allgather inside the node gives every rank all rails'
 * gatherings, which a local copy puts in rank order (ranks need not be placed node by
 * node).
 */
#include <stdlib.h>
#include <string.h>

#include "backends/hier/hier.h"
#include "collectives/reduce.h"

/* tmp holds the rail's gathering, then every rail's: [local i][node j] blocks. */
static void to_rank_order(struct hier_state *st, struct hier_op *ho, size_t off, size_t len) {
  (void)off, (void)len;
  const struct mlcomm_op *op = ho->op;
  size_t block = op->count * mlcomm_type_size(op->dtype), nn = (size_t)st->nnodes;
  const char *all = (const char *)ho->tmp + nn * block;
  for (int i = 0; i < st->L; i++)
    for (int j = 0; j < st->nnodes; j++)
      memcpy((char *)op->recvbuf + (size_t)st->rank_of[j * st->L + i] * block,
             all + ((size_t)i * nn + (size_t)j) * block, block);
}

mlcommResult_t hier_plan_allgather(struct hier_state *st, struct hier_op *ho) {
  const struct mlcomm_op *op = ho->op;
  size_t block = op->count * mlcomm_type_size(op->dtype), nn = (size_t)st->nnodes;
  if ((ho->tmp = malloc((nn + nn * (size_t)st->L) * block)) == NULL)
    return mlcomm_error(st->comm, mlcommSystemError,
                        "mlcommAllGather: out of memory for %zu bytes of staging",
                        (nn + nn * (size_t)st->L) * block);
  char *rail = ho->tmp, *all = rail + nn * block;
  struct mlcomm_op ra = hier_sub(op, MLCOMM_OP_ALLGATHER, op->sendbuf, rail, op->count, 0);
  int s = hier_add(ho, HIER_RAIL, &ra, -1);
  struct mlcomm_op na = hier_sub(op, MLCOMM_OP_ALLGATHER, rail, all, nn * op->count, 0);
  if (s >= 0) s = hier_add(ho, HIER_NODE, &na, s);
  if (s >= 0) s = hier_add_local(ho, to_rank_order, 0, 0, s);
  ho->op->alg = HIER_ALG_RAILS;
  return s >= 0 ? mlcommSuccess : mlcomm_error(st->comm, mlcommSystemError, "hier: out of memory");
}

/*
 * Reduce-scatter across nodes. A local copy groups the input's blocks by the local
 * index of the rank each is for ([local i][node j]); a reduce-scatter inside the node
 * gives the rank of local index i the node's sum of group i; the rail's reduce-scatter
 * between nodes then leaves each rank its own block. Each rank sends about
 * (nodes-1)/nodes of one group over the network, 1/L of what flat MPI sends.
 */
#include <stdlib.h>
#include <string.h>

#include "backends/hier/hier.h"
#include "collectives/reduce.h"

static void by_local_index(struct hier_state *st, struct hier_op *ho, size_t off, size_t len) {
  (void)off, (void)len;
  const struct mlcomm_op *op = ho->op;
  size_t block = op->count * mlcomm_type_size(op->dtype), nn = (size_t)st->nnodes;
  for (int i = 0; i < st->L; i++)
    for (int j = 0; j < st->nnodes; j++)
      memcpy((char *)ho->tmp + ((size_t)i * nn + (size_t)j) * block,
             (const char *)op->sendbuf + (size_t)st->rank_of[j * st->L + i] * block, block);
}

mlcommResult_t hier_plan_reduce_scatter(struct hier_state *st, struct hier_op *ho) {
  const struct mlcomm_op *op = ho->op;
  size_t block = op->count * mlcomm_type_size(op->dtype), nn = (size_t)st->nnodes;
  size_t total = (size_t)st->comm->nranks * block;
  if ((ho->tmp = malloc(total)) == NULL)
    return mlcomm_error(st->comm, mlcommSystemError,
                        "mlcommReduceScatter: out of memory for %zu bytes of staging", total);
  char *group = (char *)ho->tmp + (size_t)st->local * nn * block; /* in place: own group */
  int s = hier_add_local(ho, by_local_index, 0, 0, -1);
  struct mlcomm_op nrs = hier_sub(op, MLCOMM_OP_REDUCESCATTER, ho->tmp, group, nn * op->count, 0);
  if (s >= 0) s = hier_add(ho, HIER_NODE, &nrs, s);
  struct mlcomm_op rrs = hier_sub(op, MLCOMM_OP_REDUCESCATTER, group, op->recvbuf, op->count, 0);
  if (s >= 0) s = hier_add(ho, HIER_RAIL, &rrs, s);
  if (s >= 0 && op->redop == mlcommAvg) s = hier_add_local(ho, hier_avg, 0, op->count, s);
  ho->op->alg = HIER_ALG_RAILS;
  return s >= 0 ? mlcommSuccess : mlcomm_error(st->comm, mlcommSystemError, "hier: out of memory");
}

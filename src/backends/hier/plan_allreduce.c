/*
 * Allreduce across nodes.
 *
 * rails (large calls): per slice of s * L elements, a reduce-scatter inside the node
 * leaves each of the L ranks one shard of s elements summed over its node; the rail of
 * the same local index allreduces that shard between nodes, so each rank sends about
 * 2 s (nodes-1)/nodes elements over the network instead of 2 s L (nodes-1)/nodes; an
 * allgather inside the node gives every rank every shard. Slices pipeline: slice k+1
 * reduces inside the node while slice k crosses the network.
 * small (and the elements left over by the shards): an allreduce inside the node, then
 * one between nodes on every rail at once: two steps of latency, not three.
 *
 * Every element's value is computed once (by one rail in rails, alike by every rail in
 * small) and copied, so every rank ends with the same bits. The order of the sum is
 * node by node (inside the node in local order, then across nodes in the MPI
 * library's order), not flat MPI's, so the bits may differ from MLCOMM_TRANSPORT=mpi's
 * for floating-point types (docs/multinode.md).
 */
#include "backends/hier/hier.h"
#include "collectives/reduce.h"

/* The tail [off, off + len): node allreduce, rail allreduce in place, divide. */
static mlcommResult_t plan_small(struct hier_state *st, struct hier_op *ho, size_t off, size_t len) {
  const struct mlcomm_op *op = ho->op;
  size_t es = mlcomm_type_size(op->dtype);
  const char *send = (const char *)op->sendbuf + off * es;
  char *recv = (char *)op->recvbuf + off * es;
  struct mlcomm_op a = hier_sub(op, MLCOMM_OP_ALLREDUCE, send, recv, len, 0);
  int s = hier_add(ho, HIER_NODE, &a, -1);
  struct mlcomm_op b = hier_sub(op, MLCOMM_OP_ALLREDUCE, recv, recv, len, 0);
  if (s >= 0) s = hier_add(ho, HIER_RAIL, &b, s);
  if (s >= 0 && op->redop == mlcommAvg) s = hier_add_local(ho, hier_avg, off, len, s);
  return s >= 0 ? mlcommSuccess : mlcomm_error(st->comm, mlcommSystemError, "hier: out of memory");
}

mlcommResult_t hier_plan_allreduce(struct hier_state *st, struct hier_op *ho) {
  const struct mlcomm_op *op = ho->op;
  size_t L = (size_t)st->L, es = mlcomm_type_size(op->dtype);
  size_t main = op->alg == HIER_ALG_SMALL ? 0 : op->count / L * L;
  size_t slice = hier_slice_elems(st, op);
  int gather_prev = -1; /* the previous slice's allgather waits one slice behind */
  struct mlcomm_op pending_ag;
  for (size_t off = 0; off < main; off += slice) {
    size_t len = main - off < slice ? main - off : slice, shard = len / L;
    const char *send = (const char *)op->sendbuf + off * es;
    char *mine = (char *)op->recvbuf + (off + (size_t)st->local * shard) * es;
    struct mlcomm_op rs = hier_sub(op, MLCOMM_OP_REDUCESCATTER, send, mine, shard, 0);
    int s = hier_add(ho, HIER_NODE, &rs, -1);
    struct mlcomm_op ar = hier_sub(op, MLCOMM_OP_ALLREDUCE, mine, mine, shard, 0);
    if (s >= 0) s = hier_add(ho, HIER_RAIL, &ar, s);
    if (s >= 0 && op->redop == mlcommAvg)
      s = hier_add_local(ho, hier_avg, off + (size_t)st->local * shard, shard, s);
    if (s >= 0 && gather_prev >= 0 && hier_add(ho, HIER_NODE, &pending_ag, gather_prev) < 0) s = -1;
    if (s < 0) return mlcomm_error(st->comm, mlcommSystemError, "hier: out of memory");
    pending_ag = hier_sub(op, MLCOMM_OP_ALLGATHER, mine, (char *)op->recvbuf + off * es, shard, 0);
    gather_prev = s;
  }
  if (gather_prev >= 0 && hier_add(ho, HIER_NODE, &pending_ag, gather_prev) < 0)
    return mlcomm_error(st->comm, mlcommSystemError, "hier: out of memory");
  if (main < op->count) MLCOMM_CHECK(plan_small(st, ho, main, op->count - main));
  ho->op->alg = main == 0 ? HIER_ALG_SMALL : HIER_ALG_RAILS;
  return mlcommSuccess;
}

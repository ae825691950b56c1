/*
 * Reduce across nodes, to root on node rn with local index rl: a reduce inside each
 * node to its local index rl, then a reduce between nodes on root's rail. Large calls
 * run in slices, so slice k+1 reduces inside the nodes while slice k crosses the
 * network. Only root's rail uses the network: a reduce delivers one buffer, so its
 * bytes cross once per node whichever ranks carry them.
 */
#include <stdlib.h>

#include "backends/hier/hier.h"
#include "collectives/reduce.h"

mlcommResult_t hier_plan_reduce(struct hier_state *st, struct hier_op *ho) {
  const struct mlcomm_op *op = ho->op;
  size_t es = mlcomm_type_size(op->dtype), slice = hier_slice_elems(st, op);
  int root = op->root, rn = st->node_of[root], rl = st->local_of[root];
  bool me = st->comm->rank == root, carrier = st->local == rl;
  /* The node's partial result, on the carrier of a node other than root's. */
  if (carrier && !me && (ho->tmp = malloc(op->count * es)) == NULL)
    return mlcomm_error(st->comm, mlcommSystemError,
                        "mlcommReduce: out of memory for a %zu-byte partial result",
                        op->count * es);
  for (size_t off = 0; off < op->count; off += slice) {
    size_t len = op->count - off < slice ? op->count - off : slice;
    const char *send = (const char *)op->sendbuf + off * es;
    char *part = carrier ? (char *)(me ? op->recvbuf : ho->tmp) + off * es : NULL;
    struct mlcomm_op nr = hier_sub(op, MLCOMM_OP_REDUCE, send, part, len, rl);
    int s = hier_add(ho, HIER_NODE, &nr, -1);
    if (s >= 0 && carrier) {
      struct mlcomm_op rr = hier_sub(op, MLCOMM_OP_REDUCE, part, me ? part : NULL, len, rn);
      s = hier_add(ho, HIER_RAIL, &rr, s);
      if (s >= 0 && me && op->redop == mlcommAvg) s = hier_add_local(ho, hier_avg, off, len, s);
    }
    if (s < 0) return mlcomm_error(st->comm, mlcommSystemError, "hier: out of memory");
  }
  ho->op->alg = HIER_ALG_SMALL;
  return mlcommSuccess;
}

/*
 * Barrier across nodes: every rank arrives inside its node, the nodes' local index 0
 * meet over their rail, and a second barrier inside the node lets the others go.
 */
#include "backends/hier/hier.h"

mlcommResult_t hier_plan_barrier(struct hier_state *st, struct hier_op *ho) {
  struct mlcomm_op b = hier_sub(ho->op, MLCOMM_OP_BARRIER, NULL, NULL, 0, 0);
  int s = hier_add(ho, HIER_NODE, &b, -1);
  if (s >= 0 && st->local == 0) s = hier_add(ho, HIER_RAIL, &b, s);
  if (s >= 0) s = hier_add(ho, HIER_NODE, &b, s);
  ho->op->alg = HIER_ALG_SMALL;
  return s >= 0 ? mlcommSuccess : mlcomm_error(st->comm, mlcommSystemError, "hier: out of memory");
}

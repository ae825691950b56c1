/*
 * Broadcast across nodes, from root on node rn with local index rl.
 *
 * small: root's rail carries the data to local index rl of every node, which then
 * broadcasts it inside its node (root's own node gets it from root directly).
 * rails (large): root broadcasts inside its node, then every rail carries one shard
 * (1/L of the data) from root's node to the others, where an allgather inside the node
 * (plus a broadcast of the shard remainder from local L-1) assembles it. Each byte
 * crosses the network once per node either way; rails spread it over L ranks' links.
 */
#include "backends/hier/hier.h"
#include "collectives/reduce.h"

static mlcommResult_t oom(struct hier_state *st) {
  return mlcomm_error(st->comm, mlcommSystemError, "hier: out of memory");
}

static mlcommResult_t slice_small(struct hier_state *st, struct hier_op *ho, size_t off, size_t len) {
  const struct mlcomm_op *op = ho->op;
  size_t es = mlcomm_type_size(op->dtype);
  int root = op->root, rn = st->node_of[root], rl = st->local_of[root];
  char *recv = (char *)op->recvbuf + off * es;
  bool me = st->comm->rank == root;
  int s = 0;
  if (st->node_index == rn) {
    struct mlcomm_op nb = hier_sub(op, MLCOMM_OP_BROADCAST,
                                   me ? (const char *)op->sendbuf + off * es : recv, recv, len, rl);
    s = hier_add(ho, HIER_NODE, &nb, -1);
    if (s >= 0 && me) { /* root feeds its rail straight from sendbuff (read only) */
      void *src = (char *)(uintptr_t)op->sendbuf + off * es;
      struct mlcomm_op rb = hier_sub(op, MLCOMM_OP_BROADCAST, src, src, len, rn);
      s = hier_add(ho, HIER_RAIL, &rb, -1);
    }
  } else {
    int r = -1;
    if (st->local == rl) {
      struct mlcomm_op rb = hier_sub(op, MLCOMM_OP_BROADCAST, recv, recv, len, rn);
      s = r = hier_add(ho, HIER_RAIL, &rb, -1);
    }
    struct mlcomm_op nb = hier_sub(op, MLCOMM_OP_BROADCAST, recv, recv, len, rl);
    if (s >= 0) s = hier_add(ho, HIER_NODE, &nb, r);
  }
  return s >= 0 ? mlcommSuccess : oom(st);
}

static mlcommResult_t slice_rails(struct hier_state *st, struct hier_op *ho, size_t off, size_t len) {
  const struct mlcomm_op *op = ho->op;
  size_t es = mlcomm_type_size(op->dtype), L = (size_t)st->L, sh = len / L;
  size_t mine_len = st->local == st->L - 1 ? len - sh * (L - 1) : sh; /* last takes the rest */
  int root = op->root, rn = st->node_of[root], rl = st->local_of[root];
  char *recv = (char *)op->recvbuf + off * es, *mine = recv + (size_t)st->local * sh * es;
  bool me = st->comm->rank == root;
  int s;
  if (st->node_index == rn) {
    struct mlcomm_op nb = hier_sub(op, MLCOMM_OP_BROADCAST,
                                   me ? (const char *)op->sendbuf + off * es : recv, recv, len, rl);
    s = hier_add(ho, HIER_NODE, &nb, -1);
    struct mlcomm_op rb = hier_sub(op, MLCOMM_OP_BROADCAST, mine, mine, mine_len, rn);
    if (s >= 0) s = hier_add(ho, HIER_RAIL, &rb, s);
    return s >= 0 ? mlcommSuccess : oom(st);
  }
  struct mlcomm_op rb = hier_sub(op, MLCOMM_OP_BROADCAST, mine, mine, mine_len, rn);
  int r = hier_add(ho, HIER_RAIL, &rb, -1);
  struct mlcomm_op ag = hier_sub(op, MLCOMM_OP_ALLGATHER, mine, recv, sh, 0);
  s = r >= 0 ? hier_add(ho, HIER_NODE, &ag, r) : -1;
  if (s >= 0 && len > sh * L) {
    char *rest = recv + sh * L * es;
    struct mlcomm_op tb = hier_sub(op, MLCOMM_OP_BROADCAST, rest, rest, len - sh * L, st->L - 1);
    s = hier_add(ho, HIER_NODE, &tb, st->local == st->L - 1 ? r : -1);
  }
  return s >= 0 ? mlcommSuccess : oom(st);
}

mlcommResult_t hier_plan_broadcast(struct hier_state *st, struct hier_op *ho) {
  const struct mlcomm_op *op = ho->op;
  size_t slice = hier_slice_elems(st, op);
  bool rails = op->alg != HIER_ALG_SMALL && op->count >= (size_t)st->L;
  for (size_t off = 0; off < op->count; off += slice) {
    size_t len = op->count - off < slice ? op->count - off : slice;
    MLCOMM_CHECK(rails && len >= (size_t)st->L ? slice_rails(st, ho, off, len)
                                               : slice_small(st, ho, off, len));
  }
  ho->op->alg = rails ? HIER_ALG_RAILS : HIER_ALG_SMALL;
  return mlcommSuccess;
}

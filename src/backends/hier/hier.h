/*
 * The hierarchical transport: collectives on a communicator that spans nodes, split
 * into a phase inside each node (the shm transport, on an internal communicator of the
 * node's ranks) and a phase between nodes (the mpi transport, on internal "rail"
 * communicators: the ranks of the same local index on every node). Every rank of a
 * node takes part in the network phase with its own share, so the bytes that cross
 * the network are those of one node's data, not of every rank's.
 *
 * A call becomes a list of steps (plan_*.c), each a collective on the node or rail
 * communicator, or a local action (a copy, the average's division), with the step it
 * waits for. schedule.c runs the list: a step starts once what it waits for is done and
 * every earlier step on the same internal communicator has started, so all ranks start
 * the same internal collectives in the same order while slices of a large call overlap
 * (slice k+1 reduces inside the node while slice k crosses the network).
 */
#ifndef MLCOMM_BACKENDS_HIER_H
#define MLCOMM_BACKENDS_HIER_H

#include "backends/transport.h"

struct hier_state {
  struct mlcomm_comm *comm;        /* the communicator this transport serves */
  struct mlcomm_comm *node, *rail; /* internal: this node's ranks; this local index's ranks */
  int local, L;                    /* local index, ranks per node (the same on every node) */
  int node_index, nnodes;          /* nodes ordered by their lowest rank */
  int *rank_of;                    /* rank of (node j, local i) at [j * L + i] */
  int *node_of, *local_of;         /* each rank's node index and local index */
  size_t slice_bytes;              /* MLCOMM_HIER_SLICE_BYTES */
  struct hier_op *head, *tail;     /* calls in start order; only the head runs */
  struct hier_op *spare;
  mlcommResult_t failed;           /* sticky: an internal collective failed */
};

enum hier_where { HIER_NODE, HIER_RAIL, HIER_LOCAL };

struct hier_op;
typedef void (*hier_local_fn)(struct hier_state *st, struct hier_op *ho, size_t off, size_t len);

struct hier_step {
  enum hier_where where;
  struct mlcomm_op op;  /* NODE, RAIL: the internal collective */
  hier_local_fn run;    /* LOCAL: what to do with elements [off, off + len) */
  size_t off, len;
  int dep;              /* the step this one waits for, or -1 */
  struct mlcomm_request *req;
  bool issued, done;
};

struct hier_op {
  struct mlcomm_op *op;  /* the caller's */
  struct hier_step *steps;
  int nsteps, cap, next; /* next: the first step not yet done */
  void *tmp;             /* scratch for the plans that need it */
  bool planned, finished;
  mlcommResult_t result;
  struct hier_op *next_op;
};

/* The algorithms a tune rule may pin, in the order of transport.c's names. */
enum hier_alg { HIER_ALG_SMALL, HIER_ALG_RAILS };

/* schedule.c */
/* Appends a step; false when out of memory. dep < 0: waits for nothing. */
int hier_add(struct hier_op *ho, enum hier_where where, const struct mlcomm_op *op, int dep);
int hier_add_local(struct hier_op *ho, hier_local_fn run, size_t off, size_t len, int dep);
/* An internal collective's description (host buffers, the caller's type). */
struct mlcomm_op hier_sub(const struct mlcomm_op *op, enum mlcomm_op_kind kind, const void *send,
                          void *recv, size_t count, int root);
/* Advances the head's steps; true once every step is done (or one failed). */
bool hier_run(struct hier_state *st, struct hier_op *ho);
void hier_op_clear(struct hier_op *ho);

/* plan_*.c: the steps of one call; the call's op and alg are in ho->op. */
mlcommResult_t hier_plan_allreduce(struct hier_state *st, struct hier_op *ho);
mlcommResult_t hier_plan_broadcast(struct hier_state *st, struct hier_op *ho);
mlcommResult_t hier_plan_reduce(struct hier_state *st, struct hier_op *ho);
mlcommResult_t hier_plan_allgather(struct hier_state *st, struct hier_op *ho);
mlcommResult_t hier_plan_reduce_scatter(struct hier_state *st, struct hier_op *ho);
mlcommResult_t hier_plan_barrier(struct hier_state *st, struct hier_op *ho);

/* Elements per slice for this call: a multiple of L, at least L. */
size_t hier_slice_elems(const struct hier_state *st, const struct mlcomm_op *op);
/* The local action dividing [off, off + len) of recvbuf by the communicator's size. */
void hier_avg(struct hier_state *st, struct hier_op *ho, size_t off, size_t len);
/* The redop internal collectives use: avg is summed, then divided once. */
mlcommRedOp_t hier_redop(const struct mlcomm_op *op);

/* topo.c: the node and rail communicators, collective over comm. */
mlcommResult_t hier_topo_init(struct hier_state *st);
void hier_topo_fini(struct hier_state *st, bool aborting);

extern const struct mlcomm_transport mlcomm_transport_hier;

#endif

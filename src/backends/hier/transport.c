/*
 * The hierarchical transport's glue to the contract. Available when the communicator
 * spans several nodes that each hold the same number of ranks, two or more (with one
 * rank on a node there is nothing to share inside it, and nodes of different sizes
 * would leave rails without a partner: flat MPI carries those). Calls run one at a
 * time in start order, each as its plan's steps (schedule.c); host buffers only
 * (device buffers go to NCCL or MPI).
 */
#include <stdlib.h>
#include <string.h>

#include "backends/hier/hier.h"

/* Bytes per pipelined slice of a large call (each phase of a slice is one internal
 * collective: larger slices cost fewer calls, smaller ones overlap more). */
MLCOMM_PARAM(HierSliceBytes, "MLCOMM_HIER_SLICE_BYTES", 4 << 20, 4096, 1 << 30);

static bool hier_available(struct mlcomm_comm *comm, const char **why) {
  if (comm->nnodes < 2) *why = "the communicator's ranks are all on one node";
  else if (comm->node_ranks_min != comm->node_ranks_max)
    *why = "its nodes hold different numbers of ranks";
  else if (comm->node_ranks_min < 2) *why = "its nodes hold one rank each";
  else return true;
  return false;
}

static void hier_fini_state(struct hier_state *st, bool aborting) {
  hier_topo_fini(st, aborting);
  while (st->spare) {
    struct hier_op *o = st->spare;
    st->spare = o->next_op;
    free(o);
  }
  free(st);
}

static void hier_fini(void *state) {
  struct hier_state *st = state;
  /* After a failure internal requests may still be in flight: tear down as an abort. */
  hier_fini_state(st, st->failed != mlcommSuccess || st->head != NULL);
}

static mlcommResult_t hier_init(struct mlcomm_comm *comm, void **state) {
  struct hier_state *st = calloc(1, sizeof *st);
  if (st == NULL) return mlcomm_error(comm, mlcommSystemError, "hier transport: out of memory");
  st->comm = comm;
  st->slice_bytes = (size_t)mlcomm_param(comm, &mlcomm_param_HierSliceBytes);
  mlcommResult_t res = hier_topo_init(st);
  if (res != mlcommSuccess) {
    hier_fini_state(st, false);
    return res;
  }
  MLCOMM_INFO("hier transport: node %d of %d, local index %d of %d, slices of %zu bytes",
              st->node_index, st->nnodes, st->local, st->L, st->slice_bytes);
  *state = st;
  return mlcommSuccess;
}

typedef mlcommResult_t (*plan_fn)(struct hier_state *, struct hier_op *);
static const plan_fn plans[MLCOMM_OP_KIND_COUNT] = {
    [MLCOMM_OP_ALLREDUCE] = hier_plan_allreduce,   [MLCOMM_OP_BROADCAST] = hier_plan_broadcast,
    [MLCOMM_OP_REDUCE] = hier_plan_reduce,         [MLCOMM_OP_ALLGATHER] = hier_plan_allgather,
    [MLCOMM_OP_REDUCESCATTER] = hier_plan_reduce_scatter,
    [MLCOMM_OP_BARRIER] = hier_plan_barrier,
};

/* Runs the queue head-first; a call is planned when it reaches the head, so that its
 * internal collectives start after every earlier call's. */
static void drive(struct hier_state *st) {
  while (st->head) {
    struct hier_op *ho = st->head;
    if (!ho->planned) {
      ho->planned = true;
      ho->result = st->failed != mlcommSuccess
                       ? mlcomm_error(st->comm, st->failed,
                                      "%s (seq %llu): the hier transport failed earlier; abort "
                                      "this communicator",
                                      mlcomm_op_kind_name(ho->op->kind),
                                      (unsigned long long)ho->op->seq)
                       : plans[ho->op->kind](st, ho);
      if (ho->result != mlcommSuccess) st->failed = ho->result;
    }
    if (ho->result == mlcommSuccess && !hier_run(st, ho)) return;
    ho->finished = true;
    st->head = ho->next_op;
    if (st->head == NULL) st->tail = NULL;
  }
}

static mlcommResult_t hier_start(void *state, struct mlcomm_op *op) {
  struct hier_state *st = state;
  struct hier_op *ho = st->spare;
  if (ho) st->spare = ho->next_op;
  else if ((ho = malloc(sizeof *ho)) == NULL)
    return mlcomm_error(st->comm, mlcommSystemError, "hier transport: out of memory");
  memset(ho, 0, sizeof *ho);
  ho->op = op;
  op->tstate = ho;
  if (st->tail) st->tail->next_op = ho;
  else st->head = ho;
  st->tail = ho;
  drive(st);
  return mlcommSuccess;
}

static mlcommResult_t hier_progress(void *state, struct mlcomm_op *op, bool *done) {
  struct hier_state *st = state;
  struct hier_op *ho = op->tstate;
  if (!ho->finished) drive(st);
  *done = ho->finished;
  return ho->finished ? ho->result : mlcommSuccess;
}

static void hier_release(void *state, struct mlcomm_op *op, bool aborting) {
  struct hier_state *st = state;
  struct hier_op *ho = op->tstate;
  if (ho == NULL) return;
  if (!ho->finished) { /* abandoned (abort): off the queue */
    struct hier_op **p = &st->head, *prev = NULL;
    while (*p && *p != ho) prev = *p, p = &(*p)->next_op;
    if (*p) *p = ho->next_op;
    if (st->tail == ho) st->tail = prev;
  }
  (void)aborting; /* the abort hook tears down what the op left in flight */
  hier_op_clear(ho);
  ho->next_op = st->spare;
  st->spare = ho;
  op->tstate = NULL;
}

static void hier_abort(void *state) { hier_fini_state(state, true); }

/* Indexed by enum hier_alg. */
static const char *const hier_algorithms[] = {"small", "rails", NULL};

const struct mlcomm_transport mlcomm_transport_hier = {
    .name = "hier",
    .id = mlcommTransportHier,
    .caps = {.kinds = MLCOMM_KINDS_COLLECTIVE | MLCOMM_KIND_BIT(MLCOMM_OP_BARRIER),
             .mems = MLCOMM_MEMS_HOST,
             .span = MLCOMM_SPAN_ANY},
    /* Above flat MPI's 10 wherever it is available; the two-step allreduce and
     * broadcast below 64 KiB, where latency, not bytes, decides. */
    .tune = "all:0-inf:15#allreduce,broadcast:0-64k:@small",
    .algorithms = hier_algorithms,
    .available = hier_available,
    .init = hier_init,
    .fini = hier_fini,
    .start = hier_start,
    .progress = hier_progress,
    .release = hier_release,
    .abort = hier_abort,
};

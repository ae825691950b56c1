/* grid.c - the tensor x pipeline x data layout: checks and communicators (grid.h). */
#include "grid.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

double grid_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int grid_wanted(const train_options *o) {
  return o->tensor_parallel > 1 || o->pipeline_parallel > 1 || o->micro_batches > 1 ||
         o->data_parallel > 0;
}

int grid_check(const train_options *o, const gpt2_config *cfg, int nranks, int *dp, char *err,
               size_t errlen) {
  const int tp = o->tensor_parallel, pp = o->pipeline_parallel;
  const int NH = cfg->num_heads, F = 4 * cfg->channels, L = cfg->num_layers;
  if (o->data_parallel > 0 && tp * pp * o->data_parallel != nranks) {
    snprintf(err, errlen,
             "--tensor-parallel %d x --pipeline-parallel %d x --data-parallel %d = %d ranks, but "
             "the run has %d; give mpirun -np %d or change the flags",
             tp, pp, o->data_parallel, tp * pp * o->data_parallel, nranks,
             tp * pp * o->data_parallel);
    return -1;
  }
  if (nranks % (tp * pp) != 0) {
    snprintf(err, errlen,
             "--tensor-parallel %d x --pipeline-parallel %d = %d does not divide the %d ranks of "
             "the run",
             tp, pp, tp * pp, nranks);
    return -1;
  }
  if (NH % tp != 0 || F % tp != 0) {
    snprintf(err, errlen,
             "--tensor-parallel %d must divide the head count (%d) and the MLP width 4C (%d)", tp,
             NH, F);
    return -1;
  }
  if (L % pp != 0) {
    snprintf(err, errlen, "--pipeline-parallel %d must divide the layer count (%d)", pp, L);
    return -1;
  }
  if (o->B % o->micro_batches != 0) {
    snprintf(err, errlen, "--micro-batches %d must divide the rows per step -b %d",
             o->micro_batches, o->B);
    return -1;
  }
  if (o->sync == SYNC_DILOCO) {
    snprintf(err, errlen,
             "--sync %s is not available with --tensor-parallel/--pipeline-parallel/"
             "--data-parallel/--micro-batches; those replicas combine with --sync allreduce or zero1",
             sync_mode_name(o->sync));
    return -1;
  }
  *dp = nranks / (tp * pp);
  return 0;
}

static int split(mlcommComm_t world, int color, int key, mlcommComm_t *out, const char *name,
                 char *err, size_t errlen) {
  mlcommResult_t r = mlcommCommSplit(world, color, key, out, NULL);
  if (r != mlcommSuccess) {
    snprintf(err, errlen, "cannot create the %s communicator: %s", name,
             mlcommGetLastError(world));
    return -1;
  }
  return 0;
}

int grid_split(grid *g, mlcommComm_t world, int tp, int pp, int dp, char *err, size_t errlen) {
  memset(g, 0, sizeof *g);
  g->tp = tp, g->pp = pp, g->dp = dp, g->world = world;
  mlcommCommRank(world, &g->rank);
  mlcommCommCount(world, &g->nranks);
  g->tp_rank = g->rank % tp;
  g->pp_rank = g->rank / tp % pp;
  g->dp_rank = g->rank / (tp * pp);
  const int replica_part = g->dp_rank * tp + g->tp_rank; /* same replica, same tensor part */
  const int ends = pp > 1 && (g->pp_rank == 0 || g->pp_rank == pp - 1);
  if (split(world, g->dp_rank * pp + g->pp_rank, g->tp_rank, &g->tp_comm, "tensor-parallel", err,
            errlen) != 0 ||
      split(world, replica_part, g->pp_rank, &g->pp_comm, "pipeline", err, errlen) != 0 ||
      split(world, g->pp_rank * tp + g->tp_rank, g->dp_rank, &g->dp_comm, "data-parallel", err,
            errlen) != 0 ||
      split(world, ends ? replica_part : MLCOMM_SPLIT_NOCOLOR, g->pp_rank, &g->emb_comm,
            "tied-embedding", err, errlen) != 0)
    return -1;
  return 0;
}

void grid_free(grid *g) {
  mlcommComm_t *c[] = {&g->tp_comm, &g->pp_comm, &g->dp_comm, &g->emb_comm};
  for (int i = 0; i < 4; i++)
    if (*c[i]) mlcommCommDestroy(*c[i]), *c[i] = NULL;
}

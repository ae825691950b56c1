/*
 * tp.c - see tp.h. The forward and its cache are the model library's (infer.c on a
 * gpt2_tp), and so is the split; what is here is the MPI job and the two collectives
 * the forward calls back.
 */
#include "tp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MPI is one per process, not per backend context: when this library started it, it
 * finalises it when the process exits (or the library is unloaded), after every
 * instance is gone. MPI cannot be started twice, so not at deinit_backend. */
static int mpi_started_here;
__attribute__((destructor)) static void tp_finalize(void) {
  int finalized = 0;
  if (mpi_started_here && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();
}

int tp_world_init(tp_world *w, char *err, size_t errlen) {
  *w = (tp_world){0, 1, NULL};
  const char *off = getenv("WASI_NN_GPT2_TP");
  const char *size = getenv("OMPI_COMM_WORLD_SIZE");
  if (!size) size = getenv("PMI_SIZE");
  int inited = 0;
  MPI_Initialized(&inited);
  if ((off && !strcmp(off, "0")) || (!inited && (!size || atoi(size) <= 1))) return 0;
  if (!inited) {
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
      snprintf(err, errlen, "MPI_Init_thread failed under mpirun");
      return -1;
    }
    mpi_started_here = 1;
  }
  int n;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  if (n <= 1) return 0;
  if (mlcommCommInitFromMPI(&w->comm, MPI_COMM_WORLD, NULL) != mlcommSuccess) {
    snprintf(err, errlen, "mlcommCommInitFromMPI failed: %s", mlcommGetLastError(NULL));
    w->comm = NULL;
    return -1;
  }
  mlcommCommRank(w->comm, &w->rank);
  mlcommCommCount(w->comm, &w->nranks);
  return 0;
}

void tp_world_free(tp_world *w) {
  if (w->comm) mlcommCommDestroy(w->comm);
  *w = (tp_world){0, 1, NULL};
}

int tp_any(const tp_world *w, int failed) {
  if (!w->comm) return failed != 0;
  int f = failed != 0;
  if (mlcommAllReduce(&f, &f, 1, mlcommInt32, mlcommMax, w->comm) != mlcommSuccess) return 1;
  return f;
}

void tp_broadcast_u64(const tp_world *w, uint64_t *v) {
  if (w->comm) mlcommBroadcast(v, v, 1, mlcommUint64, 0, w->comm);
}

/* the model library's two meeting points of the ranks' shares, over mlcomm */
static int tp_reduce(void *ctx, float *buf, int n) {
  mlcommResult_t r = mlcommAllReduce(buf, buf, (size_t)n, mlcommFloat32, mlcommSum, ctx);
  return r == mlcommSuccess ? 0 : -1;
}

static int tp_gather(void *ctx, const float *part, float *all, int n) {
  return mlcommAllGather(part, all, (size_t)n, mlcommFloat32, ctx) == mlcommSuccess ? 0 : -1;
}

int tp_shard(gpt2_model *out, gpt2_tp *tp, const gpt2_model *full, const tp_world *w, char *err,
             size_t errlen) {
  if (gpt2_tp_init(tp, &full->config, w->rank, w->nranks, err, errlen) != 0) return -1;
  tp->reduce = tp_reduce, tp->gather = tp_gather, tp->ctx = w->comm;
  if (gpt2_model_setup_tp(out, &full->config, tp, err, errlen) != 0) return -1;
  if (!(out->params = malloc(out->layout.num_params * sizeof(float)))) {
    snprintf(err, errlen, "out of memory for this rank's shard of the model (%zu parameters)",
             out->layout.num_params);
    return -1;
  }
  if (gpt2_tp_fill_params(out, full, err, errlen) != 0) {
    free(out->params);
    out->params = NULL;
    return -1;
  }
  return 0;
}

/*
 * The MPI transport: always available, carries anything. This file is the glue
 * between the transport contract and the algorithm files beside it.
 */
#include <stdlib.h>

#include "backends/mpi/mpi_internal.h"

#include <limits.h>

/* The most elements handed to one MPI call (MPI's int; lower values exist for tests). */
MLCOMM_PARAM(MpiChunkElems, "MLCOMM_MPI_CHUNK_ELEMS", INT_MAX, 1, INT_MAX);
/* Staged device buffers: bytes per pipelined chunk. */
MLCOMM_PARAM(MpiStageBytes, "MLCOMM_MPI_STAGE_BYTES", 4 << 20, 4096, 1 << 30);

static mlcommResult_t mpi_init(struct mlcomm_comm *comm, void **state) {
  MLCOMM_CHECK(mpi_types_init(comm));
  struct mpi_state *st = calloc(1, sizeof *st);
  if (st == NULL) return mlcomm_error(comm, mlcommSystemError, "MPI transport: out of memory");
  st->comm = comm;
  st->chunk_elems = (size_t)mlcomm_param(comm, &mlcomm_param_MpiChunkElems);
  st->stage_bytes = (size_t)mlcomm_param(comm, &mlcomm_param_MpiStageBytes);
  st->cuda_aware = mpi_cuda_aware();
  st->gpu_comm = mpi_gpu_comm(comm);
  mpi_algo_init(st);
  MLCOMM_INFO("MPI transport: CUDA-aware %s, GPU on some rank %s, libnbc algorithm selection %s",
              st->cuda_aware ? "yes" : "no", st->gpu_comm ? "yes" : "no",
              st->algo[0].found ? "available" : "unavailable");
  *state = st;
  return mlcommSuccess;
}

static void mpi_fini(void *state) {
  struct mpi_state *st = state;
  mpi_p2p_fini(st);
  mpi_algo_fini(st);
  mpi_stage_fini(st);
  free(st);
}

static bool is_p2p(const struct mlcomm_op *op) { return !mlcomm_op_is_collective(op->kind); }

static mlcommResult_t mpi_start(void *state, struct mlcomm_op *op) {
  struct mpi_op *mo = calloc(1, sizeof *mo);
  if (mo == NULL) return mlcomm_error(((struct mpi_state *)state)->comm, mlcommSystemError, "MPI transport: out of memory");
  mo->req = MPI_REQUEST_NULL;
  op->tstate = mo;
  return is_p2p(op) ? mpi_p2p_start(state, op, mo) : mpi_coll_start(state, op, mo);
}

static mlcommResult_t mpi_progress(void *state, struct mlcomm_op *op, bool *done) {
  struct mpi_op *mo = op->tstate;
  return is_p2p(op) ? mpi_p2p_progress(state, op, mo, done) : mpi_coll_progress(state, op, mo, done);
}

static void mpi_release(void *state, struct mlcomm_op *op, bool aborting) {
  struct mpi_op *mo = op->tstate;
  if (mo == NULL) return;
  if (is_p2p(op)) mpi_p2p_release(state, mo, aborting);
  else mpi_coll_release(state, mo, aborting);
  /* A collective still in MPI's hands keeps its buffers: MPI may write them yet. */
  bool in_flight = aborting && mo->req != MPI_REQUEST_NULL;
  if (!in_flight || is_p2p(op)) {
    mpi_stage_free(state, mo);
    free(mo->tmp);
    free(mo);
  }
  op->tstate = NULL;
}

/* Indexed by enum mpi_alg (mpi_internal.h). */
static const char *const mpi_algorithms[] = {"native", "ring", "recursive_doubling", "binomial",
                                             NULL};

const struct mlcomm_transport mlcomm_transport_mpi = {
    .name = "mpi",
    .id = mlcommTransportMpi,
    /* Everything, anywhere: the transport of last resort and of point-to-point (it alone
     * matches tags and probes). Device buffers go to a CUDA-aware MPI or are staged. */
    .caps = {.kinds = MLCOMM_KINDS_COLLECTIVE | MLCOMM_KIND_BIT(MLCOMM_OP_BARRIER) |
                      MLCOMM_KINDS_P2P,
             .mems = MLCOMM_MEMS_HOST | (MLCOMM_HAVE_CUDA ? MLCOMM_MEMS_CUDA : 0),
             .span = MLCOMM_SPAN_ANY,
             .probe = true,
             .fallback = true},
    .tune = "all:0-inf:10",
    .algorithms = mpi_algorithms,
    .init = mpi_init,
    .fini = mpi_fini,
    .start = mpi_start,
    .progress = mpi_progress,
    .release = mpi_release,
    .withdraw = mpi_p2p_withdraw,
    .probe = mpi_probe,
};

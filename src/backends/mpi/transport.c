/*
 * The MPI transport: always available, carries anything. This file is the glue
 * between the transport contract and the algorithm files beside it.
 */
#include <stdlib.h>

#include "backends/mpi/mpi_internal.h"

static bool mpi_available(struct mlcomm_comm *comm, const char **why) {
  (void)comm, (void)why;
  return true;
}

static mlcommResult_t mpi_init(struct mlcomm_comm *comm, void **state) {
  MLCOMM_CHECK(mpi_types_init(comm));
  struct mpi_state *st = calloc(1, sizeof *st);
  if (st == NULL) return mlcomm_error(comm, mlcommSystemError, "MPI transport: out of memory");
  st->comm = comm;
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

static bool mpi_supports(void *state, const struct mlcomm_op *op) {
  (void)state;
  bool device = op->send_mem == MLCOMM_MEM_DEVICE || op->recv_mem == MLCOMM_MEM_DEVICE;
  /* Device buffers are reachable either through a CUDA-aware MPI or by staging. */
  return !device || MLCOMM_HAVE_CUDA;
}

static bool is_p2p(const struct mlcomm_op *op) {
  return op->kind == MLCOMM_OP_SEND || op->kind == MLCOMM_OP_RECV;
}

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

const struct mlcomm_transport mlcomm_transport_mpi = {
    .name = "mpi",
    .id = mlcommTransportMpi,
    .priority = 0,
    .available = mpi_available,
    .init = mpi_init,
    .fini = mpi_fini,
    .supports = mpi_supports,
    .start = mpi_start,
    .progress = mpi_progress,
    .release = mpi_release,
    .withdraw = mpi_p2p_withdraw,
    .probe = mpi_probe,
};

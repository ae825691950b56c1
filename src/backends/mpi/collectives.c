/*
 * Collectives over MPI-3 non-blocking collectives on the library's duplicate
 * communicator. Allreduce, broadcast and reduce of more than INT_MAX elements (or of
 * MLCOMM_MPI_CHUNK_ELEMS) run as a sequence of chunks inside one request.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/mpi/mpi_internal.h"
#include "collectives/reduce.h"

static bool chunkable(enum mlcomm_op_kind kind) {
  return kind == MLCOMM_OP_ALLREDUCE || kind == MLCOMM_OP_BROADCAST || kind == MLCOMM_OP_REDUCE;
}

static mlcommResult_t mpi_fail(struct mpi_state *st, const struct mlcomm_op *op, int rc,
                               const char *call) {
  char what[160];
  snprintf(what, sizeof what, "%s (seq %llu): %s", mlcomm_op_kind_name(op->kind),
           (unsigned long long)op->seq, call);
  return mlcomm_mpi_error(st->comm, rc, what);
}

static mlcommResult_t issue_next(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo) {
  MPI_Comm c = st->comm->coll_comm;
  MPI_Datatype type = mpi_type(op->dtype);
  bool avg;
  MPI_Op mop = mpi_op(op->dtype, op->redop, &avg);
  size_t tsize = mlcomm_type_size(op->dtype);
  size_t off = mo->next_elem, n = op->count - off;
  if (n > mo->chunk_elems) n = mo->chunk_elems;
  /* Buffers a rank does not use may be NULL (non-root reduce/broadcast). */
  const char *send = mo->send ? (const char *)mo->send + off * tsize : NULL;
  char *recv = mo->recv ? (char *)mo->recv + off * tsize : NULL;
  bool root = op->root == st->comm->rank;
  int rc = MPI_SUCCESS;
  const char *call = "";
  switch (op->kind) {
  case MLCOMM_OP_ALLREDUCE:
    call = "MPI_Iallreduce";
    mpi_algo_push(st, MPI_ALGO_IALLREDUCE, op, n);
    rc = MPI_Iallreduce(op->in_place ? MPI_IN_PLACE : send, recv, (int)n, type, mop, c, &mo->req);
    mpi_algo_pop(st, MPI_ALGO_IALLREDUCE);
    break;
  case MLCOMM_OP_BROADCAST:
    call = "MPI_Ibcast";
    if (root && !op->in_place) {
      /* Root sends straight from sendbuff and fills its own recvbuff meanwhile:
       * the copy overlaps the transfer instead of preceding it. */
      rc = MPI_Ibcast((void *)send, (int)n, type, op->root, c, &mo->req);
      if (rc == MPI_SUCCESS) memcpy(recv, send, n * tsize);
    } else {
      rc = MPI_Ibcast(recv, (int)n, type, op->root, c, &mo->req);
    }
    break;
  case MLCOMM_OP_REDUCE:
    call = "MPI_Ireduce";
    mpi_algo_push(st, MPI_ALGO_IREDUCE, op, n);
    if (root) rc = MPI_Ireduce(op->in_place ? MPI_IN_PLACE : send, recv, (int)n, type, mop, op->root, c, &mo->req);
    else rc = MPI_Ireduce(send, NULL, (int)n, type, mop, op->root, c, &mo->req);
    mpi_algo_pop(st, MPI_ALGO_IREDUCE);
    break;
  case MLCOMM_OP_ALLGATHER:
    call = "MPI_Iallgather";
    rc = MPI_Iallgather(op->in_place ? MPI_IN_PLACE : mo->send, (int)n, type, mo->recv, (int)n,
                        type, c, &mo->req);
    break;
  case MLCOMM_OP_REDUCESCATTER:
    call = "MPI_Ireduce_scatter_block";
    rc = MPI_Ireduce_scatter_block(mo->send, op->in_place ? mo->tmp : mo->recv, (int)n, type,
                                   mop, c, &mo->req);
    break;
  case MLCOMM_OP_BARRIER:
    call = "MPI_Ibarrier";
    rc = MPI_Ibarrier(c, &mo->req);
    break;
  default:
    return mlcomm_error(st->comm, mlcommInternalError, "MPI transport: not a collective (%d)", op->kind);
  }
  if (rc != MPI_SUCCESS) return mpi_fail(st, op, rc, call);
  mo->next_elem = off + n;
  return mlcommSuccess;
}

mlcommResult_t mpi_coll_start(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo) {
  size_t tsize = mlcomm_type_size(op->dtype);
  mo->req = MPI_REQUEST_NULL;
  mo->chunk_elems = INT_MAX;
  if (chunkable(op->kind) && (size_t)st->comm->tuning.mpi_chunk_elems < mo->chunk_elems)
    mo->chunk_elems = (size_t)st->comm->tuning.mpi_chunk_elems;
  if (!chunkable(op->kind) && op->count > INT_MAX)
    return mlcomm_error(st->comm, mlcommUnsupported,
                        "%s: count %zu exceeds the MPI transport's limit of %d elements per rank "
                        "for this collective; split the call",
                        mlcomm_op_kind_name(op->kind), op->count, INT_MAX);
  MLCOMM_CHECK(mpi_stage_in(st, op, mo));
  if (op->kind == MLCOMM_OP_REDUCESCATTER && op->in_place) {
    mo->tmp = malloc(op->count * tsize);
    if (mo->tmp == NULL)
      return mlcomm_error(st->comm, mlcommSystemError,
                          "mlcommReduceScatter: out of memory for a %zu-byte in-place buffer",
                          op->count * tsize);
  }
  return issue_next(st, op, mo);
}

mlcommResult_t mpi_coll_progress(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo,
                                 bool *done) {
  int flag = 0;
  int rc = MPI_Test(&mo->req, &flag, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) return mpi_fail(st, op, rc, "MPI_Test");
  if (!flag) return mlcommSuccess;
  if (chunkable(op->kind) && mo->next_elem < op->count) return issue_next(st, op, mo);

  size_t tsize = mlcomm_type_size(op->dtype);
  if (op->kind == MLCOMM_OP_REDUCESCATTER && op->in_place) memcpy(mo->recv, mo->tmp, op->count * tsize);
  bool avg = false;
  if (op->kind != MLCOMM_OP_BROADCAST && op->kind != MLCOMM_OP_ALLGATHER &&
      op->kind != MLCOMM_OP_BARRIER)
    mpi_op(op->dtype, op->redop, &avg);
  bool has_result = op->kind != MLCOMM_OP_REDUCE || op->root == st->comm->rank;
  if (avg && has_result) mlcomm_avg_finish(op->dtype, mo->recv, op->count, st->comm->nranks);
  MLCOMM_CHECK(mpi_stage_out(st, op, mo));
  *done = true;
  return mlcommSuccess;
}

/*
 * Collectives over MPI-3 non-blocking collectives on the library's duplicate
 * communicator. Allreduce, broadcast and reduce may run as a sequence of chunks inside
 * one request: more than INT_MAX elements (or MLCOMM_MPI_CHUNK_ELEMS), and, on a
 * communicator with a GPU whose device buffers go through host memory, chunks of
 * MLCOMM_MPI_STAGE_BYTES so the copies pipeline with MPI (staging.c). The schedule
 * depends on the call and the communicator only, never on this rank's buffers, so
 * every rank makes the same MPI calls.
 *
 * MPI requires every rank to post the collectives of a communicator in the same
 * order. A call that posts its chunks one after another as they complete could
 * interleave differently with other calls on different ranks, so the calls that
 * still have MPI calls to post wait in one list, in call order, and only the first
 * posts.
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

/* Elements in chunk k. */
static size_t chunk_count(const struct mlcomm_op *op, const struct mpi_op *mo, size_t k) {
  if (mo->nchunks <= 1) return op->count;
  size_t n = op->count - k * mo->chunk_elems;
  return n < mo->chunk_elems ? n : mo->chunk_elems;
}

/* Posts chunk k (the next one) of the call. */
static mlcommResult_t issue(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo,
                            size_t k) {
  MPI_Comm c = st->comm->coll_comm;
  MPI_Datatype type = mpi_type(op->dtype);
  bool avg;
  MPI_Op mop = mpi_op(op->dtype, op->redop, &avg);
  size_t n = chunk_count(op, mo, k);
  const void *send;
  void *recv;
  mpi_stage_ptrs(st, op, mo, k, &send, &recv);
  bool in_place = op->in_place || mo->share; /* MPI's view: one buffer */
  bool root = op->root == st->comm->rank;
  int rc = MPI_SUCCESS;
  const char *call = "";
  switch (op->kind) {
  case MLCOMM_OP_ALLREDUCE:
    call = "MPI_Iallreduce";
    op->alg = (int)mpi_algo_push(st, MPI_ALGO_IALLREDUCE, op, mo->alg_pinned, n);
    rc = MPI_Iallreduce(in_place ? MPI_IN_PLACE : send, recv, (int)n, type, mop, c, &mo->req);
    mpi_algo_pop(st, MPI_ALGO_IALLREDUCE);
    break;
  case MLCOMM_OP_BROADCAST:
    call = "MPI_Ibcast";
    if (root && send != recv && !op->in_place) {
      /* Root sends straight from sendbuff and fills its own recvbuff meanwhile:
       * the copy overlaps the transfer instead of preceding it. */
      rc = MPI_Ibcast((void *)send, (int)n, type, op->root, c, &mo->req);
      if (rc == MPI_SUCCESS) memcpy(recv, send, n * mlcomm_type_size(op->dtype));
    } else {
      rc = MPI_Ibcast(recv, (int)n, type, op->root, c, &mo->req);
    }
    break;
  case MLCOMM_OP_REDUCE:
    call = "MPI_Ireduce";
    op->alg = (int)mpi_algo_push(st, MPI_ALGO_IREDUCE, op, mo->alg_pinned, n);
    if (root) rc = MPI_Ireduce(in_place ? MPI_IN_PLACE : send, recv, (int)n, type, mop, op->root, c, &mo->req);
    else rc = MPI_Ireduce(send, NULL, (int)n, type, mop, op->root, c, &mo->req);
    mpi_algo_pop(st, MPI_ALGO_IREDUCE);
    break;
  case MLCOMM_OP_ALLGATHER:
    call = "MPI_Iallgather";
    rc = MPI_Iallgather(in_place ? MPI_IN_PLACE : send, (int)n, type, recv, (int)n, type, c,
                        &mo->req);
    break;
  case MLCOMM_OP_REDUCESCATTER:
    call = "MPI_Ireduce_scatter_block";
    rc = MPI_Ireduce_scatter_block(send, mo->tmp ? mo->tmp : recv, (int)n, type, mop, c,
                                   &mo->req);
    break;
  case MLCOMM_OP_BARRIER:
    call = "MPI_Ibarrier";
    rc = MPI_Ibarrier(c, &mo->req);
    break;
  default:
    return mlcomm_error(st->comm, mlcommInternalError, "MPI transport: not a collective (%d)", op->kind);
  }
  if (rc != MPI_SUCCESS) return mpi_fail(st, op, rc, call);
  mo->posted = k + 1;
  return mlcommSuccess;
}

/* MPI finished chunk k: finish it on the host and send its result on its way. */
static mlcommResult_t chunk_done(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo,
                                 size_t k) {
  size_t ts = mlcomm_type_size(op->dtype), n = chunk_count(op, mo, k);
  const void *send;
  void *recv;
  mpi_stage_ptrs(st, op, mo, k, &send, &recv);
  if (mo->tmp) memcpy(recv, mo->tmp, n * ts);
  bool avg = false;
  if (op->kind != MLCOMM_OP_BROADCAST && op->kind != MLCOMM_OP_ALLGATHER &&
      op->kind != MLCOMM_OP_BARRIER)
    mpi_op(op->dtype, op->redop, &avg);
  bool has_result = op->kind != MLCOMM_OP_REDUCE || op->root == st->comm->rank;
  if (avg && has_result) mlcomm_avg_finish(op->dtype, recv, n, st->comm->nranks);
  mo->finished = k + 1;
  return mpi_stage_drain(st, op, mo, k);
}

static void order_remove(struct mpi_state *st, struct mpi_op *mo) {
  if (!mo->queued) return;
  struct mpi_op *prev = NULL;
  for (struct mpi_op *p = st->order_head; p; prev = p, p = p->order_next) {
    if (p != mo) continue;
    if (prev) prev->order_next = p->order_next;
    else st->order_head = p->order_next;
    if (st->order_tail == p) st->order_tail = prev;
    break;
  }
  mo->queued = false;
  mo->order_next = NULL;
}

static mlcommResult_t advance(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo);

/* The first call on the list may now post: give it the chance at once rather than at
 * its next progress. A failure is kept for its own caller. */
static void kick(struct mpi_state *st) {
  struct mpi_op *head = st->order_head;
  if (head == NULL || head->deferred != mlcommSuccess) return;
  mlcommResult_t res = advance(st, head->op, head);
  if (res != mlcommSuccess) head->deferred = res;
}

/* Moves the call as far as it can go without waiting. */
static mlcommResult_t advance(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo) {
  for (;;) {
    bool moved = false;
    MLCOMM_CHECK(mpi_stage_fill(st, op, mo));
    if (mo->req != MPI_REQUEST_NULL) {
      int flag = 0;
      int rc = MPI_Test(&mo->req, &flag, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) return mpi_fail(st, op, rc, "MPI_Test");
      if (!flag) break;
      MLCOMM_CHECK(chunk_done(st, op, mo, mo->finished));
      moved = true;
    }
    if (mo->posted < mo->nchunks && st->order_head == mo) {
      bool ready;
      MLCOMM_CHECK(mpi_stage_ready(st, op, mo, mo->posted, &ready));
      if (ready) {
        MLCOMM_CHECK(issue(st, op, mo, mo->posted));
        moved = true;
        if (mo->posted == mo->nchunks) {
          order_remove(st, mo);
          kick(st);
        }
      }
    }
    if (!moved) break;
  }
  return mlcommSuccess;
}

mlcommResult_t mpi_coll_start(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo) {
  size_t ts = mlcomm_type_size(op->dtype);
  mo->op = op;
  mo->req = MPI_REQUEST_NULL;
  mo->alg_pinned = op->alg;
  op->alg = MPI_ALG_NATIVE;
  mo->chunk_elems = op->count ? op->count : 1;
  mo->nchunks = 1;
  if (chunkable(op->kind)) {
    size_t limit = st->chunk_elems;
    if (st->gpu_comm && (!st->cuda_aware || mpi_host_reduces(op))) {
      size_t stage = st->stage_bytes / ts;
      if (stage < limit) limit = stage ? stage : 1;
    }
    if (limit < mo->chunk_elems) mo->chunk_elems = limit;
    mo->nchunks = op->count ? (op->count + mo->chunk_elems - 1) / mo->chunk_elems : 1;
  } else if (op->count > INT_MAX) {
    return mlcomm_error(st->comm, mlcommUnsupported,
                        "%s: count %zu exceeds the MPI transport's limit of %d elements per rank "
                        "for this collective; split the call",
                        mlcomm_op_kind_name(op->kind), op->count, INT_MAX);
  }
  MLCOMM_CHECK(mpi_stage_setup(st, op, mo));
  if (op->kind == MLCOMM_OP_REDUCESCATTER && op->in_place && !mo->stage_send) {
    mo->tmp = malloc(op->count * ts);
    if (mo->tmp == NULL)
      return mlcomm_error(st->comm, mlcommSystemError,
                          "mlcommReduceScatter: out of memory for a %zu-byte in-place buffer",
                          op->count * ts);
  }
  mo->queued = true;
  if (st->order_tail) st->order_tail->order_next = mo;
  else st->order_head = mo;
  st->order_tail = mo;
  return advance(st, op, mo);
}

mlcommResult_t mpi_coll_progress(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo,
                                 bool *done) {
  if (mo->deferred != mlcommSuccess) return mo->deferred;
  MLCOMM_CHECK(advance(st, op, mo));
  if (mo->finished < mo->nchunks) return mlcommSuccess;
  return mpi_stage_drained(st, op, mo, done);
}

void mpi_coll_release(struct mpi_state *st, struct mpi_op *mo, bool aborting) {
  bool was_head = st->order_head == mo;
  order_remove(st, mo);
  if (was_head && !aborting) kick(st);
}

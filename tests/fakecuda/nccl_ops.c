/*
 * The fake NCCL's collectives, send/recv and groups.
 *
 * Each call checks its arguments at once, as NCCL does (ncclInvalidArgument, with a
 * ncclGetLastError text naming the argument): every buffer it touches must be device
 * memory of the communicator's device, large enough for the call. Then the call is
 * queued as one deferred work (queue.c) and the call returns: the data move only when
 * the caller waits, as on a GPU. Between ncclGroupStart and the outermost ncclGroupEnd
 * the calls of this thread are collected and queued as ONE work; inside it sends and
 * receives are posted together (MPI_Isend/MPI_Irecv, then MPI_Waitall), so a ring of
 * send+recv in a group cannot deadlock, while the collectives run in call order.
 *
 * The data move with MPI on the communicator's duplicate of MPI_COMM_WORLD, over the
 * alias mappings of the device buffers. Reductions gather every rank's raw bytes and
 * reduce locally in rank order (reduce.c), so results are the same on every rank and
 * in every run. A failing MPI call becomes the communicator's asynchronous error
 * (ncclCommGetAsyncError), reported on stderr too.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakegpu.h"

enum op_kind {
  OP_ALLREDUCE,
  OP_BROADCAST,
  OP_REDUCE,
  OP_ALLGATHER,
  OP_REDUCESCATTER,
  OP_SEND,
  OP_RECV
};

static const char *const op_names[] = {"ncclAllReduce", "ncclBroadcast",     "ncclReduce",
                                       "ncclAllGather", "ncclReduceScatter", "ncclSend",
                                       "ncclRecv"};

struct nccl_op {
  enum op_kind kind;
  struct ncclComm *comm;
  char *send; /* aliases; NULL where this rank does not use the buffer */
  char *recv;
  size_t count, bytes; /* bytes: of one rank's block (count elements) */
  ncclDataType_t type;
  ncclRedOp_t redop;
  int root, peer;
};

struct batch {
  struct fg_work w;
  size_t n, cap;
  struct nccl_op *ops;
};

/* NCCL groups are per thread. */
static _Thread_local int group_depth;
static _Thread_local struct batch *group_batch;

#define FG_P2P_TAG 0x6667 /* one tag: MPI keeps per-peer order, which is NCCL's matching */

/* ---- running */

static void async_fail(struct nccl_op *op, ncclResult_t r, const char *what, int mpi_err) {
  char text[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  if (mpi_err != MPI_SUCCESS) MPI_Error_string(mpi_err, text, &len);
  fg_nccl_fail(r, "fakegpu: deferred %s on rank %d failed: %s%s%s", op_names[op->kind],
               op->comm->rank, what, len ? ": " : "", text);
  fprintf(stderr, "fakegpu: deferred %s on rank %d failed: %s%s%s\n", op_names[op->kind],
          op->comm->rank, what, len ? ": " : "", text);
  fg_comm_set_async_error(op->comm, r);
}

static void run_collective(struct nccl_op *op) {
  struct ncclComm *c = op->comm;
  int n = c->nranks, b = (int)op->bytes, rc = MPI_SUCCESS;
  char *tmp = NULL;
  if (op->kind == OP_ALLREDUCE || op->kind == OP_REDUCESCATTER ||
      (op->kind == OP_REDUCE && c->rank == op->root)) {
    tmp = malloc((size_t)n * op->bytes);
    if (tmp == NULL) {
      async_fail(op, ncclSystemError, "out of memory", MPI_SUCCESS);
      return;
    }
  }
  switch (op->kind) {
  case OP_ALLREDUCE:
    rc = MPI_Allgather(op->send, b, MPI_BYTE, tmp, b, MPI_BYTE, c->mpi);
    if (rc == MPI_SUCCESS)
      fg_reduce_blocks(op->recv, tmp, op->bytes, n, op->count, op->type, op->redop);
    break;
  case OP_REDUCE:
    rc = MPI_Gather(op->send, b, MPI_BYTE, tmp, b, MPI_BYTE, op->root, c->mpi);
    if (rc == MPI_SUCCESS && tmp)
      fg_reduce_blocks(op->recv, tmp, op->bytes, n, op->count, op->type, op->redop);
    break;
  case OP_REDUCESCATTER:
    /* Block j of every rank's input goes to rank j, which reduces its n blocks. The
     * input is read in full before recv is written, so in-place needs no care. */
    rc = MPI_Alltoall(op->send, b, MPI_BYTE, tmp, b, MPI_BYTE, c->mpi);
    if (rc == MPI_SUCCESS)
      fg_reduce_blocks(op->recv, tmp, op->bytes, n, op->count, op->type, op->redop);
    break;
  case OP_BROADCAST:
    if (c->rank == op->root && op->send != op->recv) memmove(op->recv, op->send, op->bytes);
    rc = MPI_Bcast(op->recv, b, MPI_BYTE, op->root, c->mpi);
    break;
  case OP_ALLGATHER:
    /* MPI forbids overlapping buffers except through MPI_IN_PLACE. */
    rc = MPI_Allgather(op->send == op->recv + (size_t)c->rank * op->bytes ? MPI_IN_PLACE : op->send,
                       b, MPI_BYTE, op->recv, b, MPI_BYTE, c->mpi);
    break;
  default: break;
  }
  free(tmp);
  if (rc != MPI_SUCCESS) async_fail(op, ncclSystemError, "MPI failed", rc);
}

static void run_batch(struct fg_work *w) {
  struct batch *bt = (struct batch *)w;
  MPI_Request *reqs = calloc(bt->n, sizeof *reqs);
  MPI_Status *stats = calloc(bt->n, sizeof *stats);
  struct nccl_op **req_op = calloc(bt->n, sizeof *req_op);
  if (reqs == NULL || stats == NULL || req_op == NULL) {
    async_fail(&bt->ops[0], ncclSystemError, "out of memory", MPI_SUCCESS);
    goto out;
  }
  int nreq = 0;
  for (size_t i = 0; i < bt->n; i++) {
    struct nccl_op *op = &bt->ops[i];
    int rc;
    if (op->kind == OP_SEND)
      rc = MPI_Isend(op->send, (int)op->bytes, MPI_BYTE, op->peer, FG_P2P_TAG, op->comm->mpi,
                     &reqs[nreq]);
    else if (op->kind == OP_RECV)
      rc = MPI_Irecv(op->recv, (int)op->bytes, MPI_BYTE, op->peer, FG_P2P_TAG, op->comm->mpi,
                     &reqs[nreq]);
    else
      continue;
    if (rc != MPI_SUCCESS)
      async_fail(op, ncclSystemError, "posting it failed", rc);
    else
      req_op[nreq++] = op;
  }
  for (size_t i = 0; i < bt->n; i++)
    if (bt->ops[i].kind != OP_SEND && bt->ops[i].kind != OP_RECV) run_collective(&bt->ops[i]);
  if (nreq == 0) goto out;
  int rc = MPI_Waitall(nreq, reqs, stats);
  for (int i = 0; i < nreq; i++) {
    struct nccl_op *op = req_op[i];
    int got = 0;
    if (rc == MPI_ERR_IN_STATUS && stats[i].MPI_ERROR != MPI_SUCCESS) {
      async_fail(op, ncclSystemError, "MPI failed", stats[i].MPI_ERROR);
    } else if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) {
      async_fail(op, ncclSystemError, "MPI_Waitall failed", rc);
    } else if (op->kind == OP_RECV && MPI_Get_count(&stats[i], MPI_BYTE, &got) == MPI_SUCCESS &&
               (size_t)got != op->bytes) {
      /* NCCL needs both sides to agree on the size; MPI would accept a shorter message. */
      char what[160];
      snprintf(what, sizeof what,
               "received %d bytes from rank %d but expected %zu (send and "
               "receive sizes must match)",
               got, op->peer, op->bytes);
      async_fail(op, ncclInvalidUsage, what, MPI_SUCCESS);
    }
  }
out:
  free(reqs), free(stats), free(req_op);
}

static void release_batch(struct fg_work *w) {
  struct batch *bt = (struct batch *)w;
  free(bt->ops);
  free(bt);
}

static bool batch_uses(struct fg_work *w, const struct ncclComm *c) {
  struct batch *bt = (struct batch *)w;
  for (size_t i = 0; i < bt->n; i++)
    if (bt->ops[i].comm == c) return true;
  return false;
}

/* ---- queuing */

static ncclResult_t add_op(struct batch **bp, const struct nccl_op *op) {
  struct batch *bt = *bp;
  if (bt == NULL) {
    bt = calloc(1, sizeof *bt);
    if (bt == NULL) return ncclSystemError;
    bt->w.run = run_batch;
    bt->w.release = release_batch;
    bt->w.uses_comm = batch_uses;
    *bp = bt;
  }
  if (bt->n == bt->cap) {
    size_t cap = bt->cap ? 2 * bt->cap : 4;
    struct nccl_op *ops = realloc(bt->ops, cap * sizeof *ops);
    if (ops == NULL) return ncclSystemError;
    bt->ops = ops;
    bt->cap = cap;
  }
  bt->ops[bt->n++] = *op;
  return ncclSuccess;
}

/* Queues op now, or adds it to this thread's open group. */
static ncclResult_t submit(const struct nccl_op *op) {
  if (op->bytes == 0) return ncclSuccess; /* nothing moves: nothing to queue */
  if (group_depth > 0) {
    if (add_op(&group_batch, op) != ncclSuccess)
      return fg_nccl_fail(ncclSystemError, "fakegpu: %s: out of memory", op_names[op->kind]);
    return ncclSuccess;
  }
  struct batch *bt = NULL;
  if (add_op(&bt, op) != ncclSuccess) {
    if (bt) release_batch(&bt->w);
    return fg_nccl_fail(ncclSystemError, "fakegpu: %s: out of memory", op_names[op->kind]);
  }
  fg_enqueue(&bt->w);
  return ncclSuccess;
}

/* ---- argument checks */

static const char *kind_name(enum fg_kind k) {
  switch (k) {
  case FG_PINNED: return "pinned host";
  case FG_MANAGED: return "managed";
  case FG_DEVICE: return "device";
  default: return "unregistered host";
  }
}

/* The alias of `bytes` at p, which must be device memory of the communicator's device. */
static ncclResult_t check_buffer(const struct nccl_op *op, const char *arg, const void *p,
                                 size_t bytes, char **alias) {
  const char *call = op_names[op->kind];
  struct fg_region r = fg_lookup(p);
  if (r.kind != FG_DEVICE)
    return fg_nccl_fail(ncclInvalidArgument,
                        "fakegpu: %s: %s %p is %s memory, not CUDA device memory", call, arg, p,
                        kind_name(r.kind));
  if (r.device != op->comm->device)
    return fg_nccl_fail(ncclInvalidArgument,
                        "fakegpu: %s: %s %p is on device %d but the communicator is on device %d",
                        call, arg, p, r.device, op->comm->device);
  size_t off = (uintptr_t)p - r.base;
  if (off > r.size || bytes > r.size - off)
    return fg_nccl_fail(ncclInvalidArgument,
                        "fakegpu: %s: %s %p needs %zu bytes but only %zu remain in its "
                        "allocation of %zu bytes",
                        call, arg, p, bytes, off > r.size ? 0 : r.size - off, r.size);
  *alias = r.alias + off;
  return ncclSuccess;
}

/* Checks what every call has: communicator, type, count, reduction op, stream, root.
 * Fills op->bytes. */
static ncclResult_t check_call(struct nccl_op *op, bool reduces, int root, cudaStream_t stream) {
  const char *call = op_names[op->kind];
  if (!fg_comm_valid(op->comm))
    return fg_nccl_fail(ncclInvalidArgument, "fakegpu: %s: comm %p is not a live communicator",
                        call, (void *)op->comm);
  size_t tsize = fg_type_size(op->type);
  if (tsize == 0)
    return fg_nccl_fail(ncclInvalidArgument, "fakegpu: %s: datatype %d is not an NCCL datatype",
                        call, (int)op->type);
  if (reduces && ((int)op->redop < 0 || op->redop >= ncclNumOps))
    return fg_nccl_fail(ncclInvalidArgument,
                        "fakegpu: %s: op %d is not a built-in reduction (the fake has sum, "
                        "prod, max, min, avg)",
                        call, (int)op->redop);
  if (reduces && !fg_type_reducible(op->type))
    return fg_nccl_fail(ncclInvalidArgument, "fakegpu: %s: the fake does not reduce datatype %d",
                        call, (int)op->type);
  if (!fg_stream_valid(stream))
    return fg_nccl_fail(ncclInvalidArgument, "fakegpu: %s: stream %p is not a live CUDA stream",
                        call, (void *)stream);
  if (root < 0 || root >= op->comm->nranks)
    return fg_nccl_fail(ncclInvalidArgument,
                        "fakegpu: %s: %s %d is not a rank of the %d-rank "
                        "communicator",
                        call, op->kind == OP_SEND || op->kind == OP_RECV ? "peer" : "root", root,
                        op->comm->nranks);
  /* MPI counts are ints; n blocks must also fit in memory. */
  if (op->count > (size_t)INT_MAX / tsize ||
      op->count * tsize > SIZE_MAX / (size_t)op->comm->nranks)
    return fg_nccl_fail(ncclInvalidArgument,
                        "fakegpu: %s: count %zu is more than the fake moves per rank (2 GiB)", call,
                        op->count);
  op->bytes = op->count * tsize;
  return ncclSuccess;
}

#define FG_TRY(x)                                                                                  \
  do {                                                                                             \
    ncclResult_t r_ = (x);                                                                         \
    if (r_ != ncclSuccess) return r_;                                                              \
  } while (0)

FG_API ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                                  ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                  cudaStream_t stream) {
  struct nccl_op o = {
      .kind = OP_ALLREDUCE, .comm = comm, .count = count, .type = datatype, .redop = op};
  FG_TRY(check_call(&o, true, 0, stream));
  if (o.bytes) {
    FG_TRY(check_buffer(&o, "sendbuff", sendbuff, o.bytes, &o.send));
    FG_TRY(check_buffer(&o, "recvbuff", recvbuff, o.bytes, &o.recv));
  }
  return submit(&o);
}

FG_API ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                                  ncclDataType_t datatype, int root, ncclComm_t comm,
                                  cudaStream_t stream) {
  struct nccl_op o = {
      .kind = OP_BROADCAST, .comm = comm, .count = count, .type = datatype, .root = root};
  FG_TRY(check_call(&o, false, root, stream));
  if (o.bytes) {
    if (comm->rank == root) /* sendbuff is read on the root only */
      FG_TRY(check_buffer(&o, "sendbuff", sendbuff, o.bytes, &o.send));
    FG_TRY(check_buffer(&o, "recvbuff", recvbuff, o.bytes, &o.recv));
  }
  return submit(&o);
}

FG_API ncclResult_t ncclReduce(const void *sendbuff, void *recvbuff, size_t count,
                               ncclDataType_t datatype, ncclRedOp_t op, int root, ncclComm_t comm,
                               cudaStream_t stream) {
  struct nccl_op o = {
      .kind = OP_REDUCE, .comm = comm, .count = count, .type = datatype, .redop = op, .root = root};
  FG_TRY(check_call(&o, true, root, stream));
  if (o.bytes) {
    FG_TRY(check_buffer(&o, "sendbuff", sendbuff, o.bytes, &o.send));
    if (comm->rank == root) /* recvbuff may be NULL elsewhere */
      FG_TRY(check_buffer(&o, "recvbuff", recvbuff, o.bytes, &o.recv));
  }
  return submit(&o);
}

FG_API ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
                                  ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream) {
  struct nccl_op o = {.kind = OP_ALLGATHER, .comm = comm, .count = sendcount, .type = datatype};
  FG_TRY(check_call(&o, false, 0, stream));
  if (o.bytes) {
    FG_TRY(check_buffer(&o, "sendbuff", sendbuff, o.bytes, &o.send));
    FG_TRY(check_buffer(&o, "recvbuff", recvbuff, o.bytes * (size_t)comm->nranks, &o.recv));
  }
  return submit(&o);
}

FG_API ncclResult_t ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount,
                                      ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                      cudaStream_t stream) {
  struct nccl_op o = {
      .kind = OP_REDUCESCATTER, .comm = comm, .count = recvcount, .type = datatype, .redop = op};
  FG_TRY(check_call(&o, true, 0, stream));
  if (o.bytes) {
    FG_TRY(check_buffer(&o, "sendbuff", sendbuff, o.bytes * (size_t)comm->nranks, &o.send));
    FG_TRY(check_buffer(&o, "recvbuff", recvbuff, o.bytes, &o.recv));
  }
  return submit(&o);
}

FG_API ncclResult_t ncclSend(const void *sendbuff, size_t count, ncclDataType_t datatype, int peer,
                             ncclComm_t comm, cudaStream_t stream) {
  struct nccl_op o = {
      .kind = OP_SEND, .comm = comm, .count = count, .type = datatype, .peer = peer};
  FG_TRY(check_call(&o, false, peer, stream));
  if (o.bytes) FG_TRY(check_buffer(&o, "sendbuff", sendbuff, o.bytes, &o.send));
  return submit(&o);
}

FG_API ncclResult_t ncclRecv(void *recvbuff, size_t count, ncclDataType_t datatype, int peer,
                             ncclComm_t comm, cudaStream_t stream) {
  struct nccl_op o = {
      .kind = OP_RECV, .comm = comm, .count = count, .type = datatype, .peer = peer};
  FG_TRY(check_call(&o, false, peer, stream));
  if (o.bytes) FG_TRY(check_buffer(&o, "recvbuff", recvbuff, o.bytes, &o.recv));
  return submit(&o);
}

FG_API ncclResult_t ncclGroupStart(void) {
  group_depth++;
  return ncclSuccess;
}

FG_API ncclResult_t ncclGroupEnd(void) {
  if (group_depth == 0)
    return fg_nccl_fail(ncclInvalidUsage,
                        "fakegpu: ncclGroupEnd without a matching ncclGroupStart");
  if (--group_depth > 0) return ncclSuccess;
  /* The outermost end: the group's calls become one work. */
  if (group_batch) fg_enqueue(&group_batch->w);
  group_batch = NULL;
  return ncclSuccess;
}

/*
 * Argument validation for every collective and point-to-point call, done once, here,
 * before anything is started or written. Each failure names the argument.
 */
#include <stdint.h>

#include "collectives/reduce.h"
#include "collectives/validate.h"

/* [a, a+alen) and [b, b+blen) share a byte. */
static bool overlap(const void *a, size_t alen, const void *b, size_t blen) {
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return alen && blen && x < y + blen && y < x + alen;
}

static mlcommResult_t check_buffers(struct mlcomm_comm *comm, const char *fn,
                                    struct mlcomm_op *op, size_t bytes) {
  size_t send_len, recv_len;
  mlcomm_op_extents(comm, op, &send_len, &recv_len);
  bool use_send = send_len > 0, use_recv = recv_len > 0;
  if (bytes == 0) return mlcommSuccess;
  if (use_send && op->sendbuf == NULL)
    return mlcomm_error(comm, mlcommInvalidArgument, "%s: sendbuff is NULL with count %zu", fn,
                        op->count);
  if (use_recv && op->recvbuf == NULL)
    return mlcomm_error(comm, mlcommInvalidArgument, "%s: recvbuff is NULL with count %zu", fn,
                        op->count);
  if (!use_send || !use_recv) return mlcommSuccess;
  const char *inplace_rule = op->kind == MLCOMM_OP_ALLGATHER ? "sendbuff == recvbuff + rank*sendcount"
                             : op->kind == MLCOMM_OP_REDUCESCATTER
                                 ? "recvbuff == sendbuff + rank*recvcount"
                                 : "sendbuff == recvbuff";
  if (mlcomm_op_in_place(comm, op)) {
    op->in_place = true;
    return mlcommSuccess;
  }
  if (overlap(op->sendbuf, send_len, op->recvbuf, recv_len))
    return mlcomm_error(comm, mlcommInvalidArgument,
                        "%s: sendbuff and recvbuff overlap without being in place (the in-place "
                        "form is %s)",
                        fn, inplace_rule);
  return mlcommSuccess;
}

mlcommResult_t mlcomm_validate(struct mlcomm_comm *comm, const char *fn, struct mlcomm_op *op) {
  MLCOMM_CHECK(mlcomm_comm_check(comm, fn));
  if (comm->revoked)
    return mlcomm_error(comm, mlcommRemoteError, "%s: the communicator is revoked: %s", fn,
                        comm->revoke_why);
  if (comm->failed != mlcommSuccess)
    return mlcomm_error(comm, mlcommRemoteError,
                        "%s: this communicator failed earlier (%s in a blocking call whose "
                        "buffers MPI may still use); abort it with mlcommCommAbort",
                        fn, mlcommGetErrorString(comm->failed));
  int n = comm->nranks;
  if (op->kind != MLCOMM_OP_BARRIER) {
    if ((int)op->dtype < 0 || op->dtype >= mlcommNumTypes)
      return mlcomm_error(comm, mlcommInvalidArgument,
                          "%s: datatype is %d, expected an mlcommDataType_t (0..%d)", fn,
                          (int)op->dtype, mlcommNumTypes - 1);
    size_t tsize = mlcomm_type_size(op->dtype);
    size_t blocks = (op->kind == MLCOMM_OP_ALLGATHER || op->kind == MLCOMM_OP_REDUCESCATTER)
                        ? (size_t)n : 1;
    if (op->count > SIZE_MAX / tsize / blocks)
      return mlcomm_error(comm, mlcommInvalidArgument,
                          "%s: count %zu of %s overflows the address space", fn, op->count,
                          mlcomm_type_name(op->dtype));
  }
  if (mlcomm_op_has_redop(op->kind) && ((int)op->redop < 0 || op->redop >= mlcommNumOps))
    return mlcomm_error(comm, mlcommInvalidArgument,
                        "%s: op is %d, expected an mlcommRedOp_t (0..%d: sum prod max min avg)",
                        fn, (int)op->redop, mlcommNumOps - 1);
  if ((op->kind == MLCOMM_OP_BROADCAST || op->kind == MLCOMM_OP_REDUCE) &&
      (op->root < 0 || op->root >= n))
    return mlcomm_error(comm, mlcommInvalidArgument,
                        "%s: root is %d, expected a rank in 0..%d", fn, op->root, n - 1);
  if (!mlcomm_op_is_collective(op->kind)) {
    bool any = op->kind == MLCOMM_OP_RECV;
    if (!(op->peer >= 0 && op->peer < n) && !(any && op->peer == MLCOMM_ANY_SOURCE))
      return mlcomm_error(comm, mlcommInvalidArgument, "%s: peer is %d, expected a rank in 0..%d%s",
                          fn, op->peer, n - 1, any ? " or MLCOMM_ANY_SOURCE" : "");
    if (!(op->tag >= 0 && op->tag <= MLCOMM_TAG_MAX) && !(any && op->tag == MLCOMM_ANY_TAG))
      return mlcomm_error(comm, mlcommInvalidArgument, "%s: tag is %d, expected 0..%d%s", fn,
                          op->tag, MLCOMM_TAG_MAX, any ? " or MLCOMM_ANY_TAG" : "");
  }
  if (op->kind == MLCOMM_OP_BARRIER) return mlcommSuccess;
  return check_buffers(comm, fn, op, op->count * mlcomm_type_size(op->dtype));
}

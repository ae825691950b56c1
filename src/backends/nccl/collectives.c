/*
 * Collectives on the NCCL transport: one NCCL call each, queued on the stream. mlcomm's
 * in-place conventions are NCCL's, so buffers pass unchanged. Barrier is not NCCL's
 * (it has none): it has no buffers, so the shm or MPI transport carries it.
 */
#include "backends/nccl/nccl_internal.h"

mlcommResult_t nccl_coll_enqueue(struct nccl_state *st, const struct mlcomm_op *op,
                                 cudaStream_t stream) {
  ncclDataType_t type;
  ncclRedOp_t redop = ncclSum;
  if (!nccl_type(op->dtype, &type) || !nccl_redop(op->redop, &redop))
    return mlcomm_error(st->comm, mlcommUnsupported,
                        "%s: datatype %d / op %d has no NCCL equivalent in this NCCL version",
                        mlcomm_op_kind_name(op->kind), (int)op->dtype, (int)op->redop);
  ncclResult_t r;
  const char *call;
  switch (op->kind) {
  case MLCOMM_OP_ALLREDUCE:
    call = "ncclAllReduce";
    r = ncclAllReduce(op->sendbuf, op->recvbuf, op->count, type, redop, st->nc, stream);
    break;
  case MLCOMM_OP_BROADCAST:
    call = "ncclBroadcast";
    r = ncclBroadcast(op->sendbuf, op->recvbuf, op->count, type, op->root, st->nc, stream);
    break;
  case MLCOMM_OP_REDUCE:
    call = "ncclReduce";
    r = ncclReduce(op->sendbuf, op->recvbuf, op->count, type, redop, op->root, st->nc, stream);
    break;
  case MLCOMM_OP_ALLGATHER:
    call = "ncclAllGather";
    r = ncclAllGather(op->sendbuf, op->recvbuf, op->count, type, st->nc, stream);
    break;
  case MLCOMM_OP_REDUCESCATTER:
    call = "ncclReduceScatter";
    r = ncclReduceScatter(op->sendbuf, op->recvbuf, op->count, type, redop, st->nc, stream);
    break;
  default:
    return mlcomm_error(st->comm, mlcommInternalError, "NCCL transport: %s is not a collective it carries",
                        mlcomm_op_kind_name(op->kind));
  }
  if (r != ncclSuccess) return nccl_fail(st, op, r, call);
  return mlcommSuccess;
}

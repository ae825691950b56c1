/*
 * Send and receive on the NCCL transport (only when the communicator's transport is
 * forced to nccl; under auto, point-to-point stays on MPI). NCCL has no tags, no
 * wildcards and no message sizes: messages between two ranks match in the order they
 * were posted, the tag is not compared, and a receive must be exactly as large as the
 * send (mlcomm moves bytes, so the two sides' datatypes need not agree). A wildcard
 * receive is refused with a sentence. Probe is not served here: mlcommProbe/Iprobe see
 * MPI's messages only.
 */
#include "backends/nccl/nccl_internal.h"
#include "collectives/reduce.h"

mlcommResult_t nccl_p2p_enqueue(struct nccl_state *st, struct mlcomm_op *op,
                                cudaStream_t stream) {
  size_t bytes = op->count * mlcomm_type_size(op->dtype);
  ncclResult_t r;
  if (op->kind == MLCOMM_OP_SEND) {
    r = ncclSend(op->sendbuf, bytes, ncclUint8, op->peer, st->nc, stream);
    if (r != ncclSuccess) return nccl_fail(st, op, r, "ncclSend");
    return mlcommSuccess;
  }
  if (op->peer == MLCOMM_ANY_SOURCE || op->tag == MLCOMM_ANY_TAG)
    return mlcomm_error(st->comm, mlcommUnsupported,
                        "mlcommRecv: the NCCL transport cannot receive from MLCOMM_ANY_SOURCE "
                        "or with MLCOMM_ANY_TAG (NCCL matches by peer only); name the peer and "
                        "tag, or use transport auto/mpi for this communicator");
  r = ncclRecv(op->recvbuf, bytes, ncclUint8, op->peer, st->nc, stream);
  if (r != ncclSuccess) return nccl_fail(st, op, r, "ncclRecv");
  op->status = (mlcommStatus_t){.source = op->peer, .tag = op->tag, .bytes = bytes};
  return mlcommSuccess;
}

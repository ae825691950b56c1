/* Public collective entry points: each only describes the call and hands it to the
 * funnel (enqueue.c). Blocking and Async forms share everything but the wait. */
#include "core/internal.h"

#define COLL(kind_, fn_, req_, ...)                                                          \
  do {                                                                                     \
    struct mlcomm_op op_ = {.kind = (kind_), __VA_ARGS__};                                  \
    if ((req_) == NULL && async)                                                           \
      return mlcomm_error(mlcomm_comm_or_null(comm), mlcommInvalidArgument,                \
                          "%s: request is NULL", fn_);                                     \
    return mlcomm_enqueue(comm, fn_, &op_, async ? (req_) : NULL, NULL);                   \
  } while (0)

static mlcommResult_t allreduce(const void *sendbuff, void *recvbuff, size_t count,
                                mlcommDataType_t datatype, mlcommRedOp_t op, mlcommComm_t comm,
                                mlcommRequest_t *request, bool async) {
  COLL(MLCOMM_OP_ALLREDUCE, async ? "mlcommAllReduceAsync" : "mlcommAllReduce", request,
       .sendbuf = sendbuff, .recvbuf = recvbuff, .count = count, .dtype = datatype, .redop = op);
}

MLCOMM_API mlcommResult_t mlcommAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                                          mlcommDataType_t datatype, mlcommRedOp_t op,
                                          mlcommComm_t comm) {
  return allreduce(sendbuff, recvbuff, count, datatype, op, comm, NULL, false);
}

MLCOMM_API mlcommResult_t mlcommAllReduceAsync(const void *sendbuff, void *recvbuff,
                                               size_t count, mlcommDataType_t datatype,
                                               mlcommRedOp_t op, mlcommComm_t comm,
                                               mlcommRequest_t *request) {
  return allreduce(sendbuff, recvbuff, count, datatype, op, comm, request, true);
}

static mlcommResult_t broadcast(const void *sendbuff, void *recvbuff, size_t count,
                                mlcommDataType_t datatype, int root, mlcommComm_t comm,
                                mlcommRequest_t *request, bool async) {
  COLL(MLCOMM_OP_BROADCAST, async ? "mlcommBroadcastAsync" : "mlcommBroadcast", request,
       .sendbuf = sendbuff, .recvbuf = recvbuff, .count = count, .dtype = datatype,
       .root = root);
}

MLCOMM_API mlcommResult_t mlcommBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                                          mlcommDataType_t datatype, int root,
                                          mlcommComm_t comm) {
  return broadcast(sendbuff, recvbuff, count, datatype, root, comm, NULL, false);
}

MLCOMM_API mlcommResult_t mlcommBroadcastAsync(const void *sendbuff, void *recvbuff,
                                               size_t count, mlcommDataType_t datatype,
                                               int root, mlcommComm_t comm,
                                               mlcommRequest_t *request) {
  return broadcast(sendbuff, recvbuff, count, datatype, root, comm, request, true);
}

static mlcommResult_t reduce(const void *sendbuff, void *recvbuff, size_t count,
                             mlcommDataType_t datatype, mlcommRedOp_t op, int root,
                             mlcommComm_t comm, mlcommRequest_t *request, bool async) {
  COLL(MLCOMM_OP_REDUCE, async ? "mlcommReduceAsync" : "mlcommReduce", request,
       .sendbuf = sendbuff, .recvbuf = recvbuff, .count = count, .dtype = datatype,
       .redop = op, .root = root);
}

MLCOMM_API mlcommResult_t mlcommReduce(const void *sendbuff, void *recvbuff, size_t count,
                                       mlcommDataType_t datatype, mlcommRedOp_t op, int root,
                                       mlcommComm_t comm) {
  return reduce(sendbuff, recvbuff, count, datatype, op, root, comm, NULL, false);
}

MLCOMM_API mlcommResult_t mlcommReduceAsync(const void *sendbuff, void *recvbuff, size_t count,
                                            mlcommDataType_t datatype, mlcommRedOp_t op,
                                            int root, mlcommComm_t comm,
                                            mlcommRequest_t *request) {
  return reduce(sendbuff, recvbuff, count, datatype, op, root, comm, request, true);
}

static mlcommResult_t allgather(const void *sendbuff, void *recvbuff, size_t sendcount,
                                mlcommDataType_t datatype, mlcommComm_t comm,
                                mlcommRequest_t *request, bool async) {
  COLL(MLCOMM_OP_ALLGATHER, async ? "mlcommAllGatherAsync" : "mlcommAllGather", request,
       .sendbuf = sendbuff, .recvbuf = recvbuff, .count = sendcount, .dtype = datatype);
}

MLCOMM_API mlcommResult_t mlcommAllGather(const void *sendbuff, void *recvbuff,
                                          size_t sendcount, mlcommDataType_t datatype,
                                          mlcommComm_t comm) {
  return allgather(sendbuff, recvbuff, sendcount, datatype, comm, NULL, false);
}

MLCOMM_API mlcommResult_t mlcommAllGatherAsync(const void *sendbuff, void *recvbuff,
                                               size_t sendcount, mlcommDataType_t datatype,
                                               mlcommComm_t comm, mlcommRequest_t *request) {
  return allgather(sendbuff, recvbuff, sendcount, datatype, comm, request, true);
}

static mlcommResult_t reduce_scatter(const void *sendbuff, void *recvbuff, size_t recvcount,
                                     mlcommDataType_t datatype, mlcommRedOp_t op,
                                     mlcommComm_t comm, mlcommRequest_t *request, bool async) {
  COLL(MLCOMM_OP_REDUCESCATTER, async ? "mlcommReduceScatterAsync" : "mlcommReduceScatter",
       request, .sendbuf = sendbuff, .recvbuf = recvbuff, .count = recvcount,
       .dtype = datatype, .redop = op);
}

MLCOMM_API mlcommResult_t mlcommReduceScatter(const void *sendbuff, void *recvbuff,
                                              size_t recvcount, mlcommDataType_t datatype,
                                              mlcommRedOp_t op, mlcommComm_t comm) {
  return reduce_scatter(sendbuff, recvbuff, recvcount, datatype, op, comm, NULL, false);
}

MLCOMM_API mlcommResult_t mlcommReduceScatterAsync(const void *sendbuff, void *recvbuff,
                                                   size_t recvcount, mlcommDataType_t datatype,
                                                   mlcommRedOp_t op, mlcommComm_t comm,
                                                   mlcommRequest_t *request) {
  return reduce_scatter(sendbuff, recvbuff, recvcount, datatype, op, comm, request, true);
}

static mlcommResult_t barrier(mlcommComm_t comm, mlcommRequest_t *request, bool async) {
  COLL(MLCOMM_OP_BARRIER, async ? "mlcommBarrierAsync" : "mlcommBarrier", request, .count = 0);
}

MLCOMM_API mlcommResult_t mlcommBarrier(mlcommComm_t comm) { return barrier(comm, NULL, false); }

MLCOMM_API mlcommResult_t mlcommBarrierAsync(mlcommComm_t comm, mlcommRequest_t *request) {
  return barrier(comm, request, true);
}

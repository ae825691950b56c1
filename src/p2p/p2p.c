/*
 * Point-to-point entry points. Send and Recv go through the same funnel as the
 * collectives; Probe asks the transport whose caps say it probes and waits with the
 * same deadline and backoff as every other wait.
 */
#include "backends/transport.h"
#include "core/internal.h"

static mlcommResult_t p2p(enum mlcomm_op_kind kind, const char *fn, const void *sendbuff,
                          void *recvbuff, size_t count, mlcommDataType_t datatype, int peer,
                          int tag, mlcommComm_t comm, mlcommRequest_t *request, bool async,
                          mlcommStatus_t *status) {
  if (async && request == NULL)
    return mlcomm_error(mlcomm_comm_or_null(comm), mlcommInvalidArgument,
                        "%s: request is NULL", fn);
  struct mlcomm_op op = {.kind = kind, .sendbuf = sendbuff, .recvbuf = recvbuff,
                         .count = count, .dtype = datatype, .peer = peer, .tag = tag};
  return mlcomm_enqueue(comm, fn, &op, async ? request : NULL, status);
}

MLCOMM_API mlcommResult_t mlcommSend(const void *sendbuff, size_t count,
                                     mlcommDataType_t datatype, int peer, int tag,
                                     mlcommComm_t comm) {
  return p2p(MLCOMM_OP_SEND, "mlcommSend", sendbuff, NULL, count, datatype, peer, tag, comm,
             NULL, false, NULL);
}

MLCOMM_API mlcommResult_t mlcommSendAsync(const void *sendbuff, size_t count,
                                          mlcommDataType_t datatype, int peer, int tag,
                                          mlcommComm_t comm, mlcommRequest_t *request) {
  return p2p(MLCOMM_OP_SEND, "mlcommSendAsync", sendbuff, NULL, count, datatype, peer, tag,
             comm, request, true, NULL);
}

MLCOMM_API mlcommResult_t mlcommRecv(void *recvbuff, size_t count, mlcommDataType_t datatype,
                                     int peer, int tag, mlcommComm_t comm,
                                     mlcommStatus_t *status) {
  return p2p(MLCOMM_OP_RECV, "mlcommRecv", NULL, recvbuff, count, datatype, peer, tag, comm,
             NULL, false, status);
}

MLCOMM_API mlcommResult_t mlcommRecvAsync(void *recvbuff, size_t count,
                                          mlcommDataType_t datatype, int peer, int tag,
                                          mlcommComm_t comm, mlcommRequest_t *request) {
  return p2p(MLCOMM_OP_RECV, "mlcommRecvAsync", NULL, recvbuff, count, datatype, peer, tag,
             comm, request, true, NULL);
}

static mlcommResult_t probe_args(mlcommComm_t comm, const char *fn, int peer, int tag,
                                 const struct mlcomm_tinst **ti) {
  MLCOMM_CHECK(mlcomm_comm_check(comm, fn));
  mlcomm_revoke_serve(comm);
  if (comm->revoked)
    return mlcomm_error(comm, mlcommRemoteError, "%s: the communicator is revoked: %s", fn,
                        comm->revoke_why);
  if (!(peer >= 0 && peer < comm->nranks) && peer != MLCOMM_ANY_SOURCE)
    return mlcomm_error(comm, mlcommInvalidArgument,
                        "%s: peer is %d, expected a rank in 0..%d or MLCOMM_ANY_SOURCE", fn, peer,
                        comm->nranks - 1);
  if (!(tag >= 0 && tag <= MLCOMM_TAG_MAX) && tag != MLCOMM_ANY_TAG)
    return mlcomm_error(comm, mlcommInvalidArgument,
                        "%s: tag is %d, expected 0..%d or MLCOMM_ANY_TAG", fn, tag,
                        MLCOMM_TAG_MAX);
  *ti = mlcomm_transport_for_probe(comm, fn);
  return *ti ? mlcommSuccess : mlcommUnsupported;
}

MLCOMM_API mlcommResult_t mlcommIprobe(int peer, int tag, mlcommComm_t comm, int *found,
                                       mlcommStatus_t *status) {
  static const char fn[] = "mlcommIprobe";
  const struct mlcomm_tinst *ti = NULL;
  MLCOMM_CHECK(probe_args(comm, fn, peer, tag, &ti));
  if (found == NULL) return mlcomm_error(comm, mlcommInvalidArgument, "%s: found is NULL", fn);
  if (status == NULL) return mlcomm_error(comm, mlcommInvalidArgument, "%s: status is NULL", fn);
  mlcomm_progress_all();
  return ti->t->probe(ti->state, peer, tag, found, status);
}

MLCOMM_API mlcommResult_t mlcommProbe(int peer, int tag, mlcommComm_t comm,
                                      mlcommStatus_t *status) {
  static const char fn[] = "mlcommProbe";
  const struct mlcomm_tinst *ti = NULL;
  MLCOMM_CHECK(probe_args(comm, fn, peer, tag, &ti));
  if (status == NULL) return mlcomm_error(comm, mlcommInvalidArgument, "%s: status is NULL", fn);
  double t0 = mlcomm_now_ms();
  for (uint64_t it = 0;; it++) {
    int found = 0;
    MLCOMM_CHECK(ti->t->probe(ti->state, peer, tag, &found, status));
    if (found) return mlcommSuccess;
    if ((it & 15) == 15) mlcomm_progress_all();
    double waited = mlcomm_now_ms() - t0;
    if ((it & 255) == 255 && waited > 10.0) mlcomm_diag_serve(comm);
    const struct mlcomm_op probing = {.kind = MLCOMM_OP_RECV, .peer = peer, .tag = tag};
    if (mlcomm_watch(comm, &probing, waited))
      return mlcomm_error(comm, mlcommRemoteError, "%s: %s", fn, comm->revoke_why);
    if (comm->config.timeoutMs > 0 && waited >= comm->config.timeoutMs)
      return mlcomm_error(comm, mlcommTimeout,
                          "%s: no message from %s%d with tag %d arrived within %.0f ms on rank %d",
                          fn, peer == MLCOMM_ANY_SOURCE ? "any rank " : "rank ", peer, tag,
                          waited, comm->rank);
    mlcomm_backoff(waited, comm->spin_ms);
  }
}

/*
 * The funnel. Every public collective and point-to-point call fills a struct mlcomm_op
 * and comes here: validate once, number it, pick the transport, then start it now,
 * record it in the open group, or hand back a request.
 */
#include "backends/transport.h"
#include "collectives/reduce.h"
#include "collectives/validate.h"
#include "core/internal.h"

/* What a completed call reports in its status (receives overwrite it). */
static void prefill_status(const struct mlcomm_comm *comm, struct mlcomm_op *op) {
  size_t bytes = op->count * mlcomm_type_size(op->dtype);
  if (op->kind == MLCOMM_OP_REDUCESCATTER) bytes *= (size_t)comm->nranks;
  if (op->kind == MLCOMM_OP_BARRIER) bytes = 0;
  op->status = (mlcommStatus_t){.source = comm->rank, .tag = -1, .bytes = bytes};
}

mlcommResult_t mlcomm_enqueue(struct mlcomm_comm *comm, const char *fn, struct mlcomm_op *op,
                              mlcommRequest_t *async_out, mlcommStatus_t *status) {
  if (async_out) *async_out = MLCOMM_REQUEST_NULL;
  MLCOMM_CHECK(mlcomm_validate(comm, fn, op));
  if (mlcomm_op_is_collective(op->kind)) {
    op->seq = comm->coll_seq++;
    comm->seq_kinds[op->seq % MLCOMM_SEQ_RING] = (uint8_t)op->kind;
  } else {
    op->seq = comm->p2p_seq++;
  }
  prefill_status(comm, op);
  /* Each buffer is classified once, here; transports route on these fields only. A
   * buffer this rank does not touch (broadcast's sendbuff off the root, reduce's
   * recvbuff off the root) takes its partner's kind, so an unused NULL or host pointer
   * never turns a device call into a mixed one on some ranks only. */
  size_t send_len, recv_len;
  mlcomm_op_extents(comm, op, &send_len, &recv_len);
  op->send_mem = op->recv_mem = MLCOMM_MEM_HOST;
  op->send_dev = op->recv_dev = -1;
  if (send_len) op->send_mem = mlcomm_mem_classify(op->sendbuf, &op->send_dev);
  if (recv_len && op->in_place && op->recvbuf == op->sendbuf)
    op->recv_mem = op->send_mem, op->recv_dev = op->send_dev;
  else if (recv_len)
    op->recv_mem = mlcomm_mem_classify(op->recvbuf, &op->recv_dev);
  if (!send_len) op->send_mem = op->recv_mem, op->send_dev = op->recv_dev;
  if (!recv_len) op->recv_mem = op->send_mem, op->recv_dev = op->send_dev;

  /* Nothing to move: complete at once, with no transport involved. */
  bool empty = op->count == 0 && op->kind != MLCOMM_OP_BARRIER &&
               mlcomm_op_is_collective(op->kind);
  const struct mlcomm_tinst *ti = NULL;
  op->alg = -1;
  if (!empty) {
    ti = mlcomm_transport_select(comm, op, fn);
    if (ti == NULL) return mlcommUnsupported;
  }
  struct mlcomm_request *req = mlcomm_request_new(comm);
  if (req == NULL) return mlcomm_error(comm, mlcommSystemError, "%s: out of memory", fn);
  req->op = *op;
  req->ti = ti;
  if (empty) mlcomm_request_complete_now(req);
  if (async_out) {
    *async_out = mlcomm_handle_register(req);
    if (*async_out == MLCOMM_REQUEST_NULL) {
      mlcomm_request_release(req);
      return mlcomm_error(comm, mlcommSystemError, "%s: out of memory for a request handle", fn);
    }
    req->user_visible = true;
  }
  if (mlcomm_group_active() && !empty) {
    req->group_status = status;
    mlcomm_group_add(req);
    return mlcommSuccess;
  }
  if (!empty) {
    comm->waiting = async_out == NULL;
    mlcommResult_t res = mlcomm_request_start(req);
    comm->waiting = false;
    if (res != mlcommSuccess) {
      if (async_out) *async_out = MLCOMM_REQUEST_NULL;
      mlcomm_request_release(req);
      return res;
    }
  }
  if (async_out) return mlcommSuccess;
  return mlcomm_request_wait(req, status, true);
}

/*
 * The NCCL transport's glue to the contract. Its caps and score (30, above shm's and
 * MPI's) give it, under auto, every collective whose buffers are all CUDA device
 * memory (the same on every rank: NCCL itself requires device buffers everywhere).
 * Send/recv go to it only when the communicator's transport is forced to nccl.
 *
 * Completion: start queues the NCCL call on the communicator's stream
 * (mlcommCommSetStream; NULL is the legacy default stream) and records a CUDA event
 * after it; progress asks cudaEventQuery, so mlcommTest never blocks, and also
 * ncclCommGetAsyncError, so a failed peer or network surfaces as an error instead of
 * a wait until the timeout.
 *
 * Groups: the outermost mlcommGroupEnd calls group_begin (one ncclGroupStart for all
 * of the group's NCCL communicators) before it starts its members and group_end (one
 * ncclGroupEnd) after; NCCL only queues the group's work at ncclGroupEnd, so the events
 * of the ops started inside are recorded then. The group's depth is the core's alone
 * (group.c): here each state only knows whether a group is open on it.
 */
#include <stdlib.h>

#include "backends/nccl/nccl_internal.h"

static bool nccl_supports(void *state, const struct mlcomm_op *op) {
  (void)state;
  ncclDataType_t t;
  ncclRedOp_t r;
  if (!nccl_type(op->dtype, &t)) return false;
  return !mlcomm_op_has_redop(op->kind) || nccl_redop(op->redop, &r);
}

static mlcommResult_t record(struct nccl_state *st, struct mlcomm_op *op, struct nccl_op *no) {
  MLCOMM_CUDA_CHECK(st->comm, op, cudaEventRecord(no->event, no->stream));
  no->recorded = true;
  return mlcommSuccess;
}

static mlcommResult_t nccl_start(void *state, struct mlcomm_op *op) {
  struct nccl_state *st = state;
  if (st->failed != mlcommSuccess)
    return mlcomm_error(st->comm, st->failed,
                        "%s: the NCCL communicator has failed earlier (see the first error); "
                        "abort this communicator",
                        mlcomm_op_kind_name(op->kind));
  int dev = op->kind == MLCOMM_OP_RECV ? op->recv_dev : op->send_dev;
  int dev2 = op->kind == MLCOMM_OP_SEND ? op->send_dev : op->recv_dev;
  if (dev != st->device || dev2 != st->device)
    return mlcomm_error(st->comm, mlcommInvalidArgument,
                        "%s: a buffer is on CUDA device %d but this communicator's NCCL "
                        "communicator uses device %d (chosen by node-local rank; set "
                        "MLCOMM_CUDA_DEVICE, or allocate on device %d)",
                        mlcomm_op_kind_name(op->kind), dev != st->device ? dev : dev2,
                        st->device, st->device);
  struct nccl_op *no = calloc(1, sizeof *no);
  if (no == NULL) return mlcomm_error(st->comm, mlcommSystemError, "NCCL transport: out of memory");
  no->st = st;
  no->stream = (cudaStream_t)st->comm->cuda_stream;
  op->tstate = no;
  mlcommResult_t made =
      MLCOMM_CUDA_RESULT(st->comm, op, cudaEventCreateWithFlags(&no->event, cudaEventDisableTiming));
  if (made != mlcommSuccess) {
    free(no);
    op->tstate = NULL;
    return made;
  }
  mlcommResult_t res = !mlcomm_op_is_collective(op->kind) ? nccl_p2p_enqueue(st, op, no->stream)
                                  : nccl_coll_enqueue(st, op, no->stream);
  if (res != mlcommSuccess) return res;
  if (st->in_group) { /* queued by NCCL at ncclGroupEnd: record then */
    no->pending_next = st->pending;
    st->pending = no;
    return mlcommSuccess;
  }
  return record(st, op, no);
}

static mlcommResult_t nccl_progress(void *state, struct mlcomm_op *op, bool *done) {
  struct nccl_state *st = state;
  struct nccl_op *no = op->tstate;
  *done = false;
  if (no->result != mlcommSuccess) {
    *done = true;
    return no->result;
  }
  if (!no->recorded) return mlcommSuccess; /* inside an open group */
  bool finished;
  mlcommResult_t res = mlcomm_cuda_event_done(st->comm, op, no->event, &finished);
  if (res != mlcommSuccess) {
    *done = true;
    return res;
  }
  /* Asked whether the work finished or not: a failed peer or network leaves the work
   * pending forever, and work that "finished" may have done so with an error. */
  ncclResult_t async = ncclSuccess;
  ncclResult_t r = ncclCommGetAsyncError(st->nc, &async);
  if (r == ncclSuccess && async != ncclSuccess && async != ncclInProgress) {
    st->failed = nccl_map_result(async);
    *done = true;
    return nccl_fail(st, op, async, "the NCCL communicator (ncclCommGetAsyncError)");
  }
  *done = finished;
  return mlcommSuccess;
}

static void nccl_release(void *state, struct mlcomm_op *op, bool aborting) {
  struct nccl_state *st = state;
  (void)aborting;
  struct nccl_op *no = op->tstate;
  if (no == NULL) return;
  /* Still on the open group's list (a member failed to start): take it off. */
  for (struct nccl_op **p = &st->pending; *p; p = &(*p)->pending_next)
    if (*p == no) {
      *p = no->pending_next;
      break;
    }
  /* Destroying an event whose work is pending is allowed: CUDA frees it afterwards. */
  if (no->event) cudaEventDestroy(no->event);
  free(no);
  op->tstate = NULL;
}

static void nccl_group_begin(void *const *states, int n) {
  ncclGroupStart();
  for (int i = 0; i < n; i++) ((struct nccl_state *)states[i])->in_group = true;
}

static mlcommResult_t nccl_group_end(void *const *states, int n) {
  ncclResult_t r = ncclGroupEnd();
  mlcommResult_t res = mlcommSuccess;
  if (r != ncclSuccess) res = nccl_fail(n > 0 ? states[0] : NULL, NULL, r, "ncclGroupEnd");
  for (int i = 0; i < n; i++) {
    struct nccl_state *st = states[i];
    st->in_group = false;
    while (st->pending) {
      struct nccl_op *no = st->pending;
      st->pending = no->pending_next;
      no->pending_next = NULL;
      if (res != mlcommSuccess) {
        no->result = res;
        continue;
      }
      no->result = MLCOMM_CUDA_RESULT(st->comm, NULL, cudaEventRecord(no->event, no->stream));
      no->recorded = no->result == mlcommSuccess;
    }
  }
  return res;
}

const struct mlcomm_transport mlcomm_transport_nccl = {
    .name = "nccl",
    .id = mlcommTransportNccl,
    /* Buffers a rank does not use carry their partner's kind (enqueue.c), so device-only
     * mems read "every buffer this call touches is device memory"; managed memory goes
     * to shm or MPI. NCCL has no barrier, and send/recv only on a forced communicator
     * (probes and host buffers stay with MPI there). */
    .caps = {.kinds = MLCOMM_KINDS_COLLECTIVE,
             .forced_kinds = MLCOMM_KINDS_P2P,
             .mems = MLCOMM_MEM_BIT(MLCOMM_MEM_DEVICE),
             .span = MLCOMM_SPAN_ANY},
    .tune = "all:0-inf:30",
    .available = nccl_available,
    .init = nccl_comm_init,
    .fini = nccl_comm_fini,
    .supports = nccl_supports,
    .start = nccl_start,
    .progress = nccl_progress,
    .release = nccl_release,
    .abort = nccl_comm_abort,
    .group_begin = nccl_group_begin,
    .group_end = nccl_group_end,
    /* no probe: mlcommProbe/Iprobe are served by MPI (docs/gpu.md) */
};

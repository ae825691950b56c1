/*
 * The NCCL transport's glue to the contract. Priority 20: under auto it carries every
 * collective whose buffers are all CUDA device memory (the same on every rank: NCCL
 * itself requires device buffers everywhere), ahead of shm and MPI. Send/recv go to
 * it only when the communicator's transport is forced to nccl (registry.c).
 *
 * Completion: start queues the NCCL call on the communicator's stream
 * (mlcommCommSetStream; NULL is the legacy default stream) and records a CUDA event
 * after it; progress asks cudaEventQuery, so mlcommTest never blocks, and also
 * ncclCommGetAsyncError, so a failed peer or network surfaces as an error instead of
 * a wait until the timeout.
 *
 * Groups: the outermost mlcommGroupEnd calls group_begin (ncclGroupStart) before it
 * starts its members and group_end (ncclGroupEnd) after; NCCL only queues the group's
 * work at ncclGroupEnd, so the events of the ops started inside are recorded then.
 * ncclGroupStart/End are per thread, like mlcomm's groups, so the list of ops waiting
 * for their event is per thread too.
 */
#include <stdlib.h>

#include "backends/nccl/nccl_internal.h"

static _Thread_local int group_depth;
static _Thread_local struct nccl_op *group_pending;

static bool nccl_supports(void *state, const struct mlcomm_op *op) {
  (void)state;
  ncclDataType_t t;
  ncclRedOp_t r;
  if (op->kind == MLCOMM_OP_BARRIER) return false;
  if (!nccl_type(op->dtype, &t)) return false;
  bool reduces = op->kind == MLCOMM_OP_ALLREDUCE || op->kind == MLCOMM_OP_REDUCE ||
                 op->kind == MLCOMM_OP_REDUCESCATTER;
  if (reduces && !nccl_redop(op->redop, &r)) return false;
  /* Buffers a rank does not use carry their partner's kind (enqueue.c), so this reads
   * "every buffer this call touches is device memory". Managed memory goes to shm/MPI. */
  return op->send_mem == MLCOMM_MEM_DEVICE && op->recv_mem == MLCOMM_MEM_DEVICE;
}

static mlcommResult_t record(struct nccl_state *st, struct mlcomm_op *op, struct nccl_op *no) {
  cudaError_t e = cudaEventRecord(no->event, no->stream);
  if (e != cudaSuccess) return nccl_cuda_fail(st, op, e, "cudaEventRecord");
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
  cudaError_t e = cudaEventCreateWithFlags(&no->event, cudaEventDisableTiming);
  if (e != cudaSuccess) {
    free(no);
    op->tstate = NULL;
    return nccl_cuda_fail(st, op, e, "cudaEventCreateWithFlags");
  }
  mlcommResult_t res = !mlcomm_op_is_collective(op->kind) ? nccl_p2p_enqueue(st, op, no->stream)
                                  : nccl_coll_enqueue(st, op, no->stream);
  if (res != mlcommSuccess) return res;
  if (group_depth > 0) { /* queued by NCCL at ncclGroupEnd: record then */
    no->pending_next = group_pending;
    group_pending = no;
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
  cudaError_t e = cudaEventQuery(no->event);
  if (e != cudaSuccess && e != cudaErrorNotReady) {
    *done = true;
    return nccl_cuda_fail(st, op, e, "cudaEventQuery");
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
  *done = e == cudaSuccess;
  return mlcommSuccess;
}

static void nccl_release(void *state, struct mlcomm_op *op, bool aborting) {
  (void)state, (void)aborting;
  struct nccl_op *no = op->tstate;
  if (no == NULL) return;
  /* Still on this thread's group list (a member failed to start): take it off. */
  for (struct nccl_op **p = &group_pending; *p; p = &(*p)->pending_next)
    if (*p == no) {
      *p = no->pending_next;
      break;
    }
  /* Destroying an event whose work is pending is allowed: CUDA frees it afterwards. */
  if (no->event) cudaEventDestroy(no->event);
  free(no);
  op->tstate = NULL;
}

static void nccl_group_begin(void *state) {
  (void)state;
  group_depth++;
  ncclGroupStart();
}

static mlcommResult_t nccl_group_end(void *state) {
  struct nccl_state *st = state;
  ncclResult_t r = ncclGroupEnd();
  if (--group_depth > 0) return r == ncclSuccess ? mlcommSuccess : nccl_fail(st, NULL, r, "ncclGroupEnd");
  mlcommResult_t res = r == ncclSuccess ? mlcommSuccess : nccl_fail(st, NULL, r, "ncclGroupEnd");
  while (group_pending) {
    struct nccl_op *no = group_pending;
    group_pending = no->pending_next;
    no->pending_next = NULL;
    if (res != mlcommSuccess) {
      no->result = res;
      continue;
    }
    cudaError_t e = cudaEventRecord(no->event, no->stream);
    if (e != cudaSuccess) no->result = nccl_cuda_fail(no->st, NULL, e, "cudaEventRecord");
    else no->recorded = true;
  }
  return res;
}

const struct mlcomm_transport mlcomm_transport_nccl = {
    .name = "nccl",
    .id = mlcommTransportNccl,
    .priority = 20,
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

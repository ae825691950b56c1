/*
 * Device buffers on an MPI that cannot read them. A CUDA-aware MPI
 * (MPIX_Query_cuda_support) gets device pointers as they are, unless the call's
 * reduction runs on the host (user-defined MPI ops, avg); otherwise device buffers go
 * through pinned host memory.
 *
 * Collectives pipeline the copies: each op has nslots slots of pinned memory (taken
 * from a per-communicator cache of blocks, since cudaMallocHost costs milliseconds).
 * Chunk k is copied in (cudaMemcpyAsync on the communicator's stream, then an event)
 * as soon as its slot is free, MPI takes it once its event has fired, and its result
 * is copied out the same way; so the copy in of chunk k+1 and the copy out of chunk
 * k-1 overlap MPI's work on chunk k, and nothing here ever blocks on the GPU.
 *
 * Without CUDA in the build nothing is staged: the pointers are the user's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/mpi/mpi_internal.h"
#include "collectives/reduce.h"
#include "collectives/validate.h"
#include "core/cuda.h"

/* Staged device buffers: chunks in the pipeline at once (pinned slots per call). */
MLCOMM_PARAM(MpiStageSlots, "MLCOMM_MPI_STAGE_SLOTS", 3, 2, 16);

#if MLCOMM_HAVE_MPI_EXT
#include <mpi-ext.h>
#endif

bool mpi_cuda_aware(void) {
#if defined(OMPI_HAVE_MPI_EXT_CUDA) && OMPI_HAVE_MPI_EXT_CUDA
  return MPIX_Query_cuda_support() == 1;
#else
  return false;
#endif
}

bool mpi_gpu_comm(struct mlcomm_comm *comm) {
#if MLCOMM_HAVE_CUDA
  int mine = mlcomm_cuda_usable(), any = mine;
  if (MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm->coll_comm) != MPI_SUCCESS) any = 1;
  return any != 0;
#else
  (void)comm;
  return false;
#endif
}

bool mpi_host_reduces(const struct mlcomm_op *op) {
  bool reduces = op->kind == MLCOMM_OP_ALLREDUCE || op->kind == MLCOMM_OP_REDUCE ||
                 op->kind == MLCOMM_OP_REDUCESCATTER;
  if (!reduces) return false;
  bool avg = false;
  mpi_op(op->dtype, op->redop, &avg);
  bool user_op = op->dtype == mlcommFloat16 || op->dtype == mlcommBfloat16 ||
                 op->dtype == mlcommInt8 || op->dtype == mlcommUint8;
  return avg || user_op;
}

bool mpi_stage_needed(const struct mpi_state *st, const struct mlcomm_op *op) {
  /* Even a CUDA-aware MPI needs host buffers where the transport itself touches them:
   * reductions on the CPU, in-place reduce-scatter and the out-of-place broadcast
   * root (memcpy). */
  bool memcpy_here = (op->kind == MLCOMM_OP_REDUCESCATTER && op->in_place) ||
                     (op->kind == MLCOMM_OP_BROADCAST && !op->in_place &&
                      op->root == st->comm->rank);
  return !st->cuda_aware || mpi_host_reduces(op) || memcpy_here;
}

/* Bytes and offsets of chunk k of the call's send and receive extents. */
static void chunk_extent(const struct mpi_state *st, const struct mlcomm_op *op,
                         const struct mpi_op *mo, size_t k, size_t *off, size_t *send_bytes,
                         size_t *recv_bytes) {
  size_t send_len, recv_len, ts = mlcomm_type_size(op->dtype);
  mlcomm_op_extents(st->comm, op, &send_len, &recv_len);
  if (mo->nchunks <= 1) {
    *off = 0, *send_bytes = send_len, *recv_bytes = recv_len;
    return;
  }
  size_t first = k * mo->chunk_elems, n = op->count - first;
  if (n > mo->chunk_elems) n = mo->chunk_elems;
  *off = first * ts;
  *send_bytes = send_len ? n * ts : 0;
  *recv_bytes = recv_len ? n * ts : 0;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

void mpi_stage_ptrs(const struct mpi_state *st, const struct mlcomm_op *op,
                    const struct mpi_op *mo, size_t k, const void **send, void **recv) {
  size_t off, sb, rb;
  chunk_extent(st, op, mo, k, &off, &sb, &rb);
  const char *user_send = op->sendbuf ? (const char *)op->sendbuf + off : NULL;
  char *user_recv = op->recvbuf ? (char *)op->recvbuf + off : NULL;
  if (mo->block == NULL) {
    *send = user_send, *recv = user_recv;
    return;
  }
  char *base = (char *)mo->block->mem + (k % (size_t)mo->nslots) *
                                            (align64(mo->send_cap) + align64(mo->recv_cap));
  char *slot_recv = base + align64(mo->send_cap);
  if (mo->share) {
    /* One buffer: the input lands where the result will be (allgather: at this rank's
     * block), and MPI works in place on it. */
    *recv = slot_recv;
    *send = slot_recv + ((const char *)op->sendbuf - (const char *)op->recvbuf) *
                            (op->kind == MLCOMM_OP_ALLGATHER);
    return;
  }
  *send = mo->stage_send ? base : user_send;
  *recv = mo->stage_recv ? slot_recv : user_recv;
}

#if MLCOMM_HAVE_CUDA
static void pinned_destroy(struct mpi_pinned *b) {
  for (int i = 0; i < MPI_STAGE_MAX_SLOTS; i++) {
    mlcomm_cuda_event_free(&b->ev_in[i], false);
    mlcomm_cuda_event_free(&b->ev_out[i], false);
  }
  if (b->mem) cudaFreeHost(b->mem);
  free(b);
}

/* The smallest cached block of at least bytes, or a new one. */
static mlcommResult_t pinned_get(struct mpi_state *st, const struct mlcomm_op *op, size_t bytes,
                                 struct mpi_pinned **out) {
  struct mpi_pinned **best = NULL;
  for (struct mpi_pinned **p = &st->pinned; *p; p = &(*p)->next)
    if ((*p)->bytes >= bytes && (best == NULL || (*p)->bytes < (*best)->bytes)) best = p;
  if (best) {
    *out = *best;
    *best = (*best)->next;
    st->npinned--;
    return mlcommSuccess;
  }
  struct mpi_pinned *b = calloc(1, sizeof *b);
  if (b == NULL) return mlcomm_error(st->comm, mlcommSystemError, "MPI transport: out of memory");
  mlcommResult_t res = MLCOMM_CUDA_RESULT(st->comm, op, cudaMallocHost(&b->mem, bytes ? bytes : 1));
  if (res != mlcommSuccess) {
    free(b);
    return res;
  }
  b->bytes = bytes;
  *out = b;
  return mlcommSuccess;
}

static void pinned_put(struct mpi_state *st, struct mpi_pinned *b) {
  if (st->npinned >= 4) {
    pinned_destroy(b);
    return;
  }
  b->next = st->pinned;
  st->pinned = b;
  st->npinned++;
}

/* Queues chunk k's copy in (device input to its slot) or out (slot to the device
 * result), and the slot's event after it. */
static mlcommResult_t copy_chunk(struct mpi_state *st, const struct mlcomm_op *op,
                                 struct mpi_op *mo, size_t k, bool in) {
  size_t off, sb, rb;
  chunk_extent(st, op, mo, k, &off, &sb, &rb);
  const void *hsend;
  void *hrecv;
  mpi_stage_ptrs(st, op, mo, k, &hsend, &hrecv);
  int s = (int)(k % (size_t)mo->nslots);
  if (in)
    return mlcomm_cuda_copy_async(st->comm, op, (void *)hsend, MLCOMM_MEM_PINNED,
                                  (const char *)op->sendbuf + off, op->send_mem, sb,
                                  &mo->block->ev_in[s]);
  return mlcomm_cuda_copy_async(st->comm, op, (char *)op->recvbuf + off, op->recv_mem, hrecv,
                                MLCOMM_MEM_PINNED, rb, &mo->block->ev_out[s]);
}

mlcommResult_t mpi_stage_setup(struct mpi_state *st, const struct mlcomm_op *op,
                               struct mpi_op *mo) {
  size_t send_len, recv_len;
  mlcomm_op_extents(st->comm, op, &send_len, &recv_len);
  bool need = mpi_stage_needed(st, op);
  mo->stage_send = need && send_len && op->send_mem == MLCOMM_MEM_DEVICE;
  mo->stage_recv = need && recv_len && op->recv_mem == MLCOMM_MEM_DEVICE;
  if (!mo->stage_send && !mo->stage_recv) return mlcommSuccess;
  /* In place, or a broadcast root staging both sides: one host buffer serves. */
  mo->share = (op->in_place && op->kind != MLCOMM_OP_REDUCESCATTER) ||
              (op->kind == MLCOMM_OP_BROADCAST && mo->stage_send && mo->stage_recv);
  size_t off, sb, rb;
  chunk_extent(st, op, mo, 0, &off, &sb, &rb);
  if (mo->share) {
    mo->send_cap = 0;
    mo->recv_cap = rb ? rb : sb;
  } else {
    mo->send_cap = mo->stage_send ? sb : 0;
    mo->recv_cap = mo->stage_recv ? rb : 0;
  }
  size_t slots = (size_t)mlcomm_param(st->comm, &mlcomm_param_MpiStageSlots);
  if (slots > MPI_STAGE_MAX_SLOTS) slots = MPI_STAGE_MAX_SLOTS;
  if (slots > mo->nchunks) slots = mo->nchunks;
  mo->nslots = (int)slots;
  return pinned_get(st, op, slots * (align64(mo->send_cap) + align64(mo->recv_cap)), &mo->block);
}

mlcommResult_t mpi_stage_fill(struct mpi_state *st, const struct mlcomm_op *op,
                              struct mpi_op *mo) {
  if (mo->block == NULL) {
    mo->filled = mo->nchunks;
    return mlcommSuccess;
  }
  while (mo->filled < mo->nchunks) {
    size_t k = mo->filled;
    int s = (int)(k % (size_t)mo->nslots);
    struct mpi_slot *slot = &mo->slot[s];
    if (slot->state == MPI_SLOT_DRAINING) {
      bool done;
      MLCOMM_CHECK(mlcomm_cuda_event_done(st->comm, op, mo->block->ev_out[s], &done));
      if (!done) break;
      slot->state = MPI_SLOT_FREE;
    }
    if (slot->state != MPI_SLOT_FREE) break;
    slot->chunk = k;
    slot->state = MPI_SLOT_FILLING;
    mo->filled++;
    if (mo->stage_send) MLCOMM_CHECK(copy_chunk(st, op, mo, k, true));
  }
  return mlcommSuccess;
}

mlcommResult_t mpi_stage_ready(struct mpi_state *st, const struct mlcomm_op *op,
                               struct mpi_op *mo, size_t k, bool *ready) {
  *ready = true;
  if (mo->block == NULL) return mlcommSuccess;
  int s = (int)(k % (size_t)mo->nslots);
  if (mo->slot[s].state != MPI_SLOT_FILLING || mo->slot[s].chunk != k) {
    *ready = false;
    return mlcommSuccess;
  }
  if (!mo->stage_send) return mlcommSuccess;
  MLCOMM_CHECK(mlcomm_cuda_event_done(st->comm, op, mo->block->ev_in[s], ready));
  if (*ready) mo->slot[s].state = MPI_SLOT_POSTED;
  return mlcommSuccess;
}

mlcommResult_t mpi_stage_drain(struct mpi_state *st, const struct mlcomm_op *op,
                               struct mpi_op *mo, size_t k) {
  if (mo->block == NULL) return mlcommSuccess;
  int s = (int)(k % (size_t)mo->nslots);
  struct mpi_slot *slot = &mo->slot[s];
  /* An in-place broadcast root already holds its result on the device. */
  bool out = mo->stage_recv && !(op->kind == MLCOMM_OP_BROADCAST && op->in_place);
  if (!out) {
    slot->state = MPI_SLOT_FREE;
    return mlcommSuccess;
  }
  MLCOMM_CHECK(copy_chunk(st, op, mo, k, false));
  slot->state = MPI_SLOT_DRAINING;
  return mlcommSuccess;
}

mlcommResult_t mpi_stage_drained(struct mpi_state *st, const struct mlcomm_op *op,
                                 struct mpi_op *mo, bool *drained) {
  *drained = true;
  if (mo->block == NULL) return mlcommSuccess;
  for (int s = 0; s < mo->nslots; s++) {
    if (mo->slot[s].state != MPI_SLOT_DRAINING) continue;
    bool done;
    MLCOMM_CHECK(mlcomm_cuda_event_done(st->comm, op, mo->block->ev_out[s], &done));
    if (done) mo->slot[s].state = MPI_SLOT_FREE;
    else *drained = false;
  }
  return mlcommSuccess;
}

/* Point-to-point: the whole message through one pinned block, copied synchronously
 * on the communicator's stream (a send must read its data before MPI_Isend). */
mlcommResult_t mpi_stage_in(struct mpi_state *st, const struct mlcomm_op *op, struct mpi_op *mo) {
  mo->send = op->sendbuf;
  mo->recv = op->recvbuf;
  size_t bytes = op->count * mlcomm_type_size(op->dtype);
  bool send = op->kind == MLCOMM_OP_SEND;
  enum mlcomm_mem_kind kind = send ? op->send_mem : op->recv_mem;
  if (!bytes || kind != MLCOMM_MEM_DEVICE || st->cuda_aware) return mlcommSuccess;
  MLCOMM_CHECK(pinned_get(st, op, bytes, &mo->block));
  if (!send) {
    mo->recv = mo->block->mem;
    return mlcommSuccess;
  }
  MLCOMM_CHECK(mlcomm_cuda_copy_sync(st->comm, op, mo->block->mem, MLCOMM_MEM_PINNED, op->sendbuf,
                                     op->send_mem, bytes));
  mo->send = mo->block->mem;
  return mlcommSuccess;
}

mlcommResult_t mpi_stage_out(struct mpi_state *st, const struct mlcomm_op *op, struct mpi_op *mo) {
  if (mo->block == NULL || op->kind != MLCOMM_OP_RECV || op->status.bytes == 0)
    return mlcommSuccess;
  return mlcomm_cuda_copy_sync(st->comm, op, op->recvbuf, op->recv_mem, mo->recv, MLCOMM_MEM_PINNED,
                               op->status.bytes);
}

void mpi_stage_free(struct mpi_state *st, struct mpi_op *mo) {
  if (mo->block) pinned_put(st, mo->block);
  mo->block = NULL;
}

void mpi_stage_fini(struct mpi_state *st) {
  while (st->pinned) {
    struct mpi_pinned *b = st->pinned;
    st->pinned = b->next;
    pinned_destroy(b);
  }
  st->npinned = 0;
}
#else
mlcommResult_t mpi_stage_setup(struct mpi_state *st, const struct mlcomm_op *op,
                               struct mpi_op *mo) {
  (void)st, (void)op, (void)mo;
  return mlcommSuccess;
}

mlcommResult_t mpi_stage_fill(struct mpi_state *st, const struct mlcomm_op *op,
                              struct mpi_op *mo) {
  (void)st, (void)op;
  mo->filled = mo->nchunks;
  return mlcommSuccess;
}

mlcommResult_t mpi_stage_ready(struct mpi_state *st, const struct mlcomm_op *op,
                               struct mpi_op *mo, size_t k, bool *ready) {
  (void)st, (void)op, (void)mo, (void)k;
  *ready = true;
  return mlcommSuccess;
}

mlcommResult_t mpi_stage_drain(struct mpi_state *st, const struct mlcomm_op *op,
                               struct mpi_op *mo, size_t k) {
  (void)st, (void)op, (void)mo, (void)k;
  return mlcommSuccess;
}

mlcommResult_t mpi_stage_drained(struct mpi_state *st, const struct mlcomm_op *op,
                                 struct mpi_op *mo, bool *drained) {
  (void)st, (void)op, (void)mo;
  *drained = true;
  return mlcommSuccess;
}

mlcommResult_t mpi_stage_in(struct mpi_state *st, const struct mlcomm_op *op, struct mpi_op *mo) {
  (void)st;
  mo->send = op->sendbuf;
  mo->recv = op->recvbuf;
  return mlcommSuccess;
}

mlcommResult_t mpi_stage_out(struct mpi_state *st, const struct mlcomm_op *op, struct mpi_op *mo) {
  (void)st, (void)op, (void)mo;
  return mlcommSuccess;
}

void mpi_stage_free(struct mpi_state *st, struct mpi_op *mo) { (void)st, (void)mo; }

void mpi_stage_fini(struct mpi_state *st) { (void)st; }
#endif

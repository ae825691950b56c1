/*
 * Device buffers on an MPI that cannot read them. A CUDA-aware MPI
 * (MPIX_Query_cuda_support) gets device pointers as they are; otherwise each device
 * buffer is copied through pinned host memory around the MPI call. Without CUDA in
 * the build, buffers are always host memory and nothing here copies.
 */
#include <stdint.h>

#include "backends/mpi/mpi_internal.h"
#include "collectives/validate.h"

#if MLCOMM_HAVE_MPI_EXT
#include <mpi-ext.h>
#endif
#if MLCOMM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

bool mpi_cuda_aware(void) {
#if defined(OMPI_HAVE_MPI_EXT_CUDA) && OMPI_HAVE_MPI_EXT_CUDA
  return MPIX_Query_cuda_support() == 1;
#else
  return false;
#endif
}

#if MLCOMM_HAVE_CUDA
static mlcommResult_t cuda_fail(struct mpi_state *st, const struct mlcomm_op *op, cudaError_t e,
                                const char *call) {
  return mlcomm_error(st->comm, mlcommInternalError, "%s (seq %llu): %s failed: %s",
                      mlcomm_op_kind_name(op->kind), (unsigned long long)op->seq, call,
                      cudaGetErrorString(e));
}

#define CUDA_TRY(st, op, call)                                                             \
  do {                                                                                     \
    cudaError_t e_ = (call);                                                               \
    if (e_ != cudaSuccess) return cuda_fail((st), (op), e_, #call);                        \
  } while (0)

/* Whether the transport itself touches the buffers on the host for this op: user-defined
 * MPI ops (float16, bfloat16, 8-bit integers) run on the CPU, avg divides on the CPU,
 * in-place reduce-scatter and out-of-place root broadcast memcpy. Even a CUDA-aware MPI
 * needs such buffers staged. */
static bool host_work(const struct mpi_state *st, const struct mlcomm_op *op) {
  bool reduces = op->kind == MLCOMM_OP_ALLREDUCE || op->kind == MLCOMM_OP_REDUCE ||
                 op->kind == MLCOMM_OP_REDUCESCATTER;
  bool avg = false;
  if (reduces) mpi_op(op->dtype, op->redop, &avg);
  bool user_op = reduces && (op->dtype == mlcommFloat16 || op->dtype == mlcommBfloat16 ||
                             op->dtype == mlcommInt8 || op->dtype == mlcommUint8);
  return avg || user_op || (op->kind == MLCOMM_OP_REDUCESCATTER && op->in_place) ||
         (op->kind == MLCOMM_OP_BROADCAST && !op->in_place && op->root == st->comm->rank);
}

mlcommResult_t mpi_stage_in(struct mpi_state *st, const struct mlcomm_op *op, struct mpi_op *mo) {
  mo->send = op->sendbuf;
  mo->recv = op->recvbuf;
  size_t send_len, recv_len;
  mlcomm_op_extents(st->comm, op, &send_len, &recv_len);
  bool direct = st->cuda_aware && !host_work(st, op);
  bool s = send_len && op->send_mem == MLCOMM_MEM_DEVICE && !direct;
  bool r = recv_len && op->recv_mem == MLCOMM_MEM_DEVICE && !direct;
  if (!s && !r) return mlcommSuccess;
  if (op->in_place) {
    /* One allocation holds both: stage all of it, inputs included. */
    const char *base = op->kind == MLCOMM_OP_REDUCESCATTER ? op->sendbuf : op->recvbuf;
    size_t len = send_len > recv_len ? send_len : recv_len;
    CUDA_TRY(st, op, cudaMallocHost(&mo->stage_recv, len));
    CUDA_TRY(st, op, cudaMemcpy(mo->stage_recv, base, len, cudaMemcpyDeviceToHost));
    mo->send = (char *)mo->stage_recv + ((const char *)op->sendbuf - base);
    mo->recv = (char *)mo->stage_recv + ((const char *)op->recvbuf - base);
    return mlcommSuccess;
  }
  if (s) {
    CUDA_TRY(st, op, cudaMallocHost(&mo->stage_send, send_len));
    CUDA_TRY(st, op, cudaMemcpy(mo->stage_send, op->sendbuf, send_len, cudaMemcpyDeviceToHost));
    mo->send = mo->stage_send;
  }
  if (r) {
    CUDA_TRY(st, op, cudaMallocHost(&mo->stage_recv, recv_len));
    mo->recv = mo->stage_recv;
  }
  return mlcommSuccess;
}

mlcommResult_t mpi_stage_out(struct mpi_state *st, const struct mlcomm_op *op, struct mpi_op *mo) {
  if (mo->stage_recv == NULL) return mlcommSuccess;
  size_t send_len, recv_len;
  mlcomm_op_extents(st->comm, op, &send_len, &recv_len);
  if (op->kind == MLCOMM_OP_RECV) recv_len = op->status.bytes;
  if (recv_len)
    CUDA_TRY(st, op, cudaMemcpy(op->recvbuf, mo->recv, recv_len, cudaMemcpyHostToDevice));
  return mlcommSuccess;
}

void mpi_stage_free(struct mpi_op *mo) {
  if (mo->stage_send) cudaFreeHost(mo->stage_send);
  if (mo->stage_recv) cudaFreeHost(mo->stage_recv);
  mo->stage_send = mo->stage_recv = NULL;
}
#else
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

void mpi_stage_free(struct mpi_op *mo) { (void)mo; }
#endif

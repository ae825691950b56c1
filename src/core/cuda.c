/*
 * CUDA failures as mlcomm results, and the copies with which the transports stage
 * device buffers through host memory (see cuda.h). Without CUDA in the build only the
 * staging calls remain, refusing, so that the library links the same either way.
 */
#include <string.h>

#include "core/cuda.h"

#if MLCOMM_HAVE_CUDA
mlcommResult_t mlcomm_cuda_error(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                                 cudaError_t err, const char *call, const char *file, int line) {
  /* A non-sticky error would otherwise fail the next, unrelated CUDA call that asks
   * cudaGetLastError; a sticky one stays whatever is done. */
  cudaGetLastError();
  /* The sentence names the function, not the whole argument list (the log has that). */
  int name_len = (int)strcspn(call, " (");
  if (op != NULL)
    mlcomm_error(comm, mlcommInternalError, "%s (seq %llu): %.*s failed: %s",
                 mlcomm_op_kind_name(op->kind), (unsigned long long)op->seq, name_len, call,
                 cudaGetErrorString(err));
  else
    mlcomm_error(comm, mlcommInternalError, "%.*s failed: %s", name_len, call,
                 cudaGetErrorString(err));
  mlcomm_log(MLCOMM_LOG_INFO, file, line, "%s -> %s", call, cudaGetErrorName(err));
  return mlcommInternalError;
}

enum cudaMemcpyKind mlcomm_cuda_copy_kind(enum mlcomm_mem_kind dst, enum mlcomm_mem_kind src) {
  bool dst_dev = dst == MLCOMM_MEM_DEVICE, src_dev = src == MLCOMM_MEM_DEVICE;
  if (dst == MLCOMM_MEM_MANAGED || src == MLCOMM_MEM_MANAGED) return cudaMemcpyDefault;
  if (dst_dev && src_dev) return cudaMemcpyDeviceToDevice;
  if (src_dev) return cudaMemcpyDeviceToHost;
  if (dst_dev) return cudaMemcpyHostToDevice;
  return cudaMemcpyHostToHost;
}

static cudaStream_t stream_of(const struct mlcomm_comm *comm) {
  return (cudaStream_t)comm->cuda_stream;
}

mlcommResult_t mlcomm_cuda_copy_async(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                                      void *dst, enum mlcomm_mem_kind dst_mem, const void *src,
                                      enum mlcomm_mem_kind src_mem, size_t bytes, void **event) {
  if (*event == NULL) {
    cudaEvent_t ev;
    MLCOMM_CUDA_CHECK(comm, op, cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    *event = ev;
  }
  enum cudaMemcpyKind kind = mlcomm_cuda_copy_kind(dst_mem, src_mem);
  if (bytes) MLCOMM_CUDA_CHECK(comm, op, cudaMemcpyAsync(dst, src, bytes, kind, stream_of(comm)));
  MLCOMM_CUDA_CHECK(comm, op, cudaEventRecord((cudaEvent_t)*event, stream_of(comm)));
  return mlcommSuccess;
}

mlcommResult_t mlcomm_cuda_copy_sync(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                                     void *dst, enum mlcomm_mem_kind dst_mem, const void *src,
                                     enum mlcomm_mem_kind src_mem, size_t bytes) {
  /* On the stream rather than cudaMemcpy, which would ignore the caller's stream and
   * wait for the whole device. */
  enum cudaMemcpyKind kind = mlcomm_cuda_copy_kind(dst_mem, src_mem);
  MLCOMM_CUDA_CHECK(comm, op, cudaMemcpyAsync(dst, src, bytes, kind, stream_of(comm)));
  MLCOMM_CUDA_CHECK(comm, op, cudaStreamSynchronize(stream_of(comm)));
  return mlcommSuccess;
}

mlcommResult_t mlcomm_cuda_event_done(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                                      void *event, bool *done) {
  cudaError_t e = cudaEventQuery((cudaEvent_t)event);
  *done = e == cudaSuccess;
  /* Not ready is an answer, not a failure. */
  if (e == cudaErrorNotReady) return mlcommSuccess;
  return mlcomm_cuda_result(e, comm, op, "cudaEventQuery", __FILE__, __LINE__);
}

void mlcomm_cuda_event_free(void **event, bool wait) {
  if (*event == NULL) return;
  /* Teardown: a failure here has no one left to report to. */
  if (wait && cudaEventSynchronize((cudaEvent_t)*event) != cudaSuccess) cudaGetLastError();
  cudaEventDestroy((cudaEvent_t)*event);
  *event = NULL;
}
#else
static mlcommResult_t no_cuda(struct mlcomm_comm *comm, const struct mlcomm_op *op) {
  return mlcomm_error(comm, mlcommUnsupported, "%s: device buffers need CUDA, which this build "
                      "of mlcomm lacks", op ? mlcomm_op_kind_name(op->kind) : "mlcomm");
}

mlcommResult_t mlcomm_cuda_copy_async(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                                      void *dst, enum mlcomm_mem_kind dst_mem, const void *src,
                                      enum mlcomm_mem_kind src_mem, size_t bytes, void **event) {
  (void)dst, (void)dst_mem, (void)src, (void)src_mem, (void)bytes, (void)event;
  return no_cuda(comm, op);
}

mlcommResult_t mlcomm_cuda_copy_sync(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                                     void *dst, enum mlcomm_mem_kind dst_mem, const void *src,
                                     enum mlcomm_mem_kind src_mem, size_t bytes) {
  (void)dst, (void)dst_mem, (void)src, (void)src_mem, (void)bytes;
  return no_cuda(comm, op);
}

mlcommResult_t mlcomm_cuda_event_done(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                                      void *event, bool *done) {
  (void)event;
  *done = true;
  return no_cuda(comm, op);
}

void mlcomm_cuda_event_free(void **event, bool wait) {
  (void)wait;
  *event = NULL;
}
#endif

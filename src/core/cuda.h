/*
 * CUDA for the whole library (cuda.c): one check for every CUDA runtime call, so that
 * each failure reads the same and leaves the same trail, and the device-staging
 * pieces that the shm and MPI transports share (an event-tracked copy between device
 * and host memory on the communicator's stream, and its non-blocking completion test).
 * The check exists only when the build has CUDA, as <cuda_runtime_api.h> does; the
 * staging calls take no CUDA types and, without CUDA, refuse with a sentence.
 */
#ifndef MLCOMM_CORE_CUDA_H
#define MLCOMM_CORE_CUDA_H

#include "core/internal.h"

#if MLCOMM_HAVE_CUDA
#include <cuda_runtime_api.h>

/* ---- checks (cuda.c) */
/* Clears err if it is not sticky, records "<op> (seq N): <function> failed: <CUDA's
 * text>" as comm's last error (no op: no prefix), leaves "<call> -> <error name>" at
 * file:line in the info log, and returns mlcommInternalError. */
mlcommResult_t mlcomm_cuda_error(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                                 cudaError_t err, const char *call, const char *file, int line);

static inline mlcommResult_t mlcomm_cuda_result(cudaError_t err, struct mlcomm_comm *comm,
                                                const struct mlcomm_op *op, const char *call,
                                                const char *file, int line) {
  return err == cudaSuccess ? mlcommSuccess : mlcomm_cuda_error(comm, op, err, call, file, line);
}

/* The call's outcome as an mlcommResult_t, for call sites that undo something before
 * they return a failure. op may be NULL outside a call. */
#define MLCOMM_CUDA_RESULT(comm, op, call)                                                 \
  mlcomm_cuda_result((call), (comm), (op), #call, __FILE__, __LINE__)

/* Returns the failure from the enclosing function. */
#define MLCOMM_CUDA_CHECK(comm, op, call)                                                  \
  do {                                                                                     \
    mlcommResult_t cres_ = MLCOMM_CUDA_RESULT(comm, op, call);                             \
    if (cres_ != mlcommSuccess) return cres_;                                              \
  } while (0)

/* The copy direction for buffers of these kinds: explicit where both ends are known,
 * cudaMemcpyDefault (CUDA infers it) when either end is managed memory. */
enum cudaMemcpyKind mlcomm_cuda_copy_kind(enum mlcomm_mem_kind dst, enum mlcomm_mem_kind src);

#endif

/* ---- staging device buffers through host memory
 * Every copy runs on the communicator's stream (mlcommCommSetStream; NULL: the legacy
 * default stream), so it is ordered after the caller's own work on that stream. Events
 * are held as void * so that transport structs need no CUDA header. */

/* Queues the copy of bytes from src to dst (none when bytes is 0), then records
 * *event after it; *event is created on first use and kept for the next copy. */
mlcommResult_t mlcomm_cuda_copy_async(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                                      void *dst, enum mlcomm_mem_kind dst_mem, const void *src,
                                      enum mlcomm_mem_kind src_mem, size_t bytes, void **event);

/* The same copy, waited for (a send must hold its data before MPI_Isend). */
mlcommResult_t mlcomm_cuda_copy_sync(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                                     void *dst, enum mlcomm_mem_kind dst_mem, const void *src,
                                     enum mlcomm_mem_kind src_mem, size_t bytes);

/* Whether the work recorded before event has finished; never blocks. */
mlcommResult_t mlcomm_cuda_event_done(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                                      void *event, bool *done);

/* Destroys *event (if any), first waiting for its work when wait is set: a copy still
 * reading or writing host memory that is about to be freed must end first. */
void mlcomm_cuda_event_free(void **event, bool wait);

#endif

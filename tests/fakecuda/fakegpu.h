/*
 * fakegpu: a TEST DOUBLE for the CUDA runtime and NCCL, preloaded into mlcomm's test
 * programs (mpirun -x LD_PRELOAD=.../libmlcomm_fakegpu.so) so that the GPU code paths
 * run on machines without a GPU. It is not an emulator of GPU performance and not a
 * drop-in CUDA: it implements only the entry points mlcomm and its tests call, and is
 * built to make the bugs a real GPU would punish visible on a CPU:
 *
 *   - device memory is a memfd mapped twice: the pointer handed out is a PROT_NONE view,
 *     so host code (mlcomm, MPI) that dereferences it segfaults; the fake itself copies
 *     through a second, read-write alias of the same pages;
 *   - copies, memsets and NCCL calls are deferred: they only run when the caller waits
 *     (event query/synchronize, stream/device synchronize, a synchronous cudaMemcpy or
 *     cudaMemset, cudaFree). A caller that reads a result without waiting reads stale
 *     data, and cudaEventQuery answers cudaErrorNotReady at least once for pending work,
 *     so a caller must poll;
 *   - bounds, pointer kinds and devices are checked and refused with errors whose
 *     strings start with "fakegpu: ", so logs show the double.
 *
 * Simplifications (documented in README.md): one global in-order queue for all streams
 * of a process (so stream order is stronger than CUDA's, never weaker); the queue runs
 * on the host thread that waits; NCCL ranks are MPI processes and the NCCL calls are
 * MPI calls on a communicator of the members, made when the queue runs.
 */
#ifndef FAKEGPU_H
#define FAKEGPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

/* Everything not marked FG_API is hidden (-fvisibility=hidden): only the CUDA and NCCL
 * names are exported, so the fake cannot clash with symbols of the program. */
#define FG_API __attribute__((visibility("default")))

/* ---- errors.c: the CUDA "last error" (per thread, like CUDA's) */
/* Records e as the calling thread's last error (unless cudaSuccess) and returns it. */
cudaError_t fg_cuda_fail(cudaError_t e);

/* ---- device.c */
int fg_device_count(void); /* FAKEGPU_DEVICES, read once */
int fg_current_device(void);

/* ---- memory.c: the registry of allocations */
enum fg_kind { FG_UNREGISTERED = 0, FG_DEVICE, FG_PINNED, FG_MANAGED };

struct fg_region {
  enum fg_kind kind;
  int device;     /* device current at allocation */
  uintptr_t base; /* the address handed to the program */
  size_t size;    /* bytes requested: the bound for copies */
  char *alias;    /* where the fake reads/writes the bytes (== base unless FG_DEVICE) */
};

/* The registered region that contains p (bases up to the mapped span count, so even
 * a zero-byte allocation's pointer is found); kind FG_UNREGISTERED when none. */
struct fg_region fg_lookup(const void *p);

/* The address the fake may touch for the len bytes at p: the alias for device memory,
 * p itself for host memory. Fails (NULL) when p is in a registered region and the len
 * bytes run past its end. */
void *fg_translate(const void *p, size_t len);

/* ---- queue.c: the deferred work, one in-order queue per process */
struct fg_work {
  uint64_t seq;                  /* position in the queue, set by fg_enqueue */
  void (*run)(struct fg_work *); /* does the work (without the queue's lock) */
  void (*release)(struct fg_work *);
  /* Whether the work uses the NCCL communicator c (for ncclCommAbort); NULL: never. */
  bool (*uses_comm)(struct fg_work *, const struct ncclComm *c);
  bool running;
  struct fg_work *next;
};

void fg_enqueue(struct fg_work *w);
uint64_t fg_queue_tail(void);      /* seq of the last work enqueued (0: none yet) */
bool fg_done_until(uint64_t mark); /* has every work with seq <= mark run? */
void fg_flush_until(uint64_t mark);
void fg_flush_all(void);
/* Drops the queued (not running) work that uses c; returns whether a work using c is
 * running now on another thread (then c must not be freed). */
bool fg_drop_comm(const struct ncclComm *c);

/* ---- stream.c */
bool fg_stream_valid(cudaStream_t s);

/* ---- nccl_comm.c */
struct ncclComm {
  int rank, nranks, device;
  MPI_Comm mpi;             /* the members, in NCCL rank order; errors returned */
  ncclResult_t async_error; /* set when a deferred call fails while it runs */
};
bool fg_comm_valid(const struct ncclComm *c);
/* Registers a new communicator over mpi (which it then owns). */
ncclResult_t fg_comm_add(int rank, int nranks, int device, MPI_Comm mpi, ncclComm_t *out);
/* Records r as c's asynchronous error (the first one sticks). */
void fg_comm_set_async_error(struct ncclComm *c, ncclResult_t r);
/* Sets the calling thread's ncclGetLastError text (printf-style) and returns r. */
ncclResult_t fg_nccl_fail(ncclResult_t r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- reduce.c: reductions over nblocks blocks of count elements, in block order */
size_t fg_type_size(ncclDataType_t t); /* 0 for an unknown type */
bool fg_type_reducible(ncclDataType_t t);
void fg_reduce_blocks(void *out, const char *in, size_t stride, int nblocks, size_t count,
                      ncclDataType_t t, ncclRedOp_t op);
float fg_half_to_float(uint16_t h);
uint16_t fg_float_to_half(float f);
float fg_bf16_to_float(uint16_t h);
uint16_t fg_float_to_bf16(float f);

#endif

/*
 * The fake NCCL's communicators (the live list, destroy, abort, queries), its version
 * and its error strings. Creation is in nccl_init.c.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakegpu.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
struct live {
  struct ncclComm *comm;
  struct live *next;
};
static struct live *comms; /* live communicators, so a stale handle is refused */

/* NCCL's last-error text is per thread. */
static _Thread_local char last_error[512];

ncclResult_t fg_nccl_fail(ncclResult_t r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return r;
}

bool fg_comm_valid(const struct ncclComm *c) {
  bool ok = false;
  pthread_mutex_lock(&lock);
  for (struct live *l = comms; l && !ok; l = l->next) ok = l->comm == c;
  pthread_mutex_unlock(&lock);
  return ok;
}

void fg_comm_set_async_error(struct ncclComm *c, ncclResult_t r) {
  pthread_mutex_lock(&lock);
  if (c->async_error == ncclSuccess) c->async_error = r; /* keep the first */
  pthread_mutex_unlock(&lock);
}

/* Unlinks c from the live list; false when it is not there. */
static bool unlink_comm(struct ncclComm *c) {
  struct live *found = NULL;
  pthread_mutex_lock(&lock);
  for (struct live **l = &comms; *l; l = &(*l)->next)
    if ((*l)->comm == c) {
      found = *l;
      *l = found->next;
      break;
    }
  pthread_mutex_unlock(&lock);
  free(found);
  return found != NULL;
}

FG_API ncclResult_t ncclGetVersion(int *version) {
  if (version == NULL)
    return fg_nccl_fail(ncclInvalidArgument, "fakegpu: ncclGetVersion: version is NULL");
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

ncclResult_t fg_comm_add(int rank, int nranks, int device, MPI_Comm mpi, ncclComm_t *out) {
  struct ncclComm *c = calloc(1, sizeof *c);
  struct live *l = calloc(1, sizeof *l);
  if (c == NULL || l == NULL) {
    free(c), free(l);
    return fg_nccl_fail(ncclSystemError, "fakegpu: ncclCommInitRank: out of memory");
  }
  /* Failures of deferred calls become the communicator's asynchronous error instead
   * of aborting the job. */
  MPI_Comm_set_errhandler(mpi, MPI_ERRORS_RETURN);
  *c = (struct ncclComm){
      .rank = rank, .nranks = nranks, .device = device, .mpi = mpi, .async_error = ncclSuccess};
  l->comm = c;
  pthread_mutex_lock(&lock);
  l->next = comms;
  comms = l;
  pthread_mutex_unlock(&lock);
  *out = c;
  return ncclSuccess;
}

static void free_comm(struct ncclComm *c) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&c->mpi);
  free(c);
}

FG_API ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (comm == NULL) return ncclSuccess; /* NCCL accepts NULL */
  if (!fg_comm_valid(comm))
    return fg_nccl_fail(ncclInvalidArgument,
                        "fakegpu: ncclCommDestroy: unknown or destroyed communicator");
  /* Like ncclCommFinalize: the calls issued on it complete first. */
  fg_flush_all();
  if (!unlink_comm(comm)) return ncclSuccess; /* destroyed meanwhile by another thread */
  if (!fg_drop_comm(comm)) free_comm(comm);
  return ncclSuccess;
}

FG_API ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (comm == NULL) return ncclSuccess;
  if (!unlink_comm(comm))
    return fg_nccl_fail(ncclInvalidArgument,
                        "fakegpu: ncclCommAbort: unknown or destroyed communicator");
  /* Its queued calls are dropped (peers waiting for them fail or time out, as with
   * NCCL). One running on another thread keeps the communicator: leak it then. */
  if (!fg_drop_comm(comm)) free_comm(comm);
  return ncclSuccess;
}

FG_API ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError) {
  if (asyncError == NULL || !fg_comm_valid(comm))
    return fg_nccl_fail(ncclInvalidArgument,
                        "fakegpu: ncclCommGetAsyncError: unknown communicator or NULL result");
  pthread_mutex_lock(&lock);
  *asyncError = comm->async_error;
  pthread_mutex_unlock(&lock);
  return ncclSuccess;
}

FG_API ncclResult_t ncclCommCount(const ncclComm_t comm, int *count) {
  if (count == NULL || !fg_comm_valid(comm))
    return fg_nccl_fail(ncclInvalidArgument, "fakegpu: ncclCommCount: bad argument");
  *count = comm->nranks;
  return ncclSuccess;
}

FG_API ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank) {
  if (rank == NULL || !fg_comm_valid(comm))
    return fg_nccl_fail(ncclInvalidArgument, "fakegpu: ncclCommUserRank: bad argument");
  *rank = comm->rank;
  return ncclSuccess;
}

FG_API ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int *device) {
  if (device == NULL || !fg_comm_valid(comm))
    return fg_nccl_fail(ncclInvalidArgument, "fakegpu: ncclCommCuDevice: bad argument");
  *device = comm->device;
  return ncclSuccess;
}

FG_API const char *ncclGetErrorString(ncclResult_t result) {
  switch (result) {
  case ncclSuccess: return "fakegpu: no error";
  case ncclUnhandledCudaError: return "fakegpu: unhandled cuda error";
  case ncclSystemError: return "fakegpu: unhandled system error";
  case ncclInternalError: return "fakegpu: internal error";
  case ncclInvalidArgument: return "fakegpu: invalid argument";
  case ncclInvalidUsage: return "fakegpu: invalid usage";
  case ncclRemoteError: return "fakegpu: remote process exited or there was a network error";
  case ncclInProgress: return "fakegpu: NCCL operation in progress";
  default: return "fakegpu: unknown result code";
  }
}

FG_API const char *ncclGetLastError(ncclComm_t comm) {
  (void)comm; /* per thread, like NCCL's */
  return last_error;
}

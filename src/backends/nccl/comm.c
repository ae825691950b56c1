/*
 * One NCCL communicator per mlcomm communicator, bootstrapped over MPI.
 *
 * Device choice: each rank takes the CUDA device numbered by its rank among this
 * communicator's ranks on its node, modulo the devices it sees (local rank 0 -> device
 * 0, ...). MLCOMM_CUDA_DEVICE overrides it: a device number for this process, or
 * "current" for the device the caller made current with cudaSetDevice. The chosen
 * device is made current (cudaSetDevice) and left so, as NCCL programs expect: buffers
 * the caller allocates afterwards land on it.
 *
 * Bootstrap: rank 0 calls ncclGetUniqueId and broadcasts it (with a success flag) over
 * the communicator's collective MPI duplicate; every rank then calls ncclCommInitRank.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/nccl/nccl_internal.h"

/* MLCOMM_CUDA_DEVICE: unset (node-local rank), "current", or a device number. */
#define DEVICE_BY_LOCAL_RANK (-2)
#define DEVICE_CURRENT (-1)
static const struct mlcomm_param_word device_words[] = {{"current", DEVICE_CURRENT}, {NULL, 0}};
MLCOMM_PARAM_WORDS(CudaDevice, "MLCOMM_CUDA_DEVICE", DEVICE_BY_LOCAL_RANK, 0, INT_MAX,
                   device_words);

/* The device this rank will use, or -1 with *why set. */
static int choose_device(const struct mlcomm_comm *comm, int local_rank, int ndev,
                         const char **why) {
  int64_t want = mlcomm_param(comm, &mlcomm_param_CudaDevice);
  if (want == DEVICE_BY_LOCAL_RANK) return local_rank % ndev;
  if (want == DEVICE_CURRENT) {
    int d = -1;
    if (cudaGetDevice(&d) != cudaSuccess) {
      cudaGetLastError();
      *why = "MLCOMM_CUDA_DEVICE=current but cudaGetDevice failed";
      return -1;
    }
    return d;
  }
  if (want >= ndev) {
    *why = "MLCOMM_CUDA_DEVICE names a device number this process does not see";
    return -1;
  }
  return (int)want;
}

static int node_local_rank(MPI_Comm comm, int *local_size) {
  MPI_Comm node;
  int lr = 0;
  *local_size = 1;
  if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
    return 0;
  MPI_Comm_rank(node, &lr);
  MPI_Comm_size(node, local_size);
  MPI_Comm_free(&node);
  return lr;
}

/* Collective: usable only when every rank has a GPU of its own (NCCL refuses two ranks
 * of one communicator on one device: "Duplicate GPU detected"). */
bool nccl_available(struct mlcomm_comm *comm, const char **why) {
  static char reason[256];
  int ndev = 0, local_size = 1;
  int ok = 1;
  const char *mine = NULL;
  cudaError_t e = cudaGetDeviceCount(&ndev);
  if (e != cudaSuccess || ndev == 0) {
    cudaGetLastError();
    snprintf(reason, sizeof reason, "no usable CUDA device on this rank (cudaGetDeviceCount: %s)",
             e == cudaSuccess ? "0 devices" : cudaGetErrorString(e));
    mine = reason;
    ok = 0;
  }
  int lr = node_local_rank(comm->coll_comm, &local_size);
  if (ok && local_size > ndev && mlcomm_param(comm, &mlcomm_param_CudaDevice) == DEVICE_BY_LOCAL_RANK) {
    snprintf(reason, sizeof reason,
             "%d ranks of this communicator share %d GPU(s) on one node, and NCCL needs a GPU "
             "per rank (set MLCOMM_CUDA_DEVICE per rank to choose them yourself)",
             local_size, ndev);
    mine = reason;
    ok = 0;
  }
  if (ok && choose_device(comm, lr, ndev, &mine) < 0) ok = 0;
  int all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm->coll_comm);
  if (!all) *why = mine ? mine : "another rank of the communicator cannot use NCCL (no GPU there)";
  return all == 1;
}

mlcommResult_t nccl_comm_init(struct mlcomm_comm *comm, void **state) {
  struct nccl_state *st = calloc(1, sizeof *st);
  if (st == NULL) return mlcomm_error(comm, mlcommSystemError, "NCCL transport: out of memory");
  st->comm = comm;
  int ndev = 0, local_size = 1;
  cudaGetDeviceCount(&ndev);
  st->local_rank = node_local_rank(comm->coll_comm, &local_size);
  const char *why = NULL;
  st->device = choose_device(comm, st->local_rank, ndev > 0 ? ndev : 1, &why);
  mlcommResult_t res = MLCOMM_CUDA_RESULT(comm, NULL, cudaSetDevice(st->device));
  if (res != mlcommSuccess) {
    free(st);
    return res;
  }
  struct {
    int ok;
    ncclUniqueId id;
  } boot;
  memset(&boot, 0, sizeof boot);
  ncclResult_t r = ncclSuccess;
  if (comm->rank == 0) {
    r = ncclGetUniqueId(&boot.id);
    boot.ok = r == ncclSuccess;
  }
  int mrc = MPI_Bcast(&boot, (int)sizeof boot, MPI_BYTE, 0, comm->coll_comm);
  if (mrc != MPI_SUCCESS) {
    free(st);
    return mlcomm_mpi_error(comm, mrc, "MPI_Bcast of the NCCL unique id");
  }
  if (!boot.ok) {
    res = comm->rank == 0 ? nccl_fail(st, NULL, r, "ncclGetUniqueId")
                          : mlcomm_error(comm, mlcommRemoteError,
                                         "NCCL transport: rank 0 could not create the NCCL "
                                         "unique id");
    free(st);
    return res;
  }
  r = ncclCommInitRank(&st->nc, comm->nranks, boot.id, comm->rank);
  if (r != ncclSuccess) {
    st->nc = NULL;
    res = nccl_fail(st, NULL, r, "ncclCommInitRank");
    free(st);
    return res;
  }
  int version = 0;
  ncclGetVersion(&version);
  MLCOMM_INFO("NCCL transport: NCCL %d, rank %d of %d on CUDA device %d (node-local rank %d)",
              version, comm->rank, comm->nranks, st->device, st->local_rank);
  *state = st;
  return mlcommSuccess;
}

void nccl_comm_fini(void *state) {
  struct nccl_state *st = state;
  if (st == NULL) return;
  if (st->nc) {
    /* Nothing is in flight (mlcommCommDestroy refuses otherwise); after an asynchronous
     * error only abort is safe. */
    if (st->failed != mlcommSuccess) ncclCommAbort(st->nc);
    else ncclCommDestroy(st->nc);
  }
  free(st);
}

/* mlcommCommAbort: ncclCommAbort stops this rank's kernels and frees the communicator;
 * peers blocked in a collective with us see their own timeout or NCCL error. */
void nccl_comm_abort(void *state) {
  struct nccl_state *st = state;
  if (st == NULL) return;
  if (st->nc) ncclCommAbort(st->nc);
  free(st);
}

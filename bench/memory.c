/*
 * memory.c - the benchmark's two buffers, of the kind --memory names:
 *   host   aligned_alloc(64, ...): an application's own memory, which a transport may
 *          have to copy through its own buffers;
 *   alloc  mlcommMemAlloc(comm, ...), freed with mlcommMemFree: memory the transport can
 *          use without copying (on the shm transport, inside the communicator's shared
 *          segment; elsewhere ordinary page-aligned host memory).
 *   device cudaMalloc (builds with CUDA): the harness fills and checks them through a
 *          host mirror of each buffer (hb_host_view/hb_upload/hb_download), outside the
 *          timing; the timed calls see only device pointers.
 * Either kind is zero-filled here, so first-touch page faults stay out of the timing, and
 * the --vs-mpi reference runs on the same buffers.
 */
#include "harness_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if HB_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

/* indexed by enum hb_memory; "device" is listed only where it can be allocated */
static const char *const memory_names[] = {"host", "alloc", "device"};
#if HB_HAVE_CUDA
#define N_MEMORY_KINDS 3
#define MEMORY_LIST "host alloc device"
#else
#define N_MEMORY_KINDS 2
#define MEMORY_LIST "host alloc"
#endif

/* --memory device: the two device buffers and their host mirrors. */
static struct {
  char *dev, *host;
  size_t bytes;
} mirrors[2];

static int find_mirror(const void *p) {
  for (int k = 0; k < 2; k++)
    if (mirrors[k].dev && (const char *)p >= mirrors[k].dev &&
        (const char *)p < mirrors[k].dev + mirrors[k].bytes)
      return k;
  return -1;
}

void *hb_host_view(const void *p) {
  int k = find_mirror(p);
  return k < 0 ? (void *)p : mirrors[k].host + ((const char *)p - mirrors[k].dev);
}

int hb_upload(const void *p, size_t bytes) {
  int k = find_mirror(p);
  if (k < 0 || bytes == 0) return 0;
#if HB_HAVE_CUDA
  return cudaMemcpy((void *)p, hb_host_view(p), bytes, cudaMemcpyHostToDevice) == cudaSuccess ? 0 : -1;
#else
  return -1;
#endif
}

int hb_download(const void *p, size_t bytes) {
  int k = find_mirror(p);
  if (k < 0 || bytes == 0) return 0;
#if HB_HAVE_CUDA
  return cudaMemcpy(hb_host_view(p), p, bytes, cudaMemcpyDeviceToHost) == cudaSuccess ? 0 : -1;
#else
  return -1;
#endif
}

const char *hb_memory_name(int memory) {
  if (memory < 0 || memory >= (int)(sizeof(memory_names) / sizeof(memory_names[0])))
    return "?";
  return memory_names[memory];
}

int hb_memory_from_name(const char *name) {
  for (int k = 0; k < N_MEMORY_KINDS; k++)
    if (strcmp(name, memory_names[k]) == 0) return k;
  return -1;
}

const char *hb_memory_list(void) { return MEMORY_LIST; }

static void report_mlcomm_failure(const char *bench, int rank, const char *what,
                                  mlcommComm_t comm, mlcommResult_t rc) {
  const char *msg = mlcommGetLastError(comm);
  if (!msg || !*msg) msg = mlcommGetLastError(NULL);
  fprintf(stderr, "%s: rank %d: %s failed: %s: %s\n", bench, rank, what,
          mlcommGetErrorString(rc), msg ? msg : "");
}

int hb_buffers_alloc(const struct hb_args *a, mlcommComm_t comm, const char *bench, int rank,
                     size_t bytes, void **send, void **recv) {
  *send = *recv = NULL;
#if HB_HAVE_CUDA
  if (a->memory == HB_MEMORY_DEVICE) {
    for (int k = 0; k < 2; k++) {
      void *d = NULL;
      cudaError_t e = cudaMalloc(&d, bytes);
      if (e != cudaSuccess) {
        fprintf(stderr, "%s: rank %d: cudaMalloc of %zu bytes (--memory device) failed: %s\n",
                bench, rank, bytes, cudaGetErrorString(e));
        hb_buffers_free(a, bench, rank, *send, *recv);
        *send = *recv = NULL;
        return -1;
      }
      mirrors[k].dev = d;
      mirrors[k].bytes = bytes;
      mirrors[k].host = calloc(1, bytes);
      if (k == 0) *send = d;
      else *recv = d;
      if (mirrors[k].host == NULL) {
        fprintf(stderr, "%s: rank %d: cannot allocate a %zu-byte host mirror\n", bench, rank, bytes);
        hb_buffers_free(a, bench, rank, *send, *recv);
        *send = *recv = NULL;
        return -1;
      }
      cudaMemset(d, 0, bytes);
    }
    return 0;
  }
#endif
  if (a->memory == HB_MEMORY_ALLOC) {
    mlcommResult_t rc = mlcommMemAlloc(comm, bytes, send);
    if (rc == mlcommSuccess) rc = mlcommMemAlloc(comm, bytes, recv);
    if (rc != mlcommSuccess) {
      char what[96];
      snprintf(what, sizeof what, "mlcommMemAlloc of 2 x %zu bytes (--memory alloc)", bytes);
      report_mlcomm_failure(bench, rank, what, comm, rc);
      fprintf(stderr, "%s: rank %d: lower -e (or -m), or run with --memory host\n", bench,
              rank);
      mlcommMemFree(*send);
      *send = *recv = NULL;
      return -1;
    }
  } else {
    *send = aligned_alloc(64, bytes);
    *recv = aligned_alloc(64, bytes);
    if (!*send || !*recv) {
      fprintf(stderr, "%s: rank %d: cannot allocate 2 x %zu bytes; lower -e (or -m)\n", bench,
              rank, bytes);
      free(*send);
      free(*recv);
      *send = *recv = NULL;
      return -1;
    }
  }
  memset(*send, 0, bytes);
  memset(*recv, 0, bytes);
  return 0;
}

int hb_buffers_free(const struct hb_args *a, const char *bench, int rank, void *send,
                    void *recv) {
#if HB_HAVE_CUDA
  if (a->memory == HB_MEMORY_DEVICE) {
    (void)bench, (void)rank, (void)send, (void)recv;
    for (int k = 0; k < 2; k++) {
      if (mirrors[k].dev) cudaFree(mirrors[k].dev);
      free(mirrors[k].host);
      mirrors[k].dev = mirrors[k].host = NULL;
      mirrors[k].bytes = 0;
    }
    return 0;
  }
#endif
  if (a->memory != HB_MEMORY_ALLOC) {
    free(send);
    free(recv);
    return 0;
  }
  int bad = 0;
  void *bufs[2] = {send, recv};
  for (int k = 0; k < 2; k++) {
    mlcommResult_t rc = mlcommMemFree(bufs[k]);
    if (rc != mlcommSuccess) {
      report_mlcomm_failure(bench, rank, "mlcommMemFree", MLCOMM_COMM_NULL, rc);
      bad = 1;
    }
  }
  return bad ? -1 : 0;
}

/*
 * memory.c - the benchmark's two buffers, of the kind -m names:
 *   host   aligned_alloc(64, ...): an application's own memory, which a transport may
 *          have to copy through its own buffers;
 *   alloc  mlcommMemAlloc(comm, ...), freed with mlcommMemFree: memory the transport can
 *          use without copying (on the shm transport, inside the communicator's shared
 *          segment; elsewhere ordinary page-aligned host memory).
 * "device" (CUDA buffers) is reserved: args.c refuses it until the harness has them.
 * Either kind is zero-filled here, so first-touch page faults stay out of the timing, and
 * the --vs-mpi reference runs on the same buffers.
 */
#include "harness_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const memory_names[] = {"host", "alloc"};

const char *hb_memory_name(int memory) {
  if (memory < 0 || memory >= (int)(sizeof(memory_names) / sizeof(memory_names[0])))
    return "?";
  return memory_names[memory];
}

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
  if (a->memory == HB_MEMORY_ALLOC) {
    mlcommResult_t rc = mlcommMemAlloc(comm, bytes, send);
    if (rc == mlcommSuccess) rc = mlcommMemAlloc(comm, bytes, recv);
    if (rc != mlcommSuccess) {
      char what[96];
      snprintf(what, sizeof what, "mlcommMemAlloc of 2 x %zu bytes (-m alloc)", bytes);
      report_mlcomm_failure(bench, rank, what, comm, rc);
      fprintf(stderr, "%s: rank %d: lower -e, or run with -m host\n", bench, rank);
      mlcommMemFree(*send);
      *send = *recv = NULL;
      return -1;
    }
  } else {
    *send = aligned_alloc(64, bytes);
    *recv = aligned_alloc(64, bytes);
    if (!*send || !*recv) {
      fprintf(stderr, "%s: rank %d: cannot allocate 2 x %zu bytes; lower -e\n", bench, rank,
              bytes);
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

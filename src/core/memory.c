/*
 * mlcommMemAlloc / mlcommMemFree. A transport that can use memory without copies (the
 * shared-memory transport's per-rank pool) hands it out; otherwise the core falls back
 * to page-aligned host memory. Every allocation is recorded here, keyed by pointer, so
 * that MemFree refuses a pointer it did not hand out and works after the communicator
 * is gone (the transport's cookie keeps its mapping alive until the last free).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backends/transport.h"
#include "collectives/validate.h"
#include "core/internal.h"

struct allocation {
  void *ptr;
  size_t bytes;
  void *cookie;                     /* the transport's, NULL for the fallback */
  void (*free_fn)(void *cookie, void *ptr);
  struct allocation *next;
};

static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct allocation *allocations;

static mlcommResult_t record(void *ptr, size_t bytes, void *cookie,
                             void (*free_fn)(void *, void *)) {
  struct allocation *a = malloc(sizeof *a);
  if (a == NULL) return mlcommSystemError;
  *a = (struct allocation){ptr, bytes, cookie, free_fn, NULL};
  pthread_mutex_lock(&alloc_lock);
  a->next = allocations;
  allocations = a;
  pthread_mutex_unlock(&alloc_lock);
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommMemAlloc(mlcommComm_t comm, size_t bytes, void **ptr) {
  static const char fn[] = "mlcommMemAlloc";
  MLCOMM_CHECK(mlcomm_comm_check(comm, fn));
  if (ptr == NULL) return mlcomm_error(comm, mlcommInvalidArgument, "%s: ptr (the output) is NULL", fn);
  *ptr = NULL;
  if (bytes == 0) return mlcomm_error(comm, mlcommInvalidArgument, "%s: bytes is 0, expected > 0", fn);
  for (int i = 0; i < comm->ntransports; i++) {
    const struct mlcomm_transport *t = comm->transports[i].t;
    if (t->mem_alloc == NULL) continue;
    void *p = NULL, *cookie = NULL;
    mlcommResult_t res = t->mem_alloc(comm->transports[i].state, bytes, &p, &cookie);
    if (res == mlcommUnsupported) continue; /* e.g. the pool is full: fall back */
    if (res != mlcommSuccess) return res;
    if (record(p, bytes, cookie, t->mem_free) != mlcommSuccess) {
      t->mem_free(cookie, p);
      return mlcomm_error(comm, mlcommSystemError, "%s: out of memory", fn);
    }
    *ptr = p;
    return mlcommSuccess;
  }
  void *p = NULL;
  if (posix_memalign(&p, 4096, bytes) != 0)
    return mlcomm_error(comm, mlcommSystemError, "%s: cannot allocate %zu bytes of host memory", fn,
                        bytes);
  if (record(p, bytes, NULL, NULL) != mlcommSuccess) {
    free(p);
    return mlcomm_error(comm, mlcommSystemError, "%s: out of memory", fn);
  }
  *ptr = p;
  return mlcommSuccess;
}

struct in_use {
  const char *lo, *hi;
  bool found;
};

static bool overlaps(const void *buf, size_t len, const struct in_use *u) {
  const char *b = buf;
  return b != NULL && len > 0 && b < u->hi && b + len > u->lo;
}

static void scan_comm(struct mlcomm_comm *comm, void *arg) {
  struct in_use *u = arg;
  for (struct mlcomm_request *r = comm->live; r && !u->found; r = r->next) {
    if (r->state == MLCOMM_REQ_DONE) continue;
    size_t sbytes, rbytes;
    mlcomm_op_extents(comm, &r->op, &sbytes, &rbytes);
    if (overlaps(r->op.sendbuf, sbytes, u) || overlaps(r->op.recvbuf, rbytes, u)) u->found = true;
  }
}

MLCOMM_API mlcommResult_t mlcommMemFree(void *ptr) {
  static const char fn[] = "mlcommMemFree";
  if (ptr == NULL) return mlcommSuccess;
  pthread_mutex_lock(&alloc_lock);
  struct allocation **p = &allocations;
  while (*p && (*p)->ptr != ptr) p = &(*p)->next;
  struct allocation *a = *p;
  pthread_mutex_unlock(&alloc_lock);
  if (a == NULL)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "%s: %p was not returned by mlcommMemAlloc (or was freed already)", fn, ptr);
  mlcomm_progress_all(); /* lets finished requests go */
  struct in_use u = {(const char *)a->ptr, (const char *)a->ptr + a->bytes, false};
  mlcomm_comm_foreach(scan_comm, &u);
  if (u.found)
    return mlcomm_error(NULL, mlcommInProgress,
                        "%s: %p (%zu bytes) is still used by a request in flight; wait for it "
                        "first",
                        fn, ptr, a->bytes);
  pthread_mutex_lock(&alloc_lock);
  for (p = &allocations; *p; p = &(*p)->next)
    if (*p == a) {
      *p = a->next;
      break;
    }
  pthread_mutex_unlock(&alloc_lock);
  if (a->free_fn) a->free_fn(a->cookie, a->ptr);
  else free(a->ptr);
  free(a);
  return mlcommSuccess;
}

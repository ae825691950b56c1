/*
 * Allocations and the registry that classifies pointers.
 *
 * Device memory (cudaMalloc) is a memfd mapped twice: a PROT_NONE view, whose address
 * is the "device pointer" the program gets, and a read-write alias that only the fake
 * touches. Host code that dereferences a device pointer therefore faults at once, as it
 * would on a discrete GPU (where it would read garbage or fault later). The memfd is
 * closed right after mapping: the two mappings keep the pages alive, and a test that
 * allocates many buffers does not run out of file descriptors.
 *
 * Pinned host memory (cudaMallocHost/cudaHostAlloc) is ordinary aligned heap memory and
 * managed memory (cudaMallocManaged) an anonymous read-write mapping; both are host
 * accessible, as they are with CUDA, and registered only so that
 * cudaPointerGetAttributes can tell them apart.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fakegpu.h"

struct fg_alloc {
  struct fg_region r;
  size_t span; /* bytes reserved at r.base: pointers in [base, base+span) belong here */
  struct fg_alloc *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fg_alloc *allocs; /* few live buffers in tests: a list is enough */

static size_t page_round(size_t n) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (n == 0) return page; /* a zero-byte allocation still gets a distinct pointer */
  if (n > SIZE_MAX - page) return 0;
  return (n + page - 1) / page * page;
}

/* Fills in a new allocation of the current device and links it in. */
static void add(struct fg_alloc *a, enum fg_kind kind, void *base, size_t size, void *alias,
                size_t span) {
  a->r = (struct fg_region){.kind = kind,
                            .device = fg_current_device(),
                            .base = (uintptr_t)base,
                            .size = size,
                            .alias = alias};
  a->span = span;
  pthread_mutex_lock(&lock);
  a->next = allocs;
  allocs = a;
  pthread_mutex_unlock(&lock);
}

/* Unlinks and returns the allocation whose base is p and whose kind is in kinds (a bit
 * set of 1 << kind); NULL when there is none. */
static struct fg_alloc *take(const void *p, unsigned kinds) {
  struct fg_alloc *found = NULL;
  pthread_mutex_lock(&lock);
  for (struct fg_alloc **a = &allocs; *a; a = &(*a)->next)
    if ((*a)->r.base == (uintptr_t)p && (kinds & (1u << (*a)->r.kind))) {
      found = *a;
      *a = found->next;
      break;
    }
  pthread_mutex_unlock(&lock);
  return found;
}

struct fg_region fg_lookup(const void *p) {
  struct fg_region out = {.kind = FG_UNREGISTERED, .device = -2};
  uintptr_t u = (uintptr_t)p;
  pthread_mutex_lock(&lock);
  for (struct fg_alloc *a = allocs; a; a = a->next)
    if (u >= a->r.base && u - a->r.base < a->span) {
      out = a->r;
      break;
    }
  pthread_mutex_unlock(&lock);
  return out;
}

void *fg_translate(const void *p, size_t len) {
  struct fg_region r = fg_lookup(p);
  if (r.kind == FG_UNREGISTERED) return (void *)p;
  size_t off = (uintptr_t)p - r.base;
  if (off > r.size || len > r.size - off) return NULL;
  return r.alias + off;
}

FG_API cudaError_t cudaMalloc(void **devPtr, size_t size) {
  if (devPtr == NULL) return fg_cuda_fail(cudaErrorInvalidValue);
  if (fg_device_count() == 0) return fg_cuda_fail(cudaErrorNoDevice);
  size_t span = page_round(size);
  struct fg_alloc *a = calloc(1, sizeof *a);
  int fd = span ? memfd_create("fakegpu-device", MFD_CLOEXEC) : -1;
  void *view = MAP_FAILED, *alias = MAP_FAILED;
  if (a && fd >= 0 && ftruncate(fd, (off_t)span) == 0) {
    view = mmap(NULL, span, PROT_NONE, MAP_SHARED, fd, 0);
    alias = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  if (fd >= 0) close(fd);
  if (view == MAP_FAILED || alias == MAP_FAILED) {
    if (view != MAP_FAILED) munmap(view, span);
    if (alias != MAP_FAILED) munmap(alias, span);
    free(a);
    return fg_cuda_fail(cudaErrorMemoryAllocation);
  }
  add(a, FG_DEVICE, view, size, alias, span);
  *devPtr = view;
  return cudaSuccess;
}

FG_API cudaError_t cudaMallocManaged(void **devPtr, size_t size, unsigned int flags) {
  if (devPtr == NULL || (flags != cudaMemAttachGlobal && flags != cudaMemAttachHost))
    return fg_cuda_fail(cudaErrorInvalidValue);
  if (fg_device_count() == 0) return fg_cuda_fail(cudaErrorNoDevice);
  size_t span = page_round(size);
  struct fg_alloc *a = calloc(1, sizeof *a);
  void *p = span ? mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                 : MAP_FAILED;
  if (a == NULL || p == MAP_FAILED) {
    if (p != MAP_FAILED) munmap(p, span);
    free(a);
    return fg_cuda_fail(cudaErrorMemoryAllocation);
  }
  add(a, FG_MANAGED, p, size, p, span);
  *devPtr = p;
  return cudaSuccess;
}

FG_API cudaError_t cudaFree(void *devPtr) {
  if (devPtr == NULL) return cudaSuccess;
  struct fg_alloc *a = take(devPtr, 1u << FG_DEVICE | 1u << FG_MANAGED);
  if (a == NULL) return fg_cuda_fail(cudaErrorInvalidValue);
  /* cudaFree synchronizes the device; it also keeps deferred work, which holds alias
   * addresses, from touching unmapped pages. */
  fg_flush_all();
  munmap((void *)a->r.base, a->span);
  if (a->r.kind == FG_DEVICE) munmap(a->r.alias, a->span);
  free(a);
  return cudaSuccess;
}

FG_API cudaError_t cudaHostAlloc(void **pHost, size_t size, unsigned int flags) {
  const unsigned known = cudaHostAllocPortable | cudaHostAllocMapped | cudaHostAllocWriteCombined;
  if (pHost == NULL || (flags & ~known)) return fg_cuda_fail(cudaErrorInvalidValue);
  if (fg_device_count() == 0) return fg_cuda_fail(cudaErrorNoDevice);
  size_t span = size == 0 ? 64 : size;
  if (span > SIZE_MAX - 63) return fg_cuda_fail(cudaErrorMemoryAllocation);
  span = (span + 63) / 64 * 64;
  struct fg_alloc *a = calloc(1, sizeof *a);
  void *p = aligned_alloc(64, span);
  if (a == NULL || p == NULL) {
    free(a), free(p);
    return fg_cuda_fail(cudaErrorMemoryAllocation);
  }
  add(a, FG_PINNED, p, size, p, span);
  *pHost = p;
  return cudaSuccess;
}

FG_API cudaError_t cudaMallocHost(void **ptr, size_t size) {
  return cudaHostAlloc(ptr, size, cudaHostAllocDefault);
}

FG_API cudaError_t cudaFreeHost(void *ptr) {
  if (ptr == NULL) return cudaSuccess;
  struct fg_alloc *a = take(ptr, 1u << FG_PINNED);
  if (a == NULL) return fg_cuda_fail(cudaErrorInvalidValue);
  fg_flush_all(); /* deferred copies may still read or write it */
  free((void *)a->r.base);
  free(a);
  return cudaSuccess;
}

FG_API cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *attributes,
                                            const void *ptr) {
  if (attributes == NULL) return fg_cuda_fail(cudaErrorInvalidValue);
  memset(attributes, 0, sizeof *attributes);
  struct fg_region r = fg_lookup(ptr);
  attributes->device = r.device;
  switch (r.kind) {
  case FG_DEVICE:
    attributes->type = cudaMemoryTypeDevice;
    attributes->devicePointer = (void *)ptr;
    break;
  case FG_PINNED:
    attributes->type = cudaMemoryTypeHost;
    attributes->devicePointer = (void *)ptr; /* mapped at the same address (UVA) */
    attributes->hostPointer = (void *)ptr;
    break;
  case FG_MANAGED:
    attributes->type = cudaMemoryTypeManaged;
    attributes->devicePointer = (void *)ptr;
    attributes->hostPointer = (void *)ptr;
    break;
  default: /* CUDA 11+ answers success for memory it does not know */
    attributes->type = cudaMemoryTypeUnregistered;
    attributes->device = -2;
    attributes->hostPointer = (void *)ptr;
    break;
  }
  return cudaSuccess;
}

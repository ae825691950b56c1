/*
 * Where a buffer lives. Without CUDA in the build every pointer is host memory; with
 * it, cudaPointerGetAttributes tells, and a machine with no usable GPU is detected
 * once so that host-only runs pay nothing per call.
 */
#include "core/internal.h"

#if MLCOMM_HAVE_CUDA
#include <cuda_runtime_api.h>

static int cuda_usable = -1; /* -1 unknown, 0 no device/driver, 1 usable */

bool mlcomm_cuda_usable(void) {
  if (cuda_usable < 0) {
    int n = 0;
    cuda_usable = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    if (!cuda_usable) cudaGetLastError(); /* clear the sticky error */
    MLCOMM_INFO("CUDA %s (%d device(s))", cuda_usable ? "usable" : "not usable", n);
  }
  return cuda_usable == 1;
}

enum mlcomm_mem_kind mlcomm_mem_classify(const void *ptr, int *device) {
  *device = -1;
  if (ptr == NULL || !mlcomm_cuda_usable()) return MLCOMM_MEM_HOST;
  struct cudaPointerAttributes attr;
  if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
    cudaGetLastError();
    return MLCOMM_MEM_HOST;
  }
  switch (attr.type) {
  case cudaMemoryTypeHost: return MLCOMM_MEM_PINNED;
  case cudaMemoryTypeDevice: *device = attr.device; return MLCOMM_MEM_DEVICE;
  case cudaMemoryTypeManaged: *device = attr.device; return MLCOMM_MEM_MANAGED;
  default: return MLCOMM_MEM_HOST;
  }
}
#else
bool mlcomm_cuda_usable(void) { return false; }

enum mlcomm_mem_kind mlcomm_mem_classify(const void *ptr, int *device) {
  (void)ptr;
  *device = -1;
  return MLCOMM_MEM_HOST;
}
#endif

enum mlcomm_mem_kind mlcomm_mem_kind(const void *ptr) {
  int device;
  return mlcomm_mem_classify(ptr, &device);
}

/*
 * Where a buffer lives. Without CUDA in the build every pointer is host memory; with
 * it, cudaPointerGetAttributes tells, and a machine with no usable GPU is detected
 * once so that host-only runs pay nothing per call.
 */
#include "core/internal.h"

#if MLCOMM_HAVE_CUDA
#include <cuda_runtime_api.h>

static int cuda_usable = -1; /* -1 unknown, 0 no device/driver, 1 usable */

enum mlcomm_mem_kind mlcomm_mem_kind(const void *ptr) {
  if (ptr == NULL) return MLCOMM_MEM_HOST;
  if (cuda_usable < 0) {
    int n = 0;
    cuda_usable = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    if (!cuda_usable) cudaGetLastError(); /* clear the sticky error */
    MLCOMM_INFO("CUDA %s (%d device(s))", cuda_usable ? "usable" : "not usable", n);
  }
  if (!cuda_usable) return MLCOMM_MEM_HOST;
  struct cudaPointerAttributes attr;
  if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
    cudaGetLastError();
    return MLCOMM_MEM_HOST;
  }
  switch (attr.type) {
  case cudaMemoryTypeHost: return MLCOMM_MEM_PINNED;
  case cudaMemoryTypeDevice: return MLCOMM_MEM_DEVICE;
  case cudaMemoryTypeManaged: return MLCOMM_MEM_MANAGED;
  default: return MLCOMM_MEM_HOST;
  }
}
#else
enum mlcomm_mem_kind mlcomm_mem_kind(const void *ptr) {
  (void)ptr;
  return MLCOMM_MEM_HOST;
}
#endif

const char *mlcomm_mem_kind_name(enum mlcomm_mem_kind kind) {
  switch (kind) {
  case MLCOMM_MEM_HOST: return "host";
  case MLCOMM_MEM_PINNED: return "pinned host";
  case MLCOMM_MEM_DEVICE: return "device";
  case MLCOMM_MEM_MANAGED: return "managed";
  }
  return "unknown";
}

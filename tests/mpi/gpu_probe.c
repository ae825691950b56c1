/* Exits 0 when this process sees a usable CUDA device, else prints why and exits 77
 * (meson's SKIP). Used by bench_device.sh before it runs a benchmark with -m device. */
#include <stdio.h>

#if MLCOMM_TEST_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

int main(void) {
#if MLCOMM_TEST_HAVE_CUDA
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaSuccess && n > 0) return 0;
  printf("SKIPPED: no usable CUDA device (cudaGetDeviceCount: %s, %d device(s))\n",
         e == cudaSuccess ? "ok" : cudaGetErrorString(e), n);
#else
  printf("SKIPPED: this build has no CUDA (no toolkit found, or meson -Dcuda=disabled)\n");
#endif
  return 77;
}

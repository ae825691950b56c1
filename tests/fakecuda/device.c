/*
 * Device control. The number of fake devices comes from the environment variable
 * FAKEGPU_DEVICES (default 1; 0 behaves like a machine without a GPU). Devices have no
 * properties of their own: the ordinal only tags allocations and NCCL communicators, so
 * that a buffer on the wrong device, or two ranks sharing one, are caught.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "fakegpu.h"

#define FG_MAX_DEVICES 64

static pthread_once_t count_once = PTHREAD_ONCE_INIT;
static int device_count = 1;
/* CUDA's current device is per host thread; 0 until cudaSetDevice. */
static _Thread_local int current_device = 0;

static void read_count(void) {
  const char *env = getenv("FAKEGPU_DEVICES");
  if (env == NULL || *env == '\0') return;
  char *end = NULL;
  long n = strtol(env, &end, 10);
  if (*end != '\0' || n < 0 || n > FG_MAX_DEVICES) {
    /* A misspelt setting would silently test something else: stop loudly instead. */
    fprintf(stderr, "fakegpu: FAKEGPU_DEVICES=\"%s\" is not a number from 0 to %d\n", env,
            FG_MAX_DEVICES);
    abort();
  }
  device_count = (int)n;
}

int fg_device_count(void) {
  pthread_once(&count_once, read_count);
  return device_count;
}

int fg_current_device(void) { return current_device; }

FG_API cudaError_t cudaGetDeviceCount(int *count) {
  if (count == NULL) return fg_cuda_fail(cudaErrorInvalidValue);
  *count = fg_device_count();
  return *count == 0 ? fg_cuda_fail(cudaErrorNoDevice) : cudaSuccess;
}

FG_API cudaError_t cudaSetDevice(int device) {
  int n = fg_device_count();
  if (n == 0) return fg_cuda_fail(cudaErrorNoDevice);
  if (device < 0 || device >= n) return fg_cuda_fail(cudaErrorInvalidDevice);
  current_device = device;
  return cudaSuccess;
}

FG_API cudaError_t cudaGetDevice(int *device) {
  if (device == NULL) return fg_cuda_fail(cudaErrorInvalidValue);
  if (fg_device_count() == 0) return fg_cuda_fail(cudaErrorNoDevice);
  *device = current_device;
  return cudaSuccess;
}

FG_API cudaError_t cudaDeviceSynchronize(void) {
  if (fg_device_count() == 0) return fg_cuda_fail(cudaErrorNoDevice);
  fg_flush_all();
  return cudaSuccess;
}

FG_API cudaError_t cudaDriverGetVersion(int *driverVersion) {
  if (driverVersion == NULL) return fg_cuda_fail(cudaErrorInvalidValue);
  *driverVersion = 13000;
  return cudaSuccess;
}

FG_API cudaError_t cudaRuntimeGetVersion(int *runtimeVersion) {
  if (runtimeVersion == NULL) return fg_cuda_fail(cudaErrorInvalidValue);
  *runtimeVersion = 13000;
  return cudaSuccess;
}

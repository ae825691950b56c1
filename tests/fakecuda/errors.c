/*
 * CUDA error reporting: the per-thread last error and the error strings. Every string
 * starts with "fakegpu: " so that a log line quoting it shows that the test double, not
 * a real CUDA runtime, produced it.
 */
#include "fakegpu.h"

/* CUDA keeps the last error per host thread; cudaGetLastError reads and clears it. */
static _Thread_local cudaError_t last_error = cudaSuccess;

cudaError_t fg_cuda_fail(cudaError_t e) {
  /* cudaErrorNotReady is a status, not an error: CUDA does not record it either. */
  if (e != cudaSuccess && e != cudaErrorNotReady) last_error = e;
  return e;
}

FG_API cudaError_t cudaGetLastError(void) {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

FG_API cudaError_t cudaPeekAtLastError(void) { return last_error; }

struct fg_error_text {
  cudaError_t code;
  const char *name;
  const char *text;
};

/* Only the errors the fake returns; anything else is "unrecognized". */
static const struct fg_error_text texts[] = {
    {cudaSuccess, "fakegpu: cudaSuccess", "fakegpu: no error"},
    {cudaErrorInvalidValue, "fakegpu: cudaErrorInvalidValue",
     "fakegpu: invalid argument (bad pointer, size, flags, or a copy past an allocation's end)"},
    {cudaErrorMemoryAllocation, "fakegpu: cudaErrorMemoryAllocation", "fakegpu: out of memory"},
    {cudaErrorInvalidPitchValue, "fakegpu: cudaErrorInvalidPitchValue",
     "fakegpu: invalid pitch (width larger than a pitch)"},
    {cudaErrorInvalidMemcpyDirection, "fakegpu: cudaErrorInvalidMemcpyDirection",
     "fakegpu: invalid cudaMemcpyKind"},
    {cudaErrorNoDevice, "fakegpu: cudaErrorNoDevice",
     "fakegpu: no CUDA-capable device (FAKEGPU_DEVICES=0)"},
    {cudaErrorInvalidDevice, "fakegpu: cudaErrorInvalidDevice",
     "fakegpu: invalid device ordinal (see FAKEGPU_DEVICES)"},
    {cudaErrorInvalidResourceHandle, "fakegpu: cudaErrorInvalidResourceHandle",
     "fakegpu: invalid resource handle (unknown or destroyed stream or event)"},
    {cudaErrorNotReady, "fakegpu: cudaErrorNotReady",
     "fakegpu: device not ready (deferred work pending; poll again)"},
};

static const struct fg_error_text *find_text(cudaError_t e) {
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
    if (texts[i].code == e) return &texts[i];
  return NULL;
}

FG_API const char *cudaGetErrorName(cudaError_t error) {
  const struct fg_error_text *t = find_text(error);
  return t ? t->name : "fakegpu: cudaErrorUnrecognized";
}

FG_API const char *cudaGetErrorString(cudaError_t error) {
  const struct fg_error_text *t = find_text(error);
  return t ? t->text : "fakegpu: unrecognized error code";
}

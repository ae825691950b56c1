/*
 * Self-test of libmlcomm_fakegpu.so. Linked against the real libcudart and libnccl (as
 * mlcomm is) and run with the fake preloaded:
 *
 *   FAKEGPU_DEVICES=2 mpirun -np 2 -x FAKEGPU_DEVICES -x LD_PRELOAD=.../libmlcomm_fakegpu.so \
 *       fakegpu_selftest            every check; needs a fake device per rank of a node
 *   ... FAKEGPU_DEVICES=1, -np 2:  fakegpu_selftest dup        NCCL refuses a shared GPU
 *   ... FAKEGPU_DEVICES=0:         fakegpu_selftest nodevice   behaves as a GPU-less host
 *
 * Prints one "FAIL" line per failed check and exits 1 if there was any, 0 otherwise.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

static int rank, nranks, local_rank, local_size, ndev, my_dev, failures;

#define CHECK(cond, ...) check_((cond), __LINE__, __VA_ARGS__)
static bool check_(bool ok, int line, const char *fmt, ...) {
  if (ok) return true;
  va_list ap;
  va_start(ap, fmt);
  printf("FAIL [rank %d] selftest.c:%d: ", rank, line);
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
  failures++;
  return false;
}

#define CUDA_OK(call) CHECK((call) == cudaSuccess, "%s did not succeed", #call)
#define NCCL_OK(call)                                                                              \
  CHECK((call) == ncclSuccess, "%s did not succeed: %s", #call, ncclGetLastError(NULL))

static void *dev_alloc(size_t n) {
  void *p = NULL;
  CUDA_OK(cudaMalloc(&p, n));
  return p;
}

/* ---- host access to device memory faults */

/* Whether touching p (read or write) kills a forked child with SIGSEGV. */
static bool access_faults(void *p, bool write) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    /* MPI installs its own SIGSEGV handler (with a backtrace); a plain death is wanted. */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    if (write)
      *(volatile char *)p = 1;
    else
      (void)*(volatile char *)p;
    _exit(0);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return false;
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

static void test_host_access(void) {
  char *d = dev_alloc(10000);
  if (!d) return;
  CHECK(access_faults(d, false), "reading a cudaMalloc pointer on the host did not segfault");
  CHECK(access_faults(d + 9999, true),
        "writing inside a cudaMalloc buffer on the host did not segfault");
  CUDA_OK(cudaFree(d));
  /* Pinned and managed memory are host memory: they must not fault. */
  char *h = NULL, *m = NULL;
  CUDA_OK(cudaMallocHost((void **)&h, 100));
  CUDA_OK(cudaMallocManaged((void **)&m, 100, cudaMemAttachGlobal));
  if (h && m) {
    h[99] = 7, m[99] = 9;
    CHECK(h[99] == 7 && m[99] == 9, "pinned or managed memory is not host accessible");
    CHECK(((uintptr_t)h & 63) == 0, "pinned memory is not 64-byte aligned");
  }
  CUDA_OK(cudaFreeHost(h));
  CUDA_OK(cudaFree(m));
}

/* ---- copies */

static void test_memcpy(void) {
  enum { N = 5000 };
  unsigned char src[N], back[N];
  for (int i = 0; i < N; i++) src[i] = (unsigned char)(i * 7 + rank);
  unsigned char *a = dev_alloc(N), *b = dev_alloc(N);
  if (!a || !b) return;
  CUDA_OK(cudaMemcpy(a, src, N, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(b, a, N, cudaMemcpyDeviceToDevice));
  memset(back, 0, N);
  CUDA_OK(cudaMemcpy(back, b, N, cudaMemcpyDeviceToHost));
  CHECK(memcmp(src, back, N) == 0, "H2D, D2D, D2H round trip lost data");
  /* Interior pointers, cudaMemcpyDefault. */
  CUDA_OK(cudaMemcpy(b + 100, a + 1000, 50, cudaMemcpyDefault));
  CUDA_OK(cudaMemcpy(back, b + 100, 50, cudaMemcpyDefault));
  CHECK(memcmp(back, src + 1000, 50) == 0, "copy between interior device pointers is wrong");
  CUDA_OK(cudaMemset(a + 10, 0x5a, 20));
  CUDA_OK(cudaMemcpy(back, a, 40, cudaMemcpyDeviceToHost));
  CHECK(back[9] == src[9] && back[10] == 0x5a && back[29] == 0x5a && back[30] == src[30],
        "cudaMemset wrote the wrong bytes");

  /* Past the end: refused, and remembered until cudaGetLastError. */
  cudaGetLastError();
  CHECK(cudaMemcpy(back, a + 1, N, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue,
        "a D2H copy running past the allocation was not refused");
  CHECK(cudaMemcpyAsync(a + N - 10, src, 11, cudaMemcpyHostToDevice, NULL) == cudaErrorInvalidValue,
        "an async H2D copy running past the allocation was not refused at enqueue");
  CHECK(cudaPeekAtLastError() == cudaErrorInvalidValue, "cudaPeekAtLastError lost the error");
  CHECK(cudaGetLastError() == cudaErrorInvalidValue, "cudaGetLastError lost the error");
  CHECK(cudaGetLastError() == cudaSuccess, "cudaGetLastError did not clear the error");
  CHECK(cudaMemcpy(back, a, 1, (enum cudaMemcpyKind)17) == cudaErrorInvalidMemcpyDirection,
        "a bad cudaMemcpyKind was accepted");
  CHECK(strncmp(cudaGetErrorString(cudaErrorInvalidValue), "fakegpu: ", 9) == 0 &&
            strncmp(cudaGetErrorName(cudaErrorInvalidValue), "fakegpu: ", 9) == 0,
        "error strings lack the fakegpu prefix");
  cudaGetLastError();

  /* cudaFree rules. */
  int on_stack;
  CUDA_OK(cudaFree(NULL));
  CHECK(cudaFree(&on_stack) == cudaErrorInvalidValue, "cudaFree of a host pointer was accepted");
  CHECK(cudaFree(a + 1) == cudaErrorInvalidValue, "cudaFree of an interior pointer was accepted");
  CHECK(cudaFreeHost(a) == cudaErrorInvalidValue, "cudaFreeHost of device memory was accepted");
  cudaGetLastError();
  void *z = NULL;
  CUDA_OK(cudaMalloc(&z, 0));
  CHECK(z != NULL, "cudaMalloc of 0 bytes gave NULL");
  CUDA_OK(cudaFree(z));
  CUDA_OK(cudaFree(a));
  CUDA_OK(cudaFree(b));
}

static void test_2d(void) {
  enum { W = 24, H = 5, DP = 40, HP = 32 };
  unsigned char host[H * W], out[H * HP], all[H * DP];
  for (int i = 0; i < H * W; i++) host[i] = (unsigned char)(i + 1);
  unsigned char *d = dev_alloc(H * DP);
  if (!d) return;
  cudaStream_t s;
  CUDA_OK(cudaStreamCreate(&s));
  CUDA_OK(cudaMemset(d, 0xee, H * DP));
  CUDA_OK(cudaMemcpy2DAsync(d, DP, host, W, W, H, cudaMemcpyHostToDevice, s));
  memset(out, 0, sizeof out);
  CUDA_OK(cudaMemcpy2DAsync(out, HP, d, DP, W, H, cudaMemcpyDeviceToHost, s));
  CUDA_OK(cudaStreamSynchronize(s));
  CUDA_OK(cudaMemcpy(all, d, sizeof all, cudaMemcpyDeviceToHost));
  for (int r = 0; r < H; r++) {
    CHECK(memcmp(out + r * HP, host + r * W, W) == 0, "2D copy: row %d wrong", r);
    CHECK(out[r * HP + W] == 0, "2D copy: wrote past the width in the destination pitch");
    CHECK(all[r * DP + W] == 0xee && all[r * DP + DP - 1] == 0xee,
          "2D copy: device pitch padding of row %d was overwritten", r);
  }
  CHECK(cudaMemcpy2DAsync(d, W - 1, host, W, W, H, cudaMemcpyHostToDevice, s) ==
            cudaErrorInvalidPitchValue,
        "a width larger than the pitch was accepted");
  CHECK(cudaMemcpy2DAsync(d, 2 * DP, host, W, W, H, cudaMemcpyHostToDevice, s) ==
            cudaErrorInvalidValue,
        "a 2D copy running past the allocation was accepted");
  cudaGetLastError();
  CUDA_OK(cudaStreamDestroy(s));
  CHECK(cudaStreamSynchronize(s) == cudaErrorInvalidResourceHandle,
        "a destroyed stream was accepted");
  cudaGetLastError();
  CUDA_OK(cudaFree(d));
}

/* Deferred work: nothing moves until a wait; the first query of pending work says
 * "not ready" (and makes progress), the next says done. */
static void test_events(void) {
  enum { N = 4096 };
  unsigned char *src = NULL, *dst = NULL;
  CUDA_OK(cudaMallocHost((void **)&src, N));
  CUDA_OK(cudaHostAlloc((void **)&dst, N, cudaHostAllocDefault));
  unsigned char *d = dev_alloc(N);
  cudaStream_t s;
  cudaEvent_t ev, never;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CUDA_OK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  CUDA_OK(cudaEventCreate(&never));
  if (!src || !dst || !d) return;
  for (int i = 0; i < N; i++) src[i] = (unsigned char)(i ^ 0x55), dst[i] = 0;
  CUDA_OK(cudaMemcpyAsync(d, src, N, cudaMemcpyHostToDevice, s));
  CUDA_OK(cudaMemcpyAsync(dst, d, N, cudaMemcpyDeviceToHost, s));
  CUDA_OK(cudaEventRecord(ev, s));
  CHECK(dst[0] == 0 && dst[N - 1] == 0, "async copies ran before anything waited");
  CHECK(cudaEventQuery(never) == cudaSuccess, "a never-recorded event is not complete");
  CHECK(cudaEventQuery(ev) == cudaErrorNotReady, "the event was complete before the copy ran");
  CHECK(cudaGetLastError() == cudaSuccess, "cudaErrorNotReady was recorded as the last error");
  CHECK(cudaEventQuery(ev) == cudaSuccess, "the event did not complete on the second query");
  CHECK(memcmp(src, dst, N) == 0, "async H2D + D2H round trip lost data");

  /* Memset async, then event synchronize. */
  CUDA_OK(cudaMemsetAsync(d, 0x11, N / 2, s));
  CUDA_OK(cudaMemcpyAsync(dst, d, N, cudaMemcpyDeviceToHost, NULL));
  CUDA_OK(cudaEventRecord(ev, NULL));
  CUDA_OK(cudaEventSynchronize(ev));
  CHECK(dst[0] == 0x11 && dst[N / 2 - 1] == 0x11 && dst[N / 2] == src[N / 2],
        "cudaMemsetAsync + D2H gave wrong bytes");
  CHECK(cudaEventQuery(ev) == cudaSuccess, "event not complete after cudaEventSynchronize");

  /* Device synchronize runs everything. */
  dst[0] = 0;
  CUDA_OK(cudaMemcpyAsync(dst, d, 1, cudaMemcpyDefault, s));
  CUDA_OK(cudaDeviceSynchronize());
  CHECK(dst[0] == 0x11, "cudaDeviceSynchronize did not run the queued copy");

  CUDA_OK(cudaEventDestroy(never));
  CHECK(cudaEventQuery(never) == cudaErrorInvalidResourceHandle, "a destroyed event was accepted");
  cudaGetLastError();
  CUDA_OK(cudaEventDestroy(ev));
  CUDA_OK(cudaStreamDestroy(s));
  CUDA_OK(cudaFree(d));
  CUDA_OK(cudaFreeHost(src));
  CUDA_OK(cudaFreeHost(dst));
}

static void test_attributes(void) {
  struct cudaPointerAttributes at;
  char *d = dev_alloc(1000), *h = NULL, *m = NULL;
  int stack = 0;
  CUDA_OK(cudaMallocHost((void **)&h, 1000));
  CUDA_OK(cudaMallocManaged((void **)&m, 1000, cudaMemAttachGlobal));
  if (!d || !h || !m) return;
  CUDA_OK(cudaPointerGetAttributes(&at, d + 999));
  CHECK(at.type == cudaMemoryTypeDevice && at.device == my_dev && at.devicePointer == d + 999 &&
            at.hostPointer == NULL,
        "device pointer attributes wrong (type %d device %d)", (int)at.type, at.device);
  CUDA_OK(cudaPointerGetAttributes(&at, h + 10));
  CHECK(at.type == cudaMemoryTypeHost && at.hostPointer == h + 10,
        "pinned pointer attributes wrong");
  CUDA_OK(cudaPointerGetAttributes(&at, m));
  CHECK(at.type == cudaMemoryTypeManaged && at.device == my_dev,
        "managed pointer attributes wrong");
  CUDA_OK(cudaPointerGetAttributes(&at, &stack));
  CHECK(at.type == cudaMemoryTypeUnregistered && at.device < 0 && at.devicePointer == NULL,
        "host pointer attributes wrong (type %d)", (int)at.type);
  CUDA_OK(cudaFree(d));
  CUDA_OK(cudaPointerGetAttributes(&at, d));
  CHECK(at.type == cudaMemoryTypeUnregistered, "a freed device pointer is still device memory");
  CUDA_OK(cudaFreeHost(h));
  CUDA_OK(cudaFree(m));
}

/* ---- NCCL */

/* Exact conversions for the values used here (normal numbers and zero only). */
static uint16_t f2h(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) == 0) return (uint16_t)(x >> 16);
  return (uint16_t)((x >> 16 & 0x8000) | (((x >> 23 & 0xff) - 112) << 10) | (x >> 13 & 0x3ff));
}
static float h2f(uint16_t h) {
  uint32_t x = (uint32_t)(h & 0x8000) << 16;
  if (h & 0x7fff) x |= ((uint32_t)(h >> 10 & 0x1f) + 112) << 23 | (uint32_t)(h & 0x3ff) << 13;
  float f;
  memcpy(&f, &x, 4);
  return f;
}
static uint16_t f2b(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  return (uint16_t)(x >> 16);
}
static float b2f(uint16_t b) {
  uint32_t x = (uint32_t)b << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

static const struct {
  ncclDataType_t t;
  const char *name;
  size_t size;
} types[] = {{ncclInt8, "int8", 1},     {ncclUint8, "uint8", 1},   {ncclInt32, "int32", 4},
             {ncclUint32, "uint32", 4}, {ncclInt64, "int64", 8},   {ncclUint64, "uint64", 8},
             {ncclFloat16, "half", 2},  {ncclFloat32, "float", 4}, {ncclFloat64, "double", 8},
             {ncclBfloat16, "bf16", 2}};
static const char *const op_names[] = {"sum", "prod", "max", "min", "avg"};

static bool is_float(ncclDataType_t t) {
  return t == ncclFloat16 || t == ncclFloat32 || t == ncclFloat64 || t == ncclBfloat16;
}

static void put(void *buf, size_t i, ncclDataType_t t, double v) {
  switch (t) {
  case ncclInt8: ((int8_t *)buf)[i] = (int8_t)(int64_t)v; break;
  case ncclUint8: ((uint8_t *)buf)[i] = (uint8_t)(int64_t)v; break;
  case ncclInt32: ((int32_t *)buf)[i] = (int32_t)(int64_t)v; break;
  case ncclUint32: ((uint32_t *)buf)[i] = (uint32_t)(int64_t)v; break;
  case ncclInt64: ((int64_t *)buf)[i] = (int64_t)v; break;
  case ncclUint64: ((uint64_t *)buf)[i] = (uint64_t)(int64_t)v; break;
  case ncclFloat16: ((uint16_t *)buf)[i] = f2h((float)v); break;
  case ncclFloat32: ((float *)buf)[i] = (float)v; break;
  case ncclFloat64: ((double *)buf)[i] = v; break;
  case ncclBfloat16: ((uint16_t *)buf)[i] = f2b((float)v); break;
  default: break;
  }
}

static double get(const void *buf, size_t i, ncclDataType_t t) {
  switch (t) {
  case ncclInt8: return ((const int8_t *)buf)[i];
  case ncclUint8: return ((const uint8_t *)buf)[i];
  case ncclInt32: return ((const int32_t *)buf)[i];
  case ncclUint32: return ((const uint32_t *)buf)[i];
  case ncclInt64: return (double)((const int64_t *)buf)[i];
  case ncclUint64: return (double)((const uint64_t *)buf)[i];
  case ncclFloat16: return h2f(((const uint16_t *)buf)[i]);
  case ncclFloat32: return ((const float *)buf)[i];
  case ncclFloat64: return ((const double *)buf)[i];
  case ncclBfloat16: return b2f(((const uint16_t *)buf)[i]);
  default: return 0;
  }
}

/* Rank r's element i: small positive integers, exact in every type. */
static double value(int r, size_t i) { return (double)(i % 3 + 1 + (size_t)r); }

static double expected(ncclRedOp_t op, size_t i, ncclDataType_t t, int n) {
  double acc = value(0, i);
  for (int r = 1; r < n; r++) {
    double v = value(r, i);
    if (op == ncclProd)
      acc *= v;
    else if (op == ncclMax)
      acc = v > acc ? v : acc;
    else if (op == ncclMin)
      acc = v < acc ? v : acc;
    else
      acc += v;
  }
  if (op == ncclAvg) acc = is_float(t) ? acc / n : (double)((int64_t)acc / n);
  /* Integer products wrap in the type; the fake must wrap the same way. */
  if (!is_float(t)) {
    unsigned char one[8];
    put(one, 0, t, acc);
    acc = get(one, 0, t);
  }
  return acc;
}

static bool close_enough(double got, double want, ncclDataType_t t) {
  double tol = t == ncclFloat16 || t == ncclBfloat16 ? 1e-2 : t == ncclFloat32 ? 1e-6 : 0;
  double d = got - want;
  if (d < 0) d = -d;
  return d <= tol * (want < 0 ? -want : want);
}

/* Fills count elements with value(rank, .) on the device (at d). */
static void fill_dev(void *d, size_t count, ncclDataType_t t, size_t size, int r) {
  unsigned char *h = malloc(count * size);
  for (size_t i = 0; i < count; i++) put(h, i, t, value(r, i));
  CUDA_OK(cudaMemcpy(d, h, count * size, cudaMemcpyHostToDevice));
  free(h);
}

static void test_allreduce_all(ncclComm_t comm, cudaStream_t s) {
  const size_t count = 1001;
  for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
    ncclDataType_t t = types[k].t;
    size_t sz = types[k].size;
    void *sb = dev_alloc(count * sz), *rb = dev_alloc(count * sz);
    unsigned char *h = malloc(count * sz);
    for (int op = ncclSum; op <= ncclAvg; op++) {
      for (int inplace = 0; inplace < 2; inplace++) {
        void *dst = inplace ? sb : rb;
        fill_dev(sb, count, t, sz, rank);
        NCCL_OK(ncclAllReduce(sb, dst, count, t, (ncclRedOp_t)op, comm, s));
        CUDA_OK(cudaStreamSynchronize(s));
        CUDA_OK(cudaMemcpy(h, dst, count * sz, cudaMemcpyDeviceToHost));
        int bad = 0;
        for (size_t i = 0; i < count && bad < 3; i++) {
          double want = expected((ncclRedOp_t)op, i, t, nranks), got = get(h, i, t);
          bad += !CHECK(close_enough(got, want, t), "allreduce %s %s%s [%zu]: got %g want %g",
                        types[k].name, op_names[op], inplace ? " in place" : "", i, got, want);
        }
      }
    }
    free(h);
    CUDA_OK(cudaFree(sb));
    CUDA_OK(cudaFree(rb));
  }
}

/* Rounding to nearest even on the way back to half / bfloat16 (needs 2 ranks). */
static void test_rounding(ncclComm_t comm) {
  if (nranks < 2) return;
  /* half: 1 + 2^-11 is a tie -> 1.0 (even); (1 + 2^-10) + 2^-11 -> 1 + 2^-9 (even). */
  uint16_t hin[2] = {0, 0}, bin[2] = {0, 0}, hout[2], bout[2];
  if (rank == 0) hin[0] = 0x3c00, hin[1] = 0x3c01, bin[0] = 0x3f80, bin[1] = 0x3f81;
  if (rank == 1) hin[0] = hin[1] = 0x1000, bin[0] = bin[1] = 0x3b80; /* 2^-11, 2^-8 */
  uint16_t *dh = dev_alloc(4), *db = dev_alloc(4);
  CUDA_OK(cudaMemcpy(dh, hin, 4, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(db, bin, 4, cudaMemcpyHostToDevice));
  NCCL_OK(ncclGroupStart());
  NCCL_OK(ncclAllReduce(dh, dh, 2, ncclFloat16, ncclSum, comm, NULL));
  NCCL_OK(ncclAllReduce(db, db, 2, ncclBfloat16, ncclSum, comm, NULL));
  NCCL_OK(ncclGroupEnd());
  CUDA_OK(cudaMemcpy(hout, dh, 4, cudaMemcpyDeviceToHost));
  CUDA_OK(cudaMemcpy(bout, db, 4, cudaMemcpyDeviceToHost));
  CHECK(hout[0] == 0x3c00 && hout[1] == 0x3c02, "half sum rounding: got %04x %04x, want 3c00 3c02",
        hout[0], hout[1]);
  CHECK(bout[0] == 0x3f80 && bout[1] == 0x3f82, "bf16 sum rounding: got %04x %04x, want 3f80 3f82",
        bout[0], bout[1]);
  CUDA_OK(cudaFree(dh));
  CUDA_OK(cudaFree(db));
}

static void test_movements(ncclComm_t comm, cudaStream_t s) {
  const size_t count = 777;
  size_t bytes = count * 4, all = bytes * (size_t)nranks;
  int32_t *h = malloc(all), *want = malloc(all);
  int32_t *a = dev_alloc(all), *b = dev_alloc(all);
  cudaEvent_t ev;
  CUDA_OK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));

  /* Broadcast from the last rank (separate buffers), then in place from rank 0. */
  for (size_t i = 0; i < count; i++) h[i] = (int32_t)(i * 3 + (size_t)rank * 100000);
  CUDA_OK(cudaMemcpy(a, h, bytes, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemset(b, 0, bytes));
  NCCL_OK(ncclBroadcast(a, b, count, ncclInt32, nranks - 1, comm, s));
  CUDA_OK(cudaEventRecord(ev, s));
  CHECK(cudaEventQuery(ev) == cudaErrorNotReady, "broadcast: event complete before a wait");
  while (cudaEventQuery(ev) == cudaErrorNotReady) {
  }
  CUDA_OK(cudaMemcpy(h, b, bytes, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < count; i++)
    if (!CHECK(h[i] == (int32_t)(i * 3 + (size_t)(nranks - 1) * 100000), "broadcast [%zu] wrong",
               i))
      break;
  for (size_t i = 0; i < count; i++) h[i] = (int32_t)(i + (size_t)rank * 7);
  CUDA_OK(cudaMemcpy(a, h, bytes, cudaMemcpyHostToDevice));
  NCCL_OK(ncclBroadcast(a, a, count, ncclInt32, 0, comm, s));
  CUDA_OK(cudaMemcpy(h, a, bytes, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < count; i++)
    if (!CHECK(h[i] == (int32_t)i, "in-place broadcast [%zu] wrong", i)) break;

  /* Reduce (max) to the last rank. */
  for (size_t i = 0; i < count; i++) h[i] = (int32_t)(i % 10) * (rank + 1);
  CUDA_OK(cudaMemcpy(a, h, bytes, cudaMemcpyHostToDevice));
  NCCL_OK(
      ncclReduce(a, rank == nranks - 1 ? b : NULL, count, ncclInt32, ncclMax, nranks - 1, comm, s));
  CUDA_OK(cudaStreamSynchronize(s));
  if (rank == nranks - 1) {
    CUDA_OK(cudaMemcpy(h, b, bytes, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < count; i++)
      if (!CHECK(h[i] == (int32_t)(i % 10) * nranks, "reduce max [%zu] wrong", i)) break;
  }

  /* AllGather, then in place (rank r's block already at a + r*count). */
  for (int r = 0; r < nranks; r++)
    for (size_t i = 0; i < count; i++)
      want[(size_t)r * count + i] = (int32_t)(r * 1000 + (int)(i % 100));
  CUDA_OK(cudaMemcpy(a, want + (size_t)rank * count, bytes, cudaMemcpyHostToDevice));
  NCCL_OK(ncclAllGather(a, b, count, ncclInt32, comm, s));
  CUDA_OK(cudaStreamSynchronize(s));
  CUDA_OK(cudaMemcpy(h, b, all, cudaMemcpyDeviceToHost));
  CHECK(memcmp(h, want, all) == 0, "allgather wrong");
  CUDA_OK(cudaMemset(b, 0, all));
  CUDA_OK(cudaMemcpy(b + (size_t)rank * count, want + (size_t)rank * count, bytes,
                     cudaMemcpyHostToDevice));
  NCCL_OK(ncclAllGather(b + (size_t)rank * count, b, count, ncclInt32, comm, s));
  CUDA_OK(cudaStreamSynchronize(s));
  CUDA_OK(cudaMemcpy(h, b, all, cudaMemcpyDeviceToHost));
  CHECK(memcmp(h, want, all) == 0, "in-place allgather wrong");

  /* ReduceScatter (sum): element j of block r is r + j + rank; then in place. */
  for (int inplace = 0; inplace < 2; inplace++) {
    for (int r = 0; r < nranks; r++)
      for (size_t i = 0; i < count; i++)
        h[(size_t)r * count + i] = (int32_t)((size_t)r + i + (size_t)rank);
    CUDA_OK(cudaMemcpy(a, h, all, cudaMemcpyHostToDevice));
    int32_t *dst = inplace ? a + (size_t)rank * count : b;
    NCCL_OK(ncclReduceScatter(a, dst, count, ncclInt32, ncclSum, comm, s));
    CUDA_OK(cudaStreamSynchronize(s));
    CUDA_OK(cudaMemcpy(h, dst, bytes, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < count; i++) {
      int32_t w =
          (int32_t)((size_t)nranks * ((size_t)rank + i) + (size_t)(nranks * (nranks - 1) / 2));
      if (!CHECK(h[i] == w, "reducescatter%s [%zu]: got %d want %d", inplace ? " in place" : "", i,
                 h[i], w))
        break;
    }
  }
  CUDA_OK(cudaEventDestroy(ev));
  CUDA_OK(cudaFree(a));
  CUDA_OK(cudaFree(b));
  free(h), free(want);
}

/* A ring in one group: every rank sends to the next and receives from the previous.
 * Without the group each blocking send would wait for a receive not yet posted. */
static void test_ring(ncclComm_t comm, cudaStream_t s) {
  const size_t count = 100000; /* large enough that MPI does not send eagerly */
  size_t bytes = count * 8;
  double *h = malloc(bytes);
  double *out = dev_alloc(bytes), *in = dev_alloc(bytes);
  for (size_t i = 0; i < count; i++) h[i] = (double)rank * 1e6 + (double)i;
  CUDA_OK(cudaMemcpy(out, h, bytes, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemset(in, 0, bytes));
  int next = (rank + 1) % nranks, prev = (rank + nranks - 1) % nranks;
  cudaEvent_t ev;
  CUDA_OK(cudaEventCreate(&ev));
  NCCL_OK(ncclGroupStart());
  NCCL_OK(ncclGroupStart()); /* nested: only the outermost end queues */
  NCCL_OK(ncclSend(out, count, ncclFloat64, next, comm, s));
  NCCL_OK(ncclGroupEnd());
  NCCL_OK(ncclRecv(in, count, ncclFloat64, prev, comm, s));
  NCCL_OK(ncclGroupEnd());
  CUDA_OK(cudaEventRecord(ev, s));
  CHECK(cudaEventQuery(ev) == cudaErrorNotReady, "ring: event complete before a wait");
  CUDA_OK(cudaEventSynchronize(ev));
  CUDA_OK(cudaMemcpy(h, in, bytes, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < count; i++)
    if (!CHECK(h[i] == (double)prev * 1e6 + (double)i, "ring: element %zu from rank %d wrong", i,
               prev))
      break;
  CHECK(ncclGroupEnd() == ncclInvalidUsage, "an unmatched ncclGroupEnd was accepted");
  CUDA_OK(cudaEventDestroy(ev));
  CUDA_OK(cudaFree(out));
  CUDA_OK(cudaFree(in));
  free(h);
}

/* Arguments NCCL refuses, each with a last-error text naming what is wrong. */
static void test_nccl_refusals(ncclComm_t comm) {
  float host[16] = {0};
  float *d = dev_alloc(16 * sizeof(float)), *big = dev_alloc(32 * sizeof(float));
  CHECK(ncclAllReduce(host, d, 16, ncclFloat32, ncclSum, comm, NULL) == ncclInvalidArgument &&
            strstr(ncclGetLastError(comm), "sendbuff") != NULL,
        "a host sendbuff was not refused by name (%s)", ncclGetLastError(comm));
  CHECK(ncclAllReduce(big, d, 17, ncclFloat32, ncclSum, comm, NULL) == ncclInvalidArgument &&
            strstr(ncclGetLastError(comm), "recvbuff") != NULL,
        "a too small buffer was not refused (%s)", ncclGetLastError(comm));
  CHECK(ncclAllReduce(d, d, 16, ncclFloat32, (ncclRedOp_t)9, comm, NULL) == ncclInvalidArgument,
        "a bad reduction op was accepted");
  CHECK(ncclSend(d, 1, ncclFloat32, nranks, comm, NULL) == ncclInvalidArgument,
        "a send to a rank out of range was accepted");
  CHECK(strncmp(ncclGetErrorString(ncclInvalidArgument), "fakegpu: ", 9) == 0,
        "ncclGetErrorString lacks the fakegpu prefix");
  if (ndev > 1) { /* a buffer on another device than the communicator's */
    float *other = NULL;
    CUDA_OK(cudaSetDevice((my_dev + 1) % ndev));
    CUDA_OK(cudaMalloc((void **)&other, 16 * sizeof(float)));
    CUDA_OK(cudaSetDevice(my_dev));
    CHECK(ncclAllReduce(d, other, 16, ncclFloat32, ncclSum, comm, NULL) == ncclInvalidArgument &&
              strstr(ncclGetLastError(comm), "device") != NULL,
          "a buffer on another device was not refused (%s)", ncclGetLastError(comm));
    CUDA_OK(cudaFree(other));
  }
  ncclResult_t async = ncclInternalError;
  NCCL_OK(ncclCommGetAsyncError(comm, &async));
  CHECK(async == ncclSuccess, "the communicator has an asynchronous error (%d)", (int)async);
  CUDA_OK(cudaFree(d));
  CUDA_OK(cudaFree(big));
}

/* The world rank of each NCCL rank of comm, gathered through the fake (allgather). */
static void gather_world_ranks(ncclComm_t comm, int n, int *out) {
  int32_t mine = rank, *d = dev_alloc(sizeof(int32_t) * (size_t)n);
  int32_t *src = dev_alloc(sizeof(int32_t));
  CUDA_OK(cudaMemcpy(src, &mine, sizeof mine, cudaMemcpyHostToDevice));
  NCCL_OK(ncclAllGather(src, d, 1, ncclInt32, comm, NULL));
  CUDA_OK(cudaMemcpy(out, d, sizeof(int32_t) * (size_t)n, cudaMemcpyDeviceToHost));
  CUDA_OK(cudaFree(d));
  CUDA_OK(cudaFree(src));
}

/* Communicators other than MPI_COMM_WORLD in its order: the world reversed, and (with
 * 2+ ranks) the even and odd ranks, each reversed, as after a split. */
static void test_subcomms(void) {
  int *got = malloc(sizeof(int) * (size_t)nranks);
  ncclUniqueId id;
  ncclComm_t comm = NULL;
  memset(&id, 0, sizeof id);
  if (rank == nranks - 1) NCCL_OK(ncclGetUniqueId(&id)); /* NCCL rank 0 creates it */
  MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, nranks - 1, MPI_COMM_WORLD);
  if (NCCL_OK(ncclCommInitRank(&comm, nranks, id, nranks - 1 - rank))) {
    gather_world_ranks(comm, nranks, got);
    for (int i = 0; i < nranks; i++)
      CHECK(got[i] == nranks - 1 - i, "reversed world: NCCL rank %d is world rank %d", i, got[i]);
    NCCL_OK(ncclCommDestroy(comm));
  }
  if (nranks >= 2) {
    MPI_Comm half;
    int hrank, hsize;
    MPI_Comm_split(MPI_COMM_WORLD, rank % 2, -rank, &half);
    MPI_Comm_rank(half, &hrank);
    MPI_Comm_size(half, &hsize);
    memset(&id, 0, sizeof id);
    if (hrank == 0) NCCL_OK(ncclGetUniqueId(&id));
    MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, half);
    comm = NULL;
    if (NCCL_OK(ncclCommInitRank(&comm, hsize, id, hrank))) {
      gather_world_ranks(comm, hsize, got);
      /* Half rank i is the i-th largest world rank of this parity. */
      int top = (nranks - 1) % 2 == rank % 2 ? nranks - 1 : nranks - 2;
      for (int i = 0; i < hsize; i++)
        CHECK(got[i] == top - 2 * i, "split half: NCCL rank %d is world rank %d, want %d", i,
              got[i], top - 2 * i);
      NCCL_OK(ncclCommDestroy(comm));
    }
    MPI_Comm_free(&half);
  }
  free(got);
}

static ncclUniqueId root_id(void) {
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  if (rank == 0) NCCL_OK(ncclGetUniqueId(&id));
  MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  return id;
}

static void test_nccl(void) {
  int version = 0;
  NCCL_OK(ncclGetVersion(&version));
  CHECK(version == NCCL_VERSION_CODE, "ncclGetVersion gave %d", version);
  ncclUniqueId id = root_id();
  ncclComm_t comm = NULL;
  /* Refusals all ranks agree on: more ranks than processes, a rank given twice,
   * mismatched ids. */
  CHECK(ncclCommInitRank(&comm, nranks + 1, id, rank) == ncclInvalidArgument,
        "a communicator larger than MPI_COMM_WORLD was accepted");
  if (nranks > 1)
    CHECK(ncclCommInitRank(&comm, nranks, id, rank == 1 ? 0 : rank) == ncclInvalidArgument,
          "two ranks given the same NCCL rank were accepted");
  if (nranks > 1) {
    ncclUniqueId other = id;
    if (rank == 1) other.internal[5] ^= 1;
    CHECK(ncclCommInitRank(&comm, nranks, other, rank) == ncclInvalidUsage,
          "ranks with different unique ids were not refused");
  }
  if (!NCCL_OK(ncclCommInitRank(&comm, nranks, id, rank))) return;
  int dev = -1, count = 0;
  NCCL_OK(ncclCommCuDevice(comm, &dev));
  NCCL_OK(ncclCommCount(comm, &count));
  CHECK(dev == my_dev && count == nranks, "communicator device %d / size %d", dev, count);
  cudaStream_t s;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  test_allreduce_all(comm, s);
  test_rounding(comm);
  test_movements(comm, s);
  test_ring(comm, s);
  test_nccl_refusals(comm);
  CUDA_OK(cudaStreamDestroy(s));
  NCCL_OK(ncclCommDestroy(comm));
  test_subcomms();
}

/* ---- modes */

static void run_full(void) {
  if (!CHECK(ndev >= local_size,
             "%d fake device(s) for %d ranks on this node: set FAKEGPU_DEVICES >= ranks per node "
             "(or run the 'dup' mode)",
             ndev, local_size))
    return;
  my_dev = local_rank;
  CUDA_OK(cudaSetDevice(my_dev));
  int got = -1;
  CUDA_OK(cudaGetDevice(&got));
  CHECK(got == my_dev, "cudaGetDevice gave %d after cudaSetDevice(%d)", got, my_dev);
  CHECK(cudaSetDevice(ndev) == cudaErrorInvalidDevice, "cudaSetDevice(%d) was accepted", ndev);
  cudaGetLastError();
  int v = 0;
  CUDA_OK(cudaRuntimeGetVersion(&v));
  CHECK(v == 13000, "cudaRuntimeGetVersion gave %d", v);
  test_host_access();
  test_memcpy();
  test_2d();
  test_events();
  test_attributes();
  test_nccl();
}

/* Every rank on device 0 of a one-device node: NCCL's "Duplicate GPU" refusal. */
static void run_dup(void) {
  if (!CHECK(local_size >= 2 && ndev == 1,
             "the dup mode needs >= 2 ranks on a node and "
             "FAKEGPU_DEVICES=1 (have %d ranks here, %d devices)",
             local_size, ndev))
    return;
  CUDA_OK(cudaSetDevice(0));
  ncclUniqueId id = root_id();
  ncclComm_t comm = NULL;
  ncclResult_t r = ncclCommInitRank(&comm, nranks, id, rank);
  CHECK(r == ncclInvalidUsage,
        "two ranks on one GPU: ncclCommInitRank gave %d, want ncclInvalidUsage", (int)r);
  CHECK(strstr(ncclGetLastError(NULL),
               "fakegpu: duplicate GPU detected: rank 0 and rank 1 both on device 0"),
        "unexpected last error: %s", ncclGetLastError(NULL));
  CHECK(comm == NULL, "a refused communicator was returned");
}

static void run_nodevice(void) {
  int n = -1;
  void *p = NULL;
  CHECK(cudaGetDeviceCount(&n) == cudaErrorNoDevice && n == 0,
        "cudaGetDeviceCount with FAKEGPU_DEVICES=0 gave count %d", n);
  CHECK(cudaMalloc(&p, 16) == cudaErrorNoDevice, "cudaMalloc without a device did not fail");
  CHECK(cudaGetLastError() == cudaErrorNoDevice, "the no-device error was not recorded");
  CHECK(strstr(cudaGetErrorString(cudaErrorNoDevice), "fakegpu") != NULL,
        "error string does not name the fake");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
  const char *mode = argc > 1 ? argv[1] : "full";

  /* Without the fake preloaded this would test the real (GPU-less) CUDA: refuse. */
  if (strncmp(cudaGetErrorString(cudaErrorInvalidValue), "fakegpu: ", 9) != 0) {
    CHECK(false, "libmlcomm_fakegpu.so is not preloaded (run with -x LD_PRELOAD=...)");
  } else if (strcmp(mode, "nodevice") == 0) {
    run_nodevice();
  } else {
    cudaGetDeviceCount(&ndev);
    cudaGetLastError();
    if (strcmp(mode, "dup") == 0)
      run_dup();
    else if (strcmp(mode, "full") == 0)
      run_full();
    else
      CHECK(false, "unknown mode '%s' (full, dup, nodevice)", mode);
  }

  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    printf("fakegpu_selftest %s on %d rank(s): %s (%d failed check(s))\n", mode, nranks,
           total ? "FAIL" : "PASS", total);
  MPI_Finalize();
  return total ? 1 : 0;
}

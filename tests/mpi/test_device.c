/*
 * CUDA device buffers through the public API, on the transport -t names: MPI (on an
 * MPI that is not CUDA-aware it stages them through pinned host memory, on one that
 * is it passes them straight), shm (host copies made with cudaMemcpyAsync, staged
 * through the segment) or nccl (the NCCL transport; send/recv over NCCL too). Data is made on the host with the shared generators, copied to the
 * device, reduced, copied back and checked against references computed on the host.
 * Without CUDA in the build, or without a GPU on every rank, the test exits 77 and
 * says why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#if MLCOMM_TEST_HAVE_CUDA
#include <cuda_runtime_api.h>

static void *dev_alloc(size_t bytes) {
  void *p = NULL;
  if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) return NULL;
  cudaMemset(p, 0xa5, bytes ? bytes : 1);
  return p;
}

static bool to_dev(void *dst, const void *src, size_t bytes) {
  return cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice) == cudaSuccess;
}

static bool to_host(void *dst, const void *src, size_t bytes) {
  return cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost) == cudaSuccess;
}

static const char *label(char *buf, const char *call, const char *type, const char *op,
                         int in_place) {
  snprintf(buf, 128, "device %s %s %s in_place=%d", call, type, op, in_place);
  return buf;
}

/* AllReduce, Reduce and ReduceScatter with device buffers, in and out of place. */
static void reductions(mlcommDataType_t type, mlcommRedOp_t op, size_t count, uint64_t seed) {
  int n = tc_nranks, me = tc_rank;
  size_t ts = tc_type_size(type), bytes = count * ts;
  void *host = malloc(bytes * (size_t)n), *got = malloc(bytes * (size_t)n);
  void *dsend = dev_alloc(bytes * (size_t)n), *drecv = dev_alloc(bytes * (size_t)n);
  if (!CHECK(host && got && dsend && drecv, "allocation of %zu bytes failed", bytes * n)) goto out;
  const char *tn = tc_type_name(type), *on = tc_op_name(op);
  char what[128];

  for (int in_place = 0; in_place < 2; in_place++) {
    tc_fill(host, type, op, count, seed, me, 0);
    CHECK(to_dev(dsend, host, bytes), "cudaMemcpy H2D");
    void *dst = in_place ? dsend : drecv;
    if (CHECK_OK(mlcommAllReduce(dsend, dst, count, type, op, tc_comm)) && to_host(got, dst, bytes))
      tc_check_reduced(got, type, op, count, seed, 0, n, label(what, "AllReduce", tn, on, in_place));

    tc_fill(host, type, op, count, seed, me, 0);
    CHECK(to_dev(dsend, host, bytes), "cudaMemcpy H2D");
    int root = n - 1;
    dst = in_place ? dsend : drecv;
    if (CHECK_OK(mlcommReduce(dsend, dst, count, type, op, root, tc_comm)) && me == root &&
        to_host(got, dst, bytes))
      tc_check_reduced(got, type, op, count, seed, 0, n, label(what, "Reduce", tn, on, in_place));

    /* ReduceScatter: rank r's input is elements [0, n*count) of its stream. */
    tc_fill(host, type, op, count * (size_t)n, seed, me, 0);
    CHECK(to_dev(dsend, host, bytes * (size_t)n), "cudaMemcpy H2D");
    dst = in_place ? (char *)dsend + bytes * (size_t)me : drecv;
    if (CHECK_OK(mlcommReduceScatter(dsend, dst, count, type, op, tc_comm)) && to_host(got, dst, bytes))
      tc_check_reduced(got, type, op, count, seed, count * (size_t)me, n,
                       label(what, "ReduceScatter", tn, on, in_place));
  }
out:
  free(host), free(got);
  cudaFree(dsend), cudaFree(drecv);
}

/* Broadcast and AllGather move bytes: compare with what the senders generated. */
static void movements(size_t count, uint64_t seed) {
  int n = tc_nranks, me = tc_rank;
  mlcommDataType_t type = mlcommFloat32;
  size_t bytes = count * 4;
  char *host = malloc(bytes * (size_t)n), *want = malloc(bytes * (size_t)n);
  void *dsend = dev_alloc(bytes), *drecv = dev_alloc(bytes * (size_t)n);
  if (!CHECK(host && want && dsend && drecv, "allocation failed")) goto out;
  int root = n > 1 ? 1 : 0;
  tc_fill(host, type, mlcommSum, count, seed, me, 0);
  tc_fill(want, type, mlcommSum, count, seed, root, 0);
  CHECK(to_dev(dsend, host, bytes), "cudaMemcpy H2D");
  if (CHECK_OK(mlcommBroadcast(dsend, drecv, count, type, root, tc_comm)) && to_host(host, drecv, bytes))
    CHECK(memcmp(host, want, bytes) == 0, "device Broadcast from %d: data differs", root);

  for (int r = 0; r < n; r++) tc_fill(want + bytes * (size_t)r, type, mlcommSum, count, seed, r, 0);
  tc_fill(host, type, mlcommSum, count, seed, me, 0);
  CHECK(to_dev(dsend, host, bytes), "cudaMemcpy H2D");
  if (CHECK_OK(mlcommAllGather(dsend, drecv, count, type, tc_comm)) &&
      to_host(host, drecv, bytes * (size_t)n))
    CHECK(memcmp(host, want, bytes * (size_t)n) == 0, "device AllGather: data differs");
out:
  free(host), free(want);
  cudaFree(dsend), cudaFree(drecv);
}

/* A ring of device-to-device messages, and a host send received into device memory. */
static void point_to_point(size_t count, uint64_t seed) {
  int n = tc_nranks, me = tc_rank, next = (me + 1) % n, prev = (me + n - 1) % n;
  size_t bytes = count * 4;
  char *host = malloc(bytes), *want = malloc(bytes);
  void *dsend = dev_alloc(bytes), *drecv = dev_alloc(bytes);
  if (!CHECK(host && want && dsend && drecv, "allocation failed")) goto out;
  tc_fill(host, mlcommFloat32, mlcommSum, count, seed, me, 0);
  tc_fill(want, mlcommFloat32, mlcommSum, count, seed, prev, 0);
  CHECK(to_dev(dsend, host, bytes), "cudaMemcpy H2D");
  mlcommStatus_t st = {0, 0, 0};
  CHECK_OK(mlcommGroupStart());
  CHECK_OK(mlcommSend(dsend, count, mlcommFloat32, next, 11, tc_comm));
  CHECK_OK(mlcommRecv(drecv, count, mlcommFloat32, prev, 11, tc_comm, &st));
  if (CHECK_OK(mlcommGroupEnd()) && to_host(host, drecv, bytes))
    CHECK(memcmp(host, want, bytes) == 0 && st.source == prev && st.bytes == bytes,
          "device ring send/recv: data or status differs");
  /* Host sender, device receiver: MPI carries it. On a communicator forced to nccl the
   * device side would go over NCCL and the host side over MPI, which cannot match. */
  if (tc_transport == mlcommTransportNccl) goto out;
  tc_fill(host, mlcommFloat32, mlcommSum, count, seed + 1, me, 0);
  tc_fill(want, mlcommFloat32, mlcommSum, count, seed + 1, prev, 0);
  CHECK_OK(mlcommGroupStart());
  CHECK_OK(mlcommSend(host, count, mlcommFloat32, next, 12, tc_comm));
  CHECK_OK(mlcommRecv(drecv, count, mlcommFloat32, prev, 12, tc_comm, NULL));
  if (CHECK_OK(mlcommGroupEnd()) && to_host(host, drecv, bytes))
    CHECK(memcmp(host, want, bytes) == 0, "host-to-device send/recv: data differs");
out:
  free(host), free(want);
  cudaFree(dsend), cudaFree(drecv);
}

/* Mixed arguments: host sendbuff, device recvbuff (and the reverse) in one AllReduce.
 * MPI and shm stage the device side only; NCCL cannot take them (skipped there). */
static void mixed(size_t count, uint64_t seed) {
  if (tc_transport == mlcommTransportNccl) return;
  int n = tc_nranks, me = tc_rank;
  size_t bytes = count * 4;
  float *host = malloc(bytes), *got = malloc(bytes);
  void *dev = dev_alloc(bytes);
  if (!CHECK(host && got && dev, "allocation failed")) goto out;
  tc_fill(host, mlcommFloat32, mlcommSum, count, seed, me, 0);
  if (CHECK_OK(mlcommAllReduce(host, dev, count, mlcommFloat32, mlcommSum, tc_comm)) &&
      to_host(got, dev, bytes))
    tc_check_reduced(got, mlcommFloat32, mlcommSum, count, seed, 0, n, "mixed host->device AllReduce");
  tc_fill(host, mlcommFloat32, mlcommSum, count, seed + 1, me, 0);
  CHECK(to_dev(dev, host, bytes), "cudaMemcpy H2D");
  if (CHECK_OK(mlcommAllReduce(dev, got, count, mlcommFloat32, mlcommSum, tc_comm)))
    tc_check_reduced(got, mlcommFloat32, mlcommSum, count, seed + 1, 0, n,
                     "mixed device->host AllReduce");
out:
  free(host), free(got);
  cudaFree(dev);
}

/* An Async AllReduce ordered on the caller's stream (mlcommCommSetStream): the input is
 * written by a cudaMemcpyAsync on that stream just before the call, and mlcommTest is
 * polled until done (it must never block). */
static void on_stream(size_t count, uint64_t seed) {
  int n = tc_nranks, me = tc_rank;
  size_t bytes = count * 4;
  float *host = NULL, *got = malloc(bytes);
  void *dsend = dev_alloc(bytes), *drecv = dev_alloc(bytes);
  cudaStream_t stream = NULL;
  if (!CHECK(cudaMallocHost((void **)&host, bytes) == cudaSuccess && got && dsend && drecv &&
                 cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess,
             "allocation failed"))
    goto out;
  tc_fill(host, mlcommFloat32, mlcommSum, count, seed, me, 0);
  CHECK_OK(mlcommCommSetStream(tc_comm, stream));
  void *back = NULL;
  CHECK(mlcommCommGetStream(tc_comm, &back) == mlcommSuccess && back == (void *)stream,
        "mlcommCommGetStream does not return the stream set");
  CHECK(cudaMemcpyAsync(dsend, host, bytes, cudaMemcpyHostToDevice, stream) == cudaSuccess,
        "cudaMemcpyAsync");
  mlcommRequest_t req;
  if (CHECK_OK(mlcommAllReduceAsync(dsend, drecv, count, mlcommFloat32, mlcommSum, tc_comm, &req))) {
    int done = 0;
    while (!done && CHECK_OK(mlcommTest(&req, &done, NULL))) {
    }
    if (done && to_host(got, drecv, bytes))
      tc_check_reduced(got, mlcommFloat32, mlcommSum, count, seed, 0, n, "AllReduceAsync on a stream");
  }
  CHECK_OK(mlcommCommSetStream(tc_comm, NULL));
out:
  if (stream) cudaStreamDestroy(stream);
  cudaFreeHost(host), free(got);
  cudaFree(dsend), cudaFree(drecv);
}

/* NCCL's failures reach the caller as mlcomm results carrying NCCL's words, and
 * mlcommCommAbort (ncclCommAbort) ends a communicator with work still queued. Each on a
 * communicator of its own, forced to nccl. */
static void nccl_failures(void) {
  if (tc_transport != mlcommTransportNccl || tc_nranks < 2) return;
  tc_section("NCCL errors and abort");
  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  cfg.transport = mlcommTransportNccl;
  mlcommComm_t c = MLCOMM_COMM_NULL;
  size_t bytes = 64 * sizeof(float);
  void *buf = dev_alloc(2 * bytes);
  if (!CHECK(buf != NULL, "allocation failed") ||
      !CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg)))
    goto out;
  /* Rank 1 receives 128 floats where rank 0 sends 64: NCCL requires equal sizes. */
  if (tc_rank == 0) {
    CHECK_OK(mlcommSend(buf, 64, mlcommFloat32, 1, 5, c));
  } else if (tc_rank == 1) {
    mlcommResult_t r = mlcommRecv(buf, 128, mlcommFloat32, 0, 5, c, NULL);
    const char *msg = mlcommGetLastError(c);
    CHECK(r != mlcommSuccess && msg && strstr(msg, "NCCL"),
          "a receive larger than the send on NCCL returned %d ('%s'), expected an error "
          "that quotes NCCL", (int)r, msg ? msg : "");
  }
  CHECK_OK(mlcommCommAbort(c));
  /* Abort with an allreduce queued and never waited for. */
  c = MLCOMM_COMM_NULL;
  if (CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg))) {
    mlcommRequest_t req = MLCOMM_REQUEST_NULL;
    CHECK_OK(mlcommAllReduceAsync(buf, buf, 64, mlcommFloat32, mlcommSum, c, &req));
    CHECK_OK(mlcommCommAbort(c));
  }
out:
  cudaFree(buf);
  MPI_Barrier(MPI_COMM_WORLD);
}

/* A CUDA failure while staging reaches the caller as an error naming the call, its
 * sequence number and the CUDA function; the error is cleared and the communicator
 * stays usable. Only under tests/fakecuda, which refuses a copy past the end of an
 * allocation when it is queued: a real GPU may fault later and lose its context. */
static void staging_failure(void) {
  if (tc_transport != mlcommTransportMpi && tc_transport != mlcommTransportShm) return;
  if (strncmp(cudaGetErrorString(cudaErrorInvalidValue), "fakegpu: ", 9) != 0) return;
  tc_section("a failed staging copy");
  size_t count = 4096, bytes = count * sizeof(float);
  float *host = malloc(bytes);
  void *small = dev_alloc(16 * sizeof(float)), *big = dev_alloc(bytes);
  if (!CHECK(host && small && big, "allocation failed")) goto out;
  mlcommResult_t r = mlcommAllReduce(small, big, count, mlcommFloat32, mlcommSum, tc_comm);
  const char *msg = mlcommGetLastError(tc_comm);
  CHECK(r == mlcommInternalError && strstr(msg, "mlcommAllReduce (seq ") &&
            strstr(msg, "): cudaMemcpyAsync failed: fakegpu: "),
        "an AllReduce reading past its device buffer returned %d ('%s'), expected an internal "
        "error naming mlcommAllReduce, its seq and cudaMemcpyAsync",
        (int)r, msg ? msg : "");
  CHECK(cudaGetLastError() == cudaSuccess, "the failed copy's error was left for the next call");
  for (size_t i = 0; i < count; i++) host[i] = (float)(tc_rank + 1);
  if (CHECK(to_dev(big, host, bytes), "cudaMemcpy H2D") &&
      CHECK_OK(mlcommAllReduce(big, big, count, mlcommFloat32, mlcommSum, tc_comm)) &&
      CHECK(to_host(host, big, bytes), "cudaMemcpy D2H")) {
    float want = (float)(tc_nranks * (tc_nranks + 1) / 2);
    size_t bad = 0;
    for (size_t i = 0; i < count; i++) bad += host[i] != want;
    CHECK(bad == 0, "after the failed call, AllReduce got %zu wrong elements (want %g)", bad,
          (double)want);
  }
out:
  free(host);
  cudaFree(small), cudaFree(big);
}

static void run(void) {
  int ndev = 0;
  cudaError_t e = cudaGetDeviceCount(&ndev);
  int have = e == cudaSuccess && ndev > 0, all = 0;
  MPI_Allreduce(&have, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all) {
    char why[256];
    snprintf(why, sizeof why, "no usable CUDA device on every rank (this rank: %s, %d device(s))",
             e == cudaSuccess ? "cudaGetDeviceCount ok" : cudaGetErrorString(e), ndev);
    tc_skip(why);
  }
  /* Ranks on one node share the GPUs round-robin. */
  MPI_Comm node;
  int local = 0;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local);
  MPI_Comm_free(&node);
  cudaSetDevice(local % ndev);

  const size_t counts[] = {1, 4097, (size_t)1 << 20};
  for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
    tc_section("device buffers, count %zu", counts[c]);
    reductions(mlcommFloat32, mlcommSum, counts[c], 100 + c);
    reductions(mlcommFloat16, mlcommSum, counts[c], 200 + c);
    reductions(mlcommBfloat16, mlcommAvg, counts[c], 300 + c);
    reductions(mlcommInt32, mlcommMax, counts[c], 400 + c);
    movements(counts[c], 500 + c);
    point_to_point(counts[c], 600 + c);
    mixed(counts[c], 700 + c);
    on_stream(counts[c], 800 + c);
  }
  nccl_failures();
  staging_failure();
}
#endif

int main(int argc, char **argv) {
  tc_init(&argc, &argv);
#if MLCOMM_TEST_HAVE_CUDA
  run();
#else
  tc_skip("this build has no CUDA (no toolkit found, or meson -Dcuda=disabled)");
#endif
  return tc_finish();
}

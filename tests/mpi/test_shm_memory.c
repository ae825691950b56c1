/*
 * mlcommMemAlloc / mlcommMemFree and the transport's segment.
 *
 *  - The segment: after communicator creation (world and split) every mapping of
 *    /dev/shm/mlcomm-* in this process is already unlinked; with -t shm there is at
 *    least one. MemAlloc memory lies inside such a mapping with -t shm (the zero-copy
 *    pool), and outside with -t mpi; with -t auto it must lie inside whenever this
 *    build has the shm transport (every rank is on this node, so auto picks it).
 *    MLCOMM_TRANSPORT=shm alone (config NULL) gives a communicator on shm too.
 *  - MemAlloc: 64-byte alignment, the whole range writable, bytes 0 and ptr NULL
 *    refused; many allocations of odd sizes freed in random order and reallocated
 *    never overlap (each keeps its own pattern).
 *  - MemFree: NULL is a no-op; a malloc'ed, stack, interior or already freed pointer is
 *    mlcommInvalidArgument; memory used by a request in flight (a collective waiting
 *    for its peers, a receive nothing matched) is mlcommInProgress and stays usable,
 *    then frees once the request is done; memory outlives mlcommCommDestroy and
 *    mlcommCommAbort, and MemFree works after them.
 *  - Collectives on the exact pointers MemAlloc returned (not offset by guards).
 *  - The pool's size comes from MLCOMM_SHM_POOL_BYTES at creation: a communicator
 *    with a 1 MiB pool serves a 768 KiB allocation from the segment; a second one either
 *    falls back to host memory or fails with mlcommSystemError naming /dev/shm; freeing
 *    the first makes room again. A bad MLCOMM_SHM_* value fails creation.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm_common.h"

static bool on_shm; /* -t shm */

static mlcommComm_t make_comm(const char *what)
{
  mlcommConfig_t cfg;
  tc_config(&cfg);
  mlcommComm_t c = MLCOMM_COMM_NULL;
  if (!CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg)))
    fprintf(stderr, "[rank %d] %s: could not create a communicator\n", tc_rank, what);
  return c;
}

/* ---------------------------------------------------------------- segment */

static void segment_after_creation(void)
{
  tc_section("segments are unlinked once created; MemAlloc lies inside them on shm");
  ts_check_unlinked(on_shm, false, "world communicator");

  /* A split communicator gets its own segment (ranks of one color), unlinked too. */
  mlcommComm_t sub = MLCOMM_COMM_NULL;
  int before = ts_mapped_segments();
  if (CHECK_OK(mlcommCommSplit(tc_comm, tc_rank % 2, tc_rank, &sub, NULL))) {
    ts_check_unlinked(on_shm, false, "split communicator");
    if (on_shm)
      CHECK(ts_mapped_segments() >= before, "split: segments unmapped by creating another");
    void *p = NULL;
    if (CHECK_OK(mlcommMemAlloc(sub, 1000, &p))) {
      if (on_shm) CHECK(ts_in_segment(p), "MemAlloc on a split shm communicator: not in a segment");
      CHECK_OK(mlcommMemFree(p));
    }
    CHECK_OK(mlcommCommDestroy(sub));
  }

  /* MLCOMM_TRANSPORT alone (config NULL) forces the transport as well. */
  const char *env = getenv("MLCOMM_TRANSPORT");
  if (env && strcmp(env, "shm") == 0) {
    mlcommComm_t c = MLCOMM_COMM_NULL;
    if (CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, NULL))) {
      mlcommConfig_t got = MLCOMM_CONFIG_INITIALIZER;
      CHECK_OK(mlcommCommGetConfig(c, &got));
      CHECK(got.transport == mlcommTransportShm,
            "MLCOMM_TRANSPORT=shm with config NULL: transport %d in force", got.transport);
      void *p = NULL;
      if (CHECK_OK(mlcommMemAlloc(c, 4096, &p))) {
        CHECK(ts_in_segment(p), "MLCOMM_TRANSPORT=shm: MemAlloc not inside a segment");
        CHECK_OK(mlcommMemFree(p));
      }
      ts_check_unlinked(true, false, "MLCOMM_TRANSPORT=shm communicator");
      CHECK_OK(mlcommCommDestroy(c));
    }
  }
}

/* With -t auto: when the build has shm (a forced shm communicator can be made), auto
 * must pick it for host buffers, since every rank is on this node. */
static void auto_selects_shm(void)
{
  if (tc_transport != mlcommTransportAuto) return;
  tc_section("auto picks shm when every rank is on one node");
  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  cfg.transport = mlcommTransportShm;
  mlcommComm_t probe = MLCOMM_COMM_NULL;
  mlcommResult_t r = mlcommCommInitFromMPI(&probe, MPI_COMM_WORLD, &cfg);
  if (r == mlcommUnsupported) {
    tc_section("this build has no shm transport: nothing to check");
    return;
  }
  if (!CHECK_OK(r)) return;
  CHECK_OK(mlcommCommDestroy(probe));
  void *p = NULL;
  if (CHECK_OK(mlcommMemAlloc(tc_comm, 8192, &p))) {
    CHECK(ts_in_segment(p), "transport auto on one node: MemAlloc is not inside a shm segment "
                            "(auto did not pick the shared-memory transport)");
    CHECK_OK(mlcommMemFree(p));
  }
}

/* ---------------------------------------------------------------- MemAlloc */

static void alloc_basics(void)
{
  tc_section("MemAlloc: alignment, whole range usable, bad arguments");
  static const size_t sizes[] = {1, 7, 63, 64, 4095, 4096, 4097, 100000, 1 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = NULL;
    if (!CHECK_OK(mlcommMemAlloc(tc_comm, sizes[i], &p))) continue;
    CHECK(p != NULL && (uintptr_t)p % 64 == 0, "MemAlloc(%zu) = %p: not 64-byte aligned",
          sizes[i], p);
    if (on_shm) CHECK(ts_in_segment(p), "MemAlloc(%zu) on shm: not inside the segment", sizes[i]);
    else if (tc_transport == mlcommTransportMpi)
      CHECK(!ts_in_segment(p), "MemAlloc(%zu) on mpi: inside a shm segment", sizes[i]);
    memset(p, 0xab, sizes[i]);
    CHECK(((unsigned char *)p)[sizes[i] - 1] == 0xab, "MemAlloc(%zu): last byte not writable",
          sizes[i]);
    CHECK_OK(mlcommMemFree(p));
  }
  void *p = (void *)0x1;
  CHECK_RES(mlcommMemAlloc(tc_comm, 0, &p), mlcommInvalidArgument);
  CHECK(p == NULL, "MemAlloc(0) failed but left *ptr = %p (expected NULL)", p);
  CHECK_RES(mlcommMemAlloc(tc_comm, 16, NULL), mlcommInvalidArgument);
}

/* Many live allocations at once, freed in a shuffled order and reallocated: none may
 * overlap another (each keeps the pattern written into it). */
static void alloc_many(void)
{
  tc_section("MemAlloc: 96 live allocations, random frees and reallocations");
  enum { N = 96 };
  void *ptr[N] = {0};
  size_t size[N];
  uint64_t rng = tc_seed(5, (uint64_t)tc_rank, 0, 0);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < N; i++) {
      if (ptr[i]) continue;
      rng = tc_mix(rng);
      size[i] = 1 + (size_t)(rng % 300000);
      if (!CHECK_OK(mlcommMemAlloc(tc_comm, size[i], &ptr[i]))) {
        ptr[i] = NULL;
        continue;
      }
      if (on_shm) CHECK(ts_in_segment(ptr[i]), "allocation %d not in the segment", i);
      memset(ptr[i], (int)(i * 7 + round + 1), size[i]);
    }
    /* Every allocation still holds its own byte: nothing overlapped. */
    int bad = 0;
    for (int i = 0; i < N; i++) {
      if (!ptr[i]) continue;
      const unsigned char *b = ptr[i];
      unsigned char want = b[0];
      for (size_t j = 0; j < size[i]; j += 509)
        if (b[j] != want) bad++;
      if (b[size[i] - 1] != want) bad++;
    }
    CHECK(bad == 0, "round %d: %d probes found allocations overlapping", round, bad);
    /* Free a shuffled half. */
    for (int k = 0; k < N / 2; k++) {
      rng = tc_mix(rng);
      int i = (int)(rng % N);
      if (ptr[i]) {
        CHECK_OK(mlcommMemFree(ptr[i]));
        ptr[i] = NULL;
      }
    }
  }
  for (int i = 0; i < N; i++)
    if (ptr[i]) CHECK_OK(mlcommMemFree(ptr[i]));
}

/* ---------------------------------------------------------------- MemFree */

static void free_refusals(void)
{
  tc_section("MemFree: NULL, foreign, interior and double frees");
  CHECK_OK(mlcommMemFree(NULL));
  void *m = malloc(4096);
  CHECK_RES(mlcommMemFree(m), mlcommInvalidArgument);
  CHECK(strlen(mlcommGetLastError(NULL)) > 0, "MemFree(foreign) refused without a sentence");
  free(m);
  int on_stack[16];
  CHECK_RES(mlcommMemFree(on_stack), mlcommInvalidArgument);
  void *p = NULL;
  if (CHECK_OK(mlcommMemAlloc(tc_comm, 10000, &p))) {
    CHECK_RES(mlcommMemFree((char *)p + 64), mlcommInvalidArgument);
    CHECK_RES(mlcommMemFree((char *)p + 4096), mlcommInvalidArgument);
    memset(p, 1, 10000); /* still ours after the refused frees */
    CHECK_OK(mlcommMemFree(p));
    CHECK_RES(mlcommMemFree(p), mlcommInvalidArgument);
  }
}

/* Memory used by a request in flight cannot be freed (nothing is freed then); once the
 * request is done it can. */
static void free_in_flight(void)
{
  tc_section("MemFree of memory in flight is mlcommInProgress");
  /* A receive nothing has matched yet: in flight on any number of ranks. */
  enum { N = 1000 };
  int32_t *rbuf = NULL;
  if (CHECK_OK(mlcommMemAlloc(tc_comm, N * sizeof(int32_t), (void **)&rbuf))) {
    mlcommRequest_t r = MLCOMM_REQUEST_NULL;
    CHECK_OK(mlcommRecvAsync(rbuf, N, mlcommInt32, tc_rank, 11, tc_comm, &r));
    CHECK_RES(mlcommMemFree(rbuf), mlcommInProgress);
    CHECK(strlen(mlcommGetLastError(NULL)) > 0, "MemFree(in flight) refused without a sentence");
    int32_t msg[N];
    for (int i = 0; i < N; i++) msg[i] = i * 3 + tc_rank;
    CHECK_OK(mlcommSend(msg, N, mlcommInt32, tc_rank, 11, tc_comm));
    if (CHECK_OK(mlcommWait(&r, NULL)))
      CHECK(memcmp(rbuf, msg, sizeof msg) == 0, "receive into a buffer whose free was refused: "
                                                "wrong data");
    CHECK_OK(mlcommMemFree(rbuf));
  }

  if (tc_nranks < 2) return;
  /* A collective rank 0 starts while the others wait outside mlcomm: it cannot finish,
   * so neither its send nor its receive buffer (nor the allocation containing them)
   * may be freed. */
  const size_t count = 300001; /* large: several slices */
  uint64_t seed = tc_seed(12, 0, 0, 0);
  float *send = NULL, *recv = NULL;
  if (!CHECK_OK(mlcommMemAlloc(tc_comm, count * sizeof(float), (void **)&send)) ||
      !CHECK_OK(mlcommMemAlloc(tc_comm, (count + 4096) * sizeof(float), (void **)&recv))) {
    MPI_Barrier(MPI_COMM_WORLD);
    return;
  }
  tc_fill(send, mlcommFloat32, mlcommSum, count, seed, tc_rank, 0);
  float *recv_at = recv + 1024; /* a range inside the allocation */
  if (tc_rank == 0) {
    mlcommRequest_t r = MLCOMM_REQUEST_NULL;
    CHECK_OK(mlcommAllReduceAsync(send, recv_at, count, mlcommFloat32, mlcommSum, tc_comm, &r));
    int done = -1;
    CHECK_OK(mlcommTest(&r, &done, NULL));
    CHECK(done == 0, "an AllReduce the other ranks have not called reports done");
    CHECK_RES(mlcommMemFree(send), mlcommInProgress);
    CHECK_RES(mlcommMemFree(recv), mlcommInProgress);
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK_OK(mlcommWait(&r, NULL));
  } else {
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK_OK(mlcommAllReduce(send, recv_at, count, mlcommFloat32, mlcommSum, tc_comm));
  }
  ts_check_result(recv_at, mlcommFloat32, mlcommSum, count, seed, 0, tc_nranks, on_shm,
                  "AllReduce on buffers whose free was refused");
  CHECK_OK(mlcommMemFree(send));
  CHECK_OK(mlcommMemFree(recv));
}

/* The memory stays valid after the communicator is destroyed or aborted. */
static void free_after_comm(void)
{
  tc_section("MemFree after CommDestroy and after CommAbort");
  for (int how = 0; how < 2; how++) {
    mlcommComm_t c = make_comm("free_after_comm");
    if (c == MLCOMM_COMM_NULL) return;
    enum { N = 70001 };
    int64_t *a = NULL, *b = NULL;
    CHECK_OK(mlcommMemAlloc(c, N * sizeof(int64_t), (void **)&a));
    CHECK_OK(mlcommMemAlloc(c, 64, (void **)&b));
    if (a) {
      for (int i = 0; i < N; i++) a[i] = (int64_t)i * (tc_rank + 1);
      if (CHECK_OK(mlcommAllReduce(a, a, N, mlcommInt64, mlcommSum, c))) {
        int64_t f = (int64_t)tc_nranks * (tc_nranks + 1) / 2;
        CHECK(a[N - 1] == (int64_t)(N - 1) * f && a[1] == f, "AllReduce before %s: wrong sum",
              how ? "Abort" : "Destroy");
      }
    }
    if (how == 0)
      CHECK_OK(mlcommCommDestroy(c));
    else
      CHECK_OK(mlcommCommAbort(c));
    const char *what = how ? "after CommAbort" : "after CommDestroy";
    if (a) {
      /* Still readable and writable. */
      int64_t f = (int64_t)tc_nranks * (tc_nranks + 1) / 2;
      CHECK(a[N - 1] == (int64_t)(N - 1) * f, "%s: the memory lost its contents", what);
      for (int i = 0; i < N; i++) a[i] = -i;
      CHECK(a[N - 1] == -(N - 1), "%s: the memory is not writable", what);
      CHECK_OK(mlcommMemFree(a));
    }
    if (b) {
      memset(b, 0x11, 64);
      CHECK_OK(mlcommMemFree(b));
      CHECK_RES(mlcommMemFree(b), mlcommInvalidArgument);
    }
    /* Abort is local: keep the ranks in step before the next communicator. */
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

/* ---------------------------------------------------------------- collectives on exact pointers */

/* The pointers exactly as MemAlloc returned them (the other tests offset them by guard
 * bytes), sizes crossing slices, every collective, in place and not. */
static void exact_pointers(void)
{
  tc_section("collectives on the exact pointers MemAlloc returned");
  size_t sizes[] = {1, 999, ts_slice_bytes() / 4 * 3 + 7};
  int n = tc_nranks;
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t count = sizes[s], bytes = count * sizeof(float);
    float *a = NULL, *b = NULL;
    if (!CHECK_OK(mlcommMemAlloc(tc_comm, bytes * (size_t)n, (void **)&a)) ||
        !CHECK_OK(mlcommMemAlloc(tc_comm, bytes * (size_t)n, (void **)&b)))
      return;
    char what[96];
    uint64_t seed = tc_seed(13, count, 0, 0);
    for (int inplace = 0; inplace < 2; inplace++) {
      float *out = inplace ? a : b;
      snprintf(what, sizeof what, "AllReduce count=%zu %s", count, inplace ? "in place" : "");
      tc_fill(a, mlcommFloat32, mlcommSum, count, seed, tc_rank, 0);
      if (CHECK_OK(mlcommAllReduce(a, out, count, mlcommFloat32, mlcommSum, tc_comm))) {
        ts_check_result(out, mlcommFloat32, mlcommSum, count, seed, 0, n, on_shm, what);
        ts_identical(out, bytes, MPI_COMM_WORLD, what);
      }
      snprintf(what, sizeof what, "Reduce count=%zu %s", count, inplace ? "in place" : "");
      tc_fill(a, mlcommFloat32, mlcommMax, count, seed, tc_rank, 0);
      if (CHECK_OK(mlcommReduce(a, out, count, mlcommFloat32, mlcommMax, n - 1, tc_comm)) &&
          tc_rank == n - 1)
        ts_check_result(out, mlcommFloat32, mlcommMax, count, seed, 0, n, on_shm, what);
      snprintf(what, sizeof what, "Broadcast count=%zu %s", count, inplace ? "in place" : "");
      tc_fill(a, mlcommFloat32, mlcommSum, count, seed, tc_rank == 0 ? 0 : 1, 0);
      if (CHECK_OK(mlcommBroadcast(a, out, count, mlcommFloat32, 0, tc_comm))) {
        float *expect = malloc(bytes);
        tc_fill(expect, mlcommFloat32, mlcommSum, count, seed, 0, 0);
        CHECK(memcmp(out, expect, bytes) == 0, "%s: not root's data", what);
        free(expect);
      }
      /* AllGather: in place means this rank's block of the receive buffer. */
      snprintf(what, sizeof what, "AllGather count=%zu %s", count, inplace ? "in place" : "");
      float *gsend = inplace ? b + (size_t)tc_rank * count : a;
      tc_fill(gsend, mlcommFloat32, mlcommSum, count, seed, tc_rank, 0);
      if (CHECK_OK(mlcommAllGather(gsend, b, count, mlcommFloat32, tc_comm))) {
        bool ok = true;
        float *expect = malloc(bytes);
        for (int k = 0; k < n; k++) {
          tc_fill(expect, mlcommFloat32, mlcommSum, count, seed, k, 0);
          ok = ok && memcmp(b + (size_t)k * count, expect, bytes) == 0;
        }
        free(expect);
        CHECK(ok, "%s: wrong blocks", what);
      }
      /* ReduceScatter: in place means this rank's block of the send buffer. */
      snprintf(what, sizeof what, "ReduceScatter count=%zu %s", count, inplace ? "in place" : "");
      tc_fill(a, mlcommFloat32, mlcommSum, count * (size_t)n, seed, tc_rank, 0);
      float *rs_out = inplace ? a + (size_t)tc_rank * count : b;
      if (CHECK_OK(mlcommReduceScatter(a, rs_out, count, mlcommFloat32, mlcommSum, tc_comm)))
        ts_check_result(rs_out, mlcommFloat32, mlcommSum, count, seed, (size_t)tc_rank * count, n,
                        on_shm, what);
    }
    CHECK_OK(mlcommMemFree(a));
    CHECK_OK(mlcommMemFree(b));
  }
}

/* ---------------------------------------------------------------- pool size */

static mlcommComm_t comm_with_env(const char *var, const char *value, mlcommResult_t *res)
{
  const char *old = getenv(var);
  char *saved = old ? strdup(old) : NULL;
  setenv(var, value, 1);
  mlcommConfig_t cfg;
  tc_config(&cfg);
  mlcommComm_t c = MLCOMM_COMM_NULL;
  *res = mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg);
  if (saved) {
    setenv(var, saved, 1);
    free(saved);
  } else {
    unsetenv(var);
  }
  return c;
}

static void pool_size(void)
{
  tc_section("MLCOMM_SHM_POOL_BYTES sizes the pool");
  mlcommResult_t res;
  mlcommComm_t c = comm_with_env("MLCOMM_SHM_POOL_BYTES", "1048576", &res);
  if (!CHECK_OK(res)) return;
  ts_check_unlinked(on_shm, false, "communicator with a 1 MiB pool");
  const size_t big = 768 << 10;
  void *a = NULL, *b = NULL, *again = NULL;
  if (CHECK_OK(mlcommMemAlloc(c, big, &a)) && on_shm)
    CHECK(ts_in_segment(a), "768 KiB from a 1 MiB pool: not inside the segment");
  /* No room for a second one in the pool: host memory, or a clear refusal. */
  mlcommResult_t r = mlcommMemAlloc(c, big, &b);
  if (r == mlcommSuccess) {
    CHECK(b != NULL && b != a, "second 768 KiB allocation: %p", b);
    if (on_shm && a && b)
      CHECK((char *)b + big <= (char *)a || (char *)a + big <= (char *)b,
            "second allocation overlaps the first");
  } else {
    CHECK(r == mlcommSystemError && strstr(mlcommGetLastError(c), "/dev/shm") != NULL,
          "a full pool: MemAlloc returned %d (%s) '%s'; expected success (host memory) or "
          "mlcommSystemError naming /dev/shm",
          (int)r, mlcommGetErrorString(r), mlcommGetLastError(c));
    b = NULL;
  }
  /* A collective between pool memory and whatever the second allocation is. */
  if (a && b) {
    size_t count = big / sizeof(int32_t);
    uint64_t seed = tc_seed(14, 0, 0, 0);
    void *send = tc_rank % 2 ? a : b, *recv = tc_rank % 2 ? b : a;
    tc_fill(send, mlcommInt32, mlcommSum, count, seed, tc_rank, 0);
    if (CHECK_OK(mlcommAllReduce(send, recv, count, mlcommInt32, mlcommSum, c)))
      tc_check_reduced(recv, mlcommInt32, mlcommSum, count, seed, 0, tc_nranks,
                       "AllReduce between pool and fallback memory");
  }
  if (a) CHECK_OK(mlcommMemFree(a));
  if (b) CHECK_OK(mlcommMemFree(b));
  /* The freed range is reused. */
  if (CHECK_OK(mlcommMemAlloc(c, big, &again))) {
    if (on_shm) CHECK(ts_in_segment(again), "768 KiB after freeing: not back in the pool");
    CHECK_OK(mlcommMemFree(again));
  }
  CHECK_OK(mlcommCommDestroy(c));

  /* Values outside the documented range or not numbers fail creation on every rank. */
  static const char *const bad[][2] = {{"MLCOMM_SHM_SLOTS", "many"},
                                       {"MLCOMM_SHM_SLICE_BYTES", "-5"},
                                       {"MLCOMM_SHM_LIVENESS_MS", "1e3"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    c = comm_with_env(bad[i][0], bad[i][1], &res);
    CHECK(res == mlcommInvalidArgument && c == MLCOMM_COMM_NULL,
          "%s=%s: creation returned %d (%s)", bad[i][0], bad[i][1], (int)res,
          mlcommGetErrorString(res));
    if (res == mlcommInvalidArgument)
      CHECK(strstr(mlcommGetLastError(NULL), bad[i][0]) != NULL,
            "%s=%s: the sentence does not name the variable: '%s'", bad[i][0], bad[i][1],
            mlcommGetLastError(NULL));
    if (c != MLCOMM_COMM_NULL) mlcommCommDestroy(c);
  }
}

int main(int argc, char **argv)
{
  tc_init(&argc, &argv);
  on_shm = tc_transport == mlcommTransportShm;
  if (!on_shm) ts_check_unlinked(false, false, "world communicator");
  if (tc_transport == mlcommTransportMpi)
    CHECK(ts_mapped_segments() == 0, "transport mpi: %d shm segments mapped",
          ts_mapped_segments());
  segment_after_creation();
  auto_selects_shm();
  alloc_basics();
  alloc_many();
  free_refusals();
  free_in_flight();
  free_after_comm();
  exact_pointers();
  pool_size();
  return tc_finish();
}

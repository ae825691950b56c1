/*
 * Every collective x every datatype x every reduction op, in place and out of place,
 * for counts 0, 1, odd and large, with roots other than 0.
 *
 * Each rank recomputes every other rank's input (tc_fill is a pure function of seed,
 * rank and index) and checks its result against a reference it computed alone. It also
 * checks what must NOT change: guard bytes around every buffer, send buffers, a
 * non-root's Reduce receive buffer, buffers of count-0 calls. Results that every rank
 * holds (AllReduce, Broadcast, AllGather) must be bitwise identical across ranks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

enum coll { COLL_ALLREDUCE = 1, COLL_BROADCAST, COLL_REDUCE, COLL_ALLGATHER, COLL_REDUCESCATTER };

/* Odd counts that straddle typical chunk and vector widths. */
static const size_t counts[] = {0, 1, 7, 1023, 4097, 65537};
enum { NCOUNTS = sizeof counts / sizeof counts[0] };
/* A count-0 call gets a small real buffer so "not touched" can be observed. */
enum { EMPTY_BODY = 64 };

static void *buffer(size_t bytes) { return tc_galloc(bytes ? bytes : EMPTY_BODY); }

static void describe(char *out, size_t size, const char *coll, mlcommDataType_t type,
                     const char *op, size_t count, int inplace, int root)
{
  snprintf(out, size, "%s %s %s count=%zu %s root=%d", coll, tc_type_name(type), op, count,
           inplace ? "in-place" : "out-of-place", root);
}

/* Results everyone holds must be bitwise identical, not merely within tolerance. */
static void check_identical(const void *buf, size_t bytes, const char *what)
{
  CHECK(tc_same_everywhere(tc_hash(buf, bytes), MPI_COMM_WORLD),
        "%s: result differs between ranks", what);
}

static void check_untouched_if_empty(const void *buf, size_t count, const char *what)
{
  if (count == 0)
    CHECK(tc_gpattern_intact(buf, 0, EMPTY_BODY), "%s: count 0 wrote the buffer", what);
}

/* ---------------------------------------------------------------- AllReduce */

static void run_allreduce(mlcommDataType_t type, mlcommRedOp_t op, size_t count, int inplace)
{
  char what[160];
  describe(what, sizeof what, "AllReduce", type, tc_op_name(op), count, inplace, -1);
  uint64_t seed = tc_seed(COLL_ALLREDUCE, type, op, count * 2 + (size_t)inplace);
  size_t bytes = count * tc_type_size(type);
  void *recv = buffer(bytes);
  void *send = inplace ? recv : buffer(bytes);
  tc_fill(send, type, op, count, seed, tc_rank, 0);
  uint64_t send_hash = tc_hash(send, bytes);

  if (CHECK_OK(mlcommAllReduce(send, recv, count, type, op, tc_comm))) {
    tc_check_reduced(recv, type, op, count, seed, 0, tc_nranks, what);
    if (!inplace) CHECK(tc_hash(send, bytes) == send_hash, "%s: sendbuff modified", what);
    check_untouched_if_empty(recv, count, what);
    check_untouched_if_empty(send, count, what);
  }
  check_identical(recv, bytes, what);
  tc_gcheck(recv, what);
  if (!inplace) {
    tc_gcheck(send, what);
    tc_gfree(send);
  }
  tc_gfree(recv);
}

/* ---------------------------------------------------------------- Broadcast */

static void run_broadcast(mlcommDataType_t type, size_t count, int inplace, int root)
{
  char what[160];
  describe(what, sizeof what, "Broadcast", type, "-", count, inplace, root);
  uint64_t seed = tc_seed(COLL_BROADCAST, type, (uint64_t)root, count * 2 + (size_t)inplace);
  size_t bytes = count * tc_type_size(type);
  void *expect = buffer(bytes);
  tc_fill(expect, type, mlcommSum, count, seed, root, 0);

  void *recv = buffer(bytes);
  void *send;
  /* Out of place, sendbuff "may be NULL" off root: use NULL for one count, a real
   * buffer (which must stay untouched) for the others. */
  if (inplace)
    send = recv;
  else if (tc_rank != root && count == 4097)
    send = NULL;
  else
    send = buffer(bytes);
  if (tc_rank == root) tc_fill(send, type, mlcommSum, count, seed, root, 0);
  uint64_t send_hash = send ? tc_hash(send, bytes) : 0;

  if (CHECK_OK(mlcommBroadcast(send, recv, count, type, root, tc_comm))) {
    CHECK(memcmp(recv, expect, bytes) == 0, "%s: recvbuff differs from root's data", what);
    if (!inplace && send)
      CHECK(tc_hash(send, bytes) == send_hash, "%s: sendbuff modified", what);
    check_untouched_if_empty(recv, count, what);
    if (send) check_untouched_if_empty(send, count, what);
  }
  check_identical(recv, bytes, what);
  tc_gcheck(recv, what);
  if (!inplace && send) {
    tc_gcheck(send, what);
    tc_gfree(send);
  }
  tc_gfree(recv);
  tc_gfree(expect);
}

/* ---------------------------------------------------------------- Reduce */

static void run_reduce(mlcommDataType_t type, mlcommRedOp_t op, size_t count, int inplace,
                       int root)
{
  char what[160];
  describe(what, sizeof what, "Reduce", type, tc_op_name(op), count, inplace, root);
  uint64_t seed = tc_seed(COLL_REDUCE, type, op * 64u + (uint64_t)root, count * 2 + (size_t)inplace);
  size_t bytes = count * tc_type_size(type);
  void *send = buffer(bytes);
  tc_fill(send, type, op, count, seed, tc_rank, 0);
  uint64_t send_hash = tc_hash(send, bytes);
  void *recv;
  /* recvbuff "may be NULL" off root: exercise that for one count. */
  if (inplace)
    recv = send;
  else if (tc_rank != root && count == 1023)
    recv = NULL;
  else
    recv = buffer(bytes);

  if (CHECK_OK(mlcommReduce(send, recv, count, type, op, root, tc_comm))) {
    if (tc_rank == root) {
      tc_check_reduced(recv, type, op, count, seed, 0, tc_nranks, what);
    } else if (inplace) {
      /* Off root the in-place buffer is only a send buffer: it must keep the data. */
      CHECK(tc_hash(recv, bytes) == send_hash, "%s: non-root in-place buffer written", what);
    } else if (recv) {
      CHECK(tc_gpattern_intact(recv, 0, bytes ? bytes : EMPTY_BODY),
            "%s: non-root recvbuff written", what);
    }
    if (!inplace) CHECK(tc_hash(send, bytes) == send_hash, "%s: sendbuff modified", what);
    check_untouched_if_empty(send, count, what);
    if (recv) check_untouched_if_empty(recv, count, what);
  }
  tc_gcheck(send, what);
  if (!inplace && recv) {
    tc_gcheck(recv, what);
    tc_gfree(recv);
  }
  tc_gfree(send);
}

/* ---------------------------------------------------------------- AllGather */

static void run_allgather(mlcommDataType_t type, size_t count, int inplace)
{
  char what[160];
  describe(what, sizeof what, "AllGather", type, "-", count, inplace, -1);
  uint64_t seed = tc_seed(COLL_ALLGATHER, type, 0, count * 2 + (size_t)inplace);
  size_t bytes = count * tc_type_size(type);
  size_t total = bytes * (size_t)tc_nranks;
  void *recv = buffer(total);
  /* The documented in-place layout: this rank's block inside recvbuff. */
  void *send = inplace ? (char *)recv + (size_t)tc_rank * bytes : buffer(bytes);
  tc_fill(send, type, mlcommSum, count, seed, tc_rank, 0);
  uint64_t send_hash = tc_hash(send, bytes);

  if (CHECK_OK(mlcommAllGather(send, recv, count, type, tc_comm))) {
    void *expect = buffer(bytes);
    size_t bad_blocks = 0;
    for (int k = 0; k < tc_nranks; k++) {
      tc_fill(expect, type, mlcommSum, count, seed, k, 0);
      if (memcmp((char *)recv + (size_t)k * bytes, expect, bytes) != 0) bad_blocks++;
    }
    CHECK(bad_blocks == 0, "%s: %zu of %d blocks wrong", what, bad_blocks, tc_nranks);
    tc_gfree(expect);
    if (!inplace) CHECK(tc_hash(send, bytes) == send_hash, "%s: sendbuff modified", what);
    check_untouched_if_empty(recv, count, what);
    check_untouched_if_empty(send, count, what);
  }
  check_identical(recv, total, what);
  tc_gcheck(recv, what);
  if (!inplace) {
    tc_gcheck(send, what);
    tc_gfree(send);
  }
  tc_gfree(recv);
}

/* ---------------------------------------------------------------- ReduceScatter */

static void run_reducescatter(mlcommDataType_t type, mlcommRedOp_t op, size_t recvcount,
                              int inplace)
{
  char what[160];
  describe(what, sizeof what, "ReduceScatter", type, tc_op_name(op), recvcount, inplace, -1);
  uint64_t seed = tc_seed(COLL_REDUCESCATTER, type, op, recvcount * 2 + (size_t)inplace);
  size_t esize = tc_type_size(type);
  size_t block = recvcount * esize;
  size_t total = block * (size_t)tc_nranks;
  void *send = buffer(total);
  tc_fill(send, type, op, recvcount * (size_t)tc_nranks, seed, tc_rank, 0);
  uint64_t send_hash = tc_hash(send, total);
  /* The documented in-place layout: recvbuff is this rank's block of sendbuff. */
  void *recv = inplace ? (char *)send + (size_t)tc_rank * block : buffer(block);

  if (CHECK_OK(mlcommReduceScatter(send, recv, recvcount, type, op, tc_comm))) {
    tc_check_reduced(recv, type, op, recvcount, seed, (size_t)tc_rank * recvcount, tc_nranks,
                     what);
    check_untouched_if_empty(send, recvcount, what);
    check_untouched_if_empty(recv, recvcount, what);
    if (!inplace) {
      CHECK(tc_hash(send, total) == send_hash, "%s: sendbuff modified", what);
    } else {
      /* sendbuff is const: blocks other than ours must keep their input. */
      void *mine = buffer(total);
      tc_fill(mine, type, op, recvcount * (size_t)tc_nranks, seed, tc_rank, 0);
      size_t before = (size_t)tc_rank * block, after = before + block;
      CHECK(memcmp(send, mine, before) == 0 &&
                memcmp((char *)send + after, (char *)mine + after, total - after) == 0,
            "%s: in-place call modified other ranks' blocks of sendbuff", what);
      tc_gfree(mine);
    }
  }
  tc_gcheck(send, what);
  if (!inplace) {
    tc_gcheck(recv, what);
    tc_gfree(recv);
  }
  tc_gfree(send);
}

/* ---------------------------------------------------------------- Barrier */

static void run_barrier(void)
{
  for (int i = 0; i < 5; i++) CHECK_OK(mlcommBarrier(tc_comm));
  if (tc_nranks < 2) return;
  /* A barrier cannot return before its last rank enters: the last rank sleeps first, so
   * every other rank must spend at least about that long inside. A lower bound only;
   * no speed is asserted. */
  const double nap = 0.3;
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  if (tc_rank == tc_nranks - 1) {
    struct timespec ts = {0, (long)(nap * 1e9)};
    nanosleep(&ts, NULL);
  }
  CHECK_OK(mlcommBarrier(tc_comm));
  double waited = MPI_Wtime() - t0;
  if (tc_rank != tc_nranks - 1)
    CHECK(waited >= nap * 0.8, "Barrier returned after %.3f s, before the last rank entered",
          waited);
}

/* ---------------------------------------------------------------- large sizes */

static void run_large(void)
{
  /* Several MiB each, odd, so every transport's chunking and tails are crossed. */
  const size_t mib = 1u << 20;
  tc_section("large AllReduce");
  run_allreduce(mlcommFloat32, mlcommSum, 2 * mib + 3, 0);
  run_allreduce(mlcommFloat32, mlcommSum, 2 * mib + 3, 1);
  run_allreduce(mlcommBfloat16, mlcommSum, 3 * mib + 1, 0);
  run_allreduce(mlcommFloat16, mlcommAvg, 3 * mib + 1, 1);
  run_allreduce(mlcommInt32, mlcommMax, mib + 1, 0);
  run_allreduce(mlcommFloat64, mlcommProd, mib - 1, 0);
  run_allreduce(mlcommInt8, mlcommSum, 5 * mib + 7, 1);

  /* Reproducible: the same call on the same data gives the same bits. */
  size_t n = 2 * mib + 3;
  uint64_t seed = tc_seed(99, 1, 2, 3);
  float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *in = malloc(n * sizeof *in);
  tc_fill(in, mlcommFloat32, mlcommSum, n, seed, tc_rank, 0);
  if (CHECK_OK(mlcommAllReduce(in, a, n, mlcommFloat32, mlcommSum, tc_comm)) &&
      CHECK_OK(mlcommAllReduce(in, b, n, mlcommFloat32, mlcommSum, tc_comm)))
    CHECK(memcmp(a, b, n * sizeof *a) == 0, "AllReduce float32 sum is not reproducible");
  free(a);
  free(b);
  free(in);

  tc_section("large Broadcast, Reduce, AllGather, ReduceScatter");
  run_broadcast(mlcommUint8, 6 * mib + 1, 0, tc_nranks - 1);
  run_broadcast(mlcommFloat32, 2 * mib + 1, 1, tc_nranks / 2);
  run_reduce(mlcommFloat64, mlcommSum, mib + 5, 0, 0);
  run_reduce(mlcommFloat32, mlcommMin, 2 * mib + 1, 1, tc_nranks - 1);
  /* About 4 MiB in all whatever the rank count; odd per-rank counts. */
  size_t per_rank = (mib / (size_t)tc_nranks) | 1;
  run_allgather(mlcommFloat32, per_rank, 0);
  run_allgather(mlcommUint64, per_rank / 2 + 1, 1);
  run_reducescatter(mlcommFloat32, mlcommSum, per_rank, 0);
  run_reducescatter(mlcommFloat32, mlcommSum, per_rank, 1);
  run_reducescatter(mlcommUint32, mlcommProd, per_rank, 1);
}

int main(int argc, char **argv)
{
  tc_init(&argc, &argv);
  int last = tc_nranks - 1;

  for (int t = 0; t < mlcommNumTypes; t++) {
    mlcommDataType_t type = (mlcommDataType_t)t;
    tc_section("%s", tc_type_name(type));
    for (int c = 0; c < NCOUNTS; c++) {
      for (int inplace = 0; inplace < 2; inplace++) {
        for (int o = 0; o < mlcommNumOps; o++) {
          mlcommRedOp_t op = (mlcommRedOp_t)o;
          run_allreduce(type, op, counts[c], inplace);
          run_reduce(type, op, counts[c], inplace, last);
          run_reducescatter(type, op, counts[c], inplace);
        }
        run_broadcast(type, counts[c], inplace, last);
        run_allgather(type, counts[c], inplace);
      }
    }
  }

  tc_section("other roots");
  for (int root = 0; root < tc_nranks; root++) {
    run_broadcast(mlcommInt32, 1023, root % 2, root);
    run_broadcast(mlcommBfloat16, 4097, 0, root);
    run_reduce(mlcommFloat32, mlcommSum, 1023, root % 2, root);
    run_reduce(mlcommInt64, mlcommProd, 4097, 0, root);
    run_reduce(mlcommUint8, mlcommAvg, 1023, 1, root);
  }

  tc_section("Barrier");
  run_barrier();
  run_large();
  return tc_finish();
}

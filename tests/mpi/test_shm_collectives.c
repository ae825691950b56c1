/*
 * Collectives on the shared-memory transport, with every kind of buffer.
 *
 * Every collective x every datatype x every reduction op, in place and out of place,
 * for counts 1, 7, 1000 and 65537 and counts that straddle the transport's one-shot
 * threshold and its pipeline slices (read from MLCOMM_SHM_SMALL_BYTES and
 * MLCOMM_SHM_SLICE_BYTES, so a run with tiny slices crosses hundreds of them). Each
 * case uses buffers of one of three modes, rotating over the cases:
 *   malloc - plain host memory on every rank,
 *   pool   - mlcommMemAlloc memory (inside the segment: the zero-copy path) everywhere,
 *   mixed  - per rank and per argument: rank r uses combination (case + r) % 4 of
 *            {send, recv} x {malloc, pool}, so ranks disagree and every combination
 *            meets every other.
 * Checks: the result against a reference computed locally (with -t shm, float
 * sum/prod/avg bit for bit against the left-to-right reduction in rank order), that
 * every rank holds the same bytes (the results of each (type, count) are logged, and
 * rank 0's log is broadcast once and memcmp'd on every rank), that send buffers
 * and the non-root Reduce buffer are untouched, and the guard bytes around everything.
 * A last section runs identical inputs through every buffer configuration and requires
 * identical bits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm_common.h"

enum coll { C_ALLREDUCE = 1, C_BROADCAST, C_REDUCE, C_ALLGATHER, C_REDUCESCATTER };
enum mode { M_MALLOC, M_POOL, M_MIXED, NMODES };
static const char *const mode_names[] = {"malloc", "pool", "mixed"};

static bool exact;      /* -t shm: float reductions must follow rank order bit for bit */
static unsigned caseno; /* counts the cases, the same on every rank */

/* This rank's kinds of send and receive buffer for the current case. */
static void kinds(enum mode m, int *send_kind, int *recv_kind)
{
  if (m == M_MALLOC) {
    *send_kind = *recv_kind = TB_MALLOC;
  } else if (m == M_POOL) {
    *send_kind = *recv_kind = TB_POOL;
  } else {
    unsigned v = (caseno + (unsigned)tc_rank) % 4;
    *send_kind = (int)(v & 1);
    *recv_kind = (int)(v >> 1);
  }
}

static void *copy_of(const void *p, size_t bytes)
{
  void *c = malloc(bytes ? bytes : 1);
  if (c == NULL) {
    fprintf(stderr, "FAIL [rank %d] out of memory\n", tc_rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return memcpy(c, p, bytes);
}

static void describe(char *out, size_t size, const char *coll, mlcommDataType_t type,
                     const char *op, size_t count, int inplace, int root, enum mode m,
                     int sk, int rk)
{
  snprintf(out, size, "%s %s %s count=%zu %s root=%d buffers=%s (send %s, recv %s) case %u",
           coll, tc_type_name(type), op, count, inplace ? "in-place" : "out-of-place", root,
           mode_names[m], tb_kind_name(sk), tb_kind_name(rk), caseno);
}

/* ---------------------------------------------------------------- the five collectives */

static void run_allreduce(mlcommDataType_t type, mlcommRedOp_t op, size_t count, int inplace,
                          enum mode m)
{
  int sk, rk;
  kinds(m, &sk, &rk);
  char what[200];
  describe(what, sizeof what, "AllReduce", type, tc_op_name(op), count, inplace, -1, m, sk, rk);
  uint64_t seed = tc_seed(C_ALLREDUCE, (uint64_t)type * 8 + op, count, caseno);
  size_t bytes = count * tc_type_size(type);
  tbuf_t recv, send;
  tb_alloc(&recv, tc_comm, rk, bytes);
  if (inplace)
    send = recv;
  else
    tb_alloc(&send, tc_comm, sk, bytes);
  tc_fill(send.body, type, op, count, seed, tc_rank, 0);
  void *send_copy = copy_of(send.body, bytes);

  if (CHECK_OK(mlcommAllReduce(send.body, recv.body, count, type, op, tc_comm))) {
    ts_check_result(recv.body, type, op, count, seed, 0, tc_nranks, exact, what);
    if (!inplace) CHECK(memcmp(send.body, send_copy, bytes) == 0, "%s: sendbuff modified", what);
  }
  ts_log_add(recv.body, bytes, what);
  tb_gcheck(&recv, what);
  if (!inplace) {
    tb_gcheck(&send, what);
    tb_free(&send);
  }
  tb_free(&recv);
  free(send_copy);
  caseno++;
}

static void run_reduce(mlcommDataType_t type, mlcommRedOp_t op, size_t count, int inplace,
                       enum mode m)
{
  int sk, rk;
  kinds(m, &sk, &rk);
  int root = (int)(caseno % (unsigned)tc_nranks);
  char what[200];
  describe(what, sizeof what, "Reduce", type, tc_op_name(op), count, inplace, root, m, sk, rk);
  uint64_t seed = tc_seed(C_REDUCE, (uint64_t)type * 8 + op, count, caseno);
  size_t bytes = count * tc_type_size(type);
  tbuf_t send, recv = {0};
  tb_alloc(&send, tc_comm, sk, bytes);
  tc_fill(send.body, type, op, count, seed, tc_rank, 0);
  void *send_copy = copy_of(send.body, bytes);
  /* recvbuff may be NULL off root: do that every fifth case. */
  bool null_recv = !inplace && tc_rank != root && caseno % 5 == 0;
  if (inplace)
    recv = send;
  else if (!null_recv)
    tb_alloc(&recv, tc_comm, rk, bytes);

  void *rptr = null_recv ? NULL : recv.body;
  if (CHECK_OK(mlcommReduce(send.body, rptr, count, type, op, root, tc_comm))) {
    if (tc_rank == root)
      ts_check_result(recv.body, type, op, count, seed, 0, tc_nranks, exact, what);
    else if (inplace)
      CHECK(memcmp(send.body, send_copy, bytes) == 0, "%s: non-root in-place buffer written", what);
    else if (!null_recv)
      CHECK(tb_pattern_intact(&recv, 0, bytes), "%s: non-root recvbuff written", what);
    if (!inplace) CHECK(memcmp(send.body, send_copy, bytes) == 0, "%s: sendbuff modified", what);
  }
  tb_gcheck(&send, what);
  if (!inplace && !null_recv) {
    tb_gcheck(&recv, what);
    tb_free(&recv);
  }
  tb_free(&send);
  free(send_copy);
  caseno++;
}

static void run_reducescatter(mlcommDataType_t type, mlcommRedOp_t op, size_t recvcount,
                              int inplace, enum mode m)
{
  int sk, rk;
  kinds(m, &sk, &rk);
  char what[200];
  describe(what, sizeof what, "ReduceScatter", type, tc_op_name(op), recvcount, inplace, -1, m,
           sk, rk);
  uint64_t seed = tc_seed(C_REDUCESCATTER, (uint64_t)type * 8 + op, recvcount, caseno);
  size_t block = recvcount * tc_type_size(type), total = block * (size_t)tc_nranks;
  tbuf_t send, recv = {0};
  tb_alloc(&send, tc_comm, sk, total);
  tc_fill(send.body, type, op, recvcount * (size_t)tc_nranks, seed, tc_rank, 0);
  void *send_copy = copy_of(send.body, total);
  unsigned char *rptr;
  if (inplace) {
    rptr = send.body + (size_t)tc_rank * block; /* the documented in-place layout */
  } else {
    tb_alloc(&recv, tc_comm, rk, block);
    rptr = recv.body;
  }

  if (CHECK_OK(mlcommReduceScatter(send.body, rptr, recvcount, type, op, tc_comm))) {
    ts_check_result(rptr, type, op, recvcount, seed, (size_t)tc_rank * recvcount, tc_nranks,
                    exact, what);
    if (!inplace) {
      CHECK(memcmp(send.body, send_copy, total) == 0, "%s: sendbuff modified", what);
    } else {
      /* Blocks other than ours keep this rank's input. */
      size_t before = (size_t)tc_rank * block, after = before + block;
      CHECK(memcmp(send.body, send_copy, before) == 0 &&
                memcmp(send.body + after, (char *)send_copy + after, total - after) == 0,
            "%s: in-place call modified other ranks' blocks of sendbuff", what);
    }
  }
  tb_gcheck(&send, what);
  if (!inplace) {
    tb_gcheck(&recv, what);
    tb_free(&recv);
  }
  tb_free(&send);
  free(send_copy);
  caseno++;
}

static void run_broadcast(mlcommDataType_t type, size_t count, int inplace, enum mode m)
{
  int sk, rk;
  kinds(m, &sk, &rk);
  int root = (int)((caseno + 1) % (unsigned)tc_nranks);
  char what[200];
  describe(what, sizeof what, "Broadcast", type, "-", count, inplace, root, m, sk, rk);
  uint64_t seed = tc_seed(C_BROADCAST, type, count, caseno);
  size_t bytes = count * tc_type_size(type);
  tbuf_t recv, send = {0};
  tb_alloc(&recv, tc_comm, rk, bytes);
  /* sendbuff may be NULL off root: do that every third case. */
  bool null_send = !inplace && tc_rank != root && caseno % 3 == 0;
  if (inplace)
    send = recv;
  else if (!null_send)
    tb_alloc(&send, tc_comm, sk, bytes);
  if (tc_rank == root) tc_fill(send.body, type, mlcommSum, count, seed, root, 0);
  void *send_copy = null_send ? NULL : copy_of(send.body, bytes);

  if (CHECK_OK(mlcommBroadcast(null_send ? NULL : send.body, recv.body, count, type, root,
                               tc_comm))) {
    void *expect = malloc(bytes ? bytes : 1);
    tc_fill(expect, type, mlcommSum, count, seed, root, 0);
    CHECK(memcmp(recv.body, expect, bytes) == 0, "%s: recvbuff differs from root's data", what);
    free(expect);
    if (!inplace && !null_send)
      CHECK(memcmp(send.body, send_copy, bytes) == 0, "%s: sendbuff modified", what);
  }
  ts_log_add(recv.body, bytes, what);
  tb_gcheck(&recv, what);
  if (!inplace && !null_send) {
    tb_gcheck(&send, what);
    tb_free(&send);
  }
  tb_free(&recv);
  free(send_copy);
  caseno++;
}

static void run_allgather(mlcommDataType_t type, size_t count, int inplace, enum mode m)
{
  int sk, rk;
  kinds(m, &sk, &rk);
  char what[200];
  describe(what, sizeof what, "AllGather", type, "-", count, inplace, -1, m, sk, rk);
  uint64_t seed = tc_seed(C_ALLGATHER, type, count, caseno);
  size_t bytes = count * tc_type_size(type), total = bytes * (size_t)tc_nranks;
  tbuf_t recv, send = {0};
  tb_alloc(&recv, tc_comm, rk, total);
  unsigned char *sptr;
  if (inplace) {
    sptr = recv.body + (size_t)tc_rank * bytes; /* the documented in-place layout */
  } else {
    tb_alloc(&send, tc_comm, sk, bytes);
    sptr = send.body;
  }
  tc_fill(sptr, type, mlcommSum, count, seed, tc_rank, 0);
  void *send_copy = copy_of(sptr, bytes);

  if (CHECK_OK(mlcommAllGather(sptr, recv.body, count, type, tc_comm))) {
    void *expect = malloc(bytes ? bytes : 1);
    int bad = 0, first_bad = -1;
    for (int k = 0; k < tc_nranks; k++) {
      tc_fill(expect, type, mlcommSum, count, seed, k, 0);
      if (memcmp(recv.body + (size_t)k * bytes, expect, bytes) != 0 && bad++ == 0) first_bad = k;
    }
    CHECK(bad == 0, "%s: %d of %d blocks wrong, first block %d", what, bad, tc_nranks, first_bad);
    free(expect);
    if (!inplace) CHECK(memcmp(send.body, send_copy, bytes) == 0, "%s: sendbuff modified", what);
  }
  ts_log_add(recv.body, total, what);
  tb_gcheck(&recv, what);
  if (!inplace) {
    tb_gcheck(&send, what);
    tb_free(&send);
  }
  tb_free(&recv);
  free(send_copy);
  caseno++;
}

/* ---------------------------------------------------------------- the matrix */

/* Counts for one type: the fixed odd ones, then the threshold and slice edges. */
static int counts_for(mlcommDataType_t type, size_t *out)
{
  size_t e = tc_type_size(type), small = ts_small_bytes(), slice = ts_slice_bytes();
  int n = 0;
  out[n++] = 1;
  out[n++] = 7;
  out[n++] = 1000;
  out[n++] = 65537;
  size_t s = small / e, sl = slice / e;
  size_t edges[] = {s, s + 1, sl + 1, 3 * sl + 5};
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    size_t c = edges[i];
    /* At most about 65537 elements, for time: the deep pipelines (many slices, slot
     * reuse) come from the runs with tiny slices and from test_collectives' large
     * section, which also runs on this transport. */
    if (c == 0 || c > 70000) continue;
    bool dup = false;
    for (int j = 0; j < n; j++) dup = dup || out[j] == c;
    if (!dup) out[n++] = c;
  }
  return n;
}

static void matrix(void)
{
  for (int t = 0; t < mlcommNumTypes; t++) {
    mlcommDataType_t type = (mlcommDataType_t)t;
    size_t counts[12];
    int ncounts = counts_for(type, counts);
    tc_section("%s: counts 1 7 1000 65537 and %d at the slice/threshold edges", tc_type_name(type),
               ncounts - 4);
    for (int c = 0; c < ncounts; c++) {
      /* 1, 7 and 1000 run every op; 65537 and the edge counts run two ops each,
       * rotating, so every (type, op) still meets large multi-slice sizes. */
      bool all_ops = c < 3;
      for (int inplace = 0; inplace < 2; inplace++) {
        for (int o = 0; o < mlcommNumOps; o++) {
          mlcommRedOp_t op = (mlcommRedOp_t)o;
          if (!all_ops && (o + t + c + inplace) % mlcommNumOps != 0 &&
              (o + t + c + inplace + 2) % mlcommNumOps != 0)
            continue;
          run_allreduce(type, op, counts[c], inplace, (enum mode)(caseno % NMODES));
          run_reduce(type, op, counts[c], inplace, (enum mode)(caseno % NMODES));
          run_reducescatter(type, op, counts[c], inplace, (enum mode)(caseno % NMODES));
        }
        run_broadcast(type, counts[c], inplace, (enum mode)(caseno % NMODES));
        run_allgather(type, counts[c], inplace, (enum mode)(caseno % NMODES));
      }
      char section[64];
      snprintf(section, sizeof section, "%s count=%zu", tc_type_name(type), counts[c]);
      ts_log_check(MPI_COMM_WORLD, section);
    }
  }
}

/* ---------------------------------------------------------------- same bits everywhere */

/* The same inputs through every buffer configuration must give the same bits: buffers
 * in the pool or not, in place or not, ranks agreeing on the kind or not. */
static void same_bits_any_buffers(mlcommDataType_t type, mlcommRedOp_t op, size_t count)
{
  tc_section("same bits from every buffer configuration: %s %s count=%zu", tc_type_name(type),
             tc_op_name(op), count);
  size_t e = tc_type_size(type), bytes = count * e, n = (size_t)tc_nranks;
  enum { NCONF = 6 };
  /* {send kind, recv kind, in place} per configuration; configuration 5 is per rank. */
  static const int conf[NCONF][3] = {{0, 0, 0}, {1, 1, 0}, {0, 1, 0}, {1, 0, 0}, {1, 1, 1},
                                     {0, 0, 1}};
  for (int coll = C_ALLREDUCE; coll <= C_REDUCESCATTER; coll++) {
    if (coll == C_BROADCAST) continue; /* no arithmetic: covered by the matrix */
    size_t in_elems = coll == C_REDUCESCATTER ? count * n : count;
    size_t out_bytes = coll == C_ALLGATHER ? bytes * n : bytes;
    uint64_t seed = tc_seed(77, (uint64_t)coll, type, op);
    unsigned char *first = malloc(out_bytes ? out_bytes : 1);
    static const char *const names[] = {"", "AllReduce", "", "Reduce", "AllGather",
                                        "ReduceScatter"};
    for (int c = 0; c < NCONF + 1; c++) {
      /* c == NCONF: every rank picks its own configuration. */
      int k = c < NCONF ? c : (tc_rank * 5 + 1) % NCONF;
      int sk = conf[k][0], rk = conf[k][1], inplace = conf[k][2];
      char what[160];
      snprintf(what, sizeof what, "%s %s %s count=%zu: configuration %d (send %s, recv %s%s)",
               names[coll], tc_type_name(type), tc_op_name(op), count, c, tb_kind_name(sk),
               tb_kind_name(rk), inplace ? ", in place" : "");
      /* In-place forms allocate one buffer; the other tbuf stays zeroed. */
      tbuf_t send = {0}, recv = {0};
      unsigned char *sptr, *rptr;
      mlcommResult_t r;
      if (coll == C_ALLGATHER) {
        tb_alloc(&recv, tc_comm, rk, out_bytes);
        rptr = recv.body;
        if (inplace) {
          sptr = recv.body + (size_t)tc_rank * bytes;
        } else {
          tb_alloc(&send, tc_comm, sk, bytes);
          sptr = send.body;
        }
        tc_fill(sptr, type, op, count, seed, tc_rank, 0);
        r = mlcommAllGather(sptr, rptr, count, type, tc_comm);
      } else if (coll == C_REDUCESCATTER) {
        tb_alloc(&send, tc_comm, sk, bytes * n);
        sptr = send.body;
        if (inplace) {
          rptr = send.body + (size_t)tc_rank * bytes;
        } else {
          tb_alloc(&recv, tc_comm, rk, bytes);
          rptr = recv.body;
        }
        tc_fill(sptr, type, op, in_elems, seed, tc_rank, 0);
        r = mlcommReduceScatter(sptr, rptr, count, type, op, tc_comm);
      } else {
        tb_alloc(&recv, tc_comm, rk, bytes);
        rptr = recv.body;
        if (inplace) {
          sptr = recv.body;
        } else {
          tb_alloc(&send, tc_comm, sk, bytes);
          sptr = send.body;
        }
        tc_fill(sptr, type, op, count, seed, tc_rank, 0);
        r = coll == C_ALLREDUCE ? mlcommAllReduce(sptr, rptr, count, type, op, tc_comm)
                                : mlcommReduce(sptr, rptr, count, type, op, 0, tc_comm);
      }
      size_t got_bytes = coll == C_REDUCESCATTER ? bytes : out_bytes;
      if (CHECK_RES(r, mlcommSuccess) && (coll != C_REDUCE || tc_rank == 0)) {
        if (c == 0)
          memcpy(first, rptr, got_bytes);
        else
          CHECK(memcmp(first, rptr, got_bytes) == 0,
                "%s: result differs from the all-malloc configuration's bits", what);
      }
      tb_gcheck(&send, what);
      tb_gcheck(&recv, what);
      tb_free(&send);
      tb_free(&recv);
    }
    free(first);
  }
}

int main(int argc, char **argv)
{
  tc_init(&argc, &argv);
  /* MLCOMM_TEST_EXACT_ORDER=1 asks for the bitwise rank-order check on any transport
   * (true of every transport at 1 or 2 ranks, where the order cannot differ). */
  exact = tc_transport == mlcommTransportShm || getenv("MLCOMM_TEST_EXACT_ORDER") != NULL;
  tc_section("transport %s, slice %zu bytes, one-shot up to %zu bytes, float results %s",
             tc_transport == mlcommTransportShm ? "shm" : "not shm", ts_slice_bytes(),
             ts_small_bytes(), exact ? "checked bit for bit in rank order" : "within tolerance");
  matrix();
  size_t sl = ts_slice_bytes();
  same_bits_any_buffers(mlcommFloat32, mlcommSum, 3 * (sl / 4) + 5);
  same_bits_any_buffers(mlcommBfloat16, mlcommAvg, 2 * (sl / 2) + 3);
  same_bits_any_buffers(mlcommFloat64, mlcommProd, 1001);
  return tc_finish();
}

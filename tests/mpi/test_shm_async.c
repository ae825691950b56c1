/*
 * Asynchronous requests on the shared-memory transport, and several communicators at
 * once.
 *
 *  - 24 collectives of every kind in flight on one communicator (small ones through the
 *    one-shot path, large ones through the pipeline; pool and malloc buffers mixed per
 *    rank), completed in reverse order with mlcommWait; the same set completed by
 *    polling mlcommTest alone; and with mlcommWaitAll.
 *  - More small requests in flight than a rank may run ahead of its peers (64), so
 *    a rank must wait for slots while others still have work queued.
 *  - Blocking and Async forms of the same collective matched across ranks.
 *  - Two and three communicators at once: world, a second world communicator and a
 *    split one (reversed keys), with Async work interleaved on all of them and waited
 *    in a mixed order; communicators created with different MLCOMM_SHM_* tuning used
 *    together; and rank 0 calling two communicators in the opposite order from the
 *    others (its first call Async), which deadlocks if a request on one communicator
 *    waits behind another communicator's.
 * Results are checked against local references and must be bitwise identical on every
 * rank of their communicator.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm_common.h"

enum kind { K_ALLREDUCE, K_BROADCAST, K_REDUCE, K_ALLGATHER, K_REDUCESCATTER, K_BARRIER, NKINDS };
static const char *const kind_names[] = {"AllReduce", "Broadcast", "Reduce", "AllGather",
                                         "ReduceScatter", "Barrier"};

static bool exact; /* -t shm: float reductions bit for bit in rank order */

/* One asynchronous collective on some communicator. */
struct job {
  enum kind kind;
  mlcommComm_t comm;
  MPI_Comm mpi;  /* the same ranks, for the identity check */
  int rank, n;   /* in comm */
  mlcommDataType_t type;
  mlcommRedOp_t op;
  size_t count;
  int root;
  uint64_t seed;
  tbuf_t send, recv;
  mlcommRequest_t req;
  mlcommResult_t result;
  char what[160];
};

static void job_init(struct job *j, enum kind kind, mlcommComm_t comm, mlcommDataType_t type,
                     mlcommRedOp_t op, size_t count, int root, unsigned id)
{
  memset(j, 0, sizeof *j);
  j->kind = kind;
  j->comm = comm;
  mlcommCommRank(comm, &j->rank);
  mlcommCommCount(comm, &j->n);
  mlcommCommGetMPI(comm, &j->mpi);
  j->type = type;
  j->op = op;
  j->count = count;
  j->root = root % j->n;
  j->seed = tc_seed(100 + kind, type * 8u + op, count, id);
  /* Buffer kinds differ per rank and per job: every mix of pool and malloc. */
  unsigned v = (id + (unsigned)j->rank) % 4;
  int sk = (int)(v & 1), rk = (int)(v >> 1);
  snprintf(j->what, sizeof j->what, "job %u: %s %s %s count=%zu root=%d (send %s, recv %s)", id,
           kind_names[kind], tc_type_name(type), tc_op_name(op), count, j->root,
           tb_kind_name(sk), tb_kind_name(rk));
  size_t bytes = count * tc_type_size(type), n = (size_t)j->n;
  size_t sbytes = kind == K_REDUCESCATTER ? bytes * n : kind == K_BARRIER ? 0 : bytes;
  size_t rbytes = kind == K_ALLGATHER ? bytes * n : kind == K_BARRIER ? 0 : bytes;
  tb_alloc(&j->send, comm, sk, sbytes);
  tb_alloc(&j->recv, comm, rk, rbytes);
  size_t send_count = kind == K_REDUCESCATTER ? count * n : count;
  if (kind != K_BARRIER)
    tc_fill(j->send.body, type, op, send_count, j->seed,
            kind == K_BROADCAST ? j->root : j->rank, 0);
}

static mlcommResult_t job_start(struct job *j)
{
  void *s = j->send.body, *r = j->recv.body;
  mlcommComm_t c = j->comm;
  switch (j->kind) {
  case K_ALLREDUCE: return mlcommAllReduceAsync(s, r, j->count, j->type, j->op, c, &j->req);
  case K_BROADCAST: return mlcommBroadcastAsync(s, r, j->count, j->type, j->root, c, &j->req);
  case K_REDUCE: return mlcommReduceAsync(s, r, j->count, j->type, j->op, j->root, c, &j->req);
  case K_ALLGATHER: return mlcommAllGatherAsync(s, r, j->count, j->type, c, &j->req);
  case K_REDUCESCATTER:
    return mlcommReduceScatterAsync(s, r, j->count, j->type, j->op, c, &j->req);
  default: return mlcommBarrierAsync(c, &j->req);
  }
}

/* The blocking form of the same call. */
static mlcommResult_t job_run_blocking(struct job *j)
{
  void *s = j->send.body, *r = j->recv.body;
  mlcommComm_t c = j->comm;
  switch (j->kind) {
  case K_ALLREDUCE: return mlcommAllReduce(s, r, j->count, j->type, j->op, c);
  case K_BROADCAST: return mlcommBroadcast(s, r, j->count, j->type, j->root, c);
  case K_REDUCE: return mlcommReduce(s, r, j->count, j->type, j->op, j->root, c);
  case K_ALLGATHER: return mlcommAllGather(s, r, j->count, j->type, c);
  case K_REDUCESCATTER: return mlcommReduceScatter(s, r, j->count, j->type, j->op, c);
  default: return mlcommBarrier(c);
  }
}

/* Checks a completed job, then frees it. The identity check is collective over the
 * job's communicator: call job_verify for the same jobs in the same order everywhere. */
static void job_verify(struct job *j)
{
  size_t bytes = j->count * tc_type_size(j->type);
  if (j->result == mlcommSuccess) {
    void *expect = malloc(j->recv.bytes ? j->recv.bytes : 1);
    switch (j->kind) {
    case K_ALLREDUCE:
      ts_check_result(j->recv.body, j->type, j->op, j->count, j->seed, 0, j->n, exact, j->what);
      break;
    case K_REDUCE:
      if (j->rank == j->root)
        ts_check_result(j->recv.body, j->type, j->op, j->count, j->seed, 0, j->n, exact, j->what);
      else
        CHECK(tb_pattern_intact(&j->recv, 0, bytes), "%s: non-root recvbuff written", j->what);
      break;
    case K_BROADCAST:
      tc_fill(expect, j->type, j->op, j->count, j->seed, j->root, 0);
      CHECK(memcmp(expect, j->recv.body, bytes) == 0, "%s: wrong data", j->what);
      break;
    case K_ALLGATHER:
      for (int k = 0; k < j->n; k++)
        tc_fill((char *)expect + (size_t)k * bytes, j->type, j->op, j->count, j->seed, k, 0);
      CHECK(memcmp(expect, j->recv.body, j->recv.bytes) == 0, "%s: wrong data", j->what);
      break;
    case K_REDUCESCATTER:
      ts_check_result(j->recv.body, j->type, j->op, j->count, j->seed,
                      (size_t)j->rank * j->count, j->n, exact, j->what);
      break;
    default: break;
    }
    free(expect);
  } else {
    CHECK_RES(j->result, mlcommSuccess);
  }
  if (j->kind == K_ALLREDUCE || j->kind == K_BROADCAST || j->kind == K_ALLGATHER)
    ts_identical(j->recv.body, j->recv.bytes, j->mpi, j->what);
  tb_gcheck(&j->send, j->what);
  tb_gcheck(&j->recv, j->what);
  tb_free(&j->send);
  tb_free(&j->recv);
}

/* A batch of every kind, sizes from one element to several hundred KiB. */
enum { BATCH = 24 };
static void batch_init(struct job *jobs, mlcommComm_t comm, unsigned id0)
{
  static const mlcommDataType_t types[] = {mlcommFloat32, mlcommInt8,  mlcommBfloat16,
                                           mlcommUint64,  mlcommFloat64, mlcommFloat16,
                                           mlcommInt32,  mlcommUint8};
  size_t slice = ts_slice_bytes();
  for (int i = 0; i < BATCH; i++) {
    enum kind k = (enum kind)(i % NKINDS);
    mlcommDataType_t t = types[(size_t)i % (sizeof types / sizeof types[0])];
    mlcommRedOp_t op = (mlcommRedOp_t)((i / 2) % mlcommNumOps);
    /* Alternate small (one-shot) and large (several slices) counts. */
    size_t count = i % 3 == 0 ? (size_t)(1 + i)
                   : i % 3 == 1 ? 1000 + (size_t)i
                                : (3 * slice) / tc_type_size(t) + 5 + (size_t)i;
    job_init(&jobs[i], k, comm, t, op, count, i, id0 + (unsigned)i);
  }
}

static void in_flight_reverse_wait(void)
{
  tc_section("%d requests of every kind in flight, waited in reverse order", BATCH);
  struct job jobs[BATCH];
  batch_init(jobs, tc_comm, 0);
  for (int i = 0; i < BATCH; i++) {
    CHECK_OK(job_start(&jobs[i]));
    CHECK(jobs[i].req != MLCOMM_REQUEST_NULL, "%s: no request", jobs[i].what);
  }
  for (int i = BATCH - 1; i >= 0; i--) {
    jobs[i].result = mlcommWait(&jobs[i].req, NULL);
    CHECK(jobs[i].req == MLCOMM_REQUEST_NULL, "%s: Wait did not release the handle",
          jobs[i].what);
  }
  for (int i = 0; i < BATCH; i++) job_verify(&jobs[i]);
}

static void in_flight_test_polling(void)
{
  tc_section("%d requests completed by mlcommTest polling alone", BATCH);
  struct job jobs[BATCH];
  batch_init(jobs, tc_comm, 100);
  for (int i = 0; i < BATCH; i++) CHECK_OK(job_start(&jobs[i]));
  int left = BATCH;
  long polls = 0;
  double t0 = ts_now();
  while (left > 0 && ts_now() - t0 < 60.0) {
    /* Poll from the last to the first: completion is not in start order. */
    for (int i = BATCH - 1; i >= 0; i--) {
      if (jobs[i].req == MLCOMM_REQUEST_NULL) continue;
      int done = -1;
      mlcommResult_t r = mlcommTest(&jobs[i].req, &done, NULL);
      polls++;
      if (r != mlcommSuccess || done) {
        jobs[i].result = r;
        left--;
        CHECK(r != mlcommSuccess || jobs[i].req == MLCOMM_REQUEST_NULL,
              "%s: Test said done but kept the handle", jobs[i].what);
        if (r != mlcommSuccess) jobs[i].req = MLCOMM_REQUEST_NULL;
      } else {
        CHECK(done == 0, "%s: Test set done=%d", jobs[i].what, done);
      }
    }
  }
  CHECK(left == 0, "%d requests still not done after %ld polls over 60 s", left, polls);
  for (int i = 0; i < BATCH; i++) {
    if (jobs[i].req != MLCOMM_REQUEST_NULL) {
      /* Never finished: leave the communicator usable for the checks below. */
      jobs[i].result = mlcommWait(&jobs[i].req, NULL);
    }
    job_verify(&jobs[i]);
  }
}

static void in_flight_waitall(void)
{
  tc_section("%d requests completed by mlcommWaitAll", BATCH);
  struct job jobs[BATCH];
  batch_init(jobs, tc_comm, 200);
  mlcommRequest_t reqs[BATCH];
  for (int i = 0; i < BATCH; i++) {
    CHECK_OK(job_start(&jobs[i]));
    reqs[BATCH - 1 - i] = jobs[i].req;
  }
  mlcommResult_t r = mlcommWaitAll(BATCH, reqs, NULL);
  CHECK_RES(r, mlcommSuccess);
  for (int i = 0; i < BATCH; i++) {
    CHECK(reqs[i] == MLCOMM_REQUEST_NULL, "WaitAll left entry %d", i);
    jobs[i].result = r;
    job_verify(&jobs[i]);
  }
}

/* More small requests in flight than a rank may run ahead of its peers: the ranks must
 * hand slots over while requests are still queued. */
static void many_small(void)
{
  enum { M = 64 };
  tc_section("%d small AllReduce/Broadcast requests in flight at once", M);
  int32_t *in = malloc(M * 5 * sizeof(int32_t)), *out = malloc(M * 5 * sizeof(int32_t));
  mlcommRequest_t reqs[M];
  for (int i = 0; i < M; i++) {
    for (int k = 0; k < 5; k++) in[i * 5 + k] = (tc_rank + 1) * (i + 1) + k;
    if (i % 4 == 3)
      CHECK_OK(mlcommBroadcastAsync(in + i * 5, out + i * 5, 5, mlcommInt32, i % tc_nranks,
                                    tc_comm, &reqs[i]));
    else
      CHECK_OK(mlcommAllReduceAsync(in + i * 5, out + i * 5, 5, mlcommInt32, mlcommSum, tc_comm,
                                    &reqs[i]));
  }
  /* Ranks complete them differently: even ranks WaitAll, odd ranks in reverse. */
  if (tc_rank % 2 == 0) {
    CHECK_OK(mlcommWaitAll(M, reqs, NULL));
  } else {
    for (int i = M - 1; i >= 0; i--) CHECK_OK(mlcommWait(&reqs[i], NULL));
  }
  int bad = 0;
  int32_t ranksum = tc_nranks * (tc_nranks + 1) / 2;
  for (int i = 0; i < M; i++)
    for (int k = 0; k < 5; k++) {
      int32_t want = i % 4 == 3 ? (i % tc_nranks + 1) * (i + 1) + k
                                : ranksum * (i + 1) + k * tc_nranks;
      if (out[i * 5 + k] != want) bad++;
    }
  CHECK(bad == 0, "%d of %d elements wrong across %d small requests", bad, M * 5, M);
  free(in);
  free(out);
}

/* Rank r uses the Async form for job i when (i + r) is even, the blocking one otherwise:
 * the forms must match each other. */
static void blocking_meets_async(void)
{
  tc_section("blocking and Async forms of the same collective matched across ranks");
  enum { N = 12 };
  struct job jobs[BATCH];
  batch_init(jobs, tc_comm, 300); /* the first N of a batch */
  for (int i = N; i < BATCH; i++) {
    tb_free(&jobs[i].send);
    tb_free(&jobs[i].recv);
  }
  for (int i = 0; i < N; i++) {
    if ((i + tc_rank) % 2 == 0) {
      if (CHECK_OK(job_start(&jobs[i]))) jobs[i].result = mlcommWait(&jobs[i].req, NULL);
    } else {
      jobs[i].result = job_run_blocking(&jobs[i]);
    }
  }
  for (int i = 0; i < N; i++) job_verify(&jobs[i]);
}

/* ---------------------------------------------------------------- several communicators */

static void three_comms(void)
{
  tc_section("world, a second world and a split communicator in flight at once");
  mlcommConfig_t cfg;
  tc_config(&cfg);
  mlcommComm_t world2 = MLCOMM_COMM_NULL, split = MLCOMM_COMM_NULL;
  if (!CHECK_OK(mlcommCommInitFromMPI(&world2, MPI_COMM_WORLD, &cfg))) return;
  /* Two colors, each ordered by decreasing world rank: split ranks differ from world's. */
  if (!CHECK_OK(mlcommCommSplit(tc_comm, tc_rank % 2, -tc_rank, &split, NULL))) {
    mlcommCommDestroy(world2);
    return;
  }
  mlcommComm_t comms[3] = {tc_comm, world2, split};
  enum { PER = 6, N = 3 * PER };
  struct job jobs[N];
  size_t slice = ts_slice_bytes();
  for (int i = 0; i < N; i++) {
    int c = i % 3;
    enum kind k = (enum kind)((i / 3 + c) % NKINDS);
    size_t count = i % 2 ? 2 * slice / 4 + 3 : (size_t)(3 + i);
    job_init(&jobs[i], k, comms[c], mlcommFloat32, (mlcommRedOp_t)(i % mlcommNumOps), count,
             i, 400 + (unsigned)i);
  }
  /* Starts interleave the communicators; waits go in another order. */
  for (int i = 0; i < N; i++) CHECK_OK(job_start(&jobs[i]));
  static const int order[N] = {17, 4, 9, 0, 12, 1, 16, 7, 2, 14, 5, 10, 3, 15, 8, 13, 6, 11};
  for (int i = 0; i < N; i++) jobs[order[i]].result = mlcommWait(&jobs[order[i]].req, NULL);
  /* Verify per communicator, in one order everywhere (identity checks are collective
   * over each communicator's ranks, and the split's two halves verify independently). */
  for (int c = 0; c < 3; c++)
    for (int i = c; i < N; i += 3) job_verify(&jobs[i]);

  /* Rank 0 starts a collective on world2, then makes a blocking call on world; every
   * other rank calls world first, then world2. Each communicator's own order is the same
   * everywhere, so this completes - unless a request on one communicator waits behind
   * another communicator's. */
  if (tc_nranks >= 2) {
    tc_section("rank 0 calls two communicators in the opposite order (Async first)");
    struct job a, b;
    job_init(&a, K_ALLREDUCE, tc_comm, mlcommFloat64, mlcommSum, 3 * slice / 8 + 11, 0, 500);
    job_init(&b, K_ALLGATHER, world2, mlcommInt32, mlcommSum, slice / 4 + 1, 0, 501);
    if (tc_rank == 0) {
      CHECK_OK(job_start(&b));
      a.result = job_run_blocking(&a);
      b.result = mlcommWait(&b.req, NULL);
    } else {
      a.result = job_run_blocking(&a);
      b.result = job_run_blocking(&b);
    }
    job_verify(&a);
    job_verify(&b);
  }
  CHECK_OK(mlcommCommDestroy(split));
  CHECK_OK(mlcommCommDestroy(world2));
}

/* Communicators created under different MLCOMM_SHM_* settings (read at creation) work
 * side by side. */
static void differently_tuned(void)
{
  tc_section("communicators with different MLCOMM_SHM_* tuning used together");
  static const char *const vars[] = {"MLCOMM_SHM_SLICE_BYTES", "MLCOMM_SHM_SLOTS",
                                     "MLCOMM_SHM_SMALL_BYTES"};
  static const char *const values[2][3] = {{"4096", "2", "0"}, {"262144", "8", "65536"}};
  char *saved[3];
  for (int v = 0; v < 3; v++) saved[v] = getenv(vars[v]) ? strdup(getenv(vars[v])) : NULL;
  mlcommComm_t comms[2] = {MLCOMM_COMM_NULL, MLCOMM_COMM_NULL};
  for (int c = 0; c < 2; c++) {
    for (int v = 0; v < 3; v++) setenv(vars[v], values[c][v], 1);
    mlcommConfig_t cfg;
    tc_config(&cfg);
    CHECK_OK(mlcommCommInitFromMPI(&comms[c], MPI_COMM_WORLD, &cfg));
  }
  for (int v = 0; v < 3; v++) {
    if (saved[v]) {
      setenv(vars[v], saved[v], 1);
      free(saved[v]);
    } else {
      unsetenv(vars[v]);
    }
  }
  if (comms[0] == MLCOMM_COMM_NULL || comms[1] == MLCOMM_COMM_NULL) {
    for (int c = 0; c < 2; c++)
      if (comms[c]) mlcommCommDestroy(comms[c]);
    return;
  }
  enum { N = 12 };
  struct job jobs[N];
  static const size_t counts[] = {1, 100, 4097, 40000, 65537, 200003};
  for (int i = 0; i < N; i++) {
    mlcommComm_t c = i % 3 == 2 ? tc_comm : comms[i % 3];
    enum kind k = (enum kind)(i % 5); /* no barrier */
    job_init(&jobs[i], k, c, i % 2 ? mlcommBfloat16 : mlcommFloat32, mlcommSum,
             counts[i % 6], i, 600 + (unsigned)i);
  }
  for (int i = 0; i < N; i++) CHECK_OK(job_start(&jobs[i]));
  for (int i = N - 1; i >= 0; i--) jobs[i].result = mlcommWait(&jobs[i].req, NULL);
  for (int i = 0; i < N; i++) job_verify(&jobs[i]);
  CHECK_OK(mlcommCommDestroy(comms[0]));
  CHECK_OK(mlcommCommDestroy(comms[1]));
}

int main(int argc, char **argv)
{
  tc_init(&argc, &argv);
  /* MLCOMM_TEST_EXACT_ORDER=1 asks for the bitwise rank-order check on any transport
   * (true of every transport at 1 or 2 ranks, where the order cannot differ). */
  exact = tc_transport == mlcommTransportShm || getenv("MLCOMM_TEST_EXACT_ORDER") != NULL;
  in_flight_reverse_wait();
  in_flight_test_polling();
  in_flight_waitall();
  many_small();
  blocking_meets_async();
  three_comms();
  differently_tuned();
  return tc_finish();
}

/*
 * Asynchronous requests: many overlapping operations on one communicator completed out
 * of order, mlcommTest polling, mlcommWaitAll, groups, the documented "a request is real
 * asynchrony" scenario that deadlocks if an Async call is a blocking call behind a
 * handle, and the handle rules (NULL after completion, stale copies refused).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

enum kind { K_ALLREDUCE, K_BROADCAST, K_REDUCE, K_ALLGATHER, K_REDUCESCATTER, K_BARRIER,
            K_SEND, K_RECV };
static const char *const kind_names[] = {"AllReduce", "Broadcast", "Reduce", "AllGather",
                                         "ReduceScatter", "Barrier", "SendAsync", "RecvAsync"};

/* One asynchronous operation: what it is, its buffers, its request. */
struct job {
  enum kind kind;
  mlcommDataType_t type;
  mlcommRedOp_t op;
  size_t count;
  int root; /* Broadcast/Reduce root; peer for Send/Recv */
  int tag;
  uint64_t seed;
  void *send, *recv;
  size_t send_bytes, recv_bytes;
  mlcommRequest_t req;
  mlcommStatus_t status;
  char what[128];
};

static int next_rank(void) { return (tc_rank + 1) % tc_nranks; }
static int prev_rank(void) { return (tc_rank + tc_nranks - 1) % tc_nranks; }

static void job_init(struct job *j, enum kind kind, mlcommDataType_t type, mlcommRedOp_t op,
                     size_t count, int root, int tag)
{
  memset(j, 0, sizeof *j);
  j->kind = kind;
  j->type = type;
  j->op = op;
  j->count = count;
  j->root = root;
  j->tag = tag;
  /* A Send and the Recv it pairs with (same tag) must agree on the data. */
  uint64_t seed_kind = (kind == K_SEND || kind == K_RECV) ? 99 : (uint64_t)kind;
  j->seed = tc_seed(seed_kind, type, op * 1000u + (uint64_t)tag, count);
  snprintf(j->what, sizeof j->what, "%s %s %s count=%zu tag=%d", kind_names[kind],
           tc_type_name(type), tc_op_name(op), count, tag);
  size_t bytes = count * tc_type_size(type), n = (size_t)tc_nranks;
  switch (kind) {
  case K_ALLREDUCE:
  case K_REDUCE: j->send_bytes = j->recv_bytes = bytes; break;
  case K_BROADCAST: j->send_bytes = j->recv_bytes = bytes; break;
  case K_ALLGATHER: j->send_bytes = bytes; j->recv_bytes = bytes * n; break;
  case K_REDUCESCATTER: j->send_bytes = bytes * n; j->recv_bytes = bytes; break;
  case K_BARRIER: break;
  case K_SEND: j->send_bytes = bytes; break;
  case K_RECV: j->recv_bytes = bytes; break;
  }
  j->send = tc_galloc(j->send_bytes);
  j->recv = tc_galloc(j->recv_bytes);
  size_t send_count = kind == K_REDUCESCATTER ? count * n : count;
  int owner = kind == K_BROADCAST ? root : tc_rank;
  if (kind != K_RECV && kind != K_BARRIER)
    tc_fill(j->send, type, op, send_count, j->seed, owner, 0);
}

static mlcommResult_t job_start(struct job *j)
{
  mlcommComm_t c = tc_comm;
  mlcommRequest_t *r = &j->req;
  switch (j->kind) {
  case K_ALLREDUCE: return mlcommAllReduceAsync(j->send, j->recv, j->count, j->type, j->op, c, r);
  case K_BROADCAST: return mlcommBroadcastAsync(j->send, j->recv, j->count, j->type, j->root, c, r);
  case K_REDUCE:
    return mlcommReduceAsync(j->send, j->recv, j->count, j->type, j->op, j->root, c, r);
  case K_ALLGATHER: return mlcommAllGatherAsync(j->send, j->recv, j->count, j->type, c, r);
  case K_REDUCESCATTER:
    return mlcommReduceScatterAsync(j->send, j->recv, j->count, j->type, j->op, c, r);
  case K_BARRIER: return mlcommBarrierAsync(c, r);
  case K_SEND: return mlcommSendAsync(j->send, j->count, j->type, j->root, j->tag, c, r);
  case K_RECV: return mlcommRecvAsync(j->recv, j->count, j->type, j->root, j->tag, c, r);
  }
  return mlcommInternalError;
}

/* Checks the results of a completed job against a locally computed reference. */
static void job_verify(struct job *j)
{
  size_t esize = tc_type_size(j->type), bytes = j->count * esize;
  void *expect = tc_galloc(j->recv_bytes);
  switch (j->kind) {
  case K_ALLREDUCE:
    tc_check_reduced(j->recv, j->type, j->op, j->count, j->seed, 0, tc_nranks, j->what);
    CHECK(j->status.bytes == bytes, "%s: status.bytes %zu, expected %zu", j->what,
          j->status.bytes, bytes);
    break;
  case K_REDUCE:
    if (tc_rank == j->root)
      tc_check_reduced(j->recv, j->type, j->op, j->count, j->seed, 0, tc_nranks, j->what);
    else
      CHECK(tc_gpattern_intact(j->recv, 0, j->recv_bytes), "%s: non-root recvbuff written",
            j->what);
    break;
  case K_BROADCAST:
    tc_fill(expect, j->type, j->op, j->count, j->seed, j->root, 0);
    CHECK(memcmp(expect, j->recv, bytes) == 0, "%s: wrong data", j->what);
    break;
  case K_ALLGATHER:
    for (int k = 0; k < tc_nranks; k++)
      tc_fill((char *)expect + (size_t)k * bytes, j->type, j->op, j->count, j->seed, k, 0);
    CHECK(memcmp(expect, j->recv, j->recv_bytes) == 0, "%s: wrong data", j->what);
    CHECK(j->status.bytes == bytes, "%s: status.bytes %zu, expected %zu", j->what,
          j->status.bytes, bytes);
    break;
  case K_REDUCESCATTER:
    tc_check_reduced(j->recv, j->type, j->op, j->count, j->seed, (size_t)tc_rank * j->count,
                     tc_nranks, j->what);
    break;
  case K_BARRIER:
  case K_SEND: break;
  case K_RECV:
    tc_fill(expect, j->type, j->op, j->count, j->seed, j->root, 0);
    CHECK(memcmp(expect, j->recv, bytes) == 0, "%s: wrong data", j->what);
    CHECK(j->status.source == j->root && j->status.tag == j->tag && j->status.bytes == bytes,
          "%s: status {source %d, tag %d, bytes %zu}, expected {%d, %d, %zu}", j->what,
          j->status.source, j->status.tag, j->status.bytes, j->root, j->tag, bytes);
    break;
  }
  /* Documented status of collectives and sends: the caller's rank and tag -1. */
  if (j->kind != K_RECV)
    CHECK(j->status.source == tc_rank && j->status.tag == -1,
          "%s: status {source %d, tag %d}, expected {%d, -1}", j->what, j->status.source,
          j->status.tag, tc_rank);
  tc_gcheck(j->send, j->what);
  tc_gcheck(j->recv, j->what);
  tc_gfree(expect);
}

static void job_free(struct job *j)
{
  tc_gfree(j->send);
  tc_gfree(j->recv);
}

/* Sends are matched by tags, so Send jobs of one batch pair up with Recv jobs of the
 * same tag: this rank sends to next and receives that tag from prev. */
static void overlapping(void)
{
  enum { N = 16 };
  tc_section("16 overlapping requests, waited in reverse order");
  int last = tc_nranks - 1;
  struct job jobs[N];
  job_init(&jobs[0], K_ALLREDUCE, mlcommFloat32, mlcommSum, 100003, 0, 0);
  job_init(&jobs[1], K_RECV, mlcommInt32, mlcommSum, 70001, prev_rank(), 301);
  job_init(&jobs[2], K_BROADCAST, mlcommUint8, mlcommSum, 300007, last, 0);
  job_init(&jobs[3], K_ALLGATHER, mlcommFloat64, mlcommSum, 4097, 0, 0);
  job_init(&jobs[4], K_REDUCE, mlcommInt64, mlcommProd, 1023, last, 0);
  job_init(&jobs[5], K_SEND, mlcommInt32, mlcommSum, 70001, next_rank(), 301);
  job_init(&jobs[6], K_REDUCESCATTER, mlcommBfloat16, mlcommMax, 5001, 0, 0);
  job_init(&jobs[7], K_BARRIER, mlcommInt8, mlcommSum, 0, 0, 0);
  job_init(&jobs[8], K_ALLREDUCE, mlcommInt8, mlcommAvg, 1, 0, 0);
  job_init(&jobs[9], K_ALLREDUCE, mlcommFloat16, mlcommSum, 262147, 0, 0);
  job_init(&jobs[10], K_SEND, mlcommFloat64, mlcommSum, 1, next_rank(), 302);
  job_init(&jobs[11], K_REDUCE, mlcommFloat32, mlcommMin, 8191, 0, 0);
  job_init(&jobs[12], K_ALLGATHER, mlcommUint32, mlcommSum, 0, 0, 0);
  job_init(&jobs[13], K_RECV, mlcommFloat64, mlcommSum, 1, prev_rank(), 302);
  job_init(&jobs[14], K_REDUCESCATTER, mlcommUint64, mlcommSum, 33333, 0, 0);
  job_init(&jobs[15], K_ALLREDUCE, mlcommFloat64, mlcommMax, 1000001, 0, 0);

  for (int i = 0; i < N; i++) {
    CHECK_RES(job_start(&jobs[i]), mlcommSuccess);
    CHECK(jobs[i].req != MLCOMM_REQUEST_NULL, "%s: no request returned", jobs[i].what);
  }
  /* A round of polling: a request found done must be released (handle NULL). */
  for (int i = 0; i < N; i++) {
    int done = -1;
    mlcommRequest_t before = jobs[i].req;
    CHECK_OK(mlcommTest(&jobs[i].req, &done, &jobs[i].status));
    CHECK(done == 0 || done == 1, "%s: Test set done=%d", jobs[i].what, done);
    if (done == 1)
      CHECK(jobs[i].req == MLCOMM_REQUEST_NULL, "%s: done but handle not released",
            jobs[i].what);
    else
      CHECK(jobs[i].req == before, "%s: not done but handle changed", jobs[i].what);
  }
  for (int i = N - 1; i >= 0; i--) {
    if (jobs[i].req == MLCOMM_REQUEST_NULL) continue;
    CHECK_OK(mlcommWait(&jobs[i].req, &jobs[i].status));
    CHECK(jobs[i].req == MLCOMM_REQUEST_NULL, "%s: Wait did not release the handle",
          jobs[i].what);
  }
  for (int i = 0; i < N; i++) {
    job_verify(&jobs[i]);
    job_free(&jobs[i]);
  }
}

/* Polls one large request with Test alone until it completes. */
static void test_polling(void)
{
  tc_section("mlcommTest polling");
  struct job j;
  job_init(&j, K_ALLREDUCE, mlcommFloat32, mlcommSum, 1u << 21, 0, 0);
  if (!CHECK_OK(job_start(&j))) return;
  int done = 0;
  long polls = 0;
  double t0 = MPI_Wtime();
  while (!done && MPI_Wtime() - t0 < 60.0) {
    mlcommResult_t r = mlcommTest(&j.req, &done, &j.status);
    if (r != mlcommSuccess) {
      CHECK_RES(r, mlcommSuccess);
      break;
    }
    polls++;
  }
  CHECK(done == 1, "Test never reported completion after %ld polls", polls);
  CHECK(j.req == MLCOMM_REQUEST_NULL, "Test reported done but did not release the handle");
  if (done) job_verify(&j);
  job_free(&j);
}

static void wait_all(void)
{
  tc_section("mlcommWaitAll");
  enum { N = 9 };
  struct job jobs[6];
  job_init(&jobs[0], K_ALLREDUCE, mlcommUint32, mlcommSum, 40961, 0, 0);
  job_init(&jobs[1], K_SEND, mlcommUint8, mlcommSum, 1u << 20, next_rank(), 401);
  job_init(&jobs[2], K_ALLGATHER, mlcommInt8, mlcommSum, 777, 0, 0);
  job_init(&jobs[3], K_RECV, mlcommUint8, mlcommSum, 1u << 20, prev_rank(), 401);
  job_init(&jobs[4], K_REDUCESCATTER, mlcommFloat32, mlcommAvg, 1001, 0, 0);
  job_init(&jobs[5], K_BROADCAST, mlcommFloat16, mlcommSum, 999, tc_nranks - 1, 0);
  /* NULL entries are documented as skipped: interleave some. */
  mlcommRequest_t reqs[N];
  mlcommStatus_t statuses[N];
  int slot_of[6] = {0, 2, 3, 5, 6, 8};
  for (int i = 0; i < N; i++) reqs[i] = MLCOMM_REQUEST_NULL;
  for (int i = 0; i < 6; i++) {
    CHECK_OK(job_start(&jobs[i]));
    reqs[slot_of[i]] = jobs[i].req;
  }
  CHECK_OK(mlcommWaitAll(N, reqs, statuses));
  for (int i = 0; i < N; i++)
    CHECK(reqs[i] == MLCOMM_REQUEST_NULL, "WaitAll left entry %d unreleased", i);
  for (int i = 0; i < 6; i++) {
    jobs[i].status = statuses[slot_of[i]];
    job_verify(&jobs[i]);
    job_free(&jobs[i]);
  }

  /* statuses may be NULL. */
  struct job a, b;
  job_init(&a, K_ALLREDUCE, mlcommInt64, mlcommMin, 12345, 0, 0);
  job_init(&b, K_BARRIER, mlcommInt8, mlcommSum, 0, 0, 0);
  CHECK_OK(job_start(&a));
  CHECK_OK(job_start(&b));
  mlcommRequest_t two[2] = {a.req, b.req};
  CHECK_OK(mlcommWaitAll(2, two, NULL));
  CHECK(two[0] == MLCOMM_REQUEST_NULL && two[1] == MLCOMM_REQUEST_NULL,
        "WaitAll(statuses NULL) left handles unreleased");
  tc_check_reduced(a.recv, a.type, a.op, a.count, a.seed, 0, tc_nranks, a.what);
  job_free(&a);
  job_free(&b);
}

/* The scenario from the design: rank 0 starts an async allreduce and then blocks in a
 * point-to-point call that rank 1 answers before joining the allreduce. The message is
 * large so the send cannot complete eagerly without the receiver. */
static void no_deadlock(int rank0_sends)
{
  tc_section("async allreduce overlapping a blocking %s on rank 0",
             rank0_sends ? "Send" : "Recv");
  const size_t msg_count = 1u << 20; /* 4 MiB of float */
  const int tag = rank0_sends ? 501 : 502;
  struct job ar;
  job_init(&ar, K_ALLREDUCE, mlcommFloat32, mlcommSum, 65537, 0, tag);
  float *msg = calloc(msg_count, sizeof *msg);
  uint64_t mseed = tc_seed(7, 7, 7, (uint64_t)tag);
  if (tc_rank == 0) {
    CHECK_OK(job_start(&ar));
    if (rank0_sends) {
      tc_fill(msg, mlcommFloat32, mlcommSum, msg_count, mseed, 0, 0);
      CHECK_OK(mlcommSend(msg, msg_count, mlcommFloat32, 1, tag, tc_comm));
    } else {
      mlcommStatus_t st;
      CHECK_OK(mlcommRecv(msg, msg_count, mlcommFloat32, 1, tag, tc_comm, &st));
      float *expect = malloc(msg_count * sizeof *expect);
      tc_fill(expect, mlcommFloat32, mlcommSum, msg_count, mseed, 1, 0);
      CHECK(memcmp(msg, expect, msg_count * sizeof *msg) == 0, "rank 0: wrong message");
      free(expect);
    }
    CHECK_OK(mlcommWait(&ar.req, &ar.status));
  } else if (tc_rank == 1) {
    if (rank0_sends) {
      mlcommStatus_t st;
      CHECK_OK(mlcommRecv(msg, msg_count, mlcommFloat32, 0, tag, tc_comm, &st));
      float *expect = malloc(msg_count * sizeof *expect);
      tc_fill(expect, mlcommFloat32, mlcommSum, msg_count, mseed, 0, 0);
      CHECK(memcmp(msg, expect, msg_count * sizeof *msg) == 0, "rank 1: wrong message");
      free(expect);
    } else {
      tc_fill(msg, mlcommFloat32, mlcommSum, msg_count, mseed, 1, 0);
      CHECK_OK(mlcommSend(msg, msg_count, mlcommFloat32, 0, tag, tc_comm));
    }
    CHECK_OK(mlcommAllReduce(ar.send, ar.recv, ar.count, ar.type, ar.op, tc_comm));
    ar.status.bytes = ar.count * sizeof(float);
    ar.status.source = tc_rank;
    ar.status.tag = -1;
  } else {
    CHECK_OK(mlcommAllReduce(ar.send, ar.recv, ar.count, ar.type, ar.op, tc_comm));
    ar.status.bytes = ar.count * sizeof(float);
    ar.status.source = tc_rank;
    ar.status.tag = -1;
  }
  job_verify(&ar);
  job_free(&ar);
  free(msg);
}

static void handle_rules(void)
{
  tc_section("request handles: released on completion, stale copies refused");
  struct job a;
  job_init(&a, K_ALLREDUCE, mlcommInt32, mlcommSum, 1023, 0, 0);
  CHECK_OK(job_start(&a));
  mlcommRequest_t stale = a.req;
  CHECK_OK(mlcommWait(&a.req, &a.status));
  CHECK(a.req == MLCOMM_REQUEST_NULL, "Wait did not set the handle to MLCOMM_REQUEST_NULL");
  job_verify(&a);

  /* Waiting the released (NULL) handle again must neither crash nor hang; the header
   * does not say whether that is a no-op (as in MPI) or refused, so accept both. */
  mlcommResult_t r = mlcommWait(&a.req, NULL);
  CHECK(r == mlcommSuccess || r == mlcommInvalidArgument,
        "Wait(MLCOMM_REQUEST_NULL) returned %d (%s)", (int)r, mlcommGetErrorString(r));
  int done = -1;
  r = mlcommTest(&a.req, &done, NULL);
  CHECK(r == mlcommSuccess || r == mlcommInvalidArgument,
        "Test(MLCOMM_REQUEST_NULL) returned %d (%s)", (int)r, mlcommGetErrorString(r));

  /* A stale copy of a completed handle: refused, never dereferenced. Start a new request
   * first so that a handle table recycling the slot would be caught mistaking the stale
   * copy for the new request. */
  struct job b;
  job_init(&b, K_ALLREDUCE, mlcommInt32, mlcommSum, 1023, 0, 1);
  CHECK_OK(job_start(&b));
  mlcommRequest_t copy = stale;
  CHECK_RES(mlcommWait(&copy, NULL), mlcommInvalidArgument);
  CHECK(strlen(mlcommGetLastError(NULL)) > 0, "no last-error sentence for a stale request");
  copy = stale;
  done = -1;
  CHECK_RES(mlcommTest(&copy, &done, NULL), mlcommInvalidArgument);
  mlcommRequest_t garbage = 0x5eadbeefcafef00dull;
  CHECK_RES(mlcommWait(&garbage, NULL), mlcommInvalidArgument);
  /* The new request is still intact and completes normally. */
  CHECK(b.req != MLCOMM_REQUEST_NULL, "second request lost");
  CHECK_OK(mlcommWait(&b.req, &b.status));
  job_verify(&b);
  mlcommRequest_t stale_b = stale;
  CHECK_RES(mlcommWait(&stale_b, NULL), mlcommInvalidArgument);
  job_free(&a);
  job_free(&b);

  /* A stale handle inside WaitAll is refused too, and the valid entries still complete
   * ("every request that completed is released"). */
  struct job c;
  job_init(&c, K_BARRIER, mlcommInt8, mlcommSum, 0, 0, 0);
  CHECK_OK(job_start(&c));
  mlcommRequest_t mix[2] = {c.req, stale};
  r = mlcommWaitAll(2, mix, NULL);
  CHECK(r == mlcommInvalidArgument, "WaitAll with a stale entry returned %d (%s)", (int)r,
        mlcommGetErrorString(r));
  if (mix[0] != MLCOMM_REQUEST_NULL) {
    /* The stale entry may have been refused before waiting: the barrier must still be
     * waitable, otherwise ranks would disagree on the collective sequence. */
    CHECK_OK(mlcommWait(&mix[0], NULL));
  }
  job_free(&c);
}

/* Calls inside a group are recorded, not started: nothing is written before GroupEnd. */
static void groups(void)
{
  tc_section("groups of collectives and async requests");
  struct job blocking, async1, async2;
  job_init(&blocking, K_ALLREDUCE, mlcommFloat32, mlcommSum, 10001, 0, 10);
  job_init(&async1, K_BROADCAST, mlcommInt32, mlcommSum, 3001, tc_nranks - 1, 11);
  job_init(&async2, K_ALLGATHER, mlcommUint8, mlcommSum, 999, 0, 12);
  CHECK_OK(mlcommGroupStart());
  CHECK_OK(job_start(&async1));
  CHECK_OK(mlcommAllReduce(blocking.send, blocking.recv, blocking.count, blocking.type,
                           blocking.op, tc_comm));
  CHECK_OK(mlcommGroupStart()); /* nested */
  CHECK_OK(job_start(&async2));
  CHECK_OK(mlcommGroupEnd());
  CHECK(tc_gpattern_intact(blocking.recv, 0, blocking.recv_bytes),
        "a blocking AllReduce inside a group wrote its result before GroupEnd");
  CHECK(tc_gpattern_intact(async2.recv, 0, async2.recv_bytes),
        "an AllGatherAsync inside a group wrote its result before the outer GroupEnd");
  CHECK_OK(mlcommGroupEnd());
  blocking.status.bytes = blocking.count * sizeof(float);
  blocking.status.source = tc_rank;
  blocking.status.tag = -1;
  job_verify(&blocking);
  CHECK_OK(mlcommWait(&async2.req, &async2.status));
  CHECK_OK(mlcommWait(&async1.req, &async1.status));
  job_verify(&async1);
  job_verify(&async2);
  job_free(&blocking);
  job_free(&async1);
  job_free(&async2);
}

int main(int argc, char **argv)
{
  tc_init(&argc, &argv);
  overlapping();
  test_polling();
  wait_all();
  if (tc_nranks >= 2) {
    no_deadlock(1);
    no_deadlock(0);
  } else {
    tc_section("deadlock scenario needs 2 ranks: not run");
  }
  handle_rules();
  groups();
  return tc_finish();
}

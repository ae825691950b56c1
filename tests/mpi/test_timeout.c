/*
 * Timeouts: the last rank skips a collective; the others must get mlcommTimeout after
 * about the communicator's timeout, with a last-error sentence naming the operation, its
 * sequence number and the missing rank. Then the documented ways out: wait again once
 * the late rank joins (a timed-out request stays valid, and a timed-out receive keeps
 * the message that arrives afterwards), or, after a blocking call timed out (MPI still
 * owns its buffers, so the communicator refuses further calls), mlcommCommAbort, which
 * also fails requests in flight with mlcommRemoteError.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

enum { TIMEOUT_MS = 2000 };
/* Oversubscribed CI is slow, but a 2 s timeout that fires after 20 s is not a bound. */
static const double EARLIEST = 0.9 * TIMEOUT_MS / 1000.0, LATEST = 20.0;

static int skipper;

static mlcommComm_t make_comm(void)
{
  mlcommConfig_t cfg;
  tc_config(&cfg);
  cfg.timeoutMs = TIMEOUT_MS;
  mlcommComm_t c = MLCOMM_COMM_NULL;
  CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg));
  return c;
}

static void check_timing(double elapsed, const char *what)
{
  CHECK(elapsed >= EARLIEST && elapsed <= LATEST,
        "%s: timed out after %.2f s with timeoutMs %d", what, elapsed, TIMEOUT_MS);
}

static void check_sentence(mlcommComm_t comm, const char *op, bool want_seq, const char *what)
{
  const char *msg = mlcommGetLastError(comm);
  CHECK(msg && strstr(msg, op) != NULL, "%s: last error does not name %s: '%s'", what, op,
        msg ? msg : "(null)");
  if (want_seq)
    CHECK(msg && strstr(msg, "seq") != NULL,
          "%s: last error does not give the sequence number: '%s'", what, msg ? msg : "(null)");
}

/* The sentence lists the ranks that did not arrive: the skipper, and not this rank. */
static void check_missing_rank(mlcommComm_t comm, const char *what)
{
  const char *msg = mlcommGetLastError(comm);
  const char *list = msg ? strstr(msg, "not arrived") : NULL;
  bool has_skipper = false, has_self = false;
  if (list) {
    list += strlen("not arrived");
    while (*list && (*list < '0' || *list > '9')) list++;
    /* A list of numbers separated by spaces or commas. */
    while (*list >= '0' && *list <= '9') {
      char *end;
      long r = strtol(list, &end, 10);
      has_skipper = has_skipper || r == skipper;
      has_self = has_self || r == tc_rank;
      list = end;
      while (*list == ' ' || *list == ',') list++;
    }
  }
  CHECK(has_skipper && !has_self, "%s: the sentence does not name rank %d as missing: '%s'",
        what, skipper, msg ? msg : "(null)");
}

/* The others time out waiting; once the late rank joins, waiting again succeeds. */
static void late_join(mlcommComm_t c)
{
  tc_section("AllReduceAsync times out, then the late rank joins and Wait succeeds");
  enum { N = 1025 };
  uint64_t seed = tc_seed(1, 0, 0, 0);
  static double send[N], recv[N];
  tc_fill(send, mlcommFloat64, mlcommSum, N, seed, tc_rank, 0);
  if (tc_rank != skipper) {
    mlcommRequest_t r = MLCOMM_REQUEST_NULL;
    CHECK_OK(mlcommAllReduceAsync(send, recv, N, mlcommFloat64, mlcommSum, c, &r));
    double t0 = MPI_Wtime();
    CHECK_RES(mlcommWait(&r, NULL), mlcommTimeout);
    check_timing(MPI_Wtime() - t0, "Wait");
    check_sentence(c, "AllReduce", true, "Wait timeout");
    check_missing_rank(c, "Wait timeout");
    CHECK(r != MLCOMM_REQUEST_NULL, "a timed-out request was released; it must stay valid");
    MPI_Barrier(MPI_COMM_WORLD);
    if (r != MLCOMM_REQUEST_NULL && CHECK_OK(mlcommWait(&r, NULL)))
      tc_check_reduced(recv, mlcommFloat64, mlcommSum, N, seed, 0, tc_nranks,
                       "AllReduce waited again after a timeout");
  } else {
    MPI_Barrier(MPI_COMM_WORLD);
    if (CHECK_OK(mlcommAllReduce(send, recv, N, mlcommFloat64, mlcommSum, c)))
      tc_check_reduced(recv, mlcommFloat64, mlcommSum, N, seed, 0, tc_nranks,
                       "late rank's AllReduce");
  }
}

/* A receive from a rank that sends late: the timed-out request stays valid and, once the
 * message arrives, waiting again delivers it. Nothing is written before that. */
static void recv_timeout(mlcommComm_t c)
{
  tc_section("RecvAsync times out; waiting again after the late send delivers the message");
  enum { N = 100 };
  const int tag = 3;
  int32_t msg[N];
  for (int i = 0; i < N; i++) msg[i] = 1000 * skipper + i;
  if (tc_rank == 0) {
    int32_t *buf = tc_galloc(N * sizeof(int32_t));
    mlcommRequest_t r = MLCOMM_REQUEST_NULL;
    CHECK_OK(mlcommRecvAsync(buf, N, mlcommInt32, skipper, tag, c, &r));
    double t0 = MPI_Wtime();
    CHECK_RES(mlcommWait(&r, NULL), mlcommTimeout);
    check_timing(MPI_Wtime() - t0, "Wait(RecvAsync)");
    check_sentence(c, "Recv", false, "RecvAsync timeout");
    CHECK(r != MLCOMM_REQUEST_NULL, "a timed-out receive was released; it must stay valid");
    CHECK(tc_gpattern_intact(buf, 0, N * sizeof(int32_t)), "a timed-out receive wrote its buffer");
    MPI_Barrier(MPI_COMM_WORLD);
    mlcommStatus_t st = {-7, -7, 0};
    if (r != MLCOMM_REQUEST_NULL && CHECK_OK(mlcommWait(&r, &st)))
      CHECK(memcmp(buf, msg, sizeof msg) == 0 && st.source == skipper && st.tag == tag,
            "late message lost or corrupted after a timed-out wait");
    tc_gcheck(buf, "timed-out RecvAsync");
    tc_gfree(buf);
  } else if (tc_rank == skipper) {
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK_OK(mlcommSend(msg, N, mlcommInt32, 0, tag, c));
  } else {
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

/* A blocking call that times out leaves MPI owning the caller's buffers, so (as
 * docs/architecture.md says) the communicator is marked failed: later calls are refused
 * with a sentence telling the user to abort it, and mlcommCommAbort ends it. */
static void refused_after_blocking_timeout(mlcommComm_t c, const char *what)
{
  int32_t v = 1, w = 0;
  mlcommResult_t r = mlcommAllReduce(&v, &w, 1, mlcommInt32, mlcommSum, c);
  CHECK(r == mlcommRemoteError, "%s: a call after a blocking timeout returned %d (%s)", what,
        (int)r, mlcommGetErrorString(r));
  check_sentence(c, "Abort", false, what);
  CHECK(w == 0, "%s: the refused call wrote its buffer", what);
}

static void blocking_allreduce_timeout(void)
{
  tc_section("blocking AllReduce times out; CommAbort ends it");
  mlcommComm_t c = make_comm();
  if (c == MLCOMM_COMM_NULL) return;
  enum { N = 4097 };
  /* Static: after Abort, MPI may hold these until the job ends. */
  static float send[N], recv[N];
  if (tc_rank != skipper) {
    double t0 = MPI_Wtime();
    CHECK_RES(mlcommAllReduce(send, recv, N, mlcommFloat32, mlcommSum, c), mlcommTimeout);
    check_timing(MPI_Wtime() - t0, "AllReduce");
    check_sentence(c, "AllReduce", true, "AllReduce timeout");
    check_missing_rank(c, "AllReduce timeout");
    refused_after_blocking_timeout(c, "AllReduce");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  CHECK_OK(mlcommCommAbort(c));
}

/* A blocking Recv that nothing matched has nothing in MPI's hands: it is withdrawn, the
 * buffer is untouched, and the communicator stays usable - the late message is then
 * received by the next Recv, and a collective still works. */
static void blocking_recv_timeout(void)
{
  tc_section("blocking Recv times out; it is withdrawn and the comm stays usable");
  mlcommComm_t c = make_comm();
  if (c == MLCOMM_COMM_NULL) return;
  enum { N = 64 };
  int32_t buf[N], msg[N];
  for (int i = 0; i < N; i++) msg[i] = 7 * i + skipper;
  if (tc_rank == 0) {
    memset(buf, 0x5a, sizeof buf);
    double t0 = MPI_Wtime();
    CHECK_RES(mlcommRecv(buf, N, mlcommInt32, skipper, 4, c, NULL), mlcommTimeout);
    check_timing(MPI_Wtime() - t0, "Recv");
    check_sentence(c, "Recv", false, "Recv timeout");
    bool intact = true;
    for (int i = 0; i < N; i++) intact = intact && buf[i] == 0x5a5a5a5a;
    CHECK(intact, "a timed-out Recv wrote its buffer");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (tc_rank == skipper) CHECK_OK(mlcommSend(msg, N, mlcommInt32, 0, 4, c));
  if (tc_rank == 0) {
    mlcommStatus_t st = {-7, -7, 0};
    if (CHECK_OK(mlcommRecv(buf, N, mlcommInt32, skipper, 4, c, &st)))
      CHECK(memcmp(buf, msg, sizeof msg) == 0 && st.source == skipper && st.bytes == sizeof msg,
            "the message sent after a withdrawn Recv was lost or corrupted");
  }
  CHECK_OK(mlcommBarrier(c));
  CHECK_OK(mlcommCommDestroy(c));
}

/* Abort fails what is in flight with mlcommRemoteError. */
static void abort_in_flight(void)
{
  tc_section("CommAbort fails a request in flight with mlcommRemoteError");
  mlcommComm_t c = make_comm();
  if (c == MLCOMM_COMM_NULL) return;
  enum { N = 333 };
  static int64_t buf[N];
  if (tc_rank != skipper) {
    mlcommRequest_t r = MLCOMM_REQUEST_NULL;
    /* The root never joins, so this cannot complete. */
    CHECK_OK(mlcommBroadcastAsync(NULL, buf, N, mlcommInt64, skipper, c, &r));
    int done = -1;
    /* On the shared-memory transport a peer's abort reaches this rank's request as
     * mlcommRemoteError, and may already have happened here. */
    mlcommResult_t tr = mlcommTest(&r, &done, NULL);
    CHECK(tr == mlcommSuccess || tr == mlcommRemoteError, "Test returned %d", (int)tr);
    CHECK(tr != mlcommSuccess || done == 0, "a Broadcast whose root never joined reports done");
    CHECK_OK(mlcommCommAbort(c));
    if (tr == mlcommSuccess) {
      double t0 = MPI_Wtime();
      CHECK_RES(mlcommWait(&r, NULL), mlcommRemoteError);
      CHECK(MPI_Wtime() - t0 < 1.0, "Wait after Abort did not fail at once");
    }
    CHECK(r == MLCOMM_REQUEST_NULL, "the failed request was not released");
  } else {
    CHECK_OK(mlcommCommDestroy(c));
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* A group of blocking receives nobody sends to shares one deadline: GroupEnd returns
 * mlcommTimeout after about one timeout, not one per member. The receives never
 * matched, so they are withdrawn and the communicator stays usable. */
static void group_deadline(void)
{
  tc_section("a group of never-matched blocking Recvs times out once, not per member");
  mlcommComm_t c = make_comm();
  if (c == MLCOMM_COMM_NULL) return;
  if (tc_rank == 0) {
    int32_t buf[3][4];
    double t0 = MPI_Wtime();
    CHECK_OK(mlcommGroupStart());
    for (int i = 0; i < 3; i++) CHECK_OK(mlcommRecv(buf[i], 4, mlcommInt32, skipper, 40 + i, c, NULL));
    CHECK_RES(mlcommGroupEnd(), mlcommTimeout);
    double elapsed = MPI_Wtime() - t0;
    CHECK(elapsed >= EARLIEST && elapsed < 2.0 * TIMEOUT_MS / 1000.0,
          "GroupEnd of 3 blocking Recvs took %.2f s with timeoutMs %d (one deadline expected)",
          elapsed, TIMEOUT_MS);
  }
  MPI_Barrier(MPI_COMM_WORLD); /* outside mlcomm: the others must not time out meanwhile */
  CHECK_OK(mlcommBarrier(c));  /* the withdrawn receives left the communicator usable */
  CHECK_OK(mlcommCommDestroy(c));
}

/* Aborting a communicator while calls on it wait in an open group: GroupEnd must not
 * start them (they and their transport are gone) and their handles report the abort. */
static void abort_inside_group(void)
{
  tc_section("CommAbort inside an open group");
  mlcommComm_t c = make_comm();
  if (c == MLCOMM_COMM_NULL) return;
  float x[4] = {1, 2, 3, 4};
  mlcommRequest_t r = MLCOMM_REQUEST_NULL;
  CHECK_OK(mlcommGroupStart());
  CHECK_OK(mlcommAllReduceAsync(x, x, 4, mlcommFloat32, mlcommSum, c, &r));
  CHECK_OK(mlcommBroadcast(x, x, 4, mlcommFloat32, 0, c));
  CHECK_OK(mlcommCommAbort(c));
  CHECK_OK(mlcommGroupEnd());
  CHECK_RES(mlcommWait(&r, NULL), mlcommRemoteError);
  CHECK(x[0] == 1 && x[3] == 4, "an aborted group call wrote its buffer");
}

int main(int argc, char **argv)
{
  tc_init(&argc, &argv);
  if (tc_nranks < 2) tc_skip("a timeout needs a rank that does not arrive: run with >= 2 ranks");
  skipper = tc_nranks - 1;
  mlcommComm_t c = make_comm();
  if (c != MLCOMM_COMM_NULL) {
    late_join(c);
    recv_timeout(c);
    /* Both timeouts were recovered from: the communicator is healthy. */
    int32_t one = 1, sum = 0;
    if (CHECK_OK(mlcommAllReduce(&one, &sum, 1, mlcommInt32, mlcommSum, c)))
      CHECK(sum == tc_nranks, "AllReduce after recovered timeouts: %d", sum);
    CHECK_OK(mlcommCommDestroy(c));
  }
  blocking_allreduce_timeout();
  blocking_recv_timeout();
  abort_in_flight();
  group_deadline();
  abort_inside_group();
  return tc_finish();
}

/*
 * Every error path of the public API, called as a user would (run under mpirun -np 1).
 *
 * For each bad argument the call must return mlcommInvalidArgument (or the documented
 * code), leave the caller's buffers untouched, and leave a last-error sentence that
 * names the argument, both on the communicator and for the calling thread. Nothing may
 * crash: destroyed communicators and stale requests are refused, not dereferenced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mlcomm/mlcomm.h"

enum { N = 64 };

static mlcommComm_t comm;
static int nranks;
/* Buffers every failing call is given: after the call they must still hold PATTERN. */
static float sendbuf[4 * N], recvbuf[4 * N];
static const unsigned char PATTERN = 0x5a;

static void fill_pattern(void)
{
  memset(sendbuf, PATTERN, sizeof sendbuf);
  memset(recvbuf, PATTERN, sizeof recvbuf);
}

static void assert_untouched(const char *call)
{
  const unsigned char *s = (const unsigned char *)sendbuf, *r = (const unsigned char *)recvbuf;
  for (size_t i = 0; i < sizeof sendbuf; i++)
    if (s[i] != PATTERN || r[i] != PATTERN)
      fail_msg("%s: wrote the user's buffer at byte %zu although it failed", call, i);
}

/* The call returned want, and the sentence (on c and for the thread) names one of the
 * needles. A "sentence" is at least a few words. */
static void expect_fail2(mlcommResult_t got, mlcommResult_t want, mlcommComm_t c,
                         const char *needle, const char *needle2, const char *call)
{
  if (got != want)
    fail_msg("%s returned %d (%s), expected %d (%s); last error '%s'", call, (int)got,
             mlcommGetErrorString(got), (int)want, mlcommGetErrorString(want),
             mlcommGetLastError(NULL));
  const char *sources[2] = {mlcommGetLastError(c), mlcommGetLastError(NULL)};
  for (int i = 0; i < 2; i++) {
    const char *msg = sources[i];
    if (msg == NULL) fail_msg("%s: mlcommGetLastError(%s) is NULL", call, i ? "NULL" : "comm");
    if (strlen(msg) < 12)
      fail_msg("%s: mlcommGetLastError(%s) is not a sentence: '%s'", call, i ? "NULL" : "comm",
               msg);
    if (!strstr(msg, needle) && !(needle2 && strstr(msg, needle2)))
      fail_msg("%s: mlcommGetLastError(%s) does not name '%s': '%s'", call,
               i ? "NULL" : "comm", needle, msg);
  }
  assert_untouched(call);
}

#define EXPECT_FAIL(call, want, c, needle)                                                     \
  do {                                                                                         \
    fill_pattern();                                                                            \
    expect_fail2((call), (want), (c), (needle), NULL, #call);                                  \
  } while (0)
#define EXPECT_INVALID(call, c, needle) EXPECT_FAIL(call, mlcommInvalidArgument, c, needle)
#define EXPECT_INVALID2(call, c, needle, needle2)                                              \
  do {                                                                                         \
    fill_pattern();                                                                            \
    expect_fail2((call), mlcommInvalidArgument, (c), (needle), (needle2), #call);              \
  } while (0)

#define EXPECT_OK(call)                                                                        \
  do {                                                                                         \
    mlcommResult_t r_ = (call);                                                                \
    if (r_ != mlcommSuccess)                                                                   \
      fail_msg("%s returned %d (%s): %s", #call, (int)r_, mlcommGetErrorString(r_),            \
               mlcommGetLastError(NULL));                                                      \
  } while (0)

static int group_setup(void **state)
{
  (void)state;
  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  if (mlcommCommInitFromMPI(&comm, MPI_COMM_WORLD, &cfg) != mlcommSuccess) {
    fprintf(stderr, "cannot create a communicator: %s\n", mlcommGetLastError(NULL));
    return -1;
  }
  return mlcommCommCount(comm, &nranks) == mlcommSuccess ? 0 : -1;
}

static int group_teardown(void **state)
{
  (void)state;
  return mlcommCommDestroy(comm) == mlcommSuccess ? 0 : -1;
}

/* ---------------------------------------------------------------- tests */

static void fresh_comm_has_no_error(void **state)
{
  (void)state;
  mlcommComm_t c;
  EXPECT_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, NULL));
  assert_non_null(mlcommGetLastError(c));
  assert_string_equal(mlcommGetLastError(c), "");
  EXPECT_OK(mlcommCommDestroy(c));
}

static void error_strings(void **state)
{
  (void)state;
  for (int a = 0; a < mlcommNumResults; a++) {
    const char *s = mlcommGetErrorString((mlcommResult_t)a);
    assert_non_null(s);
    assert_true(strlen(s) > 0);
    for (int b = 0; b < a; b++)
      if (strcmp(s, mlcommGetErrorString((mlcommResult_t)b)) == 0)
        fail_msg("codes %d and %d share the string '%s'", a, b, s);
  }
  /* "Never NULL", even for codes that do not exist. */
  assert_non_null(mlcommGetErrorString(mlcommNumResults));
  assert_non_null(mlcommGetErrorString((mlcommResult_t)99));
  assert_non_null(mlcommGetErrorString((mlcommResult_t)-1));
}

static void null_comm(void **state)
{
  (void)state;
  mlcommComm_t c = MLCOMM_COMM_NULL;
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  int v;
  int found;
  MPI_Comm mc;
  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  mlcommComm_t sub;
  mlcommStatus_t st;
  EXPECT_INVALID(mlcommAllReduce(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, c), c, "comm");
  EXPECT_INVALID(mlcommAllReduceAsync(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, c, &req), c, "comm");
  EXPECT_INVALID(mlcommBroadcast(sendbuf, recvbuf, N, mlcommFloat32, 0, c), c, "comm");
  EXPECT_INVALID(mlcommBroadcastAsync(sendbuf, recvbuf, N, mlcommFloat32, 0, c, &req), c, "comm");
  EXPECT_INVALID(mlcommReduce(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, 0, c), c, "comm");
  EXPECT_INVALID(mlcommReduceAsync(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, 0, c, &req), c, "comm");
  EXPECT_INVALID(mlcommAllGather(sendbuf, recvbuf, N, mlcommFloat32, c), c, "comm");
  EXPECT_INVALID(mlcommAllGatherAsync(sendbuf, recvbuf, N, mlcommFloat32, c, &req), c, "comm");
  EXPECT_INVALID(mlcommReduceScatter(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, c), c, "comm");
  EXPECT_INVALID(mlcommReduceScatterAsync(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, c, &req), c, "comm");
  EXPECT_INVALID(mlcommBarrier(c), c, "comm");
  EXPECT_INVALID(mlcommBarrierAsync(c, &req), c, "comm");
  EXPECT_INVALID(mlcommSend(sendbuf, N, mlcommFloat32, 0, 0, c), c, "comm");
  EXPECT_INVALID(mlcommSendAsync(sendbuf, N, mlcommFloat32, 0, 0, c, &req), c, "comm");
  EXPECT_INVALID(mlcommRecv(recvbuf, N, mlcommFloat32, 0, 0, c, &st), c, "comm");
  EXPECT_INVALID(mlcommRecvAsync(recvbuf, N, mlcommFloat32, 0, 0, c, &req), c, "comm");
  EXPECT_INVALID(mlcommProbe(0, 0, c, &st), c, "comm");
  EXPECT_INVALID(mlcommIprobe(0, 0, c, &found, &st), c, "comm");
  EXPECT_INVALID(mlcommCommRank(c, &v), c, "comm");
  EXPECT_INVALID(mlcommCommCount(c, &v), c, "comm");
  EXPECT_INVALID(mlcommCommGetMPI(c, &mc), c, "comm");
  EXPECT_INVALID(mlcommCommGetConfig(c, &cfg), c, "comm");
  EXPECT_INVALID(mlcommCommSplit(c, 0, 0, &sub, NULL), c, "comm");
  EXPECT_INVALID(mlcommCommDestroy(c), c, "comm");
  EXPECT_INVALID(mlcommCommAbort(c), c, "comm");
  EXPECT_INVALID(mlcommCommRevoke(c), c, "comm");
  EXPECT_INVALID(mlcommCommShrink(c, &sub), c, "comm");
  EXPECT_INVALID(mlcommCommFailedRank(c, &v), c, "comm");
  assert_true(req == MLCOMM_REQUEST_NULL);
}

static void null_out_pointers(void **state)
{
  (void)state;
  EXPECT_INVALID(mlcommGetVersion(NULL), NULL, "version");
  EXPECT_INVALID(mlcommCommInitFromMPI(NULL, MPI_COMM_WORLD, NULL), NULL, "comm");
  EXPECT_INVALID(mlcommCommRank(comm, NULL), comm, "rank");
  EXPECT_INVALID(mlcommCommCount(comm, NULL), comm, "count");
  EXPECT_INVALID(mlcommCommGetMPI(comm, NULL), comm, "mpiComm");
  EXPECT_INVALID(mlcommCommGetConfig(comm, NULL), comm, "config");
  EXPECT_INVALID(mlcommCommSplit(comm, 0, 0, NULL, NULL), comm, "newcomm");
  EXPECT_INVALID(mlcommIprobe(0, 0, comm, NULL, NULL), comm, "found");
}

static void null_request_pointers(void **state)
{
  (void)state;
  int done;
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  EXPECT_INVALID(mlcommWait(NULL, NULL), NULL, "request");
  EXPECT_INVALID(mlcommTest(NULL, &done, NULL), NULL, "request");
  EXPECT_INVALID(mlcommWaitAll(1, NULL, NULL), NULL, "requests");
  EXPECT_INVALID(mlcommWaitAll(-1, &req, NULL), NULL, "count");

  /* Test with done NULL: refused, and the request is still there to be waited. */
  EXPECT_OK(mlcommBarrierAsync(comm, &req));
  EXPECT_INVALID(mlcommTest(&req, NULL, NULL), comm, "done");
  assert_true(req != MLCOMM_REQUEST_NULL);
  EXPECT_OK(mlcommWait(&req, NULL));
}

/* Async calls without a place for the request: refused, nothing started. */
static void null_async_request(void **state)
{
  (void)state;
  EXPECT_INVALID(mlcommAllReduceAsync(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, comm, NULL), comm, "request");
  EXPECT_INVALID(mlcommBroadcastAsync(sendbuf, recvbuf, N, mlcommFloat32, 0, comm, NULL), comm, "request");
  EXPECT_INVALID(mlcommReduceAsync(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, 0, comm, NULL), comm, "request");
  EXPECT_INVALID(mlcommAllGatherAsync(sendbuf, recvbuf, N, mlcommFloat32, comm, NULL), comm, "request");
  EXPECT_INVALID(mlcommReduceScatterAsync(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, comm, NULL), comm, "request");
  EXPECT_INVALID(mlcommBarrierAsync(comm, NULL), comm, "request");
  EXPECT_INVALID(mlcommSendAsync(sendbuf, N, mlcommFloat32, 0, 0, comm, NULL), comm, "request");
  EXPECT_INVALID(mlcommRecvAsync(recvbuf, N, mlcommFloat32, 0, 0, comm, NULL), comm, "request");
}

/* Buffers must be real for count > 0, except where the header says "may be NULL". */
static void null_buffers(void **state)
{
  (void)state;
  EXPECT_INVALID(mlcommAllReduce(NULL, recvbuf, N, mlcommFloat32, mlcommSum, comm), comm, "sendbuff");
  EXPECT_INVALID(mlcommAllReduce(sendbuf, NULL, N, mlcommFloat32, mlcommSum, comm), comm, "recvbuff");
  EXPECT_INVALID(mlcommBroadcast(NULL, recvbuf, N, mlcommFloat32, 0, comm), comm, "sendbuff");
  EXPECT_INVALID(mlcommBroadcast(sendbuf, NULL, N, mlcommFloat32, 0, comm), comm, "recvbuff");
  EXPECT_INVALID(mlcommReduce(NULL, recvbuf, N, mlcommFloat32, mlcommSum, 0, comm), comm, "sendbuff");
  EXPECT_INVALID(mlcommReduce(sendbuf, NULL, N, mlcommFloat32, mlcommSum, 0, comm), comm, "recvbuff");
  EXPECT_INVALID(mlcommAllGather(NULL, recvbuf, N, mlcommFloat32, comm), comm, "sendbuff");
  EXPECT_INVALID(mlcommAllGather(sendbuf, NULL, N, mlcommFloat32, comm), comm, "recvbuff");
  EXPECT_INVALID(mlcommReduceScatter(NULL, recvbuf, N, mlcommFloat32, mlcommSum, comm), comm, "sendbuff");
  EXPECT_INVALID(mlcommReduceScatter(sendbuf, NULL, N, mlcommFloat32, mlcommSum, comm), comm, "recvbuff");
  EXPECT_INVALID(mlcommSend(NULL, N, mlcommFloat32, 0, 0, comm), comm, "sendbuff");
  EXPECT_INVALID(mlcommRecv(NULL, N, mlcommFloat32, 0, 0, comm, NULL), comm, "recvbuff");
}

static void bad_datatype(void **state)
{
  (void)state;
  const mlcommDataType_t bad[] = {(mlcommDataType_t)42, mlcommNumTypes, (mlcommDataType_t)-1};
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mlcommDataType_t t = bad[i];
    EXPECT_INVALID(mlcommAllReduce(sendbuf, recvbuf, N, t, mlcommSum, comm), comm, "datatype");
    EXPECT_INVALID(mlcommAllReduceAsync(sendbuf, recvbuf, N, t, mlcommSum, comm, &req), comm, "datatype");
    EXPECT_INVALID(mlcommBroadcast(sendbuf, recvbuf, N, t, 0, comm), comm, "datatype");
    EXPECT_INVALID(mlcommReduce(sendbuf, recvbuf, N, t, mlcommSum, 0, comm), comm, "datatype");
    EXPECT_INVALID(mlcommAllGather(sendbuf, recvbuf, N, t, comm), comm, "datatype");
    EXPECT_INVALID(mlcommReduceScatter(sendbuf, recvbuf, N, t, mlcommSum, comm), comm, "datatype");
    EXPECT_INVALID(mlcommSend(sendbuf, N, t, 0, 0, comm), comm, "datatype");
    EXPECT_INVALID(mlcommRecv(recvbuf, N, t, 0, 0, comm, NULL), comm, "datatype");
    EXPECT_INVALID(mlcommRecvAsync(recvbuf, N, t, 0, 0, comm, &req), comm, "datatype");
    /* Also with count 0: a bad datatype is bad whatever the count. */
    EXPECT_INVALID(mlcommAllReduce(sendbuf, recvbuf, 0, t, mlcommSum, comm), comm, "datatype");
  }
  assert_true(req == MLCOMM_REQUEST_NULL);
}

static void bad_op(void **state)
{
  (void)state;
  const mlcommRedOp_t bad[] = {mlcommNumOps, (mlcommRedOp_t)42, (mlcommRedOp_t)-1};
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mlcommRedOp_t op = bad[i];
    EXPECT_INVALID(mlcommAllReduce(sendbuf, recvbuf, N, mlcommFloat32, op, comm), comm, "op");
    EXPECT_INVALID(mlcommAllReduceAsync(sendbuf, recvbuf, N, mlcommInt32, op, comm, &req), comm, "op");
    EXPECT_INVALID(mlcommReduce(sendbuf, recvbuf, N, mlcommFloat32, op, 0, comm), comm, "op");
    EXPECT_INVALID(mlcommReduceAsync(sendbuf, recvbuf, N, mlcommUint8, op, 0, comm, &req), comm, "op");
    EXPECT_INVALID(mlcommReduceScatter(sendbuf, recvbuf, N, mlcommFloat64, op, comm), comm, "op");
    EXPECT_INVALID(mlcommReduceScatterAsync(sendbuf, recvbuf, N, mlcommBfloat16, op, comm, &req), comm, "op");
  }
  assert_true(req == MLCOMM_REQUEST_NULL);
}

static void count_overflow(void **state)
{
  (void)state;
  const size_t huge[] = {SIZE_MAX, SIZE_MAX / 4 + 1, SIZE_MAX / 2};
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    size_t n = huge[i];
    EXPECT_INVALID(mlcommAllReduce(sendbuf, recvbuf, n, mlcommFloat32, mlcommSum, comm), comm, "count");
    EXPECT_INVALID(mlcommAllReduceAsync(sendbuf, recvbuf, n, mlcommFloat32, mlcommSum, comm, &req), comm, "count");
    EXPECT_INVALID(mlcommBroadcast(sendbuf, recvbuf, n, mlcommFloat32, 0, comm), comm, "count");
    EXPECT_INVALID(mlcommReduce(sendbuf, recvbuf, n, mlcommFloat32, mlcommSum, 0, comm), comm, "count");
    EXPECT_INVALID(mlcommAllGather(sendbuf, recvbuf, n, mlcommFloat32, comm), comm, "count");
    EXPECT_INVALID(mlcommReduceScatter(sendbuf, recvbuf, n, mlcommFloat32, mlcommSum, comm), comm, "count");
    EXPECT_INVALID(mlcommSend(sendbuf, n, mlcommFloat32, 0, 0, comm), comm, "count");
    EXPECT_INVALID(mlcommRecv(recvbuf, n, mlcommFloat32, 0, 0, comm, NULL), comm, "count");
  }
  /* Overflow of the total only: nranks * count * 8 bytes. */
  size_t n = SIZE_MAX / 8 / (size_t)nranks + 1;
  EXPECT_INVALID(mlcommAllGather(sendbuf, recvbuf, n, mlcommFloat64, comm), comm, "count");
  EXPECT_INVALID(mlcommReduceScatter(sendbuf, recvbuf, n, mlcommFloat64, mlcommSum, comm), comm, "count");
  assert_true(req == MLCOMM_REQUEST_NULL);
}

static void root_out_of_range(void **state)
{
  (void)state;
  const int bad[] = {-2, -1, nranks, nranks + 100, INT32_MIN};
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int root = bad[i];
    EXPECT_INVALID(mlcommBroadcast(sendbuf, recvbuf, N, mlcommFloat32, root, comm), comm, "root");
    EXPECT_INVALID(mlcommBroadcastAsync(sendbuf, recvbuf, N, mlcommFloat32, root, comm, &req), comm, "root");
    EXPECT_INVALID(mlcommReduce(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, root, comm), comm, "root");
    EXPECT_INVALID(mlcommReduceAsync(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, root, comm, &req), comm, "root");
    /* Even with nothing to move, a bad root is a bug in the caller. */
    EXPECT_INVALID(mlcommBroadcast(sendbuf, recvbuf, 0, mlcommFloat32, root, comm), comm, "root");
  }
  assert_true(req == MLCOMM_REQUEST_NULL);
}

static void peer_out_of_range(void **state)
{
  (void)state;
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  mlcommStatus_t st;
  int found = -1;
  const int bad[] = {-2, nranks, nranks + 7, INT32_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int peer = bad[i];
    EXPECT_INVALID(mlcommSend(sendbuf, N, mlcommFloat32, peer, 0, comm), comm, "peer");
    EXPECT_INVALID(mlcommSendAsync(sendbuf, N, mlcommFloat32, peer, 0, comm, &req), comm, "peer");
    EXPECT_INVALID(mlcommRecv(recvbuf, N, mlcommFloat32, peer, 0, comm, &st), comm, "peer");
    EXPECT_INVALID(mlcommRecvAsync(recvbuf, N, mlcommFloat32, peer, 0, comm, &req), comm, "peer");
    EXPECT_INVALID(mlcommProbe(peer, 0, comm, &st), comm, "peer");
    EXPECT_INVALID(mlcommIprobe(peer, 0, comm, &found, &st), comm, "peer");
  }
  /* MLCOMM_ANY_SOURCE is a receive-side wildcard only. */
  EXPECT_INVALID(mlcommSend(sendbuf, N, mlcommFloat32, MLCOMM_ANY_SOURCE, 0, comm), comm, "peer");
  EXPECT_INVALID(mlcommSendAsync(sendbuf, N, mlcommFloat32, MLCOMM_ANY_SOURCE, 0, comm, &req), comm, "peer");
  assert_true(req == MLCOMM_REQUEST_NULL);
}

static void tag_out_of_range(void **state)
{
  (void)state;
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  mlcommStatus_t st;
  int found = -1;
  const int bad[] = {-5, MLCOMM_TAG_MAX + 1, INT32_MAX, INT32_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int tag = bad[i];
    EXPECT_INVALID(mlcommSend(sendbuf, N, mlcommFloat32, 0, tag, comm), comm, "tag");
    EXPECT_INVALID(mlcommSendAsync(sendbuf, N, mlcommFloat32, 0, tag, comm, &req), comm, "tag");
    EXPECT_INVALID(mlcommRecv(recvbuf, N, mlcommFloat32, 0, tag, comm, &st), comm, "tag");
    EXPECT_INVALID(mlcommRecvAsync(recvbuf, N, mlcommFloat32, 0, tag, comm, &req), comm, "tag");
    EXPECT_INVALID(mlcommProbe(0, tag, comm, &st), comm, "tag");
    EXPECT_INVALID(mlcommIprobe(0, tag, comm, &found, &st), comm, "tag");
  }
  /* MLCOMM_ANY_TAG is a receive-side wildcard only. */
  EXPECT_INVALID(mlcommSend(sendbuf, N, mlcommFloat32, 0, MLCOMM_ANY_TAG, comm), comm, "tag");
  assert_true(req == MLCOMM_REQUEST_NULL);

  /* The extremes of the valid range work (self messages, one rank suffices). */
  int32_t out[2] = {1, 2}, in[2] = {0, 0};
  EXPECT_OK(mlcommSendAsync(out, 1, mlcommInt32, 0, 0, comm, &req));
  EXPECT_OK(mlcommRecv(in, 1, mlcommInt32, 0, 0, comm, &st));
  EXPECT_OK(mlcommWait(&req, NULL));
  EXPECT_OK(mlcommSendAsync(out + 1, 1, mlcommInt32, 0, MLCOMM_TAG_MAX, comm, &req));
  EXPECT_OK(mlcommRecv(in + 1, 1, mlcommInt32, 0, MLCOMM_TAG_MAX, comm, &st));
  EXPECT_OK(mlcommWait(&req, NULL));
  assert_int_equal(st.tag, MLCOMM_TAG_MAX);
  assert_int_equal(in[0], 1);
  assert_int_equal(in[1], 2);
}

static void bad_config(void **state)
{
  (void)state;
  mlcommComm_t c = MLCOMM_COMM_NULL;
  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  cfg.magic = 0xdeadbeefu;
  EXPECT_INVALID(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg), NULL, "magic");
  EXPECT_INVALID(mlcommCommSplit(comm, 0, 0, &c, &cfg), comm, "magic");

  mlcommConfig_t t99 = MLCOMM_CONFIG_INITIALIZER;
  t99.transport = 99;
  EXPECT_INVALID(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &t99), NULL, "transport");
  t99.transport = -1;
  EXPECT_INVALID(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &t99), NULL, "transport");
  EXPECT_INVALID(mlcommCommSplit(comm, 0, 0, &c, &t99), comm, "transport");

  mlcommConfig_t neg = MLCOMM_CONFIG_INITIALIZER;
  neg.timeoutMs = -5;
  EXPECT_INVALID(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &neg), NULL, "timeout");

  EXPECT_INVALID(mlcommCommInitFromMPI(&c, MPI_COMM_NULL, NULL), NULL, "mpiComm");

  /* A negative color other than MLCOMM_SPLIT_NOCOLOR (MPI would abort the job on it). */
  EXPECT_INVALID(mlcommCommSplit(comm, -7, 0, &c, NULL), comm, "color");
}

/* Sets name=value (NULL: unset) and returns the old value (malloc'd, or NULL). */
static char *swap_env(const char *name, const char *value)
{
  const char *old = getenv(name);
  char *saved = old ? strdup(old) : NULL;
  if (value)
    setenv(name, value, 1);
  else
    unsetenv(name);
  return saved;
}

static void restore_env(const char *name, char *saved)
{
  if (saved)
    setenv(name, saved, 1);
  else
    unsetenv(name);
  free(saved);
}

/* Unparsable or out-of-range environment variables fail init with a sentence naming
 * the variable (docs/configuration.md); an explicit config field is not affected. */
static void bad_environment(void **state)
{
  (void)state;
  static const struct { const char *name, *value; } bad[] = {
      {"MLCOMM_TIMEOUT_MS", "soon"},    {"MLCOMM_TIMEOUT_MS", "-1"},
      {"MLCOMM_TIMEOUT_MS", "99999999999"}, {"MLCOMM_TRANSPORT", "carrier-pigeon"},
      {"MLCOMM_DEBUG", "loud"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *saved = swap_env(bad[i].name, bad[i].value);
    mlcommComm_t c = MLCOMM_COMM_NULL;
    mlcommResult_t r = mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, NULL);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", mlcommGetLastError(NULL));
    if (r == mlcommSuccess) mlcommCommDestroy(c);
    restore_env(bad[i].name, saved);
    if (r != mlcommInvalidArgument)
      fail_msg("%s='%s': init returned %d (%s), expected invalid argument", bad[i].name,
               bad[i].value, (int)r, mlcommGetErrorString(r));
    if (!strstr(msg, bad[i].name))
      fail_msg("%s='%s': the sentence does not name the variable: '%s'", bad[i].name,
               bad[i].value, msg);
  }
  /* Forcing an absent transport from the environment fails like the config field. */
  char *saved = swap_env("MLCOMM_TRANSPORT", "nccl");
  mlcommComm_t c = MLCOMM_COMM_NULL;
  mlcommResult_t r = mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, NULL);
  char msg[512];
  snprintf(msg, sizeof msg, "%s", mlcommGetLastError(NULL));
  if (r == mlcommSuccess) mlcommCommDestroy(c);
  restore_env("MLCOMM_TRANSPORT", saved);
  if (r != mlcommSuccess && (r != mlcommUnsupported || !strstr(msg, "nccl")))
    fail_msg("MLCOMM_TRANSPORT=nccl: init returned %d (%s): '%s'", (int)r,
             mlcommGetErrorString(r), msg);
}

/* Overlaps other than the documented in-place layouts are refused. */
static void partial_overlap(void **state)
{
  (void)state;
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  float *b = recvbuf;
  /* AllReduce, Broadcast, Reduce: in place means equal pointers; one element off is not. */
  EXPECT_INVALID2(mlcommAllReduce(b, b + 1, N, mlcommFloat32, mlcommSum, comm), comm, "recvbuff", "sendbuff");
  EXPECT_INVALID2(mlcommAllReduce(b + 1, b, N, mlcommFloat32, mlcommSum, comm), comm, "recvbuff", "sendbuff");
  EXPECT_INVALID2(mlcommAllReduceAsync(b, b + N - 1, N, mlcommFloat32, mlcommSum, comm, &req), comm, "recvbuff", "sendbuff");
  /* Misaligned by one byte, still overlapping. */
  EXPECT_INVALID2(mlcommAllReduce(b, (char *)b + 1, N, mlcommFloat32, mlcommSum, comm), comm, "recvbuff", "sendbuff");
  EXPECT_INVALID2(mlcommBroadcast(b, b + 3, N, mlcommFloat32, 0, comm), comm, "recvbuff", "sendbuff");
  EXPECT_INVALID2(mlcommReduce(b + 3, b, N, mlcommFloat32, mlcommSum, 0, comm), comm, "recvbuff", "sendbuff");
  /* AllGather: sendbuff must be exactly recvbuff + rank*count when overlapping. */
  int rank = 0;
  EXPECT_OK(mlcommCommRank(comm, &rank));
  EXPECT_INVALID2(mlcommAllGather(b + (size_t)rank * N + 1, b, N, mlcommFloat32, comm), comm, "recvbuff", "sendbuff");
  EXPECT_INVALID2(mlcommAllGather(b, b + 1, N, mlcommFloat32, comm), comm, "recvbuff", "sendbuff");
  /* ReduceScatter: recvbuff must be exactly sendbuff + rank*recvcount when overlapping. */
  EXPECT_INVALID2(mlcommReduceScatter(b, b + (size_t)rank * N + 1, N, mlcommFloat32, mlcommSum, comm), comm, "recvbuff", "sendbuff");
  EXPECT_INVALID2(mlcommReduceScatter(b + 1, b, N, mlcommFloat32, mlcommSum, comm), comm, "recvbuff", "sendbuff");
  EXPECT_INVALID2(mlcommReduceScatterAsync(b + 2, b, N, mlcommFloat32, mlcommSum, comm, &req), comm, "recvbuff", "sendbuff");
  assert_true(req == MLCOMM_REQUEST_NULL);

  /* The documented layouts are accepted. */
  for (int i = 0; i < N * nranks; i++) recvbuf[i] = 1.0f;
  EXPECT_OK(mlcommAllReduce(b, b, N, mlcommFloat32, mlcommSum, comm));
  EXPECT_OK(mlcommAllGather(b + (size_t)rank * N, b, N, mlcommFloat32, comm));
  EXPECT_OK(mlcommReduceScatter(b, b + (size_t)rank * N, N, mlcommFloat32, mlcommSum, comm));
}

static void destroyed_comm(void **state)
{
  (void)state;
  mlcommComm_t c;
  int v;
  EXPECT_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, NULL));
  EXPECT_OK(mlcommCommDestroy(c));
  EXPECT_INVALID(mlcommAllReduce(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, c), c, "comm");
  EXPECT_INVALID(mlcommCommRank(c, &v), c, "comm");
  EXPECT_INVALID(mlcommSend(sendbuf, N, mlcommFloat32, 0, 0, c), c, "comm");
  EXPECT_INVALID(mlcommBarrier(c), c, "comm");
  EXPECT_INVALID(mlcommCommDestroy(c), c, "comm");
  EXPECT_INVALID(mlcommCommAbort(c), c, "comm");

  /* Same for a communicator that was aborted. */
  EXPECT_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, NULL));
  EXPECT_OK(mlcommCommAbort(c));
  EXPECT_INVALID(mlcommAllReduce(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, c), c, "comm");
  EXPECT_INVALID(mlcommCommDestroy(c), c, "comm");
  EXPECT_INVALID(mlcommCommRevoke(c), c, "comm");

  /* A revoked one stays a handle: calls fail with mlcommRemoteError, Shrink of a lone
   * rank gives a working communicator of one, Destroy frees it. */
  EXPECT_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, NULL));
  EXPECT_OK(mlcommCommRevoke(c));
  assert_int_equal(mlcommAllReduce(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, c), mlcommRemoteError);
  assert_non_null(strstr(mlcommGetLastError(c), "revoked"));
  EXPECT_OK(mlcommCommFailedRank(c, &v));
  assert_int_equal(v, -1);
  EXPECT_INVALID(mlcommCommShrink(c, NULL), c, "newcomm");
  mlcommComm_t shrunk = NULL;
  EXPECT_OK(mlcommCommShrink(c, &shrunk));
  EXPECT_OK(mlcommCommCount(shrunk, &v));
  assert_int_equal(v, 1);
  EXPECT_OK(mlcommAllReduce(sendbuf, recvbuf, N, mlcommFloat32, mlcommSum, shrunk));
  EXPECT_OK(mlcommCommDestroy(shrunk));
  EXPECT_OK(mlcommCommDestroy(c));

  /* A pointer that was never a communicator. */
  static char not_a_comm[256];
  memset(not_a_comm, 0x77, sizeof not_a_comm);
  EXPECT_INVALID(mlcommCommRank((mlcommComm_t)(void *)not_a_comm, &v), NULL, "comm");
}

static void stale_request(void **state)
{
  (void)state;
  mlcommRequest_t req = MLCOMM_REQUEST_NULL, stale, other = MLCOMM_REQUEST_NULL;
  int done = -1;
  float in[4] = {1, 2, 3, 4}, out[4];
  EXPECT_OK(mlcommAllReduceAsync(in, out, 4, mlcommFloat32, mlcommSum, comm, &req));
  stale = req;
  EXPECT_OK(mlcommWait(&req, NULL));
  assert_true(req == MLCOMM_REQUEST_NULL);
  /* A new request in between: a stale handle must not be mistaken for it. */
  EXPECT_OK(mlcommBarrierAsync(comm, &other));
  mlcommRequest_t copy = stale;
  EXPECT_INVALID(mlcommWait(&copy, NULL), NULL, "request");
  copy = stale;
  EXPECT_INVALID(mlcommTest(&copy, &done, NULL), NULL, "request");
  mlcommRequest_t garbage = 0xfeedfacecafebeefull;
  EXPECT_INVALID(mlcommWait(&garbage, NULL), NULL, "request");
  garbage = 1;
  EXPECT_INVALID(mlcommTest(&garbage, &done, NULL), NULL, "request");
  copy = stale;
  EXPECT_INVALID(mlcommWaitAll(1, &copy, NULL), NULL, "request");
  assert_true(other != MLCOMM_REQUEST_NULL);
  EXPECT_OK(mlcommWait(&other, NULL));
}

static void group_misuse(void **state)
{
  (void)state;
  EXPECT_INVALID(mlcommGroupEnd(), NULL, "Group");
  /* Nesting is legal, and an empty group is a no-op. */
  EXPECT_OK(mlcommGroupStart());
  EXPECT_OK(mlcommGroupStart());
  EXPECT_OK(mlcommGroupEnd());
  EXPECT_OK(mlcommGroupEnd());
  EXPECT_INVALID(mlcommGroupEnd(), NULL, "Group");
}

/* Forcing a transport this build or this job cannot provide fails cleanly. */
static void unavailable_transport(void **state)
{
  (void)state;
  static const struct { int transport; const char *name; } forced[] = {
      {mlcommTransportShm, "shm"}, {mlcommTransportNccl, "nccl"}};
  for (size_t i = 0; i < 2; i++) {
    mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
    cfg.transport = forced[i].transport;
    mlcommComm_t c = MLCOMM_COMM_NULL;
    mlcommResult_t r = mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg);
    if (r == mlcommSuccess) {
      /* The build has it: it must then work, and a barrier works on every transport. */
      float one = 1, sum = 0;
      EXPECT_OK(mlcommBarrier(c));
      r = mlcommAllReduce(&one, &sum, 1, mlcommFloat32, mlcommSum, c);
      if (forced[i].transport == mlcommTransportNccl) {
        /* NCCL takes device buffers only: host ones are refused, with a sentence. */
        assert_int_equal(r, mlcommUnsupported);
        const char *msg = mlcommGetLastError(c);
        if (!msg || !strstr(msg, "nccl") || !strstr(msg, "device"))
          fail_msg("host buffers on a comm forced to nccl: unclear refusal '%s'",
                   msg ? msg : "(null)");
      } else {
        EXPECT_OK(r);
        assert_true(sum == (float)nranks);
      }
      EXPECT_OK(mlcommCommDestroy(c));
      continue;
    }
    if (r != mlcommUnsupported && r != mlcommInvalidArgument)
      fail_msg("forcing transport %s returned %d (%s)", forced[i].name, (int)r,
               mlcommGetErrorString(r));
    const char *msg = mlcommGetLastError(NULL);
    if (!msg || !strstr(msg, forced[i].name))
      fail_msg("forcing transport %s failed without a sentence naming it: '%s'",
               forced[i].name, msg ? msg : "(null)");
  }
}

/* A bad argument found on a blocking call leaves the communicator usable. */
static void usable_after_errors(void **state)
{
  (void)state;
  float in[3] = {1, 2, 3}, out[3] = {0, 0, 0};
  EXPECT_OK(mlcommAllReduce(in, out, 3, mlcommFloat32, mlcommSum, comm));
  for (int i = 0; i < 3; i++) assert_true(out[i] == in[i] * (float)nranks);
}

int main(int argc, char **argv)
{
  MPI_Init(&argc, &argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fresh_comm_has_no_error),
      cmocka_unit_test(error_strings),
      cmocka_unit_test(null_comm),
      cmocka_unit_test(null_out_pointers),
      cmocka_unit_test(null_request_pointers),
      cmocka_unit_test(null_async_request),
      cmocka_unit_test(null_buffers),
      cmocka_unit_test(bad_datatype),
      cmocka_unit_test(bad_op),
      cmocka_unit_test(count_overflow),
      cmocka_unit_test(root_out_of_range),
      cmocka_unit_test(peer_out_of_range),
      cmocka_unit_test(tag_out_of_range),
      cmocka_unit_test(bad_config),
      cmocka_unit_test(bad_environment),
      cmocka_unit_test(partial_overlap),
      cmocka_unit_test(destroyed_comm),
      cmocka_unit_test(stale_request),
      cmocka_unit_test(group_misuse),
      cmocka_unit_test(unavailable_transport),
      cmocka_unit_test(usable_after_errors),
  };
  int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
  MPI_Finalize();
  return failed ? 1 : 0;
}

/*
 * Communicators: rank/count, configuration and environment, CommSplit (colors, keys,
 * NOCOLOR), several communicators in flight at once, Destroy refused while requests are
 * in flight, Abort failing them, and isolation from user traffic on the MPI
 * communicator the library was created from.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static int next_rank(void) { return (tc_rank + 1) % tc_nranks; }
static int prev_rank(void) { return (tc_rank + tc_nranks - 1) % tc_nranks; }

static void basics(void)
{
  tc_section("version, rank, count, GetMPI");
  int version = -1;
  CHECK_OK(mlcommGetVersion(&version));
  CHECK(version == MLCOMM_VERSION_CODE, "library version %d, header %d", version,
        MLCOMM_VERSION_CODE);
  int rank = -1, count = -1;
  CHECK_OK(mlcommCommRank(tc_comm, &rank));
  CHECK_OK(mlcommCommCount(tc_comm, &count));
  CHECK(rank == tc_rank && count == tc_nranks, "rank %d count %d, expected %d %d", rank, count,
        tc_rank, tc_nranks);
  MPI_Comm mc = MPI_COMM_NULL;
  CHECK_OK(mlcommCommGetMPI(tc_comm, &mc));
  CHECK(mc == MPI_COMM_WORLD, "CommGetMPI did not return the communicator passed to Init");
  CHECK(strcmp(mlcommGetLastError(tc_comm), "") == 0,
        "fresh communicator has a last error: '%s'", mlcommGetLastError(tc_comm));

  /* A communicator over a subset of MPI_COMM_WORLD. */
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, tc_rank < (tc_nranks + 1) / 2, tc_rank, &half);
  int hrank, hsize;
  MPI_Comm_rank(half, &hrank);
  MPI_Comm_size(half, &hsize);
  mlcommConfig_t cfg;
  tc_config(&cfg);
  mlcommComm_t hc = MLCOMM_COMM_NULL;
  if (CHECK_OK(mlcommCommInitFromMPI(&hc, half, &cfg))) {
    CHECK_OK(mlcommCommRank(hc, &rank));
    CHECK_OK(mlcommCommCount(hc, &count));
    CHECK(rank == hrank && count == hsize, "sub-communicator rank %d count %d, expected %d %d",
          rank, count, hrank, hsize);
    CHECK_OK(mlcommCommGetMPI(hc, &mc));
    CHECK(mc == half, "CommGetMPI on a sub-communicator returned another communicator");
    int64_t mine = tc_rank, sum = -1;
    CHECK_OK(mlcommAllReduce(&mine, &sum, 1, mlcommInt64, mlcommSum, hc));
    int64_t expect = 0;
    for (int r = 0; r < tc_nranks; r++)
      if ((r < (tc_nranks + 1) / 2) == (tc_rank < (tc_nranks + 1) / 2)) expect += r;
    CHECK(sum == expect, "AllReduce on a sub-communicator: %lld, expected %lld",
          (long long)sum, (long long)expect);
    CHECK_OK(mlcommCommDestroy(hc));
  }
  MPI_Comm_free(&half);
}

static void config_and_environment(void)
{
  tc_section("configuration and environment");
  mlcommConfig_t got = MLCOMM_CONFIG_INITIALIZER;
  CHECK_OK(mlcommCommGetConfig(tc_comm, &got));
  const char *env = getenv("MLCOMM_TIMEOUT_MS");
  if (env)
    CHECK(got.timeoutMs == atoi(env), "timeoutMs %d, but MLCOMM_TIMEOUT_MS=%s", got.timeoutMs,
          env);
  else
    CHECK(got.timeoutMs == 300000, "timeoutMs %d, default is 300000", got.timeoutMs);
  if (!getenv("MLCOMM_DEBUG"))
    CHECK(got.debugLevel == 0, "debugLevel %d, default is 0", got.debugLevel);
  if (tc_transport != mlcommTransportAuto)
    CHECK(got.transport == tc_transport, "transport %d, configured %d", got.transport,
          tc_transport);
  CHECK(got.timeoutMs != MLCOMM_CONFIG_UNDEF_INT && got.debugLevel != MLCOMM_CONFIG_UNDEF_INT &&
            got.transport != MLCOMM_CONFIG_UNDEF_INT,
        "GetConfig left fields undefined instead of reporting what is in force");

  /* An explicit field wins over the environment. */
  mlcommConfig_t cfg;
  tc_config(&cfg);
  cfg.timeoutMs = 45678;
  mlcommComm_t c = MLCOMM_COMM_NULL;
  if (CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg))) {
    CHECK_OK(mlcommCommGetConfig(c, &got));
    CHECK(got.timeoutMs == 45678, "explicit timeoutMs 45678 reported as %d", got.timeoutMs);
    CHECK_OK(mlcommCommDestroy(c));
  }

  /* An undefined field takes the environment as it is when the communicator is made. */
  char *saved = env ? strdup(env) : NULL;
  setenv("MLCOMM_TIMEOUT_MS", "43210", 1);
  tc_config(&cfg);
  if (CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg))) {
    CHECK_OK(mlcommCommGetConfig(c, &got));
    CHECK(got.timeoutMs == 43210, "MLCOMM_TIMEOUT_MS=43210 set before Init, reported %d",
          got.timeoutMs);
    CHECK_OK(mlcommCommDestroy(c));
  }
  if (saved) {
    setenv("MLCOMM_TIMEOUT_MS", saved, 1);
    free(saved);
  } else {
    unsetenv("MLCOMM_TIMEOUT_MS");
  }

  /* A caller compiled against an older, smaller struct: fields beyond its size are not
   * read (docs/configuration.md), so garbage there must not matter. */
  tc_config(&cfg);
  cfg.size = offsetof(mlcommConfig_t, timeoutMs);
  cfg.timeoutMs = -12345;
  cfg.debugLevel = 99;
  if (CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg))) {
    CHECK_OK(mlcommCommGetConfig(c, &got));
    if (env)
      CHECK(got.timeoutMs == atoi(env), "older config struct: timeoutMs %d read past its size",
            got.timeoutMs);
    CHECK(got.debugLevel >= 0 && got.debugLevel <= 3,
          "older config struct: debugLevel %d read past its size", got.debugLevel);
    CHECK_OK(mlcommCommDestroy(c));
  }

  /* config NULL: all defaults / environment. */
  if (CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, NULL))) {
    CHECK_OK(mlcommCommGetConfig(c, &got));
    if (env) CHECK(got.timeoutMs == atoi(env), "config NULL: timeoutMs %d", got.timeoutMs);
    CHECK_OK(mlcommCommDestroy(c));
  }
}

/* Even and odd ranks, keyed by -rank: each half is ordered by decreasing world rank. */
static void split_even_odd(void)
{
  tc_section("CommSplit even/odd with reversed keys");
  mlcommComm_t sub = MLCOMM_COMM_NULL;
  int color = tc_rank % 2;
  if (!CHECK_OK(mlcommCommSplit(tc_comm, color, -tc_rank, &sub, NULL))) return;
  if (!CHECK(sub != MLCOMM_COMM_NULL, "CommSplit gave NULL for a color")) return;
  int members = 0, above = 0;
  for (int r = 0; r < tc_nranks; r++) {
    if (r % 2 != color) continue;
    members++;
    if (r > tc_rank) above++;
  }
  int rank = -1, count = -1;
  CHECK_OK(mlcommCommRank(sub, &rank));
  CHECK_OK(mlcommCommCount(sub, &count));
  CHECK(rank == above && count == members, "split rank %d count %d, expected %d %d", rank,
        count, above, members);

  /* Collectives on the split communicator: world ranks gathered in split order. */
  int32_t *gathered = tc_galloc((size_t)members * sizeof(int32_t));
  int32_t mine = tc_rank;
  if (CHECK_OK(mlcommAllGather(&mine, gathered, 1, mlcommInt32, sub))) {
    bool ok = true;
    for (int i = 0; i < members; i++) {
      /* split rank i holds the i-th largest world rank of this color */
      int expect = -1, seen = 0;
      for (int r = tc_nranks - 1; r >= 0; r--)
        if (r % 2 == color && seen++ == i) expect = r;
      if (gathered[i] != expect) ok = false;
    }
    CHECK(ok, "AllGather on the split communicator: wrong order or data");
  }
  tc_gcheck(gathered, "split AllGather");
  tc_gfree(gathered);

  size_t n = 4097;
  uint64_t seed = tc_seed(31, (uint64_t)color, 0, 0);
  float *send = malloc(n * sizeof *send), *recv = malloc(n * sizeof *recv);
  tc_fill(send, mlcommFloat32, mlcommSum, n, seed, rank, 0);
  if (CHECK_OK(mlcommAllReduce(send, recv, n, mlcommFloat32, mlcommSum, sub)))
    tc_check_reduced(recv, mlcommFloat32, mlcommSum, n, seed, 0, members, "split AllReduce");
  /* Broadcast from the split's last rank (the lowest world rank of the color). */
  int32_t value = rank == members - 1 ? 1000 + tc_rank : -1;
  if (CHECK_OK(mlcommBroadcast(&value, &value, 1, mlcommInt32, members - 1, sub)))
    CHECK(value == 1000 + color, "split Broadcast: %d, expected %d", value, 1000 + color);
  free(send);
  free(recv);

  /* config NULL inherits the parent's settings; a config given is applied. */
  mlcommConfig_t parent = MLCOMM_CONFIG_INITIALIZER, child = MLCOMM_CONFIG_INITIALIZER;
  CHECK_OK(mlcommCommGetConfig(tc_comm, &parent));
  CHECK_OK(mlcommCommGetConfig(sub, &child));
  CHECK(child.timeoutMs == parent.timeoutMs && child.transport == parent.transport &&
            child.debugLevel == parent.debugLevel,
        "split with config NULL did not inherit (timeout %d vs %d, transport %d vs %d)",
        child.timeoutMs, parent.timeoutMs, child.transport, parent.transport);
  CHECK_OK(mlcommCommDestroy(sub));

  mlcommConfig_t cfg;
  tc_config(&cfg);
  cfg.timeoutMs = 7777;
  if (CHECK_OK(mlcommCommSplit(tc_comm, 0, tc_rank, &sub, &cfg))) {
    CHECK_OK(mlcommCommGetConfig(sub, &child));
    CHECK(child.timeoutMs == 7777, "split with timeoutMs 7777 reports %d", child.timeoutMs);
    CHECK_OK(mlcommCommRank(sub, &rank));
    CHECK(rank == tc_rank, "same color and key: rank %d, expected the parent's %d", rank,
          tc_rank);
    CHECK_OK(mlcommCommDestroy(sub));
  }
}

static void split_nocolor(void)
{
  tc_section("CommSplit with MLCOMM_SPLIT_NOCOLOR");
  mlcommComm_t sub = (mlcommComm_t)(uintptr_t)0x1; /* must be overwritten with NULL */
  int color = tc_rank == 0 ? MLCOMM_SPLIT_NOCOLOR : 3;
  if (!CHECK_OK(mlcommCommSplit(tc_comm, color, 0, &sub, NULL))) return;
  if (tc_rank == 0) {
    CHECK(sub == MLCOMM_COMM_NULL, "NOCOLOR did not give a NULL communicator");
  } else if (CHECK(sub != MLCOMM_COMM_NULL, "color 3 gave NULL")) {
    int rank = -1, count = -1;
    CHECK_OK(mlcommCommRank(sub, &rank));
    CHECK_OK(mlcommCommCount(sub, &count));
    CHECK(rank == tc_rank - 1 && count == tc_nranks - 1, "rank %d count %d, expected %d %d",
          rank, count, tc_rank - 1, tc_nranks - 1);
    int32_t one = 1, total = 0;
    CHECK_OK(mlcommAllReduce(&one, &total, 1, mlcommInt32, mlcommSum, sub));
    CHECK(total == tc_nranks - 1, "AllReduce over the colored ranks: %d", total);
    CHECK_OK(mlcommCommDestroy(sub));
  }
  /* Everyone NOCOLOR. */
  sub = (mlcommComm_t)(uintptr_t)0x1;
  CHECK_OK(mlcommCommSplit(tc_comm, MLCOMM_SPLIT_NOCOLOR, 0, &sub, NULL));
  CHECK(sub == MLCOMM_COMM_NULL, "all-NOCOLOR split did not give NULL");
}

/* Two communicators with async work interleaved: collectives and same-tag messages on
 * one must never meet those of the other. */
static void two_comms(void)
{
  tc_section("two communicators in flight at once");
  mlcommConfig_t cfg;
  tc_config(&cfg);
  mlcommComm_t other = MLCOMM_COMM_NULL;
  if (!CHECK_OK(mlcommCommInitFromMPI(&other, MPI_COMM_WORLD, &cfg))) return;
  mlcommComm_t comms[2] = {tc_comm, other};
  enum { N = 100003, M = 4099 };
  float *ar_send[2], *ar_recv[2];
  int32_t *msg_send[2], *msg_recv[2];
  uint64_t *bc[2];
  uint64_t seeds[2] = {tc_seed(41, 0, 0, 0), tc_seed(41, 1, 0, 0)};
  mlcommRequest_t reqs[10];
  int nreq = 0;
  for (int c = 0; c < 2; c++) {
    ar_send[c] = malloc(N * sizeof(float));
    ar_recv[c] = malloc(N * sizeof(float));
    msg_send[c] = malloc(M * sizeof(int32_t));
    msg_recv[c] = malloc(M * sizeof(int32_t));
    bc[c] = malloc(M * sizeof(uint64_t));
    tc_fill(ar_send[c], mlcommFloat32, mlcommSum, N, seeds[c], tc_rank, 0);
    tc_fill(msg_send[c], mlcommInt32, mlcommSum, M, seeds[c], tc_rank, 0);
    tc_fill(bc[c], mlcommUint64, mlcommSum, M, seeds[c], tc_rank, 0);
  }
  /* Interleaved starts: comm 0, comm 1, comm 1, comm 0, ... same tag on both. */
  CHECK_OK(mlcommAllReduceAsync(ar_send[0], ar_recv[0], N, mlcommFloat32, mlcommSum, comms[0], &reqs[nreq++]));
  CHECK_OK(mlcommRecvAsync(msg_recv[1], M, mlcommInt32, prev_rank(), 5, comms[1], &reqs[nreq++]));
  CHECK_OK(mlcommAllReduceAsync(ar_send[1], ar_recv[1], N, mlcommFloat32, mlcommSum, comms[1], &reqs[nreq++]));
  CHECK_OK(mlcommSendAsync(msg_send[0], M, mlcommInt32, next_rank(), 5, comms[0], &reqs[nreq++]));
  CHECK_OK(mlcommBroadcastAsync(bc[1], bc[1], M, mlcommUint64, tc_nranks - 1, comms[1], &reqs[nreq++]));
  CHECK_OK(mlcommSendAsync(msg_send[1], M, mlcommInt32, next_rank(), 5, comms[1], &reqs[nreq++]));
  CHECK_OK(mlcommBroadcastAsync(bc[0], bc[0], M, mlcommUint64, 0, comms[0], &reqs[nreq++]));
  CHECK_OK(mlcommRecvAsync(msg_recv[0], M, mlcommInt32, prev_rank(), 5, comms[0], &reqs[nreq++]));
  /* Mixed waiting order. */
  static const int order[] = {4, 0, 7, 2, 1, 6, 3, 5};
  for (int i = 0; i < nreq; i++) CHECK_OK(mlcommWait(&reqs[order[i]], NULL));

  int64_t *expect = malloc(M * sizeof(int64_t));
  for (int c = 0; c < 2; c++) {
    char what[64];
    snprintf(what, sizeof what, "comm %d AllReduce", c);
    tc_check_reduced(ar_recv[c], mlcommFloat32, mlcommSum, N, seeds[c], 0, tc_nranks, what);
    tc_fill(expect, mlcommInt32, mlcommSum, M, seeds[c], prev_rank(), 0);
    CHECK(memcmp(expect, msg_recv[c], M * sizeof(int32_t)) == 0,
          "comm %d: message from the other communicator (same tag) was delivered", c);
    tc_fill(expect, mlcommUint64, mlcommSum, M, seeds[c], c == 0 ? 0 : tc_nranks - 1, 0);
    CHECK(memcmp(expect, bc[c], M * sizeof(uint64_t)) == 0, "comm %d Broadcast: wrong data", c);
    free(ar_send[c]);
    free(ar_recv[c]);
    free(msg_send[c]);
    free(msg_recv[c]);
    free(bc[c]);
  }
  free(expect);
  CHECK_OK(mlcommCommDestroy(other));
}

static void destroy_in_flight(void)
{
  tc_section("Destroy refused while requests are in flight; Abort fails them");
  mlcommConfig_t cfg;
  tc_config(&cfg);
  mlcommComm_t c = MLCOMM_COMM_NULL;
  if (!CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg))) return;

  /* A receive nobody has sent to yet cannot complete: the request is surely in flight. */
  int32_t in = -1, out = 77;
  mlcommRequest_t reqs[2];
  CHECK_OK(mlcommRecvAsync(&in, 1, mlcommInt32, tc_rank, 9, c, &reqs[0]));
  CHECK_RES(mlcommCommDestroy(c), mlcommInProgress);
  CHECK(strlen(mlcommGetLastError(c)) > 0, "Destroy refused without a sentence");
  /* Still a working communicator. */
  int rank = -1;
  CHECK_OK(mlcommCommRank(c, &rank));
  CHECK_OK(mlcommSendAsync(&out, 1, mlcommInt32, tc_rank, 9, c, &reqs[1]));
  CHECK_OK(mlcommWaitAll(2, reqs, NULL));
  CHECK(in == 77, "self message after a refused Destroy: %d", in);

  /* A collective that cannot finish until the other ranks join. */
  if (tc_nranks >= 2) {
    int32_t v = 1, sum = 0;
    mlcommRequest_t r = MLCOMM_REQUEST_NULL;
    if (tc_rank == 0) {
      CHECK_OK(mlcommAllReduceAsync(&v, &sum, 1, mlcommInt32, mlcommSum, c, &r));
      CHECK_RES(mlcommCommDestroy(c), mlcommInProgress);
      MPI_Barrier(MPI_COMM_WORLD);
      CHECK_OK(mlcommWait(&r, NULL));
    } else {
      MPI_Barrier(MPI_COMM_WORLD);
      CHECK_OK(mlcommAllReduce(&v, &sum, 1, mlcommInt32, mlcommSum, c));
    }
    CHECK(sum == tc_nranks, "AllReduce after a refused Destroy: %d", sum);
  }
  CHECK_OK(mlcommCommDestroy(c));

  /* Abort: local, immediate, and the request it failed reports mlcommRemoteError. */
  if (!CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg))) return;
  mlcommRequest_t r = MLCOMM_REQUEST_NULL;
  static int32_t never; /* static: MPI may hold it until the job ends */
  CHECK_OK(mlcommRecvAsync(&never, 1, mlcommInt32, tc_rank, 10, c, &r));
  CHECK_OK(mlcommCommAbort(c));
  CHECK_RES(mlcommWait(&r, NULL), mlcommRemoteError);
  CHECK(r == MLCOMM_REQUEST_NULL, "the failed request was not released");
}

/* The library duplicates the MPI communicator: same tags on MPI_COMM_WORLD never meet. */
static void user_traffic(void)
{
  tc_section("user traffic on MPI_COMM_WORLD");
  const int tag = 7;
  int32_t lib_out[3] = {1, tc_rank, 111}, user_out[3] = {2, tc_rank, 222};
  int32_t lib_in[3] = {0}, user_in[3] = {0}, any_in[3] = {0};

  /* A wildcard MPI receive posted first must not steal the library's messages. */
  MPI_Request any;
  MPI_Irecv(any_in, 3, MPI_INT32_T, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &any);
  mlcommRequest_t lr;
  CHECK_OK(mlcommSendAsync(lib_out, 3, mlcommInt32, next_rank(), tag, tc_comm, &lr));
  MPI_Request ur;
  MPI_Isend(user_out, 3, MPI_INT32_T, next_rank(), tag, MPI_COMM_WORLD, &ur);
  MPI_Status ms;
  /* The wildcard receive gets the user's message; then the library's Recv gets its own. */
  MPI_Wait(&any, &ms);
  CHECK(any_in[0] == 2 && any_in[1] == prev_rank() && ms.MPI_TAG == tag,
        "MPI_ANY_TAG receive on MPI_COMM_WORLD got {%d, %d} tag %d", any_in[0], any_in[1],
        ms.MPI_TAG);
  mlcommStatus_t st;
  CHECK_OK(mlcommRecv(lib_in, 3, mlcommInt32, prev_rank(), tag, tc_comm, &st));
  CHECK(lib_in[0] == 1 && lib_in[1] == prev_rank() && lib_in[2] == 111,
        "mlcommRecv got {%d, %d, %d}", lib_in[0], lib_in[1], lib_in[2]);
  CHECK_OK(mlcommWait(&lr, NULL));
  MPI_Wait(&ur, MPI_STATUS_IGNORE);

  /* Same again the other way round: MPI's Recv asked first by tag. */
  CHECK_OK(mlcommSendAsync(lib_out, 3, mlcommInt32, next_rank(), tag, tc_comm, &lr));
  MPI_Isend(user_out, 3, MPI_INT32_T, next_rank(), tag, MPI_COMM_WORLD, &ur);
  MPI_Recv(user_in, 3, MPI_INT32_T, prev_rank(), tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  CHECK(user_in[0] == 2 && user_in[2] == 222, "MPI_Recv got a library message {%d, %d, %d}",
        user_in[0], user_in[1], user_in[2]);
  CHECK_OK(mlcommRecv(lib_in, 3, mlcommInt32, prev_rank(), tag, tc_comm, &st));
  CHECK(lib_in[0] == 1, "mlcommRecv got a user message");
  CHECK_OK(mlcommWait(&lr, NULL));
  MPI_Wait(&ur, MPI_STATUS_IGNORE);

  /* A collective of the library overlapping one of the user on the same ranks. */
  int64_t one = 1, lib_sum = 0, user_sum = 0;
  mlcommRequest_t cr;
  CHECK_OK(mlcommAllReduceAsync(&one, &lib_sum, 1, mlcommInt64, mlcommSum, tc_comm, &cr));
  MPI_Allreduce(&one, &user_sum, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  CHECK_OK(mlcommWait(&cr, NULL));
  CHECK(lib_sum == tc_nranks && user_sum == tc_nranks, "sums %lld and %lld",
        (long long)lib_sum, (long long)user_sum);

  /* Nothing of the library's is left on MPI_COMM_WORLD. */
  MPI_Barrier(MPI_COMM_WORLD);
  int flag = 1;
  MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
  CHECK(flag == 0, "a message is pending on MPI_COMM_WORLD that the user never sent");
  MPI_Barrier(MPI_COMM_WORLD);
}

int main(int argc, char **argv)
{
  tc_init(&argc, &argv);
  basics();
  config_and_environment();
  split_even_odd();
  split_nocolor();
  two_comms();
  destroy_in_flight();
  user_traffic();
  return tc_finish();
}

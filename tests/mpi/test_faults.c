/*
 * A dead peer, on any transport: detection, revocation and shrinking. One scenario per
 * run, chosen by -m; rank 1 is the victim, rank 0 kills it with SIGKILL.
 *
 *   -m large     64 MiB AllReduce: rank 0 starts it Async and makes no call for 0.2 s,
 *                the victim and the others block in it; the victim is killed inside.
 *   -m small     AllReduce of 3 ints: the others block in it, the victim never joins.
 *   -m bcast     Broadcast from the victim (1 MiB): the others wait for its data.
 *   -m recv      Every survivor blocks in mlcommRecv from the victim.
 *   -m test      Rank 0 polls an AllReduceAsync with mlcommTest; the others block.
 *   -m shrink    As large (at 3 ranks or more), then the survivors call
 *                mlcommCommShrink and run collectives on the new communicator.
 * Each survivor must get mlcommRemoteError (or, with -x timeout, mlcommTimeout after
 * MLCOMM_TIMEOUT_MS) whose sentence names rank 1 ("died", or "failed first" when a
 * peer revoked the communicator first; "not arrived: 1" for a timeout); later calls on
 * the communicator fail at once; mlcommCommRevoke and mlcommCommFailedRank name rank 1;
 * and every shm segment it maps is already unlinked. Results go to stdout as lines
 * (KILLTIME, RETURNED, SEGMENT, VERDICT) for shm_fault_driver.py, which checks the
 * bound on detection and /dev/shm after the job (why the driver and mpirun
 * --enable-recovery are needed: test_shm_faults.c). After the kill no MPI is called
 * except by mlcommCommShrink among the survivors.
 *
 *   -m revoke    No kill: the last rank calls mlcommCommRevoke while the others wait
 *                in an AllReduce it never joins, and with an Async request pending:
 *                each gets mlcommRemoteError naming that rank within 2 s. Plain mpirun.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm_common.h"

enum { VICTIM = 1, KILLER = 0 };

static bool on_shm, want_timeout;

static void nap(double seconds) {
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

static mlcommComm_t make_comm(void) {
  mlcommConfig_t cfg;
  tc_config(&cfg);
  mlcommComm_t c = MLCOMM_COMM_NULL;
  CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg));
  return c;
}

static _Noreturn void report_and_exit(const char *scenario) {
  long long passed = tc_passed_here(), failed = tc_failed_here();
  fflush(stderr);
  printf("VERDICT rank %d %s (%s: %lld checks passed, %lld failed)\n", tc_rank,
         failed ? "FAIL" : "PASS", scenario, passed, failed);
  fflush(stdout);
  _exit(0);
}

/* The failure as a survivor sees it, and what the communicator does afterwards. */
static void check_failure(mlcommComm_t c, mlcommResult_t r, const char *what) {
  const char *msg = mlcommGetLastError(c);
  mlcommResult_t want = want_timeout ? mlcommTimeout : mlcommRemoteError;
  CHECK(r == want, "%s: returned %d (%s), expected %s: %s", what, (int)r,
        mlcommGetErrorString(r), mlcommGetErrorString(want), msg);
  if (want_timeout) {
    uint64_t missing = 0, arrived = 0;
    CHECK(strstr(msg, "timed out") && ts_arrival_lists(msg, &missing, &arrived) &&
              (missing & (1u << VICTIM)),
          "%s: the timeout sentence does not list rank %d as not arrived: '%s'", what, VICTIM, msg);
  } else {
    CHECK(ts_names_rank(msg, VICTIM) && (strstr(msg, "died") || strstr(msg, "failed first")),
          "%s: the sentence does not say that rank %d died: '%s'", what, VICTIM, msg);
  }
  CHECK_OK(mlcommCommRevoke(c));
  int failed = -2;
  CHECK_OK(mlcommCommFailedRank(c, &failed));
  CHECK(failed == VICTIM, "%s: mlcommCommFailedRank gave %d, expected %d", what, failed, VICTIM);
  int32_t v = 1, w = -1;
  double t0 = ts_now();
  r = mlcommAllReduce(&v, &w, 1, mlcommInt32, mlcommSum, c);
  double el = ts_now() - t0;
  msg = mlcommGetLastError(c);
  CHECK(r == mlcommRemoteError && el < 0.5 && w == -1 && strstr(msg, "revoked") &&
            ts_names_rank(msg, VICTIM),
        "%s: a later AllReduce returned %d after %.2f s (w %d); expected mlcommRemoteError at "
        "once naming rank %d: '%s'",
        what, (int)r, el, (int)w, VICTIM, msg);
  mlcommStatus_t st;
  r = mlcommRecv(&w, 1, mlcommInt32, MLCOMM_ANY_SOURCE, 0, c, &st);
  CHECK(r == mlcommRemoteError, "%s: a later Recv returned %d, expected mlcommRemoteError", what,
        (int)r);
}

static void print_returned(mlcommResult_t r) {
  printf("RETURNED rank %d %.6f result %d (%s)\n", tc_rank, ts_now(), (int)r, mlcommGetErrorString(r));
  fflush(stdout);
}

static void kill_victim(const int *pids) {
  double t = ts_now();
  CHECK(kill(pids[VICTIM], SIGKILL) == 0, "kill(%d, SIGKILL) failed", pids[VICTIM]);
  printf("KILLTIME %.6f victim %d pid %d\n", t, VICTIM, pids[VICTIM]);
  fflush(stdout);
}

/* The survivors' new communicator: every rank but the victim, in order, and working. */
static void shrink_and_use(mlcommComm_t c) {
  mlcommComm_t s = MLCOMM_COMM_NULL;
  double t0 = ts_now();
  mlcommResult_t r = mlcommCommShrink(c, &s);
  printf("# rank %d: mlcommCommShrink took %.3f s\n", tc_rank, ts_now() - t0);
  if (!CHECK(r == mlcommSuccess, "mlcommCommShrink returned %d: %s", (int)r, mlcommGetLastError(c)))
    return;
  int rank = -1, n = -1;
  CHECK_OK(mlcommCommRank(s, &rank));
  CHECK_OK(mlcommCommCount(s, &n));
  CHECK(n == tc_nranks - 1 && rank == (tc_rank < VICTIM ? tc_rank : tc_rank - 1),
        "the shrunk communicator: rank %d of %d, expected %d of %d", rank, n,
        tc_rank < VICTIM ? tc_rank : tc_rank - 1, tc_nranks - 1);
  const size_t counts[] = {3, 100000};
  for (int k = 0; k < 2; k++) {
    size_t count = counts[k];
    int32_t *a = malloc(count * sizeof *a);
    for (size_t i = 0; i < count; i++) a[i] = tc_rank * 7 + (int32_t)(i % 13);
    int32_t want_base = 0;
    for (int q = 0; q < tc_nranks; q++) want_base += q == VICTIM ? 0 : q * 7;
    if (CHECK_OK(mlcommAllReduce(a, a, count, mlcommInt32, mlcommSum, s))) {
      size_t bad = 0;
      for (size_t i = 0; i < count; i++) bad += a[i] != want_base + n * (int32_t)(i % 13);
      CHECK(bad == 0, "AllReduce of %zu on the shrunk communicator: %zu wrong elements", count, bad);
    }
    free(a);
  }
  int32_t root_val = rank == 0 ? 4242 : 0;
  if (CHECK_OK(mlcommBroadcast(&root_val, &root_val, 1, mlcommInt32, 0, s)))
    CHECK(root_val == 4242, "Broadcast on the shrunk communicator gave %d", (int)root_val);
  CHECK_OK(mlcommBarrier(s));
  CHECK_OK(mlcommCommDestroy(s));
}

static int kill_scenario(const char *mode) {
  if (tc_nranks < 2) tc_skip("killing a peer needs at least 2 ranks");
  bool shrink = strcmp(mode, "shrink") == 0;
  if (shrink && tc_nranks < 3) tc_skip("shrinking to survivors that talk needs 3 ranks or more");
  mlcommComm_t c = make_comm();
  if (c == MLCOMM_COMM_NULL) return tc_finish();
  ts_check_unlinked(on_shm, true, "after creation");
  int pid = (int)getpid();
  int *pids = malloc((size_t)tc_nranks * sizeof *pids);
  MPI_Allgather(&pid, 1, MPI_INT, pids, 1, MPI_INT, MPI_COMM_WORLD);
  int32_t one = 1, sum = 0;
  if (CHECK_OK(mlcommAllReduce(&one, &sum, 1, mlcommInt32, mlcommSum, c)))
    CHECK(sum == tc_nranks, "warm-up AllReduce: %d", sum);

  bool large = strcmp(mode, "large") == 0 || shrink;
  size_t count = large ? (size_t)16 << 20 : strcmp(mode, "bcast") == 0 ? (size_t)1 << 18 : 3;
  float *buf = malloc(count * sizeof(float));
  for (size_t i = 0; i < count; i++) buf[i] = 1.0f;
  mlcommResult_t r = mlcommSuccess;
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  bool polled = strcmp(mode, "test") == 0, recv = strcmp(mode, "recv") == 0;
  bool bcast = strcmp(mode, "bcast") == 0;
  if (tc_rank == KILLER && large)
    r = mlcommAllReduceAsync(buf, buf, count, mlcommFloat32, mlcommSum, c, &req);
  if (tc_rank == KILLER && polled)
    r = mlcommAllReduceAsync(buf, buf, count, mlcommFloat32, mlcommSum, c, &req);
  if (tc_rank == KILLER && recv) r = mlcommRecvAsync(buf, count, mlcommFloat32, VICTIM, 5, c, &req);
  if (tc_rank == KILLER && bcast)
    r = mlcommBroadcastAsync(NULL, buf, count, mlcommFloat32, VICTIM, c, &req);
  MPI_Barrier(MPI_COMM_WORLD);
  /* No MPI from here on. */
  if (tc_rank == VICTIM) {
    if (large) r = mlcommAllReduce(buf, buf, count, mlcommFloat32, mlcommSum, c);
    else
      for (;;) nap(1.0); /* it never joins: the others wait for it */
    CHECK(false, "the victim's call returned %d instead of the process being killed", (int)r);
    report_and_exit(mode);
  }
  if (tc_rank == KILLER) {
    if (!CHECK_OK(r)) {
      kill(pids[VICTIM], SIGKILL);
      report_and_exit(mode);
    }
    nap(0.2); /* the others are waiting inside their call by now */
    kill_victim(pids);
    if (polled) {
      int done = 0;
      double t0 = ts_now();
      while (r == mlcommSuccess && !done && ts_now() - t0 < 60.0) {
        r = mlcommTest(&req, &done, NULL);
        nap(0.001);
      }
      CHECK(done || r != mlcommSuccess, "mlcommTest never finished the request");
    } else if (req != MLCOMM_REQUEST_NULL) {
      r = mlcommWait(&req, NULL);
    } else { /* small: rank 0 blocks in it too, after the kill */
      r = mlcommAllReduce(buf, buf, count, mlcommFloat32, mlcommSum, c);
    }
  } else if (recv) {
    r = mlcommRecv(buf, count, mlcommFloat32, VICTIM, 5, c, NULL);
  } else if (bcast) {
    r = mlcommBroadcast(NULL, buf, count, mlcommFloat32, VICTIM, c);
  } else {
    r = mlcommAllReduce(buf, buf, count, mlcommFloat32, mlcommSum, c);
  }
  print_returned(r);
  check_failure(c, r, mode);
  ts_check_unlinked(on_shm, true, "after the kill");
  if (shrink) shrink_and_use(c);
  CHECK_OK(mlcommCommDestroy(c)); /* a revoked communicator is freed as by abort */
  /* A survivor that left now would look dead to one that has not looked yet. */
  nap(1.0);
  report_and_exit(mode);
}

static int revoke_scenario(void) {
  if (tc_nranks < 2) tc_skip("revoking under waiting peers needs at least 2 ranks");
  mlcommComm_t c = make_comm();
  if (c == MLCOMM_COMM_NULL) return tc_finish();
  int revoker = tc_nranks - 1;
  int32_t v = 1, w = 0, a = 0;
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  CHECK_OK(mlcommAllReduce(&v, &w, 1, mlcommInt32, mlcommSum, c));
  MPI_Barrier(MPI_COMM_WORLD);
  if (tc_rank == revoker) {
    nap(0.3);
    CHECK_OK(mlcommCommRevoke(c));
    CHECK_OK(mlcommCommRevoke(c)); /* twice: a no-op */
    int failed = 0;
    CHECK_OK(mlcommCommFailedRank(c, &failed));
    CHECK(failed == -1, "no rank failed, yet mlcommCommFailedRank gave %d", failed);
  } else {
    CHECK_OK(mlcommBarrierAsync(c, &req)); /* pending when the revocation comes */
    double t0 = ts_now();
    mlcommResult_t r = mlcommAllReduce(&v, &a, 1, mlcommInt32, mlcommSum, c);
    double el = ts_now() - t0;
    const char *msg = mlcommGetLastError(c);
    CHECK(r == mlcommRemoteError && el < 2.5 && ts_names_rank(msg, revoker) && strstr(msg, "revoked"),
          "waiting while rank %d revoked: %d (%s) after %.2f s: '%s'", revoker, (int)r,
          mlcommGetErrorString(r), el, msg);
    printf("# rank %d: the revocation arrived after %.3f s of waiting (rank %d revoked 0.3 s in)\n",
           tc_rank, el, revoker);
    r = req == MLCOMM_REQUEST_NULL ? mlcommInvalidArgument : mlcommWait(&req, NULL);
    CHECK(r == mlcommRemoteError, "the pending BarrierAsync ended with %d, expected mlcommRemoteError",
          (int)r);
  }
  /* Everything fails at once now, everywhere. */
  double t0 = ts_now();
  mlcommResult_t r = mlcommAllReduce(&v, &a, 1, mlcommInt32, mlcommSum, c);
  CHECK(r == mlcommRemoteError && ts_now() - t0 < 0.5, "a later AllReduce returned %d", (int)r);
  r = mlcommBarrierAsync(c, &req);
  CHECK(r == mlcommRemoteError, "a later BarrierAsync returned %d", (int)r);
  mlcommStatus_t st;
  int found = 1;
  r = mlcommIprobe(MLCOMM_ANY_SOURCE, MLCOMM_ANY_TAG, c, &found, &st);
  CHECK(r == mlcommRemoteError, "a later Iprobe returned %d", (int)r);
  CHECK_RES(mlcommCommRevoke(NULL), mlcommInvalidArgument);
  CHECK_RES(mlcommCommShrink(c, NULL), mlcommInvalidArgument);
  CHECK_RES(mlcommCommFailedRank(c, NULL), mlcommInvalidArgument);
  CHECK_OK(mlcommCommDestroy(c));
  MPI_Barrier(MPI_COMM_WORLD);
  return tc_finish();
}

int main(int argc, char **argv) {
  const char *mode = NULL;
  int kept = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-m") == 0 && i + 1 < argc)
      mode = argv[++i];
    else if (strcmp(argv[i], "-x") == 0 && i + 1 < argc)
      want_timeout = strcmp(argv[++i], "timeout") == 0;
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  argv[argc] = NULL;
  tc_init(&argc, &argv);
  on_shm = tc_transport == mlcommTransportShm;
  setvbuf(stdout, NULL, _IOLBF, 0);
  static const char *const kills[] = {"large", "small", "bcast", "recv", "test", "shrink"};
  for (size_t i = 0; mode && i < sizeof kills / sizeof kills[0]; i++)
    if (strcmp(mode, kills[i]) == 0) return kill_scenario(mode);
  if (mode && strcmp(mode, "revoke") == 0) return revoke_scenario();
  if (tc_rank == 0)
    fprintf(stderr, "usage: %s -t TRANSPORT -m large|small|bcast|recv|test|shrink|revoke [-x timeout]\n",
            argv[0]);
  MPI_Finalize();
  return 2;
}

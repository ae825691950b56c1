/*
 * Failures on the shared-memory transport. One scenario per run, chosen by -m:
 *
 *   -m kill      A peer process dies (SIGKILL) while the others wait in a collective.
 *                Rank 0 starts a 64 MiB AllReduceAsync (its buffer from mlcommMemAlloc,
 *                the others' from malloc) before the others call theirs, then makes no
 *                mlcomm call for 0.1 s, so the op is underway and rank 1 (the victim,
 *                blocked in mlcommAllReduce) waits on rank 0's part; then
 *                kill(victim, SIGKILL) and mlcommWait. (Polling mlcommTest instead is
 *                unreliable: on this transport a Test advances the op as far as the
 *                peers allow, which may be to its end.) Every other rank is blocked in
 *                mlcommAllReduce. Each survivor must get mlcommRemoteError
 *                naming "rank 1" and "died", well before the communicator's timeout
 *                (15 s here, so a transport that misses the death fails with
 *                mlcommTimeout instead of hanging); later calls on the communicator
 *                fail with mlcommRemoteError at once; mlcommCommAbort and mlcommMemFree
 *                still work; and no /dev/shm/mlcomm-* file of the communicator exists,
 *                before or after the kill.
 *   -m skip      Rank 1 skips a collective: the others get mlcommTimeout after the
 *                communicator's timeout (MLCOMM_TIMEOUT_MS, 1500 ms from meson), with a
 *                sentence naming the function ("mlcommAllReduce"...), "seq N" (the
 *                communicator's collective sequence number: 3 counting from 0 for the
 *                first skipped call, 2 more for each next one) and
 *                "not arrived: 1" (and this rank among "arrived:"). For every
 *                collective; each time the late rank then joins and the timed-out
 *                request, waited again, succeeds. Then a blocking call that times out,
 *                after which the communicator refuses calls.
 *   -m abort     The last rank calls mlcommCommAbort while the others wait in a
 *                collective (one it never joined, one it joined Async, a barrier): each
 *                waiter gets mlcommRemoteError well before the timeout (20 s), with a
 *                sentence containing "rank R" and "aborted".
 *   -m mismatch  The last rank calls something else (a different count, small and
 *                large, or a different collective): mlcommInvalidArgument on the ranks
 *                involved, soon, with a sentence "rank R called ..." naming a rank that
 *                disagrees with the reader; the communicator refuses calls afterwards.
 *
 * Running the kill scenario under mpirun (the practical problem). By default Open MPI's
 * mpirun aborts the whole job as soon as one rank dies from a signal, killing the
 * survivors, possibly before they have reported anything; and a survivor that calls
 * MPI_Finalize with a dead peer hangs (finalize synchronises with every process).
 * Hence, as tried on Open MPI 4.1.4:
 *  - mpirun runs with --enable-recovery (orte_enable_recovery): the job survives the
 *    death of the victim. (Tried instead: --mca orte_abort_on_non_zero_status 0 keeps
 *    the survivors alive too, but then mpirun never exits after they call MPI_Finalize,
 *    and a survivor leaving with _exit() without MPI_Finalize aborts the job.)
 *  - After the kill the survivors make no MPI call at all: each prints its findings as
 *    lines on stdout (RETURNED, VERDICT; SEGMENT lines name the segments it maps) and
 *    leaves with _exit(0), without MPI_Finalize.
 *  - With --enable-recovery mpirun's exit status does not reflect the ranks' (it is 0
 *    even when a rank exits 1), so a driver, shm_fault_driver.py, runs mpirun (in its
 *    own process group, with a time limit, killing the group on expiry), and decides:
 *    every survivor printed "VERDICT rank R PASS", the victim printed no verdict, every
 *    survivor returned within the bound (5 s) of rank 0's KILLTIME, both clocks being
 *    CLOCK_MONOTONIC of the same node, and none of the segments named exists in
 *    /dev/shm after the job.
 * The other scenarios kill nothing: they end with MPI_Finalize and run under plain
 * mpirun. Every wait is bounded by the communicator's timeout, and meson's timeout
 * bounds the rest.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm_common.h"

static bool on_shm;

static void nap(double seconds)
{
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

static mlcommComm_t make_comm(int timeout_ms)
{
  mlcommConfig_t cfg;
  tc_config(&cfg);
  if (timeout_ms > 0) cfg.timeoutMs = timeout_ms;
  mlcommComm_t c = MLCOMM_COMM_NULL;
  CHECK_OK(mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg));
  return c;
}

/* A later call on a failed communicator is refused at once with mlcommRemoteError. */
static void check_refused(mlcommComm_t c, const char *what)
{
  int32_t v = 1, w = -1;
  double t0 = ts_now();
  mlcommResult_t r = mlcommAllReduce(&v, &w, 1, mlcommInt32, mlcommSum, c);
  double el = ts_now() - t0;
  CHECK(r == mlcommRemoteError && el < 1.0,
        "%s: a later AllReduce returned %d (%s) after %.2f s; expected mlcommRemoteError at "
        "once (%s)",
        what, (int)r, mlcommGetErrorString(r), el, mlcommGetLastError(c));
  CHECK(w == -1, "%s: the refused call wrote its buffer", what);
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  t0 = ts_now();
  r = mlcommBarrierAsync(c, &req);
  if (r == mlcommSuccess) r = mlcommWait(&req, NULL);
  el = ts_now() - t0;
  CHECK(r == mlcommRemoteError && el < 1.0,
        "%s: a later BarrierAsync+Wait returned %d (%s) after %.2f s; expected "
        "mlcommRemoteError at once",
        what, (int)r, mlcommGetErrorString(r), el);
}

/* ---------------------------------------------------------------- kill */

enum { VICTIM = 1, KILLER = 0 };
static const double KILL_BOUND = 5.0; /* seconds from the kill; the contract says about 2 */

static _Noreturn void report_and_exit(const char *scenario)
{
  /* No MPI from here on: a peer is dead. */
  long long passed = tc_passed_here(), failed = tc_failed_here();
  fflush(stderr);
  printf("VERDICT rank %d %s (%s: %lld checks passed, %lld failed)\n", tc_rank,
         failed ? "FAIL" : "PASS", scenario, passed, failed);
  fflush(stdout);
  _exit(0);
}

static int kill_scenario(void)
{
  if (tc_nranks < 2) tc_skip("killing a peer needs at least 2 ranks");
  mlcommComm_t c = make_comm(15000);
  if (c == MLCOMM_COMM_NULL) return tc_finish();
  /* The segment is unlinked as soon as every rank mapped it: before any kill. */
  ts_check_unlinked(on_shm, true, "after creation");

  int pid = (int)getpid();
  int *pids = malloc((size_t)tc_nranks * sizeof *pids);
  MPI_Allgather(&pid, 1, MPI_INT, pids, 1, MPI_INT, MPI_COMM_WORLD);

  /* The communicator works, and the per-rank setup is done before anyone waits. */
  int32_t one = 1, sum = 0;
  if (CHECK_OK(mlcommAllReduce(&one, &sum, 1, mlcommInt32, mlcommSum, c)))
    CHECK(sum == tc_nranks, "warm-up AllReduce: %d", sum);
  const size_t count = (size_t)16 << 20; /* 64 MiB of float */
  float *buf = NULL;
  if (tc_rank == KILLER) {
    if (!CHECK_OK(mlcommMemAlloc(c, count * sizeof(float), (void **)&buf))) buf = NULL;
  }
  if (buf == NULL) buf = malloc(count * sizeof(float));
  for (size_t i = 0; i < count; i++) buf[i] = 1.0f; /* touch every page now */

  /* Rank 0 starts its AllReduceAsync before anyone else can have called theirs, so the
   * start cannot get far, and then makes no mlcomm call until the kill: on this
   * transport an Async start or an mlcommTest advances the op as far as the peers allow,
   * and with peers keeping pace that can be to the end. The others then enter their
   * blocking AllReduce, do what they can, and wait for rank 0's part: the victim dies
   * blocked in the middle of the op. */
  mlcommResult_t r = mlcommSuccess;
  double t_kill = 0;
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  if (tc_rank == KILLER)
    r = mlcommAllReduceAsync(buf, buf, count, mlcommFloat32, mlcommSum, c, &req);
  MPI_Barrier(MPI_COMM_WORLD);
  /* From here on only the victim's death is awaited: no MPI after this point. */
  if (tc_rank == VICTIM) {
    r = mlcommAllReduce(buf, buf, count, mlcommFloat32, mlcommSum, c);
    /* Only reached when the kill did not happen: say so and leave. */
    CHECK(false, "the victim's AllReduce returned %d (%s) instead of the process being killed",
          (int)r, mlcommGetErrorString(r));
    report_and_exit("kill (victim)");
  }
  if (tc_rank == KILLER) {
    if (!CHECK_OK(r)) {
      kill(pids[VICTIM], SIGKILL);
      report_and_exit("kill");
    }
    nap(0.1); /* the others are inside their AllReduce by now, waiting for this rank */
    t_kill = ts_now();
    int k = kill(pids[VICTIM], SIGKILL);
    CHECK(k == 0, "kill(%d, SIGKILL) failed", pids[VICTIM]);
    printf("KILLTIME %.6f victim %d pid %d\n", t_kill, VICTIM, pids[VICTIM]);
    fflush(stdout);
    r = mlcommWait(&req, NULL);
    if (r != mlcommTimeout) /* a timed-out request stays valid */
      CHECK(req == MLCOMM_REQUEST_NULL, "the failed request was not released");
  } else {
    r = mlcommAllReduce(buf, buf, count, mlcommFloat32, mlcommSum, c);
  }
  double t_ret = ts_now();
  printf("RETURNED rank %d %.6f result %d (%s)\n", tc_rank, t_ret, (int)r,
         mlcommGetErrorString(r));
  fflush(stdout);
  const char *msg = mlcommGetLastError(c);
  if (tc_rank == KILLER)
    printf("# rank 0: the kill was noticed after %.3f s\n", t_ret - t_kill);
  CHECK(r == mlcommRemoteError, "waiting on a killed peer returned %d (%s), expected "
                                "mlcommRemoteError: %s",
        (int)r, mlcommGetErrorString(r), msg);
  if (tc_rank == KILLER)
    CHECK(t_ret - t_kill <= KILL_BOUND, "the death was noticed %.2f s after the kill (bound %.1f s)",
          t_ret - t_kill, KILL_BOUND);
  if (r == mlcommRemoteError)
    CHECK(ts_names_rank(msg, VICTIM) && strstr(msg, "died") != NULL,
          "the sentence does not say that rank %d died: '%s' (every survivor must be told of "
          "the death, also when another survivor noticed it first and already aborted)",
          VICTIM, msg);
  if (r == mlcommRemoteError) check_refused(c, "after the victim died");
  /* Every segment this rank maps is gone from /dev/shm, even though a rank was killed. */
  ts_check_unlinked(on_shm, true, "after the kill");
  CHECK_OK(mlcommCommAbort(c));
  if (tc_rank == KILLER) CHECK_OK(mlcommMemFree(buf));
  report_and_exit("kill");
}

/* ---------------------------------------------------------------- skip */

enum { SKIPPER = 1 };

static const char *const fn_names[] = {"mlcommAllReduce", "mlcommAllGather",
                                       "mlcommReduceScatter", "mlcommBarrier",
                                       "mlcommBroadcast", "mlcommReduce"};
enum { NFN = 6 };

/* Starts (async) or runs (blocking) collective f with small int32 buffers. */
static mlcommResult_t call(int f, mlcommComm_t c, int32_t *in, int32_t *out, mlcommRequest_t *req)
{
  enum { K = 5 };
  switch (f) {
  case 0: return req ? mlcommAllReduceAsync(in, out, K, mlcommInt32, mlcommSum, c, req)
                     : mlcommAllReduce(in, out, K, mlcommInt32, mlcommSum, c);
  case 1: return req ? mlcommAllGatherAsync(in, out, K, mlcommInt32, c, req)
                     : mlcommAllGather(in, out, K, mlcommInt32, c);
  case 2: return req ? mlcommReduceScatterAsync(in, out, K, mlcommInt32, mlcommSum, c, req)
                     : mlcommReduceScatter(in, out, K, mlcommInt32, mlcommSum, c);
  case 3: return req ? mlcommBarrierAsync(c, req) : mlcommBarrier(c);
  case 4: return req ? mlcommBroadcastAsync(in, out, K, mlcommInt32, SKIPPER, c, req)
                     : mlcommBroadcast(in, out, K, mlcommInt32, SKIPPER, c);
  default: return req ? mlcommReduceAsync(in, out, K, mlcommInt32, mlcommSum, 0, c, req)
                      : mlcommReduce(in, out, K, mlcommInt32, mlcommSum, 0, c);
  }
}

/* Must this rank wait for the skipper in collective f? Everyone does, except the
 * non-root ranks of a Reduce rooted at 0 (which may finish by handing their data over). */
static bool must_wait(int f) { return f != 5 || tc_rank == 0; }

static void check_timeout_sentence(mlcommComm_t c, int f, long long *seq, const char *what)
{
  const char *msg = mlcommGetLastError(c);
  CHECK(strstr(msg, fn_names[f]) != NULL, "%s: the sentence does not name %s: '%s'", what,
        fn_names[f], msg);
  *seq = ts_seq_of(msg);
  CHECK(*seq >= 0, "%s: the sentence gives no \"seq N\": '%s'", what, msg);
  uint64_t missing, arrived;
  bool lists = ts_arrival_lists(msg, &missing, &arrived);
  CHECK(lists && (missing >> SKIPPER & 1) && !(missing >> tc_rank & 1),
        "%s: the sentence does not list rank %d (only) among \"not arrived:\": '%s'", what,
        SKIPPER, msg);
  CHECK(lists && (arrived >> tc_rank & 1) && !(arrived >> SKIPPER & 1),
        "%s: the sentence's \"arrived:\" list should hold this rank (%d) and not rank %d: '%s'",
        what, tc_rank, SKIPPER, msg);
}

static int skip_scenario(void)
{
  if (tc_nranks < 2) tc_skip("skipping a collective needs at least 2 ranks");
  /* MLCOMM_TIMEOUT_MS from the environment when set (meson sets 1500), else 1500. */
  mlcommComm_t c = make_comm(getenv("MLCOMM_TIMEOUT_MS") ? 0 : 1500);
  if (c == MLCOMM_COMM_NULL) return tc_finish();
  mlcommConfig_t got = MLCOMM_CONFIG_INITIALIZER;
  CHECK_OK(mlcommCommGetConfig(c, &got));
  const double T = got.timeoutMs / 1000.0;
  tc_section("rank %d skips each collective; the others time out after %.1f s", SKIPPER, T);
  if (!CHECK(got.timeoutMs > 0 && got.timeoutMs <= 10000,
             "timeoutMs %d: this test wants a short timeout", got.timeoutMs))
    return tc_finish();

  int32_t in[64], out[64];
  for (int i = 0; i < 64; i++) in[i] = tc_rank * 100 + i;
  /* Three collectives first: the skipped one is not the communicator's first. */
  for (int i = 0; i < 3; i++) CHECK_OK(call(0, c, in, out, NULL));

  long long seq[NFN];
  for (int f = 0; f < NFN; f++) {
    seq[f] = -1;
    char what[96];
    snprintf(what, sizeof what, "%s skipped by rank %d", fn_names[f], SKIPPER);
    if (tc_rank != SKIPPER) {
      mlcommRequest_t req = MLCOMM_REQUEST_NULL;
      CHECK_OK(call(f, c, in, out, &req));
      double t0 = ts_now();
      mlcommResult_t r = mlcommWait(&req, NULL);
      double el = ts_now() - t0;
      if (must_wait(f) || r != mlcommSuccess) {
        CHECK(r == mlcommTimeout, "%s: Wait returned %d (%s) after %.2f s, expected mlcommTimeout: %s",
              what, (int)r, mlcommGetErrorString(r), el, mlcommGetLastError(c));
        CHECK(el >= 0.9 * T && el <= T + 10.0, "%s: timed out after %.2f s with a %.1f s timeout",
              what, el, T);
        if (r == mlcommTimeout) {
          check_timeout_sentence(c, f, &seq[f], what);
          CHECK(req != MLCOMM_REQUEST_NULL, "%s: a timed-out request was released", what);
        }
      }
      MPI_Barrier(MPI_COMM_WORLD);
      if (req != MLCOMM_REQUEST_NULL) CHECK_OK(mlcommWait(&req, NULL));
    } else {
      MPI_Barrier(MPI_COMM_WORLD);
      CHECK_OK(call(f, c, in, out, NULL));
    }
    /* The late join worked: the communicator is in step (checked by a plain AllReduce). */
    int32_t one = 1, total = 0;
    if (CHECK_OK(mlcommAllReduce(&one, &total, 1, mlcommInt32, mlcommSum, c)))
      CHECK(total == tc_nranks, "%s: AllReduce after the late join: %d", what, total);
  }
  /* Sequence numbers: the first skipped call is the communicator's 4th collective (seq 3
   * counting from 0, or 4 from 1), and each later one comes 2 further (the AllReduce
   * after each late join counts too). Every rank that timed out read the same numbers. */
  if (tc_rank != SKIPPER) {
    CHECK(seq[0] == 3 || seq[0] == 4, "the first skipped call is reported as seq %lld, "
                                      "expected 3 (or 4 counting from 1)",
          seq[0]);
    for (int f = 1; f < NFN; f++)
      if (seq[f] >= 0)
        CHECK(seq[f] == seq[0] + 2 * f, "%s: reported as seq %lld, expected %lld", fn_names[f],
              seq[f], seq[0] + 2 * f);
  }
  long long lo[NFN], hi[NFN], mine[NFN];
  for (int f = 0; f < NFN; f++) mine[f] = seq[f] < 0 ? LLONG_MAX : seq[f];
  MPI_Allreduce(mine, lo, NFN, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
  for (int f = 0; f < NFN; f++) mine[f] = seq[f] < 0 ? -1 : seq[f];
  MPI_Allreduce(mine, hi, NFN, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
  for (int f = 0; f < NFN; f++)
    if (hi[f] >= 0) CHECK(lo[f] == hi[f], "%s: ranks report different seq numbers (%lld..%lld)",
                          fn_names[f], lo[f], hi[f]);

  /* A blocking call that times out: the communicator then refuses calls. */
  tc_section("a blocking AllReduce times out; the communicator refuses calls after it");
  if (tc_rank != SKIPPER) {
    double t0 = ts_now();
    mlcommResult_t r = call(0, c, in, out, NULL);
    double el = ts_now() - t0;
    CHECK(r == mlcommTimeout && el >= 0.9 * T && el <= T + 10.0,
          "blocking AllReduce skipped by rank %d returned %d (%s) after %.2f s", SKIPPER, (int)r,
          mlcommGetErrorString(r), el);
    long long s;
    if (r == mlcommTimeout) check_timeout_sentence(c, 0, &s, "blocking AllReduce");
    check_refused(c, "after a blocking timeout");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  CHECK_OK(mlcommCommAbort(c));
  return tc_finish();
}

/* ---------------------------------------------------------------- abort */

static int abort_scenario(void)
{
  if (tc_nranks < 2) tc_skip("aborting under waiting peers needs at least 2 ranks");
  const int aborter = tc_nranks - 1;
  const double BOUND = 5.0; /* seconds; the timeout is 20 s */
  static const char *const variants[] = {
      "AllReduce the aborting rank never joined", "AllReduce the aborting rank joined Async",
      "Barrier the aborting rank never joined"};
  for (int v = 0; v < 3; v++) {
    tc_section("rank %d aborts while the others wait: %s", aborter, variants[v]);
    mlcommComm_t c = make_comm(20000);
    if (c == MLCOMM_COMM_NULL) break;
    const size_t count = (size_t)1 << 20; /* 4 MiB of float: many slices */
    /* Kept until the process ends: an aborted transport may still touch them. */
    float *send = malloc(count * sizeof(float)), *recv = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) send[i] = (float)tc_rank;
    /* Variant 1: the aborting rank starts its AllReduceAsync before the others can call
     * theirs (so the start cannot run the op far: Async starts and Tests advance an op as
     * far as the peers allow), then makes no mlcomm call until the abort. */
    mlcommRequest_t req = MLCOMM_REQUEST_NULL;
    if (tc_rank == aborter && v == 1)
      CHECK_OK(mlcommAllReduceAsync(send, recv, count, mlcommFloat32, mlcommSum, c, &req));
    MPI_Barrier(MPI_COMM_WORLD);
    if (tc_rank == aborter) {
      nap(0.3); /* the others are waiting by now */
      CHECK_OK(mlcommCommAbort(c));
      if (v == 1) {
        CHECK_RES(mlcommWait(&req, NULL), mlcommRemoteError);
        CHECK(req == MLCOMM_REQUEST_NULL, "the aborted request was not released");
      }
    } else {
      double t0 = ts_now();
      mlcommResult_t r = v == 2 ? mlcommBarrier(c)
                                : mlcommAllReduce(send, recv, count, mlcommFloat32, mlcommSum, c);
      double el = ts_now() - t0;
      const char *msg = mlcommGetLastError(c);
      printf("# rank %d: released %.3f s after entering (the abort came after about 0.3 s)\n",
             tc_rank, el);
      CHECK(r == mlcommRemoteError, "%s: the waiter got %d (%s), expected mlcommRemoteError: %s",
            variants[v], (int)r, mlcommGetErrorString(r), msg);
      CHECK(el < BOUND, "%s: released %.2f s after entering (bound %.1f s, timeout 20 s)",
            variants[v], el, BOUND);
      if (r == mlcommRemoteError)
        CHECK(ts_names_rank(msg, aborter) && strstr(msg, "aborted") != NULL,
              "%s: the sentence does not say that rank %d aborted: '%s'", variants[v], aborter,
              msg);
      check_refused(c, "after a peer aborted");
      CHECK_OK(mlcommCommAbort(c));
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  return tc_finish();
}

/* ---------------------------------------------------------------- mismatch */

/* The ranks R in every "rank R called" of text, as a bit mask. */
static uint64_t callers(const char *text)
{
  uint64_t mask = 0;
  for (const char *p = strstr(text, "rank "); p; p = strstr(p + 1, "rank ")) {
    char *end;
    long r = strtol(p + 5, &end, 10);
    if (end != p + 5 && strncmp(end, " called", 7) == 0 && r >= 0 && r < 64) mask |= 1ull << r;
  }
  return mask;
}

static int mismatch_scenario(void)
{
  if (tc_nranks < 2) tc_skip("a mismatch needs at least 2 ranks");
  if (!on_shm)
    tc_skip("detecting mismatched calls is the shm transport's promise (run with -t shm); "
            "MPI may hang or corrupt memory instead");
  const int odd = tc_nranks - 1;
  const double BOUND = 5.0; /* seconds; the timeout is 20 s */
  /* The one-shot path keeps calls of up to 16 bytes in the arrive line with a packed
   * signature instead of a descriptor: cases 3-5 check that path against itself and
   * against the descriptor path. */
  static const char *const cases[] = {"a different count (small)", "a different count (large)",
                                      "a different collective", "a different count (inline)",
                                      "a different count (inline against small)",
                                      "a different op (inline)"};
  static const size_t counts[] = {10, 300000, 10, 2, 2, 3};
  static const size_t odd_counts[] = {11, 300001, 10, 3, 10, 3};
  for (int k = 0; k < 6; k++) {
    tc_section("rank %d calls %s", odd, cases[k]);
    mlcommComm_t c = make_comm(20000);
    if (c == MLCOMM_COMM_NULL) break;
    size_t count = tc_rank == odd ? odd_counts[k] : counts[k];
    /* Big enough for an AllGather of count + 1 from every rank; kept to the end. */
    size_t elems = (count + 1) * (size_t)tc_nranks;
    int32_t *send = calloc(elems, sizeof(int32_t)), *recv = calloc(elems, sizeof(int32_t));
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = ts_now();
    mlcommResult_t r = k == 2 && tc_rank == odd
                           ? mlcommAllGather(send, recv, count, mlcommInt32, c)
                           : mlcommAllReduce(send, recv, count, mlcommInt32,
                                             k == 5 && tc_rank == odd ? mlcommMax : mlcommSum, c);
    double el = ts_now() - t0;
    const char *msg = mlcommGetLastError(c);
    uint64_t who = r == mlcommInvalidArgument ? callers(msg) : 0;
    CHECK(el < BOUND, "%s: the call returned after %.2f s (bound %.1f s, timeout 20 s)", cases[k],
          el, BOUND);
    CHECK(r == mlcommInvalidArgument || r == mlcommRemoteError,
          "%s: returned %d (%s), expected mlcommInvalidArgument (or mlcommRemoteError on a rank "
          "not involved): %s",
          cases[k], (int)r, mlcommGetErrorString(r), msg);
    if (tc_rank == odd)
      CHECK(r == mlcommInvalidArgument, "%s: the rank that disagrees got %d (%s), expected "
                                        "mlcommInvalidArgument",
            cases[k], (int)r, mlcommGetErrorString(r));
    if (r == mlcommInvalidArgument)
      CHECK((who & ~(1ull << tc_rank)) != 0,
            "%s: the sentence names no other rank as \"rank R called ...\": '%s'", cases[k], msg);
    /* Some rank that agrees with the majority names the one that does not. */
    int names_odd = tc_rank != odd && (who >> odd & 1), any = 0;
    MPI_Allreduce(&names_odd, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    CHECK(any, "%s: no other rank's sentence says \"rank %d called\"", cases[k], odd);
    /* Unusable afterwards: refused, not hanging. */
    int32_t v = 1, w = -1;
    t0 = ts_now();
    r = mlcommAllReduce(&v, &w, 1, mlcommInt32, mlcommSum, c);
    el = ts_now() - t0;
    CHECK(r != mlcommSuccess && el < BOUND,
          "%s: a later AllReduce returned %d (%s) after %.2f s; the communicator must refuse "
          "calls",
          cases[k], (int)r, mlcommGetErrorString(r), el);
    CHECK_OK(mlcommCommAbort(c));
    MPI_Barrier(MPI_COMM_WORLD);
  }
  /* No false alarm: payloads of ordinary one-shot calls whose first bytes look like a
   * signature for the very op (its number in the low half, the top bit set) are data,
   * not a call description. */
  {
    tc_section("one-shot payloads shaped like signatures are not mistaken for calls");
    mlcommComm_t c = make_comm(20000);
    for (int k = 1; k <= 24 && c != MLCOMM_COMM_NULL; k++) {
      int32_t in[37], out[37];
      for (int i = 0; i < 37; i++) in[i] = i == 0 ? k : i == 1 ? -1 : i;
      mlcommResult_t r = mlcommAllReduce(in, out, 37, mlcommInt32, mlcommSum, c);
      if (!CHECK(r == mlcommSuccess, "allreduce %d returned %d (%s): %s", k, (int)r,
                 mlcommGetErrorString(r), mlcommGetLastError(c)))
        break;
      CHECK(out[0] == k * tc_nranks && out[1] == -tc_nranks, "allreduce %d: %d %d", k, out[0],
            out[1]);
    }
    if (c != MLCOMM_COMM_NULL) CHECK_OK(mlcommCommAbort(c));
    MPI_Barrier(MPI_COMM_WORLD);
  }
  /* A tiny broadcast goes inline at the head of the root's small slot; a receiver that
   * asks for more (its call keeps a descriptor) must see the difference. The root and
   * the receivers that agree with it wait for no one, so only the odd one fails. */
  for (int k = 0; k < 2; k++) {
    tc_section("rank %d broadcasts %s", odd, k ? "2 values where root 0 sends 10" :
                                                 "10 values where root 0 sends 2");
    mlcommComm_t c = make_comm(20000);
    if (c == MLCOMM_COMM_NULL) break;
    size_t count = (tc_rank == odd) == (k == 0) ? 10 : 2;
    int32_t buf[10] = {0};
    double t0 = ts_now();
    mlcommResult_t r = mlcommBroadcast(buf, buf, count, mlcommInt32, 0, c);
    double el = ts_now() - t0;
    if (tc_rank == odd) {
      const char *msg = mlcommGetLastError(c);
      CHECK(r == mlcommInvalidArgument && el < BOUND && (callers(msg) & 1),
            "broadcast mismatch: rank %d got %d (%s) after %.2f s, expected "
            "mlcommInvalidArgument naming rank 0: %s",
            tc_rank, (int)r, mlcommGetErrorString(r), el, msg);
    }
    CHECK_OK(mlcommCommAbort(c));
    MPI_Barrier(MPI_COMM_WORLD);
  }
  return tc_finish();
}

int main(int argc, char **argv)
{
  /* -m SCENARIO is ours; the rest goes to tc_init. */
  const char *mode = NULL;
  int kept = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-m") == 0 && i + 1 < argc)
      mode = argv[++i];
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  argv[argc] = NULL;
  tc_init(&argc, &argv);
  on_shm = tc_transport == mlcommTransportShm;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (mode && strcmp(mode, "kill") == 0) return kill_scenario();
  if (mode && strcmp(mode, "skip") == 0) return skip_scenario();
  if (mode && strcmp(mode, "abort") == 0) return abort_scenario();
  if (mode && strcmp(mode, "mismatch") == 0) return mismatch_scenario();
  if (tc_rank == 0) fprintf(stderr, "usage: %s -t TRANSPORT -m kill|skip|abort|mismatch\n", argv[0]);
  MPI_Finalize();
  return 2;
}

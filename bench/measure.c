/*
 * measure.c - one size, on every rank:
 *   1. with -c N: fill recvbuff with a sentinel, then sendbuff with hb_input();
 *   2. run the collective once and agree (over MPI) on whether any rank failed: a call
 *      refused up front (unsupported transport/type, bad argument) ends the run cleanly
 *      on every rank instead of leaving some ranks blocked in the next call;
 *   3. with -c N: count elements of recvbuff that differ from the host's expectation;
 *      steps 1-3 are made N times (once, unchecked, with -c 0);
 *   4. -w warm-up iterations (and as many MPI ones with --vs-mpi);
 *   5. -n timed iterations, split into rounds alternating mlcomm and MPI with --vs-mpi so
 *      that both see the same machine state (caches, frequency, other load).
 * An iteration is -m calls, between one mlcommGroupStart and mlcommGroupEnd when -m > 1
 * (as nccl-tests aggregates them); with -z 0 their requests are waited after that, all
 * at once. The row's time is one call's: each rank's time over -n x -m calls, combined
 * over ranks as -a says.
 * With --in-place the two pointers overlap as the collective's in-place rule says, so
 * only the calls of step 2 are checked on fresh inputs, as in nccl-tests; reductions then
 * refill sendbuff with a value their op leaves unchanged before step 4 (hb_fill_steady).
 * Failures after step 2 cannot be agreed on safely (peers may be blocked inside the
 * library), so they print the error and MPI_Abort.
 */
#include "harness_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- failures */

void hb_print_failure(const struct hb_call *c, mlcommResult_t rc, size_t size) {
  const char *msg = mlcommGetLastError(c->comm);
  if (!msg || !*msg) msg = mlcommGetLastError(NULL);
  fprintf(stderr, "%s: rank %d: %s failed at size %zu B: %s: %s\n", c->coll->bench, c->rank,
          c->coll->call, size, mlcommGetErrorString(rc), msg ? msg : "");
  fflush(stderr);
}

/* A failure while peers may be blocked inside a collective: nothing can be agreed on any
 * more, and a benchmark must never hang, so take the whole job down. */
static void die(const struct hb_call *c, mlcommResult_t rc, size_t size) {
  hb_print_failure(c, rc, size);
  MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1);
}

int hb_refusal_code(mlcommResult_t rc) {
  return (rc == mlcommUnsupported || rc == mlcommInvalidArgument) ? 2 : 1;
}

int hb_agree_max(int v) {
  int out;
  MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

/* ---------------------------------------------------------------- requests */

/* More requests than the harness made room for is a mistake in a benchmark's run(), not
 * something a command line can cause. */
static void overflow(const struct hb_call *c) {
  fprintf(stderr, "%s: one call kept more than %d requests\n", c->coll->bench,
          HB_KEEP_PER_CALL);
  MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1);
}

mlcommResult_t hb_keep(const struct hb_call *c, mlcommResult_t rc, mlcommRequest_t req) {
  struct hb_pending *p = c->pending;
  if (rc != mlcommSuccess || req == MLCOMM_REQUEST_NULL) return rc;
  if (p->n == p->cap) overflow(c);
  p->reqs[p->n++] = req;
  return rc;
}

int hb_keep_mpi(const struct hb_call *c, int err, MPI_Request req) {
  struct hb_pending *p = c->pending;
  if (err != MPI_SUCCESS || req == MPI_REQUEST_NULL) return err;
  if (p->n_mpi == p->cap) overflow(c);
  p->mpi_reqs[p->n_mpi++] = req;
  return err;
}

/* ---------------------------------------------------------------- one iteration */

/* Call k of an aggregated iteration works on slice k of both buffers. */
static struct hb_call slice(const struct hb_call *c, const struct hb_buffers *b, int k) {
  struct hb_call s = *c;
  s.sendbuff = (char *)c->sendbuff + (size_t)k * b->stride;
  s.recvbuff = (char *)c->recvbuff + (size_t)k * b->stride;
  return s;
}

/* ncalls calls (grouped when more than one), then a wait for the requests they kept.
 * Adds the seconds until every call was issued to *issued, unless issued is NULL (the
 * two clock reads cost about 50 ns an iteration, a fifth of an 8-byte allreduce, so
 * they happen only for -C). MPI has no groups: its reference makes the same calls one
 * after the other. Returns the first failure. */
static mlcommResult_t iteration(const struct hb_call *c, const struct hb_buffers *b, int mpi,
                                int ncalls, double *issued) {
  struct hb_pending *p = c->pending;
  double t0 = issued ? MPI_Wtime() : 0.0;
  int grouped = !mpi && ncalls > 1;
  mlcommResult_t rc = grouped ? mlcommGroupStart() : mlcommSuccess;
  for (int k = 0; k < ncalls && rc == mlcommSuccess; k++) {
    struct hb_call s = slice(c, b, k);
    if (mpi)
      c->coll->run_mpi(&s); /* MPI_COMM_WORLD's handler is fatal: errors abort */
    else
      rc = c->coll->run(&s);
  }
  if (grouped) {
    mlcommResult_t end = mlcommGroupEnd(); /* closed even when recording a call failed */
    if (rc == mlcommSuccess) rc = end;
  }
  if (issued) *issued += MPI_Wtime() - t0;
  if (p->n_mpi) MPI_Waitall(p->n_mpi, p->mpi_reqs, MPI_STATUSES_IGNORE);
  /* after a failure the requests are not waited: the ranks are about to stop */
  if (p->n && rc == mlcommSuccess) rc = mlcommWaitAll(p->n, p->reqs, NULL);
  p->n = p->n_mpi = 0;
  return rc;
}

/* Adds the seconds that iters back-to-back iterations took on this rank to *wall, and
 * the part until their calls were issued to *issued. */
static void time_side(const struct hb_call *c, const struct hb_buffers *b, int mpi,
                      int iters, int agg, size_t size, double *wall, double *issued) {
  MPI_Barrier(c->mpi_comm); /* start together; not part of the measured time */
  double t0 = MPI_Wtime();
  for (int k = 0; k < iters; k++) {
    mlcommResult_t rc = iteration(c, b, mpi, agg, issued);
    if (rc != mlcommSuccess) die(c, rc, size);
  }
  *wall += MPI_Wtime() - t0;
}

/* -a: every rank ends up with the combination of the ranks' n values. */
static void combine(double *v, int n, int average, int nranks) {
  if (average == HB_AVG_RANK0) {
    MPI_Bcast(v, n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    return;
  }
  MPI_Op op = average == HB_AVG_MIN ? MPI_MIN : average == HB_AVG_MAX ? MPI_MAX : MPI_SUM;
  MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, op, MPI_COMM_WORLD);
  if (average == HB_AVG_MEAN)
    for (int k = 0; k < n; k++) v[k] /= nranks;
}

/* With --json, rank 0 keeps each rank's own time (us) of the row, so the file shows
 * what -a combined. Collective; returns NULL on the other ranks or without --json. */
static double *gather_times(const struct hb_call *c, const struct hb_args *a, double mine) {
  if (!a->json_path) return NULL;
  double *all = NULL, us = mine * 1e6;
  if (c->rank == 0) {
    all = malloc((size_t)c->nranks * sizeof *all);
    if (!all) {
      fprintf(stderr, "%s: out of memory for the result table\n", c->coll->bench);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }
  MPI_Gather(&us, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return all;
}

/* ---------------------------------------------------------------- one size */

int hb_measure(struct hb_call *c, const struct hb_args *a, int vs,
               const struct hb_buffers *bufs, size_t size, struct hb_row *row) {
  const struct hb_collective *coll = c->coll;
  c->count = size / hb_type_size(c->type);
  coll->counts(c);
  c->sendbuff = bufs->send;
  c->recvbuff = bufs->recv;
  if (c->in_place) coll->in_place(c);

  unsigned long long wrong = 0, wrong_sum = 0;
  double scratch = 0.0;
  for (int k = 0; k < (a->check > 0 ? a->check : 1); k++) {
    if (a->check) {
      /* in place the inputs share memory with the output: they must be written last */
      hb_fill_sentinel(c);
      hb_fill_inputs(c);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    mlcommResult_t rc = iteration(c, bufs, 0, 1, &scratch);
    if (rc != mlcommSuccess) hb_print_failure(c, rc, size);
    int code = hb_agree_max(rc == mlcommSuccess ? 0 : hb_refusal_code(rc));
    if (code) return code;
    if (a->check) wrong += hb_count_wrong(c);
  }
  MPI_Allreduce(&wrong, &wrong_sum, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  /* Data movement in place only copies values around, which stay bounded; reductions
   * would feed each result into the next call (see hb_fill_steady). */
  if (c->in_place && coll->uses_op)
    for (int k = 0; k < a->agg; k++) {
      struct hb_call s = slice(c, bufs, k);
      hb_fill_steady(&s);
    }

  /* MPI counts are int: a row too large for them gets no MPI reference */
  int vs_row = vs && c->send_count <= INT_MAX && c->recv_count <= INT_MAX;
  double wall[2] = {0.0, 0.0}, issued[2] = {0.0, 0.0}; /* seconds: mlcomm, MPI */
  time_side(c, bufs, 0, a->warmup, a->agg, size, &scratch, NULL);
  if (vs_row) time_side(c, bufs, 1, a->warmup, a->agg, size, &scratch, NULL);
  int rounds = vs_row ? (a->iters < 5 ? a->iters : 5) : 1;
  for (int r = 0; r < rounds; r++) {
    int k = a->iters / rounds + (r < a->iters % rounds ? 1 : 0);
    time_side(c, bufs, 0, k, a->agg, size, &wall[0], a->cputime ? &issued[0] : NULL);
    if (vs_row) time_side(c, bufs, 1, k, a->agg, size, &wall[1], a->cputime ? &issued[1] : NULL);
  }
  double calls = (double)a->iters * a->agg;
  double t[2] = {(a->cputime ? issued[0] : wall[0]) / calls,
                 (a->cputime ? issued[1] : wall[1]) / calls};
  double *rank_us = gather_times(c, a, t[0]);
  combine(t, 2, a->average, c->nranks);

  *row = (struct hb_row){.size = size, .count = c->count, .type = c->type, .op = c->op,
                         .root = coll->uses_root ? c->root : -1, .wrong = wrong_sum,
                         .rank_us = rank_us};
  row->us = t[0] * 1e6;
  row->algbw = (double)size / t[0] / 1e9;
  row->busbw = row->algbw * coll->busbw_factor(c->nranks);
  if (vs_row) {
    row->have_mpi = 1;
    row->mpi_us = t[1] * 1e6;
    row->mpi_busbw = (double)size / t[1] / 1e9 * coll->busbw_factor(c->nranks);
    row->ratio = row->mpi_us / row->us;
  }
  return 0;
}

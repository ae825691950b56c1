/*
 * harness.c - the driver shared by the mlcomm benchmarks: communicator, buffers, the
 * sweep over sizes and the timing of each. Flags are in args.c, data patterns and the
 * check in patterns.c, the table and the JSON file in report.c, the buffers of each -m
 * kind in memory.c, and --bound's measurement and models in bound.c.
 *
 * Per size the harness does, on every rank:
 *   1. with -c 1: fill recvbuff with a sentinel, then sendbuff with hb_input();
 *   2. run the collective once and agree (over MPI) on whether any rank failed: a call
 *      refused up front (unsupported transport/type, bad argument) ends the run cleanly
 *      on every rank instead of leaving some ranks blocked in the next call;
 *   3. with -c 1: count elements of recvbuff that differ from the host's expectation;
 *   4. -w warm-up calls (and as many MPI ones with --vs-mpi);
 *   5. -n timed calls, split into rounds alternating mlcomm and MPI with --vs-mpi so
 *      that both see the same machine state (caches, frequency, other load).
 * With -i the two pointers overlap as the collective's in-place rule says, so only the
 * call of step 2 is checked on fresh inputs, as in nccl-tests; reductions then refill
 * sendbuff with a value their op leaves unchanged before step 4 (hb_fill_steady).
 * Failures after step 2 cannot be agreed on safely (peers may be blocked inside the
 * library), so they print the error and MPI_Abort.
 */
#include "harness_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- MPI equivalents */

/* MPI has no 16-bit float types. Collectives that only move data (uses_op == 0) carry
 * them as MPI_UINT16_T, which moves exactly the same bytes; reductions have no honest
 * MPI equivalent and report "-". */
static MPI_Datatype mpi_type_of(mlcommDataType_t t, int uses_op) {
  switch (t) {
  case mlcommInt8: return MPI_INT8_T;
  case mlcommUint8: return MPI_UINT8_T;
  case mlcommInt32: return MPI_INT32_T;
  case mlcommUint32: return MPI_UINT32_T;
  case mlcommInt64: return MPI_INT64_T;
  case mlcommUint64: return MPI_UINT64_T;
  case mlcommFloat32: return MPI_FLOAT;
  case mlcommFloat64: return MPI_DOUBLE;
  case mlcommFloat16:
  case mlcommBfloat16: return uses_op ? MPI_DATATYPE_NULL : MPI_UINT16_T;
  default: return MPI_DATATYPE_NULL;
  }
}

/* MPI has no average; the caller would have to divide, which is not MPI_Allreduce. */
static MPI_Op mpi_op_of(mlcommRedOp_t op) {
  switch (op) {
  case mlcommSum: return MPI_SUM;
  case mlcommProd: return MPI_PROD;
  case mlcommMax: return MPI_MAX;
  case mlcommMin: return MPI_MIN;
  default: return MPI_OP_NULL;
  }
}

/* ---------------------------------------------------------------- helpers for benches */

mlcommResult_t hb_wait(mlcommResult_t rc, mlcommRequest_t *req) {
  return rc != mlcommSuccess ? rc : mlcommWait(req, MLCOMM_STATUS_IGNORE);
}

double hb_factor_one(int nranks) {
  (void)nranks;
  return 1.0;
}
double hb_factor_allreduce(int nranks) { return 2.0 * (nranks - 1) / nranks; }
double hb_factor_gather(int nranks) { return (double)(nranks - 1) / nranks; }

/* ---------------------------------------------------------------- failures */

static void print_failure(const struct hb_call *c, mlcommResult_t rc, size_t size) {
  const char *msg = mlcommGetLastError(c->comm);
  if (!msg || !*msg) msg = mlcommGetLastError(NULL);
  fprintf(stderr, "%s: rank %d: %s failed at size %zu B: %s: %s\n", c->coll->bench, c->rank,
          c->coll->call, size, mlcommGetErrorString(rc), msg ? msg : "");
  fflush(stderr);
}

/* A failure while peers may be blocked inside a collective: nothing can be agreed on any
 * more, and a benchmark must never hang, so take the whole job down. */
static void die(const struct hb_call *c, mlcommResult_t rc, size_t size) {
  print_failure(c, rc, size);
  MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1);
}

/* Exit code for a refused call: 2 for what the user asked for but cannot have (as for
 * a bad flag), 1 for anything else. */
static int refusal_code(mlcommResult_t rc) {
  return (rc == mlcommUnsupported || rc == mlcommInvalidArgument) ? 2 : 1;
}

static int agree_max(int v) {
  int out;
  MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

/* ---------------------------------------------------------------- measuring */

/* Adds the seconds that iters back-to-back calls took on this rank to *acc. */
static void time_side(const struct hb_call *c, int mpi, int iters, size_t size, double *acc) {
  MPI_Barrier(c->mpi_comm); /* start together; not part of the measured time */
  double t0 = MPI_Wtime();
  for (int k = 0; k < iters; k++) {
    if (mpi) {
      c->coll->run_mpi(c); /* MPI_COMM_WORLD's handler is fatal: errors abort */
    } else {
      mlcommResult_t rc = c->coll->run(c);
      if (rc != mlcommSuccess) die(c, rc, size);
    }
  }
  *acc += MPI_Wtime() - t0;
}

/* The two allocations; with -i, coll->in_place() points c's buffers into them anew for
 * each size, as the overlap depends on the counts. */
struct buffers {
  void *send, *recv;
};

/* Steps 1-5 above for one size, on every rank. Returns 0 with *row filled in, or the
 * agreed exit code when the first call was refused on some rank. */
static int measure(struct hb_call *c, const struct hb_args *a, int vs,
                   const struct buffers *bufs, size_t size, struct hb_row *row) {
  const struct hb_collective *coll = c->coll;
  c->count = size / hb_type(c->type)->size;
  coll->counts(c);
  c->sendbuff = bufs->send;
  c->recvbuff = bufs->recv;
  if (c->in_place) coll->in_place(c);

  if (a->check) {
    /* in place the inputs share memory with the output: they must be written last */
    hb_fill_sentinel(c);
    hb_fill_inputs(c);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  mlcommResult_t rc = coll->run(c);
  if (rc != mlcommSuccess) print_failure(c, rc, size);
  int code = agree_max(rc == mlcommSuccess ? 0 : refusal_code(rc));
  if (code) return code;
  unsigned long long wrong = a->check ? hb_count_wrong(c) : 0, wrong_sum = 0;
  MPI_Allreduce(&wrong, &wrong_sum, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  /* Data movement in place only copies values around, which stay bounded; reductions
   * would feed each result into the next call (see hb_fill_steady). */
  if (c->in_place && coll->uses_op) hb_fill_steady(c);

  /* MPI counts are int: a row too large for them gets no MPI reference */
  int vs_row = vs && c->send_count <= INT_MAX && c->recv_count <= INT_MAX;
  double spent[2] = {0.0, 0.0}; /* seconds: mlcomm, MPI */
  double scratch = 0.0;
  time_side(c, 0, a->warmup, size, &scratch);
  if (vs_row) time_side(c, 1, a->warmup, size, &scratch);
  int rounds = vs_row ? (a->iters < 5 ? a->iters : 5) : 1;
  for (int r = 0; r < rounds; r++) {
    int k = a->iters / rounds + (r < a->iters % rounds ? 1 : 0);
    time_side(c, 0, k, size, &spent[0]);
    if (vs_row) time_side(c, 1, k, size, &spent[1]);
  }
  /* the slowest rank's average is the collective's time */
  double avg[2] = {spent[0] / a->iters, spent[1] / a->iters}, worst[2];
  MPI_Allreduce(avg, worst, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);

  *row = (struct hb_row){.size = size, .count = c->count,
                         .root = coll->uses_root ? c->root : -1, .wrong = wrong_sum};
  row->us = worst[0] * 1e6;
  row->algbw = (double)size / worst[0] / 1e9;
  row->busbw = row->algbw * coll->busbw_factor(c->nranks);
  if (vs_row) {
    row->have_mpi = 1;
    row->mpi_us = worst[1] * 1e6;
    row->mpi_busbw = (double)size / worst[1] / 1e9 * coll->busbw_factor(c->nranks);
    row->ratio = row->mpi_us / row->us;
  }
  return 0;
}

/* Every size from -b to -e, multiplying by -f. Adds the agreed number of wrong elements
 * to *wrong_total and returns 0, or the exit code of the size that was refused. */
static int sweep(struct hb_call *c, const struct hb_args *a, int vs,
                 const struct buffers *bufs, struct hb_report *rep, uint64_t *wrong_total) {
  size_t unit = hb_type(a->type)->size * (c->coll->blocked ? (size_t)c->nranks : 1);
  size_t last = 0;
  for (size_t s = a->min_bytes;;) {
    size_t size = s / unit * unit; /* whole elements (and whole blocks) only */
    if (size > 0 && size != last) {
      last = size;
      struct hb_row row;
      int code = measure(c, a, vs, bufs, size, &row);
      if (code) {
        if (c->rank == 0)
          printf("# stopped at size %zu: %s failed (see stderr)\n", size, c->coll->call);
        return code;
      }
      *wrong_total += row.wrong;
      if (c->rank == 0) hb_report_row(rep, &row);
    }
    if (s == 0) { /* -b 0: multiplying would stay at 0 forever; go on from 1 byte */
      if (a->max_bytes == 0) break;
      s = 1;
      continue;
    }
    if (s > a->max_bytes / a->factor) break; /* the next size would pass -e (or overflow) */
    s *= a->factor;
  }
  return 0;
}

/* ---------------------------------------------------------------- the whole run */

int hb_main(int argc, char **argv, const struct hb_collective *coll) {
  MPI_Init(&argc, &argv);
  int rank, nranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);

  struct hb_args a;
  int parsed = hb_parse_args(argc, argv, coll, nranks, rank == 0, &a);
  if (parsed != 0) {
    MPI_Finalize();
    return parsed == 1 ? 0 : 2;
  }

  /* Open the JSON file before measuring anything, so a bad path costs no run. */
  FILE *json = NULL;
  int bad = 0;
  if (rank == 0 && a.json_path) {
    json = fopen(a.json_path, "w");
    if (!json) {
      fprintf(stderr, "%s: --json '%s' cannot be opened for writing: %s\n", coll->bench,
              a.json_path, strerror(errno));
      bad = 1;
    }
  }
  if (agree_max(bad)) {
    MPI_Finalize();
    return 2;
  }

  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  if (a.transport >= 0) cfg.transport = a.transport;
  mlcommComm_t comm = MLCOMM_COMM_NULL;
  mlcommResult_t rc = mlcommCommInitFromMPI(&comm, MPI_COMM_WORLD, &cfg);
  if (rc != mlcommSuccess) {
    fprintf(stderr, "%s: rank %d: mlcommCommInitFromMPI failed: %s: %s\n", coll->bench, rank,
            mlcommGetErrorString(rc), mlcommGetLastError(NULL));
  }
  int code = agree_max(rc == mlcommSuccess ? 0 : refusal_code(rc));
  if (code) {
    if (comm != MLCOMM_COMM_NULL) mlcommCommDestroy(comm);
    if (json) fclose(json);
    MPI_Finalize();
    return code;
  }

  int vcode = 0;
  char version[32] = "unknown";
  if (mlcommGetVersion(&vcode) == mlcommSuccess)
    snprintf(version, sizeof version, "%d.%d.%d", vcode / 10000, vcode / 100 % 100, vcode % 100);
  mlcommConfig_t used = cfg;
  const char *transport = "?";
  if (mlcommCommGetConfig(comm, &used) == mlcommSuccess)
    transport = hb_transport_name(used.transport);

  /* --bound measures before the buffers exist, so that its copy does not add to them. */
  struct hb_bound bound;
  if (a.bound) {
    if (hb_bound_measure(coll->bench, rank, &bound) != 0) {
      mlcommCommDestroy(comm);
      if (json) fclose(json);
      MPI_Finalize();
      return 1;
    }
    hb_bound_apply(&bound, coll, nranks, a.in_place);
  }

  /* Allocate once for the largest size and reuse: allocation and first-touch page faults
   * stay out of the measurements. No collective needs more than "size" bytes per
   * buffer on one rank. */
  size_t bytes = (a.max_bytes + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  void *sendbuff, *recvbuff;
  int alloc_bad = hb_buffers_alloc(&a, comm, coll->bench, rank, bytes, &sendbuff, &recvbuff);
  if (agree_max(alloc_bad != 0)) {
    hb_buffers_free(&a, coll->bench, rank, sendbuff, recvbuff);
    mlcommCommDestroy(comm);
    if (json) fclose(json);
    MPI_Finalize();
    return 1;
  }

  struct buffers bufs = {.send = sendbuff, .recv = recvbuff};
  struct hb_call c = {.coll = coll, .comm = comm, .mpi_comm = MPI_COMM_WORLD, .rank = rank,
                      .nranks = nranks, .root = a.root, .async = a.async,
                      .in_place = a.in_place, .type = a.type, .op = a.op};
  c.mpi_type = mpi_type_of(a.type, coll->uses_op);
  c.mpi_op = coll->uses_op ? mpi_op_of(a.op) : MPI_OP_NULL;
  int mpi_avail = coll->run_mpi && c.mpi_type != MPI_DATATYPE_NULL &&
                  (!coll->uses_op || c.mpi_op != MPI_OP_NULL);
  int vs = a.vs_mpi && mpi_avail;

  struct hb_report rep = {.coll = coll, .args = &a, .nranks = nranks, .version = version,
                          .transport = transport, .bound = a.bound ? &bound : NULL,
                          .avg_busbw = 0.0, .avg_ratio = NAN};
  if (rank == 0) hb_report_header(&rep);
  uint64_t wrong_total = 0;
  int exit_code = sweep(&c, &a, vs, &bufs, &rep, &wrong_total);
  if (rank == 0) hb_report_footer(&rep, wrong_total);
  if (wrong_total && !exit_code) exit_code = 1;

  if (json) {
    const char *status = exit_code == 0 ? "ok" : wrong_total ? "wrong" : "error";
    if (hb_report_json(json, &rep, wrong_total, status) != 0 || fclose(json) != 0) {
      fprintf(stderr, "%s: writing --json '%s' failed: %s\n", coll->bench, a.json_path,
              strerror(errno));
      if (!exit_code) exit_code = 1;
    }
  }
  hb_report_free(&rep);

  /* buffers first: an application frees its mlcommMemAlloc memory before the comm */
  if (hb_buffers_free(&a, coll->bench, rank, sendbuff, recvbuff) != 0 && !exit_code)
    exit_code = 1;
  rc = mlcommCommDestroy(comm);
  if (rc != mlcommSuccess) {
    fprintf(stderr, "%s: rank %d: mlcommCommDestroy failed: %s: %s\n", coll->bench, rank,
            mlcommGetErrorString(rc), mlcommGetLastError(NULL));
    if (!exit_code) exit_code = 1;
  }
  /* every rank leaves with the same code, so mpirun reports it whichever rank it sees */
  exit_code = agree_max(exit_code);
  MPI_Finalize();
  return exit_code;
}

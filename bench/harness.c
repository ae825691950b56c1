/*
 * harness.c - the driver shared by the mlcomm benchmarks: communicator, buffers, and the
 * run's table sections, one per (type, op, root) of -d, -o and -r, all of it -N times.
 * Flags are in args.c, the sizes in sweep.c, one size's checking and timing in
 * measure.c, data patterns in patterns.c, the table and the JSON file in report.c, the
 * buffers of each --memory kind in memory.c, and --bound's measurement and models in
 * bound.c.
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

/* ---------------------------------------------------------------- busbw factors */

double hb_factor_one(int nranks) {
  (void)nranks;
  return 1.0;
}
double hb_factor_allreduce(int nranks) { return 2.0 * (nranks - 1) / nranks; }
double hb_factor_gather(int nranks) { return (double)(nranks - 1) / nranks; }

size_t hb_type_size(mlcommDataType_t t) {
  size_t bytes = 0;
  mlcommTypeSize(t, &bytes); /* the harness only holds types the library named */
  return bytes;
}

/* ---------------------------------------------------------------- sections */

/* Every size of one section's sweep. Adds the agreed number of wrong elements to
 * *wrong_total and returns 0, or the exit code of the size that was refused. */
static int sweep(struct hb_call *c, const struct hb_args *a, int vs,
                 const struct hb_buffers *bufs, struct hb_report *rep, uint64_t *wrong_total) {
  struct hb_sweep w;
  size_t size;
  hb_sweep_begin(&w, a, hb_sweep_unit(c->coll, c->type, c->nranks));
  while (hb_sweep_next(&w, &size)) {
    struct hb_row row;
    int code = hb_measure(c, a, vs, bufs, size, &row);
    if (code) {
      if (c->rank == 0)
        printf("# stopped at size %zu: %s failed (see stderr)\n", size, c->coll->call);
      return code;
    }
    *wrong_total += row.wrong;
    if (c->rank == 0) hb_report_row(rep, &row);
  }
  return 0;
}

/* Each section's type, op and root, in nccl-tests' order (types, then ops, then roots);
 * -o and -r count only for collectives that use them. */
static int sections(struct hb_call *c, const struct hb_args *a,
                    const struct hb_buffers *bufs, struct hb_report *rep,
                    uint64_t *wrong_total) {
  const struct hb_collective *coll = c->coll;
  int nops = coll->uses_op ? a->nops : 1;
  int root_all = coll->uses_root && a->root == HB_ROOT_ALL;
  int nroots = root_all ? c->nranks : 1;
  for (int cycle = 0; cycle < a->cycles; cycle++)
    for (int t = 0; t < a->ntypes; t++)
      for (int o = 0; o < nops; o++)
        for (int r = 0; r < nroots; r++) {
          c->type = a->types[t];
          c->op = a->ops[o];
          c->root = root_all ? r : (a->root == HB_ROOT_ALL ? 0 : a->root);
          c->mpi_type = mpi_type_of(c->type, coll->uses_op);
          c->mpi_op = coll->uses_op ? mpi_op_of(c->op) : MPI_OP_NULL;
          int mpi_avail = coll->run_mpi && c->mpi_type != MPI_DATATYPE_NULL &&
                          (!coll->uses_op || c->mpi_op != MPI_OP_NULL);
          if (c->rank == 0) hb_report_section(rep, c->type, c->op, c->root, cycle);
          int code = sweep(c, a, a->vs_mpi && mpi_avail, bufs, rep, wrong_total);
          if (code) return code;
        }
  return 0;
}

/* ---------------------------------------------------------------- the whole run */

/* "0.1.0" from the loaded library, not the header */
static void library_version(char *out, size_t cap) {
  int v = 0;
  if (mlcommGetVersion(&v) == mlcommSuccess)
    snprintf(out, cap, "%d.%d.%d", v / 10000, v / 100 % 100, v % 100);
  else
    snprintf(out, cap, "unknown");
}

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
  if (hb_agree_max(bad)) {
    MPI_Finalize();
    return 2;
  }

  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  if (a.transport >= 0) cfg.transport = a.transport;
  if (a.timeout_s >= 0) cfg.timeoutMs = a.timeout_s * 1000;
  mlcommComm_t comm = MLCOMM_COMM_NULL;
  void *sendbuff = NULL, *recvbuff = NULL;
  int have_buffers = 0;
  struct hb_pending pending = {0};
  mlcommResult_t rc = mlcommCommInitFromMPI(&comm, MPI_COMM_WORLD, &cfg);
  if (rc != mlcommSuccess)
    fprintf(stderr, "%s: rank %d: mlcommCommInitFromMPI failed: %s: %s\n", coll->bench, rank,
            mlcommGetErrorString(rc), mlcommGetLastError(NULL));
  int exit_code = hb_agree_max(rc == mlcommSuccess ? 0 : hb_refusal_code(rc));
  if (exit_code) goto done;

  char version[32];
  library_version(version, sizeof version);
  mlcommConfig_t used = cfg;
  const char *transport = "?";
  if (mlcommCommGetConfig(comm, &used) == mlcommSuccess)
    transport = mlcommTransportName((mlcommTransport_t)used.transport);
  else
    used.timeoutMs = -1;

  /* --bound measures before the buffers exist, so that its copy does not add to them. */
  struct hb_bound bound;
  if (a.bound) {
    if (hb_bound_measure(coll->bench, rank, &bound) != 0) {
      exit_code = 1;
      goto done;
    }
    hb_bound_apply(&bound, coll, nranks, a.in_place);
  }

  /* Allocate once for the largest size and reuse: allocation and first-touch page faults
   * stay out of the measurements. No collective needs more than "size" bytes per
   * buffer on one rank; -m N needs N such slices. */
  size_t stride = (a.max_bytes + 63) / 64 * 64;
  if (stride == 0) stride = 64;
  int alloc_bad = hb_buffers_alloc(&a, comm, coll->bench, rank, stride * (size_t)a.agg,
                                   &sendbuff, &recvbuff);
  have_buffers = 1;
  pending.cap = HB_KEEP_PER_CALL * a.agg;
  pending.reqs = calloc((size_t)pending.cap, sizeof *pending.reqs);
  pending.mpi_reqs = calloc((size_t)pending.cap, sizeof *pending.mpi_reqs);
  if (!pending.reqs || !pending.mpi_reqs) {
    fprintf(stderr, "%s: rank %d: out of memory for %d requests\n", coll->bench, rank,
            pending.cap);
    alloc_bad = 1;
  }
  if (hb_agree_max(alloc_bad != 0)) {
    exit_code = 1;
    goto done;
  }

  struct hb_buffers bufs = {.send = sendbuff, .recv = recvbuff, .stride = stride};
  struct hb_call c = {.coll = coll, .comm = comm, .mpi_comm = MPI_COMM_WORLD, .rank = rank,
                      .nranks = nranks, .async = !a.blocking, .in_place = a.in_place,
                      .pending = &pending};
  int per_cycle = a.ntypes * (coll->uses_op ? a.nops : 1) *
                  (coll->uses_root && a.root == HB_ROOT_ALL ? nranks : 1);
  struct hb_report rep = {.coll = coll, .args = &a, .nranks = nranks, .version = version,
                          .transport = transport, .timeout_ms = used.timeoutMs,
                          .bound = a.bound ? &bound : NULL,
                          .sections = per_cycle * a.cycles, .avg_busbw = 0.0,
                          .avg_ratio = NAN};
  if (rank == 0) hb_report_header(&rep);
  uint64_t wrong_total = 0;
  exit_code = sections(&c, &a, &bufs, &rep, &wrong_total);
  if (rank == 0) hb_report_footer(&rep, wrong_total);
  if (wrong_total && !exit_code) exit_code = 1;

  if (json) {
    const char *status = exit_code == 0 ? "ok" : wrong_total ? "wrong" : "error";
    int failed = hb_report_json(json, &rep, wrong_total, status) != 0;
    if (fclose(json) != 0) failed = 1;
    json = NULL;
    if (failed) {
      fprintf(stderr, "%s: writing --json '%s' failed: %s\n", coll->bench, a.json_path,
              strerror(errno));
      if (!exit_code) exit_code = 1;
    }
  }
  hb_report_free(&rep);

done:
  /* buffers first: an application frees its mlcommMemAlloc memory before the comm */
  if (have_buffers && hb_buffers_free(&a, coll->bench, rank, sendbuff, recvbuff) != 0 &&
      !exit_code)
    exit_code = 1;
  free(pending.reqs);
  free(pending.mpi_reqs);
  if (json) fclose(json);
  if (comm != MLCOMM_COMM_NULL) {
    rc = mlcommCommDestroy(comm);
    if (rc != mlcommSuccess) {
      fprintf(stderr, "%s: rank %d: mlcommCommDestroy failed: %s: %s\n", coll->bench, rank,
              mlcommGetErrorString(rc), mlcommGetLastError(NULL));
      if (!exit_code) exit_code = 1;
    }
  }
  /* every rank leaves with the same code, so mpirun reports it whichever rank it sees */
  exit_code = hb_agree_max(exit_code);
  MPI_Finalize();
  return exit_code;
}

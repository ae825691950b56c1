/*
 * harness_internal.h - what the harness files share among themselves; the benchmarks see
 * only harness.h.
 *
 *   args.c      the names -d/-o/-t accept, flag parsing, usage and its error messages
 *   patterns.c  the data each rank sends, what each rank must receive, and the check
 *   report.c    the table on stdout, its footer and the --json file (rank 0 only)
 *   memory.c    the two buffers, of the kind -m names
 *   bound.c     --bound: the node's measured memory bandwidth and each collective's
 *               memory-traffic model
 *   harness.c   communicator, buffers, the timing loop and the per-size driver (hb_main)
 */
#ifndef MLCOMM_BENCH_HARNESS_INTERNAL_H
#define MLCOMM_BENCH_HARNESS_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "harness.h"

/* ---------------------------------------------------------------- names (args.c) */

struct hb_type_info {
  const char *name;  /* printed name */
  const char *alias; /* also accepted by -d, or NULL */
  mlcommDataType_t type;
  size_t size;
};

const struct hb_type_info *hb_type(mlcommDataType_t t);
const char *hb_op_name(mlcommRedOp_t op);
/* "?" for a value the table does not know */
const char *hb_transport_name(int transport);

/* -m: where the buffers come from (memory.c). "device" (CUDA buffers) is a reserved
 * name that args.c refuses until the harness can allocate device memory. */
enum hb_memory { HB_MEMORY_HOST = 0, HB_MEMORY_ALLOC = 1, HB_MEMORY_DEVICE = 2 };

/* -m device: the buffers are cudaMalloc'ed and every access of the harness goes
 * through a host mirror (memory.c). hb_host_view maps a pointer into a buffer to its
 * mirror (itself for host memory); hb_upload/hb_download copy [p, p + bytes) between
 * mirror and device (no-ops for host memory). Called only outside the timing. */
void *hb_host_view(const void *p);
int hb_upload(const void *p, size_t bytes);
int hb_download(const void *p, size_t bytes);
const char *hb_memory_name(int memory);

/* ---------------------------------------------------------------- flags (args.c) */

struct hb_args {
  size_t min_bytes, max_bytes, factor;
  mlcommDataType_t type;
  mlcommRedOp_t op;
  int root, iters, warmup, check;
  int transport; /* -1: -t not given, the library's default / MLCOMM_TRANSPORT applies */
  int vs_mpi, async, in_place;
  int memory; /* enum hb_memory */
  int bound;  /* --bound */
  const char *json_path;
};

/* Returns 0 to run, 1 after -h, 2 on a bad flag. Every rank parses the same argv and
 * reaches the same verdict, so all exit together without talking; only rank 0
 * (talk != 0) prints. */
int hb_parse_args(int argc, char **argv, const struct hb_collective *coll, int nranks,
                  int talk, struct hb_args *a);

/* ---------------------------------------------------------------- buffers (memory.c) */

/* Both buffers of `bytes` bytes, of kind a->memory, zero-filled. On failure prints why
 * and returns -1, with nothing left allocated. */
int hb_buffers_alloc(const struct hb_args *a, mlcommComm_t comm, const char *bench, int rank,
                     size_t bytes, void **send, void **recv);
/* Frees both (NULL is skipped); returns 0, or -1 after printing why one was refused. */
int hb_buffers_free(const struct hb_args *a, const char *bench, int rank, void *send,
                    void *recv);

/* ---------------------------------------------------------------- --bound (bound.c) */

struct hb_bound {
  double mem_bw;     /* GB/s: read+write bytes per second of every rank on the node
                        copying at once (the best repetition) */
  size_t copy_bytes; /* each rank's copy */
  int reps;          /* repetitions; the best is kept */
  int node_ranks;    /* ranks on rank 0's node, all copying */
  int nodes;         /* nodes the job spans (the models assume 1) */
  double traffic;    /* the collective's model: memory bytes per byte of the size column */
  double algbw_max, busbw_max; /* GB/s: mem_bw / traffic, times the busbw factor */
};

/* Collective over MPI_COMM_WORLD: measures b->mem_bw (and the fields describing how).
 * Returns 0, or -1 (agreed on every rank) when a rank could not allocate the copy. */
int hb_bound_measure(const char *bench, int rank, struct hb_bound *b);
/* Fills in b->traffic, algbw_max and busbw_max from b->mem_bw and the collective's model. */
void hb_bound_apply(struct hb_bound *b, const struct hb_collective *coll, int nranks,
                    int in_place);

/* ---------------------------------------------------------------- data (patterns.c) */

void hb_fill_inputs(const struct hb_call *c);
void hb_fill_sentinel(const struct hb_call *c);
/* Fills sendbuff with one value that c->op maps to itself (see patterns.c), for timing
 * reductions in place, which would otherwise feed each result into the next call. */
void hb_fill_steady(const struct hb_call *c);
/* elements of recvbuff (of check_count) that differ from coll->expected() */
uint64_t hb_count_wrong(const struct hb_call *c);

/* ---------------------------------------------------------------- output (report.c) */

/* One line of the table. */
struct hb_row {
  size_t size, count;
  int root;
  double us, algbw, busbw;
  uint64_t wrong;
  int have_mpi;
  double mpi_us, mpi_busbw, ratio;
  double bound_frac, mpi_bound_frac; /* busbw / bound busbw_max (set by hb_report_row;
                                        NaN without --bound or where undefined) */
};

/* What rank 0 prints and writes. The rows are kept for the averages and the JSON file. */
struct hb_report {
  const struct hb_collective *coll;
  const struct hb_args *args;
  int nranks;
  const char *version, *transport;
  const struct hb_bound *bound; /* NULL without --bound */
  struct hb_row *rows;
  size_t nrows, cap;
  double avg_busbw, avg_ratio; /* set by hb_report_footer */
};

void hb_report_header(const struct hb_report *r);
/* keeps the row and prints it; out of memory takes the job down */
void hb_report_row(struct hb_report *r, const struct hb_row *row);
/* computes the averages and prints the two (with --vs-mpi three) footer lines */
void hb_report_footer(struct hb_report *r, uint64_t wrong_total);
/* returns 0, or -1 when writing failed */
int hb_report_json(FILE *f, const struct hb_report *r, uint64_t wrong_total,
                   const char *status);
void hb_report_free(struct hb_report *r);

#endif /* MLCOMM_BENCH_HARNESS_INTERNAL_H */

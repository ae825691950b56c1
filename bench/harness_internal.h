/*
 * harness_internal.h - what the harness files share among themselves; the benchmarks see
 * only harness.h.
 *
 *   args.c      flag parsing and its error messages (usage.c: -h's text)
 *   sweep.c     the sizes of a sweep (-b, -e, -f, -i)
 *   measure.c   one size: the checked call, the timed iterations (-m, -z, -C) and how
 *               the ranks' times are combined (-a)
 *   patterns.c  the data each rank sends, what each rank must receive, and the check
 *   report.c    the table on stdout, its footer and the --json file (rank 0 only)
 *   memory.c    the two buffers, of the kind --memory names
 *   bound.c     --bound: the node's measured memory bandwidth and each collective's
 *               memory-traffic model
 *   harness.c   communicator, buffers, the sections (-d, -o, -r, -N) and hb_main
 */
#ifndef MLCOMM_BENCH_HARNESS_INTERNAL_H
#define MLCOMM_BENCH_HARNESS_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "harness.h"

/* ---------------------------------------------------------------- memory kinds (memory.c) */

/* --memory: where the buffers come from. "device" (CUDA buffers) exists only in builds
 * with CUDA; args.c refuses it elsewhere with a sentence. */
enum hb_memory { HB_MEMORY_HOST = 0, HB_MEMORY_ALLOC = 1, HB_MEMORY_DEVICE = 2 };

/* --memory device: the buffers are cudaMalloc'ed and every access of the harness goes
 * through a host mirror (memory.c). hb_host_view maps a pointer into a buffer to its
 * mirror (itself for host memory); hb_upload/hb_download copy [p, p + bytes) between
 * mirror and device (no-ops for host memory). Called only outside the timing. */
void *hb_host_view(const void *p);
int hb_upload(const void *p, size_t bytes);
int hb_download(const void *p, size_t bytes);
const char *hb_memory_name(int memory);
/* the enum hb_memory value, or -1 for a name this build does not know */
int hb_memory_from_name(const char *name);
/* the names hb_memory_from_name accepts, space-separated */
const char *hb_memory_list(void);

/* ---------------------------------------------------------------- flags (args.c) */

/* -a: how the ranks' times become the row's time (nccl-tests' numbering) */
enum hb_average { HB_AVG_RANK0 = 0, HB_AVG_MEAN = 1, HB_AVG_MIN = 2, HB_AVG_MAX = 3 };

#define HB_ROOT_ALL (-1)  /* -r all (or -r -1): one section per root */
#define HB_AGG_MAX 1024   /* -m's largest value: each aggregated call has buffers of its own */

struct hb_args {
  size_t min_bytes, max_bytes;
  size_t factor;     /* -f: > 1 multiplies the size; 1 adds step_bytes */
  size_t step_bytes; /* -i */
  /* -d, -o: the values of the sections, in enum order; "all" lists every one */
  mlcommDataType_t types[mlcommNumTypes];
  int ntypes;
  mlcommRedOp_t ops[mlcommNumOps];
  int nops;
  int root;          /* -r: a rank, or HB_ROOT_ALL */
  int iters, warmup;
  int check;         /* -c: checked calls per size (0: none) */
  int agg;           /* -m: calls per timed iteration, in one mlcommGroupStart/End */
  int average;       /* -a: enum hb_average */
  int blocking;      /* -z: 1 the blocking forms, 0 the ...Async forms + a wait */
  int cputime;       /* -C: report the time until the calls were issued */
  int cycles;        /* -N: the whole run repeated */
  int timeout_s;     /* -T: seconds (0: none); -1 when not given */
  int transport;     /* --transport; -1: not given, the library's default applies */
  int vs_mpi, in_place;
  int memory;        /* enum hb_memory */
  int bound;         /* --bound */
  const char *json_path; /* --json / -J */
};

/* Returns 0 to run, 1 after -h, 2 on a bad flag. Every rank parses the same argv and
 * reaches the same verdict, so all exit together without talking; only rank 0
 * (talk != 0) prints. */
int hb_parse_args(int argc, char **argv, const struct hb_collective *coll, int nranks,
                  int talk, struct hb_args *a);

/* -h's text (usage.c) */
void hb_usage(FILE *f, const struct hb_collective *coll);

/* ---------------------------------------------------------------- sizes (sweep.c) */

/* The sizes of one section: from -b to -e, multiplied by -f or stepped by -i, each
 * rounded down to a whole multiple of unit (the type size, times nranks for collectives
 * whose buffer is nranks blocks); sizes that round to 0 or repeat the previous one are
 * skipped. */
struct hb_sweep {
  const struct hb_args *a;
  size_t unit, next_raw, last;
  int done;
};
void hb_sweep_begin(struct hb_sweep *w, const struct hb_args *a, size_t unit);
/* 1 and *size while there is another size, then 0 */
int hb_sweep_next(struct hb_sweep *w, size_t *size);
/* the unit of coll's sizes for type t on nranks ranks */
size_t hb_sweep_unit(const struct hb_collective *coll, mlcommDataType_t t, int nranks);

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

/* ---------------------------------------------------------------- one size (measure.c) */

/* The two allocations. With -m N they hold N slices of stride bytes, one per call of an
 * aggregated iteration, since calls that one mlcommGroupEnd starts together must not
 * share buffers. */
struct hb_buffers {
  void *send, *recv;
  size_t stride;
};

/* The requests the ...Async calls of one iteration left for the harness to wait
 * (hb_keep, hb_keep_mpi): at most HB_KEEP_PER_CALL per call. */
#define HB_KEEP_PER_CALL 2
struct hb_pending {
  mlcommRequest_t *reqs;
  MPI_Request *mpi_reqs;
  int n, n_mpi, cap;
};

struct hb_row;

/* One size on every rank (the steps in measure.c). Returns 0 with *row filled in, or the
 * agreed exit code when the first call was refused on some rank. */
int hb_measure(struct hb_call *c, const struct hb_args *a, int vs,
               const struct hb_buffers *bufs, size_t size, struct hb_row *row);
/* "<bench>: rank R: <call> failed at size S B: <result>: <sentence>" on stderr */
void hb_print_failure(const struct hb_call *c, mlcommResult_t rc, size_t size);
/* the exit code for a refused call: 2 for what the user asked for but cannot have (as
 * for a bad flag), 1 for anything else */
int hb_refusal_code(mlcommResult_t rc);
/* the largest v over MPI_COMM_WORLD */
int hb_agree_max(int v);

/* ---------------------------------------------------------------- output (report.c) */

/* One line of the table. */
struct hb_row {
  size_t size, count;
  mlcommDataType_t type;
  mlcommRedOp_t op;
  int root;
  double us, algbw, busbw;
  uint64_t wrong;
  int have_mpi;
  double mpi_us, mpi_busbw, ratio;
  double bound_frac, mpi_bound_frac; /* busbw / bound busbw_max (set by hb_report_row;
                                        NaN without --bound or where undefined) */
  double *rank_us; /* rank 0 with --json: every rank's own time before -a combined them
                      (nranks values, freed by hb_report_free); NULL elsewhere */
};

/* What rank 0 prints and writes. The rows are kept for the averages and the JSON file. */
struct hb_report {
  const struct hb_collective *coll;
  const struct hb_args *args;
  int nranks;
  const char *version, *transport;
  int timeout_ms; /* the communicator's, after -T and MLCOMM_TIMEOUT_MS */
  const struct hb_bound *bound; /* NULL without --bound */
  struct hb_row *rows;
  size_t nrows, cap;
  int sections;  /* table sections of the run: (types x ops x roots) x cycles */
  double avg_busbw, avg_ratio; /* set by hb_report_footer */
};

/* the settings (and --bound's lines) */
void hb_report_header(const struct hb_report *r);
/* the two column lines, after a line naming the section when the run has several */
void hb_report_section(const struct hb_report *r, mlcommDataType_t type, mlcommRedOp_t op,
                       int root, int cycle);
/* keeps the row and prints it; out of memory takes the job down */
void hb_report_row(struct hb_report *r, const struct hb_row *row);
/* computes the averages and prints the two (with --vs-mpi three) footer lines */
void hb_report_footer(struct hb_report *r, uint64_t wrong_total);
/* returns 0, or -1 when writing failed */
int hb_report_json(FILE *f, const struct hb_report *r, uint64_t wrong_total,
                   const char *status);
void hb_report_free(struct hb_report *r);

#endif /* MLCOMM_BENCH_HARNESS_INTERNAL_H */

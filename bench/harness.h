/*
 * harness.h - the shared driver of the mlcomm benchmarks (the bench/..._bw.c files).
 *
 * Each benchmark is a small file that describes one collective with a struct
 * hb_collective (how to call it through mlcomm and through plain MPI, how big its buffers
 * are and how they overlap in place, what every received element must hold, how to turn
 * algorithm bandwidth into bus bandwidth) and hands it to hb_main. Everything else (flags,
 * buffers, data patterns, checking, timing, the table and the JSON file) lives in the
 * harness (harness.c and the files beside it), so the six benchmarks measure and report in
 * exactly the same way.
 *
 * Only the public API (mlcomm/mlcomm.h) and MPI are used, as an application would.
 */
#ifndef MLCOMM_BENCH_HARNESS_H
#define MLCOMM_BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include <mlcomm/mlcomm.h>

struct hb_collective;
struct hb_pending;

/* Everything one invocation of the collective needs. The harness fills it in for each
 * size; the benchmark's callbacks only read it (counts() sets the three counts). */
struct hb_call {
  const struct hb_collective *coll;
  mlcommComm_t comm;
  MPI_Comm mpi_comm;      /* the communicator mlcomm was created from (MPI_COMM_WORLD) */
  int rank, nranks;
  int root;               /* -r; meaningful only when coll->uses_root */
  int async;              /* -z 0 (--async): post the ...Async forms (MPI: the MPI_I...
                             forms) and hand their requests to hb_keep/hb_keep_mpi */
  int in_place;           /* --in-place: sendbuff and recvbuff overlap, as coll->in_place()
                             set them; run_mpi uses MPI's in-place form (MPI_IN_PLACE) */
  mlcommDataType_t type;
  mlcommRedOp_t op;       /* meaningful only when coll->uses_op */
  MPI_Datatype mpi_type;  /* MPI_DATATYPE_NULL when MPI has no equivalent */
  MPI_Op mpi_op;          /* MPI_OP_NULL when MPI has no equivalent (or no op is used) */
  size_t count;           /* the "count" column: size / type size (total for allgather,
                             reduce_scatter, as in nccl-tests) */
  size_t send_count;      /* elements of sendbuff this rank provides (set by counts()) */
  size_t recv_count;      /* elements of recvbuff the call may write (set by counts()) */
  size_t check_count;     /* elements of recvbuff checked on this rank (set by counts()) */
  void *sendbuff, *recvbuff;
  struct hb_pending *pending; /* where hb_keep puts the requests (the harness's) */
};

struct hb_collective {
  const char *bench;  /* executable name, e.g. "allreduce_bw" (header, JSON) */
  const char *call;   /* mlcomm function named in error messages */
  int uses_op;        /* 0: -o is ignored and the redop column prints "none" */
  int uses_root;      /* 0: -r is ignored and the root column prints -1 */
  int blocked;        /* 1: the size is nranks equal blocks, so sizes are rounded down
                         to a multiple of nranks*typesize (allgather, reduce_scatter) */
  /* algbw -> busbw, the nccl-tests factor for nranks ranks */
  double (*busbw_factor)(int nranks);
  /* --bound: the least memory traffic (bytes read + written by all ranks of the node)
   * one call must make, per byte of the size column; one of the hb_traffic_* models
   * of bound.c, where each is derived */
  double (*traffic)(int nranks, int in_place);
  /* sets c->send_count, c->recv_count and c->check_count from c->count */
  void (*counts)(struct hb_call *c);
  /* With --in-place, called after counts() with sendbuff and recvbuff at the starts of
   * two separate buffers: moves one of them into the other so that the call is in place
   * as mlcomm.h defines it for this collective. NULL where the call has no in-place
   * form; --in-place is then refused. */
  void (*in_place)(struct hb_call *c);
  /* one blocking call through mlcomm, or with c->async the ...Async form(s), whose
   * requests go to hb_keep (the harness waits for them) */
  mlcommResult_t (*run)(const struct hb_call *c);
  /* the same through plain MPI on the same buffers (requests to hb_keep_mpi); returns
   * an MPI error code. Only called when c->mpi_type (and c->mpi_op for reductions)
   * exist. */
  int (*run_mpi)(const struct hb_call *c);
  /* the value element i (< check_count) of recvbuff must hold on this rank */
  int64_t (*expected)(const struct hb_call *c, size_t i);
};

/* Runs the whole benchmark; the return value is the process exit code. */
int hb_main(int argc, char **argv, const struct hb_collective *coll);

/* The integer that rank r puts in element i of its sendbuff. The pattern depends on the
 * type and op so that every reduction of it is exact (see patterns.c). */
int64_t hb_input(const struct hb_call *c, int r, size_t i);

/* Element i reduced with c->op over all ranks' inputs, computed on the host with the
 * library's documented semantics (avg: sum / nranks, truncating toward zero). */
int64_t hb_reduced(const struct hb_call *c, size_t i);

/* Bytes in one element of t. */
size_t hb_type_size(mlcommDataType_t t);

/* For ...Async forms: when rc (the posting call's result) succeeded, hands req to the
 * harness, which waits for it once every call of the iteration is issued (with -m, after
 * mlcommGroupEnd). Returns rc. */
mlcommResult_t hb_keep(const struct hb_call *c, mlcommResult_t rc, mlcommRequest_t req);
/* The same for the MPI reference's MPI_I... forms; returns err. */
int hb_keep_mpi(const struct hb_call *c, int err, MPI_Request req);

/* Busbw factors shared by several benchmarks. */
double hb_factor_one(int nranks);       /* broadcast, reduce, sendrecv: busbw = algbw */
double hb_factor_allreduce(int nranks); /* 2(n-1)/n */
double hb_factor_gather(int nranks);    /* allgather, reduce_scatter: (n-1)/n */

/* Memory-traffic models for --bound, one per collective (bound.c derives each). */
double hb_traffic_allreduce(int nranks, int in_place);
double hb_traffic_broadcast(int nranks, int in_place);
double hb_traffic_reduce(int nranks, int in_place);
double hb_traffic_allgather(int nranks, int in_place);
double hb_traffic_reduce_scatter(int nranks, int in_place);
double hb_traffic_sendrecv(int nranks, int in_place);

#endif /* MLCOMM_BENCH_HARNESS_H */

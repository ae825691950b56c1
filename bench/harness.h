/*
 * harness.h - the shared driver of the mlcomm benchmarks (the bench/..._bw.c files).
 *
 * Each benchmark is a small file that describes one collective with an hbCollective
 * (how to call it through mlcomm and through plain MPI, how big its buffers are, what
 * every received element must hold, how to turn algorithm bandwidth into bus
 * bandwidth) and hands it to hbMain. Everything else (flags, buffers, data patterns,
 * checking, timing, the table and the JSON file) lives in harness.c, so the six
 * benchmarks measure and report in exactly the same way.
 *
 * Only the public API (mlcomm/mlcomm.h) and MPI are used, as an application would.
 */
#ifndef MLCOMM_BENCH_HARNESS_H
#define MLCOMM_BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include <mlcomm/mlcomm.h>

struct hbCollective;

/* Everything one invocation of the collective needs. The harness fills it in for each
 * size; the benchmark's callbacks only read it (counts() sets the three counts). */
typedef struct hbCall {
  const struct hbCollective *coll;
  mlcommComm_t comm;
  MPI_Comm mpiComm;     /* the communicator mlcomm was created from (MPI_COMM_WORLD) */
  int rank, nranks;
  int root;             /* -r; meaningful only when coll->usesRoot */
  int async;            /* -a: use the ...Async forms and wait (MPI: the MPI_I... forms) */
  mlcommDataType_t type;
  mlcommRedOp_t op;     /* meaningful only when coll->usesOp */
  MPI_Datatype mpiType; /* MPI_DATATYPE_NULL when MPI has no equivalent */
  MPI_Op mpiOp;         /* MPI_OP_NULL when MPI has no equivalent (or no op is used) */
  size_t count;         /* the "count" column: size / type size (total for allgather,
                           reduce_scatter, as in nccl-tests) */
  size_t sendCount;     /* elements of sendbuff this rank provides (set by counts()) */
  size_t recvCount;     /* elements of recvbuff the call may write (set by counts()) */
  size_t checkCount;    /* elements of recvbuff checked on this rank (set by counts()) */
  void *sendbuff, *recvbuff;
} hbCall;

typedef struct hbCollective {
  const char *bench;  /* executable name, e.g. "allreduce_bw" (header, JSON) */
  const char *call;   /* mlcomm function named in error messages */
  int usesOp;         /* 0: -o is ignored and the redop column prints "none" */
  int usesRoot;       /* 0: -r is ignored and the root column prints -1 */
  int blocked;        /* 1: the size is nranks equal blocks, so sizes are rounded down
                         to a multiple of nranks*typesize (allgather, reduce_scatter) */
  /* algbw -> busbw, the nccl-tests factor for nranks ranks */
  double (*busbwFactor)(int nranks);
  /* sets c->sendCount, c->recvCount and c->checkCount from c->count */
  void (*counts)(hbCall *c);
  /* one blocking (or, with c->async, posted-and-waited) call through mlcomm */
  mlcommResult_t (*run)(const hbCall *c);
  /* the same through plain MPI on the same buffers; returns an MPI error code. Only
   * called when c->mpiType (and c->mpiOp for reductions) exist. */
  int (*runMpi)(const hbCall *c);
  /* the value element i (< checkCount) of recvbuff must hold on this rank */
  int64_t (*expected)(const hbCall *c, size_t i);
} hbCollective;

/* Runs the whole benchmark; the return value is the process exit code. */
int hbMain(int argc, char **argv, const hbCollective *coll);

/* The integer that rank r puts in element i of its sendbuff. The pattern depends on the
 * type and op so that every reduction of it is exact (see harness.c). */
int64_t hbInput(const hbCall *c, int r, size_t i);

/* Element i reduced with c->op over all ranks' inputs, computed on the host with the
 * library's documented semantics (avg: sum / nranks, truncating toward zero). */
int64_t hbReduced(const hbCall *c, size_t i);

/* For ...Async forms: waits for *req when rc (the posting call's result) succeeded. */
mlcommResult_t hbWait(mlcommResult_t rc, mlcommRequest_t *req);

/* Busbw factors shared by several benchmarks. */
double hbFactorOne(int nranks);       /* broadcast, reduce, sendrecv: busbw = algbw */
double hbFactorAllReduce(int nranks); /* 2(n-1)/n */
double hbFactorGather(int nranks);    /* allgather, reduce_scatter: (n-1)/n */

#endif /* MLCOMM_BENCH_HARNESS_H */

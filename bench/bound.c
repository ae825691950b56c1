/*
 * bound.c - --bound: how fast the node's memory can go, and so how fast each collective
 * could possibly go on one node.
 *
 * The measurement stresses memory the way a collective on one node does: every rank of
 * the node at once copies a large buffer (HB_BOUND_COPY_BYTES, far beyond any cache) into
 * another, and the bytes read plus the bytes written by all of them, divided by the
 * slowest rank's time, is the memory bandwidth M. The best of HB_BOUND_REPS repetitions
 * is kept, as a bound should be the most the machine can do.
 *
 * The models (the hb_traffic_* functions below) give, per collective, the least memory
 * traffic T one call must cause, as a multiple of the size column S, so that
 *   time >= T*S / M,   algbw_max = S / time_min = M / T,   busbw_max = algbw_max * factor(n)
 * with factor(n) the busbw factor the benchmark already reports with (harness.c).
 */
#include "harness_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HB_BOUND_COPY_BYTES ((size_t)256 << 20)
#define HB_BOUND_REPS 8

/* ---------------------------------------------------------------- the models
 *
 * n ranks on one node; S is the size column in bytes. Each input byte must be read from
 * memory at least once and each output byte written at least once, by some rank; copies
 * that a transport adds (through a bounce buffer, say) are exactly what the bound is
 * meant to expose, so they are not counted. The sizes the bound is meant for are far
 * larger than the caches, so nothing is assumed to stay cached between calls.
 *
 * allreduce (S = each rank's buffer): the n inputs are read (nS) and the n outputs
 *   written (nS): T = 2n. busbw_max = M/(2n) * 2(n-1)/n = M(n-1)/n^2; M/4 for n = 2.
 *   In place the same bytes are read, then written.
 *
 * broadcast (S = the buffer): root's buffer is read once (S), the n-1 other ranks
 *   write theirs ((n-1)S): T = n. busbw_max = M/n (factor 1). Out of place the root
 *   also writes its own recvbuff (one more S); the model leaves that copy out so that
 *   the bound holds for MPI_Bcast too (--vs-mpi), which makes no such copy. For mlcomm
 *   out of place the bound is therefore loose by n/(n+1).
 *
 * reduce (S = each rank's buffer): the n inputs are read (nS), root writes the result
 *   (S): T = n+1. busbw_max = M/(n+1) (factor 1). In place alike.
 *
 * allgather (S = the gathered total; each rank contributes S/n): the n contributions
 *   are read (S in all) and every rank writes the whole result (nS): T = n+1. In place
 *   each rank's own block already lies in its result, so only the n-1 others are
 *   written: T = 1 + (n-1) = n. busbw_max = M/T * (n-1)/n.
 *
 * reduce_scatter (S = each rank's whole input; each receives S/n): the n inputs are read
 *   (nS), and each rank writes its block (S/n, S in all): T = n+1. In place the block
 *   overwritten is still read first, so alike. busbw_max = M(n-1)/(n(n+1)).
 *
 * sendrecv (S = each rank's buffer): every rank reads what it sends (S) and writes what
 *   it receives (S): T = 2n. busbw_max = M/(2n) (factor 1).
 */
double hb_traffic_allreduce(int n, int in_place) {
  (void)in_place;
  return 2.0 * n;
}
double hb_traffic_broadcast(int n, int in_place) {
  (void)in_place;
  return n;
}
double hb_traffic_reduce(int n, int in_place) {
  (void)in_place;
  return n + 1.0;
}
double hb_traffic_allgather(int n, int in_place) { return in_place ? n : n + 1.0; }
double hb_traffic_reduce_scatter(int n, int in_place) {
  (void)in_place;
  return n + 1.0;
}
double hb_traffic_sendrecv(int n, int in_place) {
  (void)in_place;
  return 2.0 * n;
}

void hb_bound_apply(struct hb_bound *b, const struct hb_collective *coll, int nranks,
                    int in_place) {
  b->traffic = coll->traffic ? coll->traffic(nranks, in_place) : NAN; /* NaN: no model */
  b->algbw_max = b->mem_bw / b->traffic;
  b->busbw_max = b->algbw_max * coll->busbw_factor(nranks);
}

/* ---------------------------------------------------------------- the measurement */

int hb_bound_measure(const char *bench, int rank, struct hb_bound *b) {
  MPI_Comm node;
  int node_rank, node_ranks, leader, nodes;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &node_rank);
  MPI_Comm_size(node, &node_ranks);
  leader = node_rank == 0;
  MPI_Allreduce(&leader, &nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);

  size_t bytes = HB_BOUND_COPY_BYTES;
  char *src = malloc(bytes), *dst = malloc(bytes);
  int bad = !src || !dst, any_bad;
  if (bad)
    fprintf(stderr, "%s: rank %d: --bound cannot allocate 2 x %zu bytes for its copy\n", bench,
            rank, bytes);
  MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any_bad) {
    free(src);
    free(dst);
    MPI_Comm_free(&node);
    return -1;
  }
  /* first touch (page faults) outside the timed copies */
  memset(src, 1, bytes);
  memset(dst, 0, bytes);

  double best = 0.0;
  for (int r = 0; r < HB_BOUND_REPS; r++) {
    MPI_Barrier(node); /* every rank of the node copies at the same time */
    double t0 = MPI_Wtime();
    memcpy(dst, src, bytes);
    __asm__ __volatile__("" : : "r"(dst) : "memory"); /* the copy must really happen */
    double t = MPI_Wtime() - t0, slowest;
    MPI_Allreduce(&t, &slowest, 1, MPI_DOUBLE, MPI_MAX, node);
    double bw = 2.0 * (double)bytes * node_ranks / slowest / 1e9; /* read + write */
    if (bw > best) best = bw;
  }
  free(src);
  free(dst);
  MPI_Comm_free(&node);

  /* every rank reports rank 0's node (on one node, the only one) */
  MPI_Bcast(&best, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  MPI_Bcast(&node_ranks, 1, MPI_INT, 0, MPI_COMM_WORLD);
  *b = (struct hb_bound){.mem_bw = best, .copy_bytes = bytes, .reps = HB_BOUND_REPS,
                         .node_ranks = node_ranks, .nodes = nodes, .traffic = NAN,
                         .algbw_max = NAN, .busbw_max = NAN};
  return 0;
}

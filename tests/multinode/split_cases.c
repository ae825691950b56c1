/*
 * Communicators split along the node boundary, as a two-level collective would use
 * them: one per node (color = node) and one per local rank across the nodes (color =
 * local rank, so the first holds every node's first rank). Each runs the collective
 * subset; an allreduce built by hand from the two levels must equal the world's.
 *
 * Which transport serves a communicator is seen through the public API only:
 * mlcommMemAlloc returns memory inside the shm transport's segment exactly when that
 * transport serves the communicator (tests/mpi/test_shm_memory.c checks that on one
 * node). Under auto a node's communicator must get shm, a communicator spanning nodes
 * must not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multinode.h"
#include "shm_common.h"

static void check_rank_count(const struct mn_comm *c)
{
  int rank = -1, count = -1;
  CHECK_OK(mlcommCommRank(c->comm, &rank));
  CHECK_OK(mlcommCommCount(c->comm, &count));
  CHECK(rank == c->rank && count == c->nranks, "%s: rank %d of %d, expected %d of %d", c->name,
        rank, count, c->rank, c->nranks);
}

/* in_segment: 1 must lie in a shm segment, 0 must not, -1 no expectation. */
static void check_memalloc(const struct mn_comm *c, int in_segment, const char *why)
{
  void *p = NULL;
  if (!CHECK_OK(mlcommMemAlloc(c->comm, 65536, &p))) return;
  memset(p, 0x5a, 65536);
  if (in_segment >= 0)
    CHECK(ts_in_segment(p) == (in_segment == 1),
          "%s (%d ranks): MemAlloc memory %s a shm segment, but %s", c->name, c->nranks,
          ts_in_segment(p) ? "lies in" : "is not in", why);
  CHECK_OK(mlcommMemFree(p));
}

static bool make(struct mn_comm *c, int color, int key, int rank, int nranks, const char *name)
{
  c->rank = rank;
  c->nranks = nranks;
  c->name = name;
  c->salt = tc_seed(0x5b17, (uint64_t)color, (uint64_t)nranks, strlen(name));
  MPI_Comm_split(MPI_COMM_WORLD, color, key, &c->mpi);
  c->comm = MLCOMM_COMM_NULL;
  bool ok = CHECK_OK(mlcommCommSplit(tc_comm, color, key, &c->comm, NULL));
  /* Every rank goes on or none does, or the collectives below would hang. */
  int all = ok, every = 0;
  MPI_Allreduce(&all, &every, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (every) check_rank_count(c);
  return every != 0;
}

static void destroy(struct mn_comm *c)
{
  if (c->comm != MLCOMM_COMM_NULL) CHECK_OK(mlcommCommDestroy(c->comm));
  MPI_Comm_free(&c->mpi);
}

/* Reduce on each node to its first rank, allreduce among the first ranks, broadcast on
 * each node: for int64 sum (exact, associative) this must equal the world's allreduce
 * bit for bit. */
static void two_level_allreduce(const struct mn_comm *node, const struct mn_comm *cross)
{
  tc_section("an allreduce built from the per-node and cross-node communicators");
  enum { COUNT = 100003 };
  uint64_t seed = tc_seed(0x2222, COUNT, (uint64_t)tc_nranks, 0);
  int64_t *mine = tc_galloc(COUNT * sizeof *mine);
  int64_t *partial = tc_galloc(COUNT * sizeof *partial);
  int64_t *world = tc_galloc(COUNT * sizeof *world);
  tc_fill(mine, mlcommInt64, mlcommSum, COUNT, seed, tc_rank, 0);
  CHECK_OK(mlcommReduce(mine, partial, COUNT, mlcommInt64, mlcommSum, 0, node->comm));
  if (mn.local_rank == 0)
    CHECK_OK(mlcommAllReduce(partial, partial, COUNT, mlcommInt64, mlcommSum, cross->comm));
  CHECK_OK(mlcommBroadcast(partial, partial, COUNT, mlcommInt64, 0, node->comm));
  tc_check_reduced(partial, mlcommInt64, mlcommSum, COUNT, seed, 0, tc_nranks,
                   "two-level allreduce (int64 sum)");
  CHECK_OK(mlcommAllReduce(mine, world, COUNT, mlcommInt64, mlcommSum, tc_comm));
  CHECK(memcmp(partial, world, COUNT * sizeof *world) == 0,
        "two-level allreduce differs from the world communicator's");
  tc_gfree(mine);
  tc_gfree(partial);
  tc_gfree(world);
}

void mn_split(void)
{
  /* The cross-node communicator of local rank l holds the nodes with more than l
   * ranks, ordered by node. */
  int cross_rank = 0, cross_size = 0;
  int *local_size_of = calloc((size_t)mn.nnodes, sizeof *local_size_of);
  for (int r = 0; r < tc_nranks; r++) local_size_of[mn.node_of[r]]++;
  for (int n = 0; n < mn.nnodes; n++) {
    if (local_size_of[n] <= mn.local_rank) continue;
    if (n < mn.node) cross_rank++;
    cross_size++;
  }
  free(local_size_of);

  char node_name[64], cross_name[64];
  snprintf(node_name, sizeof node_name, "node %d", mn.node);
  snprintf(cross_name, sizeof cross_name, "cross-node %d", mn.local_rank);
  struct mn_comm node, cross;
  tc_section("mlcommCommSplit by node and by local rank");
  bool ok = make(&node, mn.node, tc_rank, mn.local_rank, mn.local_size, node_name);
  ok = make(&cross, mn.local_rank, mn.node, cross_rank, cross_size, cross_name) && ok;
  if (!ok) {
    destroy(&node);
    destroy(&cross);
    return;
  }

  tc_section("which transport serves each split communicator");
  if (tc_transport == mlcommTransportMpi) {
    check_memalloc(&node, 0, "the communicator it was split from is forced to mpi");
  } else if (tc_transport == mlcommTransportAuto && mn.have_shm && node.nranks > 1) {
    /* A one-rank communicator moves nothing: which transport it gets is not a figure. */
    check_memalloc(&node, 1, "auto should choose shm for a communicator inside one node");
  } else {
    check_memalloc(&node, -1, "");
  }
  if (cross.nranks > 1)
    check_memalloc(&cross, 0, "no shared memory spans nodes");
  else
    check_memalloc(&cross, -1, "");

  mn_collectives(&node, false);
  mn_collectives(&cross, false);
  two_level_allreduce(&node, &cross);
  destroy(&node);
  destroy(&cross);
}

/*
 * The hierarchical transport's view of the nodes: which node each rank is on and at
 * which local index, and the internal communicators it runs its phases on. Nodes are
 * numbered by their lowest rank, local indices by rank within the node, so every rank
 * derives the same numbering.
 */
#include <stdlib.h>

#include "backends/hier/hier.h"

mlcommResult_t hier_topo_init(struct hier_state *st) {
  struct mlcomm_comm *comm = st->comm;
  MPI_Comm node = MPI_COMM_NULL, rail = MPI_COMM_NULL;
  MLCOMM_MPI_CHECK(comm, MPI_Comm_split_type(comm->coll_comm, MPI_COMM_TYPE_SHARED, comm->rank,
                                             MPI_INFO_NULL, &node));
  MPI_Comm_rank(node, &st->local);
  MPI_Comm_size(node, &st->L);
  /* Node index: the leader's rank among leaders, which the leaders number by rank. */
  int lowest = comm->rank;
  MPI_Allreduce(MPI_IN_PLACE, &lowest, 1, MPI_INT, MPI_MIN, node);
  int *lowest_of = malloc((size_t)comm->nranks * sizeof *lowest_of);
  int *pair = malloc(2 * (size_t)comm->nranks * sizeof *pair);
  st->rank_of = malloc((size_t)comm->nranks * sizeof *st->rank_of);
  st->node_of = malloc((size_t)comm->nranks * sizeof *st->node_of);
  st->local_of = malloc((size_t)comm->nranks * sizeof *st->local_of);
  if (!lowest_of || !pair || !st->rank_of || !st->node_of || !st->local_of) {
    free(lowest_of);
    free(pair);
    MPI_Comm_free(&node);
    return mlcomm_error(comm, mlcommSystemError, "hier transport: out of memory");
  }
  MPI_Allgather(&lowest, 1, MPI_INT, lowest_of, 1, MPI_INT, comm->coll_comm);
  st->nnodes = 0;
  st->node_index = -1;
  for (int r = 0; r < comm->nranks; r++) /* a node's lowest rank is its own lowest */
    if (lowest_of[r] == r) {
      if (r == lowest) st->node_index = st->nnodes;
      st->nnodes++;
    }
  int me[2] = {st->node_index, st->local};
  MPI_Allgather(me, 2, MPI_INT, pair, 2, MPI_INT, comm->coll_comm);
  for (int r = 0; r < comm->nranks; r++) {
    st->node_of[r] = pair[2 * r];
    st->local_of[r] = pair[2 * r + 1];
    st->rank_of[pair[2 * r] * st->L + pair[2 * r + 1]] = r;
  }
  free(lowest_of);
  free(pair);
  MLCOMM_MPI_CHECK(comm, MPI_Comm_split(comm->coll_comm, st->local, st->node_index, &rail));
  /* The node's communicator carries shm collectives (auto picks shm: one node); the
   * rail's, MPI's. Both take over their MPI communicator. */
  mlcommResult_t res = mlcomm_subcomm_create(comm, node, mlcommTransportAuto, &st->node);
  if (res != mlcommSuccess) {
    MPI_Comm_free(&node);
    MPI_Comm_free(&rail);
    return res;
  }
  res = mlcomm_subcomm_create(comm, rail, mlcommTransportMpi, &st->rail);
  if (res != mlcommSuccess) MPI_Comm_free(&rail);
  return res;
}

void hier_topo_fini(struct hier_state *st, bool aborting) {
  mlcomm_subcomm_destroy(st->node, aborting);
  mlcomm_subcomm_destroy(st->rail, aborting);
  st->node = st->rail = NULL;
  free(st->rank_of);
  free(st->node_of);
  free(st->local_of);
  st->rank_of = st->node_of = st->local_of = NULL;
}

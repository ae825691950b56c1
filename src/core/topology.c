/*
 * Whether this node runs more ranks than the CPUs they may use (mpirun
 * --oversubscribe, or several ranks bound to one core), reported at MLCOMM_DEBUG=INFO
 * with a warning, since every timing is then a measure of the scheduler. Each rank's
 * affinity mask only shows its own binding (mpirun binds one rank per core), so the
 * masks of every rank on the node are OR-ed together first. hwloc then tells how many
 * cores and NUMA nodes that set spans, for the report.
 */
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

#if MLCOMM_HAVE_HWLOC
#include <hwloc.h>
#include <hwloc/glibc-sched.h>
#endif

/* Cores and NUMA nodes the CPU set spans (0 when hwloc is not in the build). */
static void describe(const cpu_set_t *set, int *cores, int *numa) {
  *cores = *numa = 0;
#if MLCOMM_HAVE_HWLOC
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0) return;
  if (hwloc_topology_load(topo) == 0) {
    hwloc_bitmap_t bits = hwloc_bitmap_alloc();
    if (bits && hwloc_cpuset_from_glibc_sched_affinity(topo, bits, set, sizeof *set) == 0) {
      *cores = hwloc_get_nbobjs_inside_cpuset_by_type(topo, bits, HWLOC_OBJ_CORE);
      *numa = hwloc_get_nbobjs_inside_cpuset_by_type(topo, bits, HWLOC_OBJ_NUMANODE);
    }
    hwloc_bitmap_free(bits);
  }
  hwloc_topology_destroy(topo);
#else
  (void)set;
#endif
}

void mlcomm_topology_note(struct mlcomm_comm *comm) {
  MPI_Comm node;
  if (MPI_Comm_split_type(comm->coll_comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
    return;
  int local = 1, local_rank = 0;
  MPI_Comm_size(node, &local);
  MPI_Comm_rank(node, &local_rank);
  /* How many nodes, and whether they hold the same number of ranks (hierarchical
   * collectives need every node alike): one allreduce of {-size, size, leader}. */
  int mine3[3] = {-local, local, local_rank == 0}, all3[3] = {-local, local, 1};
  if (MPI_Allreduce(mine3, all3, 2, MPI_INT, MPI_MAX, comm->coll_comm) == MPI_SUCCESS &&
      MPI_Allreduce(&mine3[2], &all3[2], 1, MPI_INT, MPI_SUM, comm->coll_comm) == MPI_SUCCESS) {
    comm->node_ranks_min = -all3[0];
    comm->node_ranks_max = all3[1];
    comm->nnodes = all3[2];
  }
  cpu_set_t mine, all;
  CPU_ZERO(&mine);
  if (sched_getaffinity(0, sizeof mine, &mine) != 0) CPU_SET(0, &mine);
  /* cpu_set_t is an array of unsigned longs: OR them across the node's ranks. */
  int words = (int)(sizeof mine / sizeof(unsigned long));
  if (MPI_Allreduce(&mine, &all, words, MPI_UNSIGNED_LONG, MPI_BOR, node) != MPI_SUCCESS)
    memcpy(&all, &mine, sizeof all);
  MPI_Comm_free(&node);
  int cpus = CPU_COUNT(&all), cores, numa;
  comm->node_ranks = local;
  comm->node_cpus = cpus;
  describe(&all, &cores, &numa);
  MLCOMM_INFO("%d rank(s) of this communicator on this node share %d CPU(s) (%d core(s), %d "
              "NUMA node(s) per hwloc); %d node(s) of %d to %d rank(s)%s",
              local, cpus, cores, numa, comm->nnodes, comm->node_ranks_min,
              comm->node_ranks_max,
              local > cpus ? ": oversubscribed, timings measure the scheduler" : "");
}

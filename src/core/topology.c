/*
 * How many cores this process can really run on, and whether the node is
 * oversubscribed (more ranks than cores, as with mpirun --oversubscribe). An
 * oversubscribed rank must not spin while it waits: the peer it waits for may need
 * its core. hwloc counts cores in the allowed cpuset; without it, the affinity mask.
 */
#include <sched.h>
#include <stdbool.h>
#include <unistd.h>

#include "core/internal.h"

#if MLCOMM_HAVE_HWLOC
#include <hwloc.h>
#endif

static int cached_cores;
static bool oversubscribed;

int mlcomm_usable_cores(void) {
  if (cached_cores > 0) return cached_cores;
  int cores = 0;
#if MLCOMM_HAVE_HWLOC
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) == 0) {
    if (hwloc_topology_load(topo) == 0) {
      int depth = hwloc_get_type_depth(topo, HWLOC_OBJ_CORE);
      if (depth >= 0) cores = hwloc_get_nbobjs_by_depth(topo, (unsigned)depth);
    }
    hwloc_topology_destroy(topo);
  }
#endif
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int allowed = CPU_COUNT(&set);
    if (cores <= 0 || allowed < cores) cores = allowed;
  }
  if (cores <= 0) cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
  cached_cores = cores > 0 ? cores : 1;
  return cached_cores;
}

void mlcomm_topology_note(MPI_Comm comm) {
  MPI_Comm node;
  int local = 1;
  if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
  }
  int cores = mlcomm_usable_cores();
  if (local > cores) oversubscribed = true;
  MLCOMM_INFO("%d rank(s) of this communicator on this node, %d usable core(s)%s", local, cores,
              local > cores ? ": oversubscribed, waits yield at once" : "");
}

bool mlcomm_oversubscribed(void) { return oversubscribed; }

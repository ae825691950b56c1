/*
 * mlcomm across nodes, on fake nodes of one machine (tests/multinode/mpirun_nodes.sh,
 * docs/multinode.md) or on real ones:
 *
 *   test_multinode [-l LAYOUT] [-t auto|mpi|shm|nccl]
 *
 * First the rig itself, which every later check relies on: ranks of different nodes see
 * different processor names (the host name each fake node was given), MPI's
 * shared-memory split groups exactly the ranks of one node, and /dev/shm is private to a
 * node (a file made there on one node is seen on that node only). With -l (2x2, 3,1 ...,
 * as given to mpirun_nodes.sh) the nodes must also be those of the layout, ranks placed
 * in order. A communicator spanning nodes must be refused by the shm transport.
 *
 * Then mlcomm: every collective on the world communicator (tc_comm, so it spans the
 * nodes), point-to-point between every pair of ranks and with wildcards, and
 * communicators split by node and across nodes (split_cases.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "multinode.h"

struct mn_layout mn;

/* ---------------------------------------------------------------- the command line */

/* Ranks per node of -l, or NULL; *nnodes set. Parsed before tc_init takes the rest. */
static int *parse_layout(const char *text, int *nnodes)
{
  int a, b;
  char tail;
  if (sscanf(text, "%dx%d%c", &a, &b, &tail) == 2 && a > 0 && b > 0) {
    int *per = malloc((size_t)a * sizeof *per);
    for (int i = 0; i < a; i++) per[i] = b;
    *nnodes = a;
    return per;
  }
  int *per = malloc((strlen(text) / 2 + 1) * sizeof *per);
  int n = 0;
  for (const char *p = text; *p;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v <= 0 || (*end != ',' && *end != '\0')) {
      free(per);
      return NULL;
    }
    per[n++] = (int)v;
    p = *end ? end + 1 : end;
  }
  *nnodes = n;
  return n ? per : (free(per), NULL);
}

/* Removes "-l LAYOUT" from argv, leaving -t to tc_init. */
static const char *take_layout_arg(int *argc, char **argv)
{
  const char *layout = NULL;
  int out = 1;
  for (int i = 1; i < *argc; i++) {
    if (strcmp(argv[i], "-l") == 0 && i + 1 < *argc)
      layout = argv[++i];
    else
      argv[out++] = argv[i];
  }
  *argc = out;
  argv[out] = NULL;
  return layout;
}

/* ---------------------------------------------------------------- the rig */

static void find_nodes(char (*names)[MPI_MAX_PROCESSOR_NAME])
{
  char mine[MPI_MAX_PROCESSOR_NAME] = {0};
  int len = 0;
  MPI_Get_processor_name(mine, &len);
  MPI_Allgather(mine, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names, MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                MPI_COMM_WORLD);
  mn.node_of = malloc((size_t)tc_nranks * sizeof *mn.node_of);
  mn.nnodes = 0;
  for (int r = 0; r < tc_nranks; r++) {
    int first = r;
    for (int q = 0; q < r && first == r; q++)
      if (strcmp(names[q], names[r]) == 0) first = q;
    mn.node_of[r] = first == r ? mn.nnodes++ : mn.node_of[first];
  }
  mn.node = mn.node_of[tc_rank];
  mn.local_rank = mn.local_size = 0;
  for (int r = 0; r < tc_nranks; r++) {
    if (mn.node_of[r] != mn.node) continue;
    if (r < tc_rank) mn.local_rank++;
    mn.local_size++;
  }

}

static void check_layout(const char *layout, char (*names)[MPI_MAX_PROCESSOR_NAME])
{
  int want_nodes = 0;
  int *per = parse_layout(layout, &want_nodes);
  if (!CHECK(per != NULL, "bad layout '%s' (expected NxM or a list like 3,1)", layout)) return;
  tc_section("the rig: %d nodes as layout %s says", want_nodes, layout);
  /* A fake node's name is the host name fake_ssh.sh set (real clusters may report a
   * longer form of it, hence only here). */
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  CHECK(strcmp(host, names[tc_rank]) == 0, "processor name '%s' is not the host name '%s'",
        names[tc_rank], host);
  int total = 0;
  for (int i = 0; i < want_nodes; i++) total += per[i];
  if (CHECK(total == tc_nranks && mn.nnodes == want_nodes,
            "layout %s has %d nodes and %d ranks; MPI shows %d processor names and %d ranks",
            layout, want_nodes, total, mn.nnodes, tc_nranks)) {
    /* mpirun_nodes.sh fills node i (named fakenode<i>) before node i+1. */
    int r = 0;
    for (int n = 0; n < want_nodes; n++) {
      for (int k = 0; k < per[n]; k++, r++) {
        char want[32];
        snprintf(want, sizeof want, "fakenode%d", n);
        CHECK(mn.node_of[r] == n && strcmp(names[r], want) == 0,
              "rank %d is on '%s' (node %d); layout %s puts it on %s", r, names[r],
              mn.node_of[r], layout, want);
      }
    }
  }
  free(per);
}

/* MPI_Comm_split_type(SHARED) must group exactly the ranks of one processor name. */
static void check_shared_split(void)
{
  tc_section("the rig: MPI_COMM_TYPE_SHARED groups the ranks of one node");
  MPI_Comm shared;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &shared);
  int size = 0;
  MPI_Comm_size(shared, &size);
  int *members = calloc((size_t)size, sizeof *members);
  MPI_Allgather(&tc_rank, 1, MPI_INT, members, 1, MPI_INT, shared);
  bool same = size == mn.local_size;
  for (int i = 0; i < size && same; i++) same = mn.node_of[members[i]] == mn.node;
  CHECK(same, "the shared-memory split holds %d ranks (first %d); node %d has %d", size,
        members[0], mn.node, mn.local_size);
  free(members);

  /* The same ranks can share the shm transport, or this build lacks it. */
  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  cfg.transport = mlcommTransportShm;
  mlcommComm_t probe = MLCOMM_COMM_NULL;
  mlcommResult_t r = mlcommCommInitFromMPI(&probe, shared, &cfg);
  int got = r == mlcommSuccess, all = 0;
  MPI_Allreduce(&got, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  mn.have_shm = all;
  if (r == mlcommSuccess) CHECK_OK(mlcommCommDestroy(probe));
  else CHECK(r == mlcommUnsupported, "forced shm on one node's ranks: %s: %s",
             mlcommGetErrorString(r), mlcommGetLastError(NULL));
  MPI_Comm_free(&shared);
  tc_section("the shm transport %s", mn.have_shm ? "serves each node's ranks"
                                                 : "cannot serve each node's ranks here");
}

/* A file made in /dev/shm by one rank must be seen by the ranks of its node and by
 * no other: otherwise shared memory could reach across "nodes" and hide a bug. */
static void check_private_dev_shm(void)
{
  tc_section("the rig: /dev/shm is private to each node");
  long token = (long)getpid();
  MPI_Bcast(&token, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  char path[128];
  snprintf(path, sizeof path, "/dev/shm/multinode-probe-%ld-%d", token, tc_rank);
  int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
  CHECK(fd >= 0, "cannot create %s: %s", path, strerror(errno));
  if (fd >= 0) close(fd);
  MPI_Barrier(MPI_COMM_WORLD);
  for (int r = 0; r < tc_nranks; r++) {
    char other[128];
    struct stat st;
    snprintf(other, sizeof other, "/dev/shm/multinode-probe-%ld-%d", token, r);
    bool seen = stat(other, &st) == 0;
    CHECK(seen == (mn.node_of[r] == mn.node), "%s of rank %d (node %d) is %s from node %d",
          other, r, mn.node_of[r], seen ? "visible" : "invisible", mn.node);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (fd >= 0) unlink(path);
}

/* shm must decline a communicator whose ranks are on more than one node. */
static void check_shm_refuses_nodes(void)
{
  if (mn.nnodes < 2 || !mn.have_shm) return;
  tc_section("the shm transport refuses a communicator spanning %d nodes", mn.nnodes);
  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  cfg.transport = mlcommTransportShm;
  mlcommComm_t c = MLCOMM_COMM_NULL;
  mlcommResult_t r = mlcommCommInitFromMPI(&c, MPI_COMM_WORLD, &cfg);
  CHECK(r == mlcommUnsupported, "forced shm over %d nodes: %s (expected mlcommUnsupported)",
        mn.nnodes, mlcommGetErrorString(r));
  if (r == mlcommSuccess) CHECK_OK(mlcommCommDestroy(c));
}

int main(int argc, char **argv)
{
  const char *layout = take_layout_arg(&argc, argv);
  tc_init(&argc, &argv);

  char(*names)[MPI_MAX_PROCESSOR_NAME] = calloc((size_t)tc_nranks, sizeof *names);
  find_nodes(names);
  tc_section("%d ranks on %d nodes (rank 0 on '%s')", tc_nranks, mn.nnodes, names[0]);
  if (layout) check_layout(layout, names);
  check_shared_split();
  check_private_dev_shm();
  check_shm_refuses_nodes();
  free(names);

  struct mn_comm world = {.comm = tc_comm, .mpi = MPI_COMM_WORLD, .rank = tc_rank,
                          .nranks = tc_nranks, .name = "world", .salt = 1};
  mn_collectives(&world, true);
  mn_collectives_in_flight(&world);
  mn_p2p();
  mn_split();

  free(mn.node_of);
  return tc_finish();
}

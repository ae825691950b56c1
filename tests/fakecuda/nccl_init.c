/*
 * Creating fake NCCL communicators: ncclGetUniqueId and ncclCommInitRank.
 *
 * Each NCCL communicator gets its own MPI communicator, with its ranks in NCCL rank
 * order, built by the member processes only (as NCCL needs only its members):
 *   - nranks == size of MPI_COMM_WORLD: every process is a member; MPI_COMM_WORLD is
 *     duplicated and reordered by NCCL rank (MPI_Comm_split). Bad arguments are found
 *     by all ranks together and refused on all of them.
 *   - nranks < size of MPI_COMM_WORLD (sub-communicators, e.g. after a split): the
 *     unique id carries the MPI_COMM_WORLD rank of its creator, which must be NCCL rank
 *     0 (as in every NCCL bootstrap, the creator broadcasts the id). The other members
 *     send their NCCL rank to it with a point-to-point message on MPI_COMM_WORLD (tag
 *     derived from the id, 0x4000..0x7fff), it answers with the member list, and the
 *     members call MPI_Comm_create_group. As with NCCL, members given different ids or
 *     sizes wait for each other forever (the caller's timeout catches it).
 * Then, on the new communicator and like NCCL, the fake refuses (on every member at
 * once, so none is left waiting)
 *   - ranks that were not all given rank 0's unique id (ncclInvalidUsage), and
 *   - two ranks of one node on the same current CUDA device: "Duplicate GPU"
 *     (ncclInvalidUsage).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "fakegpu.h"

/* The head of a fake unique id; the rest is random. */
static const char id_magic[8] = "fakegpu";
struct id_head {
  char magic[8];
  int32_t creator; /* MPI_COMM_WORLD rank of the caller of ncclGetUniqueId; -1: none */
};

FG_API ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId) {
  if (uniqueId == NULL)
    return fg_nccl_fail(ncclInvalidArgument, "fakegpu: ncclGetUniqueId: uniqueId is NULL");
  size_t got = 0;
  while (got < sizeof uniqueId->internal) {
    ssize_t n = getrandom(uniqueId->internal + got, sizeof uniqueId->internal - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return fg_nccl_fail(ncclSystemError, "fakegpu: ncclGetUniqueId: getrandom: %s",
                          strerror(errno));
    got += (size_t)n;
  }
  struct id_head head = {.creator = -1};
  memcpy(head.magic, id_magic, sizeof head.magic);
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (inited && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &head.creator);
  memcpy(uniqueId->internal, &head, sizeof head);
  return ncclSuccess;
}

/* This rank's problem, if any: a result code and its text. */
struct init_check {
  ncclResult_t result;
  char why[512];
};

static void check_fail(struct init_check *c, ncclResult_t r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check_fail(struct init_check *c, ncclResult_t r, const char *fmt, ...) {
  if (c->result != ncclSuccess) return; /* the first problem is the one to report */
  c->result = r;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->why, sizeof c->why, fmt, ap);
  va_end(ap);
}

/* ---- the member communicator */

/* Every process is a member: MPI_COMM_WORLD reordered by NCCL rank. Collective over
 * MPI_COMM_WORLD; every rank sees the same ranks, so all fail or none. */
static MPI_Comm world_members(int nranks, int rank, struct init_check *chk) {
  MPI_Comm dup, out = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  int *ranks = malloc(sizeof(int) * (size_t)nranks);
  char *seen = calloc((size_t)nranks, 1);
  if (ranks == NULL || seen == NULL) abort(); /* a few bytes per rank */
  MPI_Allgather(&rank, 1, MPI_INT, ranks, 1, MPI_INT, dup);
  int bad = -1;
  for (int i = 0; i < nranks && bad < 0; i++) {
    if (ranks[i] < 0 || ranks[i] >= nranks || seen[ranks[i]])
      bad = i;
    else
      seen[ranks[i]] = 1;
  }
  if (bad >= 0)
    check_fail(chk, ncclInvalidArgument,
               "fakegpu: ncclCommInitRank: MPI_COMM_WORLD rank %d gave NCCL rank %d, which is out "
               "of range or taken (each of the %d ranks must be given once)",
               bad, ranks[bad], nranks);
  else
    MPI_Comm_split(dup, 0, rank, &out);
  free(ranks), free(seen);
  MPI_Comm_free(&dup);
  return out;
}

static uint32_t id_hash(const ncclUniqueId *id) { /* FNV-1a */
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < sizeof id->internal; i++)
    h = (h ^ (unsigned char)id->internal[i]) * 16777619u;
  return h;
}

/* A sub-communicator: rendezvous at the id's creator (NCCL rank 0), then
 * MPI_Comm_create_group. Collective over the members only. */
static MPI_Comm sub_members(int nranks, int rank, const ncclUniqueId *id, struct init_check *chk) {
  struct id_head head;
  memcpy(&head, id->internal, sizeof head);
  int wrank = 0, wsize = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  MPI_Comm_size(MPI_COMM_WORLD, &wsize);
  if (memcmp(head.magic, id_magic, sizeof id_magic) != 0 || head.creator < 0 ||
      head.creator >= wsize) {
    check_fail(chk, ncclInvalidArgument,
               "fakegpu: ncclCommInitRank: a communicator smaller than MPI_COMM_WORLD needs a "
               "ncclUniqueId made by this fake's ncclGetUniqueId after MPI_Init");
    return MPI_COMM_NULL;
  }
  if (rank == 0 && head.creator != wrank) {
    check_fail(chk, ncclInvalidUsage,
               "fakegpu: ncclCommInitRank: NCCL rank 0 (MPI_COMM_WORLD rank %d) did not create the "
               "ncclUniqueId (rank %d did); the fake meets the members at the creator",
               wrank, head.creator);
    return MPI_COMM_NULL;
  }
  const int tag = 0x4000 + (int)(id_hash(id) % 0x3ff0);
  int *reply = malloc(sizeof(int) * ((size_t)nranks + 1)); /* status, then members */
  if (reply == NULL) abort();
  int *members = reply + 1;
  if (rank == 0) {
    reply[0] = ncclSuccess;
    for (int i = 0; i < nranks; i++) members[i] = -1;
    members[0] = wrank;
    int *from = malloc(sizeof(int) * (size_t)nranks);
    if (from == NULL) abort();
    for (int k = 1; k < nranks; k++) {
      int theirs[2]; /* NCCL rank, MPI_COMM_WORLD rank */
      MPI_Status st;
      MPI_Recv(theirs, 2, MPI_INT, MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &st);
      from[k] = st.MPI_SOURCE;
      if (theirs[0] <= 0 || theirs[0] >= nranks || members[theirs[0]] != -1)
        reply[0] = ncclInvalidArgument;
      else
        members[theirs[0]] = st.MPI_SOURCE;
    }
    for (int k = 1; k < nranks; k++)
      MPI_Send(reply, nranks + 1, MPI_INT, from[k], tag + 1, MPI_COMM_WORLD);
    free(from);
  } else {
    int mine[2] = {rank, wrank};
    MPI_Send(mine, 2, MPI_INT, head.creator, tag, MPI_COMM_WORLD);
    MPI_Recv(reply, nranks + 1, MPI_INT, head.creator, tag + 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
  MPI_Comm out = MPI_COMM_NULL;
  if (reply[0] != ncclSuccess) {
    check_fail(chk, ncclInvalidArgument,
               "fakegpu: ncclCommInitRank: the %d members did not give each NCCL rank exactly once",
               nranks);
  } else {
    MPI_Group world, group;
    MPI_Comm_group(MPI_COMM_WORLD, &world);
    MPI_Group_incl(world, nranks, members, &group);
    MPI_Comm_create_group(MPI_COMM_WORLD, group, tag, &out);
    MPI_Group_free(&group);
    MPI_Group_free(&world);
  }
  free(reply);
  return out;
}

/* ---- checks on the member communicator */

/* The first pair i < j of ranks on one device (pairs[2k] NCCL rank, pairs[2k+1] device,
 * -1 for none); false when all differ. */
static bool find_duplicate(const int *pairs, int ns, int *i_out, int *j_out) {
  for (int j = 1; j < ns; j++)
    for (int i = 0; i < j; i++)
      if (pairs[2 * i + 1] >= 0 && pairs[2 * i + 1] == pairs[2 * j + 1]) {
        *i_out = i;
        *j_out = j;
        return true;
      }
  return false;
}

/* NCCL's "Duplicate GPU" rule: no two ranks of a node on one device. Collective. */
static void check_devices(MPI_Comm mc, int device, struct init_check *chk) {
  MPI_Comm node;
  int ns = 1, me[2], i, j;
  MPI_Comm_rank(mc, &me[0]);
  me[1] = device;
  MPI_Comm_split_type(mc, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &ns);
  int *all = malloc(sizeof(int) * 2 * (size_t)ns);
  if (all == NULL) abort(); /* a few ints: not worth a recovery path in a test double */
  MPI_Allgather(me, 2, MPI_INT, all, 2, MPI_INT, node);
  /* Node ranks are in communicator order (key 0): every rank reports the same pair. */
  if (find_duplicate(all, ns, &i, &j))
    check_fail(chk, ncclInvalidUsage,
               "fakegpu: duplicate GPU detected: rank %d and rank %d both on device %d", all[2 * i],
               all[2 * j], all[2 * i + 1]);
  free(all);
  MPI_Comm_free(&node);
}

FG_API ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank) {
  if (comm == NULL)
    return fg_nccl_fail(ncclInvalidArgument, "fakegpu: ncclCommInitRank: comm is NULL");
  *comm = NULL;
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (!inited || finalized)
    return fg_nccl_fail(ncclInvalidArgument,
                        "fakegpu: ncclCommInitRank needs MPI to be initialized (the fake NCCL "
                        "runs over MPI)");
  int wsize = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &wsize);
  if (nranks < 1 || nranks > wsize || rank < 0 || rank >= nranks)
    return fg_nccl_fail(ncclInvalidArgument,
                        "fakegpu: ncclCommInitRank(nranks %d, rank %d): impossible with %d MPI "
                        "processes (the fake's ranks are MPI processes)",
                        nranks, rank, wsize);

  struct init_check chk = {.result = ncclSuccess};
  MPI_Comm mc = nranks == wsize ? world_members(nranks, rank, &chk)
                                : sub_members(nranks, rank, &commId, &chk);
  if (mc == MPI_COMM_NULL) return fg_nccl_fail(chk.result, "%s", chk.why);

  /* From here every member takes part in every step, whatever its own checks said, so
   * that a rank with a problem makes the others fail instead of hang. */
  int device = -1;
  if (fg_device_count() == 0)
    check_fail(&chk, ncclUnhandledCudaError,
               "fakegpu: ncclCommInitRank: no CUDA device (FAKEGPU_DEVICES=0)");
  else
    device = fg_current_device();
  ncclUniqueId root_id = commId;
  MPI_Bcast(&root_id, (int)sizeof root_id, MPI_BYTE, 0, mc);
  if (memcmp(&root_id, &commId, sizeof commId) != 0)
    check_fail(&chk, ncclInvalidUsage,
               "fakegpu: ncclCommInitRank: rank %d was given a different ncclUniqueId than "
               "rank 0 (every rank must get the id rank 0 created)",
               rank);
  check_devices(mc, device, &chk);
  int mine = (int)chk.result, worst = 0;
  MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, mc);
  if (worst != ncclSuccess) {
    MPI_Comm_free(&mc);
    if (mine != ncclSuccess) return fg_nccl_fail(chk.result, "%s", chk.why);
    return fg_nccl_fail((ncclResult_t)worst,
                        "fakegpu: ncclCommInitRank failed on another rank (see its error)");
  }
  ncclResult_t r = fg_comm_add(rank, nranks, device, mc, comm);
  if (r != ncclSuccess) MPI_Comm_free(&mc);
  return r;
}

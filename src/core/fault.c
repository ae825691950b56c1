/*
 * Failed peers: who every rank is (node, pid, process start time, gathered when the
 * communicator is made), the watch a waiting call keeps on the peers it waits for,
 * and revocation. A revoked communicator fails every pending and later call at once
 * with one sentence that names the rank that failed first.
 *
 * The watch sees only peers on this node (a pid means nothing elsewhere): it is what
 * turns a dead peer on the MPI transport from "timed out after 300 s" into "rank 2
 * died" within MLCOMM_PEER_CHECK_MS. Revocation reaches peers through the transports
 * that can tell them (the shm header) and through a small message on the diagnosis
 * communicator that every waiting peer reads.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "backends/transport.h"
#include "core/internal.h"
#include "core/params.h"

/* How often a waiting call checks that the peers it waits for are alive; 0: never
 * (a dead peer is then found by the transport, or by the timeout). */
MLCOMM_PARAM(PeerCheckMs, "MLCOMM_PEER_CHECK_MS", 200, 0, 60000);

#define TAG_REVOKE 3
#define REVOKE_MAGIC 0x7265766bll

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* The start time of a live process (/proc/<pid>/stat field 22); -1 when it is gone or
 * a zombie, so that a reused pid is not taken for the peer. */
int64_t mlcomm_proc_start_time(pid_t pid) {
  char path[64], text[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t got = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[got] = '\0';
  const char *p = strrchr(text, ')');
  char state = 0;
  unsigned long long start = 0;
  if (p == NULL ||
      sscanf(p + 2, "%c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu",
             &state, &start) != 2)
    return -1;
  if (state == 'Z' || state == 'X' || state == 'x') return -1;
  return (int64_t)start;
}

mlcommResult_t mlcomm_peers_gather(struct mlcomm_comm *comm) {
  char host[MPI_MAX_PROCESSOR_NAME + 1] = "";
  int len = 0;
  MPI_Get_processor_name(host, &len);
  struct mlcomm_peer me = {.host = fnv1a(host), .pid = (int32_t)getpid()};
  me.start = mlcomm_proc_start_time(getpid());
  comm->failed_rank = -1;
  comm->peers = calloc((size_t)comm->nranks, sizeof *comm->peers);
  if (comm->peers == NULL) return mlcomm_error(comm, mlcommSystemError, "out of memory for the peer table");
  MLCOMM_MPI_CHECK(comm, MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, comm->peers, (int)sizeof me,
                                       MPI_BYTE, comm->coll_comm));
  return mlcommSuccess;
}

bool mlcomm_peer_local(const struct mlcomm_comm *comm, int r) {
  return comm->peers && comm->peers[r].host == comm->peers[comm->rank].host;
}

bool mlcomm_peer_dead(const struct mlcomm_comm *comm, int r) {
  if (r == comm->rank || !mlcomm_peer_local(comm, r) || comm->peers[r].start < 0) return false;
  const struct mlcomm_peer *p = &comm->peers[r];
  if (kill(p->pid, 0) != 0 && errno == ESRCH) return true;
  return mlcomm_proc_start_time(p->pid) != p->start;
}

static int first_dead(const struct mlcomm_comm *comm) {
  for (int r = 0; r < comm->nranks; r++)
    if (mlcomm_peer_dead(comm, r)) return r;
  return -1;
}

/* Every live request ends with mlcommRemoteError; the transports abandon what MPI
 * still holds (as mlcommCommAbort does), so no wait on them can hang. */
static void fail_live(struct mlcomm_comm *comm) {
  for (struct mlcomm_request *req = comm->live; req; req = req->next) {
    if (req->state == MLCOMM_REQ_DONE) continue;
    if (req->state == MLCOMM_REQ_ACTIVE && req->ti) req->ti->t->release(req->ti->state, &req->op, true);
    req->state = MLCOMM_REQ_DONE;
    req->result = mlcommRemoteError;
  }
}

void mlcomm_comm_fail(struct mlcomm_comm *comm, int by, int failed_rank, const char *why) {
  if (comm->revoked) return;
  comm->revoked = true;
  comm->failed = mlcommRemoteError;
  if (comm->failed_rank < 0) comm->failed_rank = failed_rank;
  snprintf(comm->revoke_why, sizeof comm->revoke_why, "%s", why);
  fail_live(comm);
  for (int i = 0; i < comm->ntransports; i++)
    if (comm->transports[i].t->revoke)
      comm->transports[i].t->revoke(comm->transports[i].state, by, comm->failed_rank);
  mlcomm_error(comm, mlcommRemoteError, "%s", why);
}

void mlcomm_note_failure(struct mlcomm_comm *comm, mlcommResult_t res) {
  if (res != mlcommRemoteError && res != mlcommTimeout) return;
  if (comm->first_failure[0] == '\0')
    snprintf(comm->first_failure, sizeof comm->first_failure, "%.500s", comm->last_error);
  if (res != mlcommRemoteError || comm->revoked) return;
  /* A transport saw a peer fail (the shm watch, a revocation in its segment): the
   * revoker's notice may be here already, and a dead peer revokes the whole
   * communicator, point-to-point included, as the core's own watch does. */
  mlcomm_revoke_serve(comm);
  if (comm->failed_rank < 0) comm->failed_rank = first_dead(comm);
  if (!comm->revoked && comm->failed_rank >= 0) {
    char why[MLCOMM_ERRMSG_LEN / 2];
    snprintf(why, sizeof why, "%.500s", comm->last_error);
    mlcomm_comm_fail(comm, comm->rank, comm->failed_rank, why);
  }
}

bool mlcomm_watch(struct mlcomm_comm *comm, const struct mlcomm_op *op, double waited_ms) {
  if (comm->revoked) return true;
  if (waited_ms < 10.0) return false; /* the common case: a peer a few microseconds behind */
  double now = mlcomm_now_ms();
  double every = (double)mlcomm_param(comm, &mlcomm_param_PeerCheckMs);
  if (every == 0 || waited_ms < 10.0 || now - comm->last_watch < every) return false;
  comm->last_watch = now;
  bool coll = mlcomm_op_is_collective(op->kind);
  for (int r = 0; r < comm->nranks; r++) {
    if (!coll && r != op->peer) continue;
    if (!mlcomm_peer_dead(comm, r)) continue;
    char why[MLCOMM_ERRMSG_LEN / 2];
    snprintf(why, sizeof why,
             "rank %d (pid %d) died while rank %d waited for it in %s (seq %llu); the "
             "communicator is revoked: every call on it fails now. Build a new one from the "
             "survivors with mlcommCommShrink, or abort it",
             r, (int)comm->peers[r].pid, comm->rank, mlcomm_op_kind_name(op->kind),
             (unsigned long long)op->seq);
    mlcomm_comm_fail(comm, comm->rank, r, why);
    return true;
  }
  return false;
}

void mlcomm_revoke_serve(struct mlcomm_comm *comm) {
  if (comm->revoked) return;
  int flag = 0;
  MPI_Status st;
  if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_REVOKE, comm->diag_comm, &flag, &st) != MPI_SUCCESS || !flag)
    return;
  long long m[3] = {0, -1, -1};
  if (MPI_Recv(m, 3, MPI_LONG_LONG, st.MPI_SOURCE, TAG_REVOKE, comm->diag_comm, MPI_STATUS_IGNORE) !=
          MPI_SUCCESS ||
      m[0] != REVOKE_MAGIC)
    return;
  int failed = (int)m[2];
  char why[MLCOMM_ERRMSG_LEN / 2];
  if (failed >= 0)
    snprintf(why, sizeof why,
             "rank %d failed first; rank %d revoked the communicator (mlcommCommRevoke) and every "
             "call on it fails now. Build a new one with mlcommCommShrink, or abort it",
             failed, st.MPI_SOURCE);
  else
    snprintf(why, sizeof why,
             "rank %d revoked the communicator (mlcommCommRevoke) without naming a failed rank; "
             "every call on it fails now. Build a new one with mlcommCommShrink, or abort it",
             st.MPI_SOURCE);
  mlcomm_comm_fail(comm, st.MPI_SOURCE, failed, why);
}

/* Tells every peer not known to be dead; the few bytes go eagerly, so nothing here
 * waits on a peer, dead or alive. */
static void notify_peers(struct mlcomm_comm *comm) {
  long long m[3] = {REVOKE_MAGIC, comm->rank, comm->failed_rank};
  for (int r = 0; r < comm->nranks; r++) {
    if (r == comm->rank || mlcomm_peer_dead(comm, r)) continue;
    MPI_Request req;
    if (MPI_Isend(m, 3, MPI_LONG_LONG, r, TAG_REVOKE, comm->diag_comm, &req) == MPI_SUCCESS)
      MPI_Request_free(&req);
  }
}

mlcommResult_t mlcomm_comm_revoke(struct mlcomm_comm *comm) {
  if (comm->revoked) return mlcommSuccess;
  if (comm->failed_rank < 0) comm->failed_rank = first_dead(comm);
  char why[MLCOMM_ERRMSG_LEN / 2];
  int k;
  if (comm->failed_rank >= 0)
    k = snprintf(why, sizeof why, "rank %d failed first; rank %d revoked the communicator "
                 "(mlcommCommRevoke)", comm->failed_rank, comm->rank);
  else
    k = snprintf(why, sizeof why, "rank %d revoked the communicator (mlcommCommRevoke) without a "
                 "failed rank in sight", comm->rank);
  if (comm->first_failure[0] && k > 0 && (size_t)k < sizeof why)
    snprintf(why + k, sizeof why - (size_t)k, " (the first error here: %.300s)", comm->first_failure);
  mlcomm_append(why, sizeof why, "; every call on it fails now. Build a new one with "
                "mlcommCommShrink, or abort it");
  notify_peers(comm); /* first: a peer told by the shm segment then finds the notice too */
  mlcomm_comm_fail(comm, comm->rank, comm->failed_rank, why);
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommCommRevoke(mlcommComm_t comm) {
  MLCOMM_CHECK(mlcomm_comm_check(comm, "mlcommCommRevoke"));
  return mlcomm_comm_revoke(comm);
}

MLCOMM_API mlcommResult_t mlcommCommFailedRank(mlcommComm_t comm, int *rank) {
  MLCOMM_CHECK(mlcomm_comm_check(comm, "mlcommCommFailedRank"));
  if (rank == NULL)
    return mlcomm_error(comm, mlcommInvalidArgument, "mlcommCommFailedRank: rank is NULL");
  if (comm->failed_rank < 0 && (comm->revoked || comm->first_failure[0]))
    comm->failed_rank = first_dead(comm);
  *rank = comm->failed_rank;
  return mlcommSuccess;
}

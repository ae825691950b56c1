/*
 * mlcommCommShrink: the survivors of a communicator build a new one without its dead
 * ranks.
 *
 * Without an MPI that tolerates failures (ULFM's MPIX_Comm_shrink; Open MPI 4.1 as
 * Debian ships it has none), no MPI collective over the old communicator may be used:
 * the dead rank would be waited for forever. So the survivors first agree on who is
 * dead with point-to-point messages among themselves, bounded by the communicator's
 * timeout (each names the ranks it saw die, by the pid watch of fault.c; views are
 * merged until every survivor reports the same set), and then make the new MPI
 * communicator with MPI_Comm_create_group, which only the members of the group take
 * part in. Deaths are seen by pid, so this works where every rank is on one node; a
 * communicator spanning nodes is refused with mlcommUnsupported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define TAG_SHRINK 16 /* + round */
#define TAG_CREATE 15

struct agree {
  int n, me;
  char *dead, *theirs; /* n, and n * n */
  MPI_Request *rreq;
  char *sent;          /* (n + 1) rounds of n: what each round sent, owned by MPI until sent */
  MPI_Request *sreq;   /* (n + 1) * n */
};

/* The sends are done once every survivor has read them; a send to a rank that died
 * meanwhile may never be, and then MPI keeps its few bytes (they are not freed). */
static bool sends_done(struct agree *a) {
  int done = 0, total = (a->n + 1) * a->n;
  MPI_Testall(total, a->sreq, &done, MPI_STATUSES_IGNORE);
  if (!done)
    for (int i = 0; i < total; i++)
      if (a->sreq[i] != MPI_REQUEST_NULL) MPI_Request_free(&a->sreq[i]);
  return done != 0;
}

static void cancel_all(struct agree *a) {
  for (int r = 0; r < a->n; r++)
    if (a->rreq[r] != MPI_REQUEST_NULL) {
      MPI_Cancel(&a->rreq[r]);
      MPI_Request_free(&a->rreq[r]);
    }
}

/* One round: sends this rank's view to every survivor and reads theirs. *same tells
 * whether every view equals ours; a survivor that dies meanwhile is added to ours. */
static mlcommResult_t round_trip(struct mlcomm_comm *comm, struct agree *a, int round,
                                 bool *same) {
  int n = a->n;
  *same = true;
  char *sent = a->sent + (size_t)round * n;
  memcpy(sent, a->dead, (size_t)n); /* a->dead changes before the sends are done */
  for (int r = 0; r < n; r++) {
    a->rreq[r] = MPI_REQUEST_NULL;
    if (r == a->me || a->dead[r]) continue;
    MLCOMM_MPI_CHECK(comm, MPI_Isend(sent, n, MPI_CHAR, r, TAG_SHRINK + round, comm->diag_comm,
                                     &a->sreq[(size_t)round * n + r]));
    MLCOMM_MPI_CHECK(comm, MPI_Irecv(a->theirs + (size_t)r * n, n, MPI_CHAR, r, TAG_SHRINK + round,
                                     comm->diag_comm, &a->rreq[r]));
  }
  double t0 = mlcomm_now_ms(), last_check = t0;
  int timeout = comm->config.timeoutMs;
  for (;;) {
    int pending = -1;
    for (int r = 0; r < n; r++) {
      if (a->rreq[r] == MPI_REQUEST_NULL) continue;
      int done = 0;
      MLCOMM_MPI_CHECK(comm, MPI_Test(&a->rreq[r], &done, MPI_STATUS_IGNORE));
      if (done) {
        if (memcmp(a->theirs + (size_t)r * n, a->dead, (size_t)n) != 0) *same = false;
      } else if (pending < 0) {
        pending = r;
      }
    }
    if (pending < 0) return mlcommSuccess;
    double now = mlcomm_now_ms();
    if (now - last_check >= 50.0) {
      last_check = now;
      for (int r = 0; r < n; r++)
        if (a->rreq[r] != MPI_REQUEST_NULL && mlcomm_peer_dead(comm, r)) {
          MPI_Cancel(&a->rreq[r]);
          MPI_Request_free(&a->rreq[r]);
          a->dead[r] = 1;
          *same = false;
        }
    }
    if (timeout > 0 && now - t0 >= timeout) {
      cancel_all(a);
      return mlcomm_error(comm, mlcommTimeout,
                          "mlcommCommShrink: rank %d is alive but did not call mlcommCommShrink "
                          "within %d ms (every survivor must call it)",
                          pending, timeout);
    }
    mlcomm_backoff(now - t0, comm->spin_ms);
  }
}

static mlcommResult_t agree_on_dead(struct mlcomm_comm *comm, struct agree *a) {
  for (int r = 0; r < a->n; r++) a->dead[r] = (char)mlcomm_peer_dead(comm, r);
  if (comm->failed_rank >= 0 && comm->failed_rank != a->me) a->dead[comm->failed_rank] = 1;
  /* Views only grow, so after at most n rounds they are the same everywhere. */
  for (int round = 0; round <= a->n; round++) {
    bool same;
    MLCOMM_CHECK(round_trip(comm, a, round, &same));
    if (same) return mlcommSuccess;
    for (int r = 0; r < a->n; r++)
      if (r != a->me && !a->dead[r])
        for (int j = 0; j < a->n; j++) a->dead[j] |= a->theirs[(size_t)r * a->n + j];
    if (a->dead[a->me])
      return mlcomm_error(comm, mlcommRemoteError,
                          "mlcommCommShrink: the other survivors count this rank (%d) as failed",
                          a->me);
  }
  return mlcomm_error(comm, mlcommInternalError,
                      "mlcommCommShrink: the survivors did not agree on the failed ranks");
}

static mlcommResult_t make_group_comm(struct mlcomm_comm *comm, const char *dead, MPI_Comm *out) {
  int n = comm->nranks, k = 0;
  int *keep = malloc((size_t)n * sizeof *keep);
  if (keep == NULL) return mlcomm_error(comm, mlcommSystemError, "mlcommCommShrink: out of memory");
  for (int r = 0; r < n; r++)
    if (!dead[r]) keep[k++] = r;
  MPI_Group all, sub;
  int rc = MPI_Comm_group(comm->diag_comm, &all);
  if (rc == MPI_SUCCESS) {
    rc = MPI_Group_incl(all, k, keep, &sub);
    MPI_Group_free(&all);
  }
  if (rc == MPI_SUCCESS) {
    rc = MPI_Comm_create_group(comm->diag_comm, sub, TAG_CREATE, out);
    MPI_Group_free(&sub);
  }
  free(keep);
  if (rc != MPI_SUCCESS) return mlcomm_mpi_error(comm, rc, "MPI_Comm_create_group (mlcommCommShrink)");
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommCommShrink(mlcommComm_t comm, mlcommComm_t *newcomm) {
  static const char fn[] = "mlcommCommShrink";
  MLCOMM_CHECK(mlcomm_comm_check(comm, fn));
  if (newcomm == NULL)
    return mlcomm_error(comm, mlcommInvalidArgument, "%s: newcomm (the output) is NULL", fn);
  *newcomm = NULL;
  for (int r = 0; r < comm->nranks; r++)
    if (!mlcomm_peer_local(comm, r))
      return mlcomm_error(comm, mlcommUnsupported,
                          "%s: rank %d is on another node, where this rank cannot see whether "
                          "it died; shrinking needs an MPI with fault tolerance (ULFM's "
                          "MPIX_Comm_shrink), which this Open MPI lacks, so it works only on a "
                          "communicator within one node. Restart the job from a checkpoint "
                          "instead",
                          fn, r);
  MLCOMM_CHECK(mlcomm_comm_revoke(comm)); /* the old communicator fails everywhere */
  struct agree a = {.n = comm->nranks, .me = comm->rank};
  a.dead = calloc((size_t)a.n, 1);
  a.theirs = calloc((size_t)a.n * (size_t)a.n, 1);
  a.rreq = calloc((size_t)a.n, sizeof *a.rreq);
  a.sent = calloc((size_t)(a.n + 1) * (size_t)a.n, 1);
  a.sreq = malloc((size_t)(a.n + 1) * (size_t)a.n * sizeof *a.sreq);
  for (int i = 0; a.sreq && i < (a.n + 1) * a.n; i++) a.sreq[i] = MPI_REQUEST_NULL;
  mlcommResult_t res = a.dead && a.theirs && a.rreq && a.sent && a.sreq
                           ? mlcommSuccess
                           : mlcomm_error(comm, mlcommSystemError, "%s: out of memory", fn);
  MPI_Comm sub = MPI_COMM_NULL;
  if (res == mlcommSuccess) res = agree_on_dead(comm, &a);
  if (res == mlcommSuccess) res = make_group_comm(comm, a.dead, &sub);
  if (res == mlcommSuccess) {
    res = mlcomm_comm_from_mpi(newcomm, sub, &comm->config, fn);
    if (res != mlcommSuccess) {
      MPI_Comm_free(&sub);
      char why[MLCOMM_ERRMSG_LEN];
      snprintf(why, sizeof why, "%s", mlcommGetLastError(NULL));
      mlcomm_error(comm, res, "%s", why);
    } else {
      int gone = 0;
      for (int r = 0; r < a.n; r++) gone += a.dead[r];
      MLCOMM_INFO("comm %p shrunk to %p: %d rank(s) left out", (void *)comm, (void *)*newcomm, gone);
    }
  }
  if (a.sreq && sends_done(&a)) free(a.sent);
  free(a.sreq);
  free(a.dead);
  free(a.theirs);
  free(a.rreq);
  return res;
}

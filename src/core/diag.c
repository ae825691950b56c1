/*
 * Timeout diagnosis. A rank whose wait timed out asks every peer, on a communicator of
 * its own, how many collectives it has started and which one it called at the
 * timed-out sequence number. Peers answer while they wait inside mlcomm; a peer that
 * does not answer is busy outside the library, hung, or dead. The answers turn "it
 * hung" into "rank 3 never called mlcommAllReduce seq 17".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/params.h"

MLCOMM_PARAM_EXTERN(DiagMs);

#define TAG_QUERY 1
#define TAG_REPLY 2
#define QUERY_MAGIC 0x71756572ll
#define REPLY_MAGIC 0x7265706cll

enum { Q_MAGIC, Q_ID, Q_SEQ, Q_LEN };
enum { R_MAGIC, R_ID, R_STARTED, R_KIND, R_LEN };

static int kind_at(const struct mlcomm_comm *comm, uint64_t seq) {
  if (seq >= comm->coll_seq || comm->coll_seq - seq > MLCOMM_SEQ_RING) return -1;
  return comm->seq_kinds[seq % MLCOMM_SEQ_RING];
}

void mlcomm_diag_serve(struct mlcomm_comm *comm) {
  mlcomm_revoke_serve(comm);
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_QUERY, comm->diag_comm, &flag, &st) != MPI_SUCCESS || !flag)
      return;
    long long q[Q_LEN];
    if (MPI_Recv(q, Q_LEN, MPI_LONG_LONG, st.MPI_SOURCE, TAG_QUERY, comm->diag_comm,
                 MPI_STATUS_IGNORE) != MPI_SUCCESS || q[Q_MAGIC] != QUERY_MAGIC)
      return;
    long long r[R_LEN] = {REPLY_MAGIC, q[Q_ID], (long long)comm->coll_seq,
                          kind_at(comm, (uint64_t)q[Q_SEQ])};
    /* A few bytes: sent eagerly, so this cannot block on the asker. */
    MPI_Send(r, R_LEN, MPI_LONG_LONG, st.MPI_SOURCE, TAG_REPLY, comm->diag_comm);
  }
}


void mlcomm_diag_report(struct mlcomm_comm *comm, const struct mlcomm_op *op, char *buf,
                        size_t len) {
  int n = comm->nranks;
  static long long next_id = 1;
  long long id = (next_id++ << 20) | comm->rank;
  long long q[Q_LEN] = {QUERY_MAGIC, id, (long long)op->seq};
  long long(*r)[R_LEN] = calloc((size_t)n, sizeof *r);
  MPI_Request *rreq = calloc((size_t)n, sizeof *rreq), *sreq = calloc((size_t)n, sizeof *sreq);
  char *got = calloc((size_t)n, 1);
  buf[0] = '\0';
  if (!r || !rreq || !sreq || !got) {
    snprintf(buf, len, "out of memory while asking the peers");
    goto out;
  }
  for (int p = 0; p < n; p++) {
    rreq[p] = sreq[p] = MPI_REQUEST_NULL;
    if (p == comm->rank) continue;
    MPI_Irecv(r[p], R_LEN, MPI_LONG_LONG, p, TAG_REPLY, comm->diag_comm, &rreq[p]);
    MPI_Isend(q, Q_LEN, MPI_LONG_LONG, p, TAG_QUERY, comm->diag_comm, &sreq[p]);
  }
  double t0 = mlcomm_now_ms(), deadline = t0 + (double)mlcomm_param(comm, &mlcomm_param_DiagMs);
  int pending = n - 1;
  while (pending > 0 && mlcomm_now_ms() < deadline) {
    for (int p = 0; p < n; p++) {
      int done = 0;
      if (rreq[p] == MPI_REQUEST_NULL) continue;
      MPI_Test(&rreq[p], &done, MPI_STATUS_IGNORE);
      if (!done) continue;
      if (r[p][R_MAGIC] == REPLY_MAGIC && r[p][R_ID] == id) {
        got[p] = 1;
        pending--;
      } else {
        /* A late answer to an earlier question: drop it and keep listening. */
        MPI_Irecv(r[p], R_LEN, MPI_LONG_LONG, p, TAG_REPLY, comm->diag_comm, &rreq[p]);
      }
    }
    mlcomm_diag_serve(comm); /* a peer may be timing out and asking us too */
    mlcomm_backoff(mlcomm_now_ms() - t0, comm->spin_ms);
  }
  for (int p = 0; p < n; p++) {
    if (rreq[p] != MPI_REQUEST_NULL) {
      MPI_Cancel(&rreq[p]);
      MPI_Wait(&rreq[p], MPI_STATUS_IGNORE);
    }
    int done = 0;
    if (sreq[p] != MPI_REQUEST_NULL) MPI_Test(&sreq[p], &done, MPI_STATUS_IGNORE);
    if (sreq[p] != MPI_REQUEST_NULL && !done) MPI_Request_free(&sreq[p]);
  }

  /* Three lists: never answered, answered but not there, and there. */
  const char *self = mlcomm_op_kind_name(op->kind);
  mlcomm_append(buf, len, "ranks that have not arrived:");
  int missing = 0;
  for (int p = 0; p < n; p++) {
    if (p == comm->rank) continue;
    if (!got[p]) {
      mlcomm_append(buf, len, "%s %d (no answer within %lld ms: busy outside mlcomm, hung or dead)",
             missing ? "," : "", p, (long long)mlcomm_param(comm, &mlcomm_param_DiagMs));
      missing++;
    } else if ((uint64_t)r[p][R_STARTED] <= op->seq) {
      mlcomm_append(buf, len, "%s %d (has started only %lld collectives, so not seq %llu)",
             missing ? "," : "", p,
             r[p][R_STARTED], (unsigned long long)op->seq);
      missing++;
    } else if (r[p][R_KIND] >= 0 && r[p][R_KIND] != (long long)op->kind) {
      mlcomm_append(buf, len, "%s %d (called %s as seq %llu instead: collectives were called in a "
             "different order)", missing ? "," : "", p, mlcomm_op_kind_name((enum mlcomm_op_kind)r[p][R_KIND]),
             (unsigned long long)op->seq);
      missing++;
    }
  }
  if (missing == 0) mlcomm_append(buf, len, " none (every rank reached %s; MPI itself is stuck)", self);
  mlcomm_append(buf, len, "; arrived:");
  for (int p = 0; p < n; p++) {
    bool there = p == comm->rank ||
                 (got[p] && (uint64_t)r[p][R_STARTED] > op->seq &&
                  (r[p][R_KIND] < 0 || r[p][R_KIND] == (long long)op->kind));
    if (there) mlcomm_append(buf, len, " %d", p);
  }
out:
  free(r);
  free(rreq);
  free(sreq);
  free(got);
}

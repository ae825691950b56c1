/*
 * Point-to-point over MPI with matched probes. A receive is not posted blindly: it
 * takes a message only once MPI_Improbe has matched one and its size is known, so a
 * message too large for the buffer is refused and kept, never truncated or lost.
 * Messages a probe has seen are held (their MPI_Message) and offered first to the
 * next matching receive, which makes probe-then-receive exact even with wildcards.
 * Pending receives match in the order they were posted, as MPI's do.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "backends/mpi/mpi_internal.h"
#include "collectives/reduce.h"

struct mpi_recv {
  struct mlcomm_op *op;
  struct mpi_op *mo;
  bool matched;
  mlcommResult_t refused; /* set when the matched message did not fit or MPI failed */
  char why[320];          /* its sentence, reported when this receive completes */
  struct mpi_recv *next;
};

static bool matches(int want_src, int want_tag, int src, int tag) {
  return (want_src == MLCOMM_ANY_SOURCE || want_src == src) &&
         (want_tag == MLCOMM_ANY_TAG || want_tag == tag);
}

static mlcommResult_t mpi_p2p_fail(struct mpi_state *st, const struct mlcomm_op *op, int rc,
                                   const char *call) {
  char what[160];
  snprintf(what, sizeof what, "%s (peer %d, tag %d): %s", mlcomm_op_kind_name(op->kind),
           op->peer, op->tag, call);
  return mlcomm_mpi_error(st->comm, rc, what);
}

/* The first held message matching src/tag, in arrival order. */
static struct mpi_held *held_find(struct mpi_state *st, int src, int tag) {
  for (struct mpi_held *h = st->held; h; h = h->next)
    if (matches(src, tag, h->source, h->tag)) return h;
  return NULL;
}

static void held_append(struct mpi_state *st, struct mpi_held *h) {
  struct mpi_held **p = &st->held;
  while (*p) p = &(*p)->next;
  h->next = NULL;
  *p = h;
}

/* Moves every message that has arrived into the held list, in arrival order. Matching
 * then happens against that list alone, so receives take messages in the order they
 * were posted: were each receive to ask MPI for its own pattern in turn, a message
 * arriving between two such questions would go to the later receive. */
static mlcommResult_t drain(struct mpi_state *st) {
  for (;;) {
    struct mpi_held *h = malloc(sizeof *h); /* before matching: a match cannot be undone */
    if (h == NULL) return mlcomm_error(st->comm, mlcommSystemError, "out of memory holding a message");
    int flag = 0;
    MPI_Status status;
    int rc = MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, st->comm->p2p_comm, &flag, &h->msg, &status);
    if (rc != MPI_SUCCESS || !flag) {
      free(h);
      if (rc != MPI_SUCCESS) return mlcomm_mpi_error(st->comm, rc, "MPI_Improbe");
      return mlcommSuccess;
    }
    int bytes = 0;
    MPI_Get_count(&status, MPI_BYTE, &bytes);
    h->source = status.MPI_SOURCE;
    h->tag = status.MPI_TAG;
    h->bytes = (size_t)bytes;
    held_append(st, h);
  }
}

/* Gives the held message h to receive r: posts the MPI receive, or refuses it. A
 * failure belongs to r (r->refused), whichever request's progress got here. */
static void deliver(struct mpi_state *st, struct mpi_recv *r, struct mpi_held *h) {
  struct mlcomm_op *op = r->op;
  size_t capacity = op->count * mlcomm_type_size(op->dtype);
  r->matched = true;
  if (h->bytes > capacity) {
    snprintf(r->why, sizeof r->why,
             "mlcommRecv: the message from rank %d with tag %d is %zu bytes but recvbuff "
             "holds %zu (count %zu of %s); it was not received: probe it and receive it "
             "with a larger buffer",
             h->source, h->tag, h->bytes, capacity, op->count, mlcomm_type_name(op->dtype));
    r->refused = mlcommInvalidArgument;
    return; /* h stays held, first in line */
  }
  for (struct mpi_held **p = &st->held; *p; p = &(*p)->next)
    if (*p == h) {
      *p = h->next;
      break;
    }
  op->status = (mlcommStatus_t){.source = h->source, .tag = h->tag, .bytes = h->bytes};
  int rc = MPI_Imrecv(r->mo->recv, (int)h->bytes, MPI_BYTE, &h->msg, &r->mo->req);
  free(h);
  if (rc != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, text, &len);
    snprintf(r->why, sizeof r->why, "mlcommRecv (peer %d, tag %d): MPI_Imrecv failed: %s",
             op->peer, op->tag, text);
    r->refused = mlcommInternalError;
  }
}

/* Offers what has arrived to pending receives, in posting order. */
static mlcommResult_t match_pending(struct mpi_state *st) {
  MLCOMM_CHECK(drain(st));
  for (struct mpi_recv *r = st->recvs; r; r = r->next) {
    if (r->matched) continue;
    struct mpi_held *h = held_find(st, r->op->peer, r->op->tag);
    if (h) deliver(st, r, h);
  }
  return mlcommSuccess;
}

static void recv_unlink(struct mpi_state *st, struct mpi_recv *r) {
  for (struct mpi_recv **p = &st->recvs; *p; p = &(*p)->next)
    if (*p == r) {
      *p = r->next;
      return;
    }
}

mlcommResult_t mpi_p2p_start(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo) {
  size_t bytes = op->count * mlcomm_type_size(op->dtype);
  mo->req = MPI_REQUEST_NULL;
  if (bytes > INT_MAX)
    return mlcomm_error(st->comm, mlcommUnsupported,
                        "%s: %zu bytes exceed the MPI transport's limit of %d bytes per message; "
                        "split the message",
                        mlcomm_op_kind_name(op->kind), bytes, INT_MAX);
  MLCOMM_CHECK(mpi_stage_in(st, op, mo));
  if (op->kind == MLCOMM_OP_SEND) {
    int rc = MPI_Isend(mo->send, (int)bytes, MPI_BYTE, op->peer, op->tag, st->comm->p2p_comm,
                       &mo->req);
    if (rc != MPI_SUCCESS) return mpi_p2p_fail(st, op, rc, "MPI_Isend");
    return mlcommSuccess;
  }
  struct mpi_recv *r = calloc(1, sizeof *r);
  if (r == NULL) return mlcomm_error(st->comm, mlcommSystemError, "mlcommRecv: out of memory");
  r->op = op;
  r->mo = mo;
  struct mpi_recv **p = &st->recvs;
  while (*p) p = &(*p)->next;
  *p = r;
  mo->recv_entry = r;
  return match_pending(st);
}

mlcommResult_t mpi_p2p_progress(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo,
                                bool *done) {
  struct mpi_recv *r = mo->recv_entry;
  if (r && !r->matched) {
    MLCOMM_CHECK(match_pending(st));
    if (!r->matched) return mlcommSuccess;
  }
  if (r && r->refused != mlcommSuccess) return mlcomm_error(st->comm, r->refused, "%s", r->why);
  int flag = 0;
  int rc = MPI_Test(&mo->req, &flag, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) return mpi_p2p_fail(st, op, rc, "MPI_Test");
  if (!flag) return mlcommSuccess;
  MLCOMM_CHECK(mpi_stage_out(st, op, mo));
  *done = true;
  return mlcommSuccess;
}

void mpi_p2p_release(struct mpi_state *st, struct mpi_op *mo, bool aborting) {
  if (mo->recv_entry) {
    recv_unlink(st, mo->recv_entry);
    free(mo->recv_entry);
    mo->recv_entry = NULL;
  }
  /* Point-to-point requests may be freed while active; MPI finishes them quietly. */
  if (aborting && mo->req != MPI_REQUEST_NULL) MPI_Request_free(&mo->req);
}

bool mpi_p2p_withdraw(void *state, struct mlcomm_op *op) {
  struct mpi_op *mo = op->tstate;
  (void)state;
  /* Nothing of an unmatched receive is in MPI's hands: no buffer, no request. */
  return op->kind == MLCOMM_OP_RECV && mo && mo->recv_entry && !mo->recv_entry->matched;
}

mlcommResult_t mpi_probe(void *state, int peer, int tag, int *found, mlcommStatus_t *status) {
  struct mpi_state *st = state;
  *found = 0;
  /* Receives posted earlier have first claim on what has arrived; the probe sees what
   * is left, which is exactly what the next matching receive will get. */
  MLCOMM_CHECK(match_pending(st));
  struct mpi_held *h = held_find(st, peer, tag);
  if (h == NULL) return mlcommSuccess;
  *found = 1;
  *status = (mlcommStatus_t){.source = h->source, .tag = h->tag, .bytes = h->bytes};
  return mlcommSuccess;
}

void mpi_p2p_fini(struct mpi_state *st) {
  /* Probed but never received: receive and drop, so MPI holds nothing for us. */
  while (st->held) {
    struct mpi_held *h = st->held;
    st->held = h->next;
    void *sink = malloc(h->bytes ? h->bytes : 1);
    if (sink) MPI_Mrecv(sink, (int)h->bytes, MPI_BYTE, &h->msg, MPI_STATUS_IGNORE);
    free(sink);
    free(h);
  }
}

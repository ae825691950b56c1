/*
 * Running a call's steps (hier.h). A step starts when the step it waits for is done
 * and every earlier step on the same internal communicator has started: the order in
 * which steps are listed is therefore the order in which every rank starts them on
 * each internal communicator, whatever the timing, which is what the shm and mpi
 * transports need (collectives in one order on every rank).
 */
#include <stdlib.h>
#include <string.h>

#include "backends/hier/hier.h"
#include "collectives/reduce.h"

static int grow(struct hier_op *ho) {
  if (ho->nsteps < ho->cap) return 0;
  int cap = ho->cap ? 2 * ho->cap : 16;
  struct hier_step *more = realloc(ho->steps, (size_t)cap * sizeof *more);
  if (more == NULL) return -1;
  ho->steps = more;
  ho->cap = cap;
  return 0;
}

int hier_add(struct hier_op *ho, enum hier_where where, const struct mlcomm_op *op, int dep) {
  if (grow(ho) != 0) return -1;
  ho->steps[ho->nsteps] = (struct hier_step){.where = where, .op = *op, .dep = dep};
  return ho->nsteps++;
}

int hier_add_local(struct hier_op *ho, hier_local_fn run, size_t off, size_t len, int dep) {
  if (grow(ho) != 0) return -1;
  ho->steps[ho->nsteps] =
      (struct hier_step){.where = HIER_LOCAL, .run = run, .off = off, .len = len, .dep = dep};
  return ho->nsteps++;
}

struct mlcomm_op hier_sub(const struct mlcomm_op *op, enum mlcomm_op_kind kind, const void *send,
                          void *recv, size_t count, int root) {
  return (struct mlcomm_op){.kind = kind, .sendbuf = send, .recvbuf = recv, .count = count,
                            .dtype = op->dtype, .redop = hier_redop(op), .root = root,
                            .send_mem = MLCOMM_MEM_HOST, .recv_mem = MLCOMM_MEM_HOST,
                            .send_dev = -1, .recv_dev = -1, .alg = -1};
}

mlcommRedOp_t hier_redop(const struct mlcomm_op *op) {
  return op->redop == mlcommAvg ? mlcommSum : op->redop;
}

void hier_avg(struct hier_state *st, struct hier_op *ho, size_t off, size_t len) {
  size_t es = mlcomm_type_size(ho->op->dtype);
  mlcomm_avg_finish(ho->op->dtype, (char *)ho->op->recvbuf + off * es, len, st->comm->nranks);
}

size_t hier_slice_elems(const struct hier_state *st, const struct mlcomm_op *op) {
  size_t per = st->slice_bytes / mlcomm_type_size(op->dtype) / (size_t)st->L;
  return (per ? per : 1) * (size_t)st->L;
}

static struct mlcomm_comm *where_comm(struct hier_state *st, enum hier_where w) {
  return w == HIER_NODE ? st->node : st->rail;
}

/* The internal failure as the caller's sentence. */
static mlcommResult_t fail(struct hier_state *st, struct hier_op *ho, const struct hier_step *s,
                           mlcommResult_t res) {
  st->failed = res;
  const struct mlcomm_comm *sub = where_comm(st, s->where);
  return mlcomm_error(st->comm, res, "%s (seq %llu) on the hier transport: the %s step (%s) "
                      "failed: %s",
                      mlcomm_op_kind_name(ho->op->kind), (unsigned long long)ho->op->seq,
                      s->where == HIER_NODE ? "inside-the-node" : "between-nodes",
                      mlcomm_op_kind_short(s->op.kind), sub->last_error);
}

/* Starts step i if it may start now. */
static mlcommResult_t try_issue(struct hier_state *st, struct hier_op *ho, int i, bool *blocked) {
  struct hier_step *s = &ho->steps[i];
  if (s->dep >= 0 && !ho->steps[s->dep].done) return mlcommSuccess;
  if (s->where == HIER_LOCAL) {
    s->run(st, ho, s->off, s->len);
    s->issued = s->done = true;
    return mlcommSuccess;
  }
  if (*blocked) return mlcommSuccess; /* an earlier step on this communicator waits */
  mlcommResult_t res = mlcomm_subcomm_start(where_comm(st, s->where), &s->op, &s->req);
  if (res != mlcommSuccess) return fail(st, ho, s, res);
  s->issued = true;
  return mlcommSuccess;
}

bool hier_run(struct hier_state *st, struct hier_op *ho) {
  for (bool moved = true; moved && ho->result == mlcommSuccess;) {
    moved = false;
    /* node, rail: an earlier step has not started; local steps wait only for their dep */
    bool blocked[3] = {false, false, false};
    for (int i = ho->next; i < ho->nsteps; i++) {
      struct hier_step *s = &ho->steps[i];
      if (!s->issued) {
        bool *b = &blocked[s->where];
        ho->result = try_issue(st, ho, i, b);
        if (ho->result != mlcommSuccess) return true;
        if (!s->issued && s->where != HIER_LOCAL) *b = true;
        moved = moved || s->issued;
      }
      if (s->issued && !s->done) {
        bool done = false;
        mlcommResult_t res = mlcomm_subcomm_test(s->req, &done);
        if (done) s->req = NULL;
        if (res != mlcommSuccess) {
          ho->result = fail(st, ho, s, res);
          return true;
        }
        s->done = done;
        moved = moved || done;
      }
    }
    while (ho->next < ho->nsteps && ho->steps[ho->next].done) ho->next++;
  }
  return ho->result != mlcommSuccess || ho->next == ho->nsteps;
}

void hier_op_clear(struct hier_op *ho) {
  /* Internal requests still in flight belong to the internal communicators now; an
   * abort or the failure that left them there tears those down (transport.c). */
  free(ho->steps);
  free(ho->tmp);
  memset(ho, 0, sizeof *ho);
}

/* pp.c - the 1F1B pipeline schedule over mlcomm send/recv (pp.h). */
#include "pp.h"

#include <stdlib.h>

enum { TAG_ACT = 0, TAG_GRAD = 1 };

int pp_slots(int P, int r, int M) { return P - r < M ? P - r : M; }

typedef struct {
  stage *s;
  int M, prev, next; /* pp ranks of the neighbours, -1 at the ends */
  size_t btc;
  mlcommRequest_t *act_recv, *grad_recv, *act_send, *grad_send; /* per slot */
} sched;

static void note(stage *s, mlcommResult_t r) {
  if (r != mlcommSuccess && s->failed == mlcommSuccess) s->failed = r;
}

static void wait(sched *p, mlcommRequest_t *req) {
  if (*req == MLCOMM_REQUEST_NULL) return;
  note(p->s, GRID_CALL(p->s->g, TRAFFIC_PP, 0, mlcommWait(req, NULL)));
}

static void post_act_recv(sched *p, int j) {
  stage *s = p->s;
  if (p->prev < 0 || j >= p->M) return;
  int sl = j % s->nslots;
  note(s, GRID_CALL(s->g, TRAFFIC_PP, 0,
                    mlcommRecvAsync(s->slots[sl].input, p->btc, mlcommFloat32, p->prev, TAG_ACT,
                                    s->g->pp_comm, &p->act_recv[sl])));
}

static void bind(sched *p, int j, const int *inputs, const int *targets) {
  stage *s = p->s;
  size_t off = (size_t)j * s->Bm * s->T;
  s->slots[j % s->nslots].inputs = inputs + off;
  s->slots[j % s->nslots].targets = targets + off;
}

static double forward(sched *p, int j, const int *inputs, const int *targets) {
  stage *s = p->s;
  grid *g = s->g;
  int sl = j % s->nslots;
  wait(p, &p->act_recv[sl]);
  wait(p, &p->act_send[sl]); /* the output buffer, last sent for micro-batch j - slots */
  bind(p, j, inputs, targets);
  double loss = stage_forward(s, sl);
  if (p->next < 0) return loss;
  /* send this output and ask for its gradient together */
  mlcommGroupStart();
  note(s, GRID_CALL(g, TRAFFIC_PP, p->btc * sizeof(float),
                    mlcommSendAsync(stage_output(s, sl), p->btc, mlcommFloat32, p->next, TAG_ACT,
                                    g->pp_comm, &p->act_send[sl])));
  note(s, GRID_CALL(g, TRAFFIC_PP, 0,
                    mlcommRecvAsync(s->slots[sl].gradin, p->btc, mlcommFloat32, p->next,
                                    TAG_GRAD, g->pp_comm, &p->grad_recv[sl])));
  note(s, GRID_CALL(g, TRAFFIC_PP, 0, mlcommGroupEnd()));
  return loss;
}

static void backward(sched *p, int j, float dloss) {
  stage *s = p->s;
  grid *g = s->g;
  int sl = j % s->nslots;
  wait(p, &p->grad_recv[sl]);
  wait(p, &p->grad_send[sl]);
  stage_backward(s, sl, dloss, j == p->M - 1);
  /* the slot is free: pass the gradient back and receive the input that reuses it */
  mlcommGroupStart();
  if (p->prev >= 0)
    note(s, GRID_CALL(g, TRAFFIC_PP, p->btc * sizeof(float),
                      mlcommSendAsync(s->slots[sl].dinput, p->btc, mlcommFloat32, p->prev,
                                      TAG_GRAD, g->pp_comm, &p->grad_send[sl])));
  post_act_recv(p, j + s->nslots);
  note(s, GRID_CALL(g, TRAFFIC_PP, 0, mlcommGroupEnd()));
}

static int sched_open(sched *p, stage *s, int M) {
  const grid *g = s->g;
  *p = (sched){.s = s, .M = M, .btc = (size_t)s->Bm * s->T * s->cfg.channels};
  p->prev = g->pp_rank > 0 ? g->pp_rank - 1 : -1;
  p->next = g->pp_rank < g->pp - 1 ? g->pp_rank + 1 : -1;
  p->act_recv = calloc(4 * (size_t)s->nslots, sizeof(mlcommRequest_t));
  if (!p->act_recv) return -1;
  p->grad_recv = p->act_recv + s->nslots;
  p->act_send = p->grad_recv + s->nslots;
  p->grad_send = p->act_send + s->nslots;
  return 0;
}

static void sched_close(sched *p) {
  for (int i = 0; i < 4 * p->s->nslots; i++) wait(p, &p->act_recv[i]);
  free(p->act_recv);
}

double pp_train(stage *s, int M, const int *inputs, const int *targets, float dloss) {
  sched p;
  if (sched_open(&p, s, M) != 0) return note(s, mlcommSystemError), 0.0;
  const int warmup = pp_slots(s->g->pp, s->g->pp_rank, M) - 1;
  double loss = 0.0;
  for (int j = 0; j < s->nslots; j++) post_act_recv(&p, j);
  for (int j = 0; j < warmup; j++) loss += forward(&p, j, inputs, targets);
  for (int k = 0; k < M - warmup; k++) {
    loss += forward(&p, warmup + k, inputs, targets);
    backward(&p, k, dloss);
  }
  for (int k = M - warmup; k < M; k++) backward(&p, k, dloss);
  sched_close(&p);
  return loss;
}

double pp_forward(stage *s, int M, const int *inputs, const int *targets) {
  sched p;
  if (sched_open(&p, s, M) != 0) return note(s, mlcommSystemError), 0.0;
  double loss = 0.0;
  for (int j = 0; j < M; j++) { /* one slot, one micro-batch at a time */
    wait(&p, &p.act_send[0]);
    if (p.prev >= 0) {
      note(s, GRID_CALL(s->g, TRAFFIC_PP, 0,
                        mlcommRecv(s->slots[0].input, p.btc, mlcommFloat32, p.prev, TAG_ACT,
                                   s->g->pp_comm, NULL)));
    }
    s->slots[0].inputs = inputs + (size_t)j * s->Bm * s->T;
    s->slots[0].targets = targets + (size_t)j * s->Bm * s->T;
    loss += stage_forward(s, 0);
    if (p.next >= 0)
      note(s, GRID_CALL(s->g, TRAFFIC_PP, 0,
                        mlcommSendAsync(stage_output(s, 0), p.btc, mlcommFloat32, p.next, TAG_ACT,
                                        s->g->pp_comm, &p.act_send[0])));
  }
  sched_close(&p);
  return loss;
}

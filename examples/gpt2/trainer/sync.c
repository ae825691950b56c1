/* sync.c - the three ways ranks combine their work (sync.h). */
#include "sync.h"

#include "layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHARD_ALIGN 16 /* floats: shards start on 64-byte boundaries */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* r = call, an mlcomm call whose time counts as communication. */
#define TIMED(s, r, call)             \
  do {                                \
    double t0_ = now();               \
    (r) = (call);                     \
    (s)->comm_seconds += now() - t0_; \
  } while (0)

static int fail(char *err, size_t errlen, trainer_sync *s, const char *what, mlcommResult_t r) {
  snprintf(err, errlen, "%s failed (%s): %s", what, mlcommGetErrorString(r),
           mlcommGetLastError(s->comm));
  return -1;
}

static float *comm_alloc(trainer_sync *s, size_t floats) {
  void *p = NULL;
  if (mlcommMemAlloc(s->comm, floats * sizeof(float), &p) != mlcommSuccess) return NULL;
  memset(p, 0, floats * sizeof(float));
  return p;
}

int sync_init(trainer_sync *s, const train_options *o, mlcommComm_t comm, const gpt2_model *model,
              char *err, size_t errlen) {
  const size_t n = model->layout.num_params;
  memset(s, 0, sizeof *s);
  s->model = model;
  s->B = o->B;
  s->T = o->T;
  s->mode = o->sync;
  s->comm = comm;
  mlcommCommRank(comm, &s->rank);
  mlcommCommCount(comm, &s->nranks);
  s->n = n;
  size_t unit = (size_t)s->nranks * SHARD_ALIGN;
  s->padded = (n + unit - 1) / unit * unit;
  s->shard = s->padded / s->nranks;
  s->inner_steps = o->inner_steps;
  s->outer_lr = o->outer_lr;
  s->outer_momentum = o->outer_momentum;
  s->params = comm_alloc(s, s->padded);
  s->grads = comm_alloc(s, s->padded);
  if (s->mode == SYNC_ZERO1) {
    s->opt_offset = (size_t)s->rank * s->shard;
    s->opt_count = s->shard;
  } else {
    s->opt_offset = 0;
    s->opt_count = n;
  }
  s->m = calloc(s->opt_count, sizeof(float));
  s->v = calloc(s->opt_count, sizeof(float));
  int ok = s->params && s->grads && s->m && s->v;
  if (ok && (s->mode == SYNC_ALLREDUCE || s->mode == SYNC_ZERO1) && s->nranks > 1) {
    size_t bt = (size_t)o->B * o->T * s->nranks;
    s->dx0_all = comm_alloc(s, bt * model->config.channels);
    s->inputs_all = calloc(bt, sizeof(int32_t));
    ok = s->dx0_all && s->inputs_all;
  }
  if (ok && s->mode == SYNC_DILOCO) {
    s->global = calloc(n, sizeof(float));
    s->momentum = calloc(n, sizeof(float));
    s->delta = comm_alloc(s, n);
    ok = s->global && s->momentum && s->delta;
  }
  if (!ok) {
    snprintf(err, errlen,
             "out of memory for parameters, gradients and optimizer state (%zu parameters)", n);
    sync_free(s);
    return -1;
  }
  return 0;
}

void sync_free(trainer_sync *s) {
  mlcommMemFree(s->params);
  mlcommMemFree(s->grads);
  mlcommMemFree(s->delta);
  mlcommMemFree(s->dx0_all);
  free(s->inputs_all);
  free(s->m);
  free(s->v);
  free(s->global);
  free(s->momentum);
  free(s->reqs);
  memset(s, 0, sizeof *s);
}

void sync_start(trainer_sync *s) {
  if (s->mode == SYNC_DILOCO) memcpy(s->global, s->params, s->n * sizeof(float));
}

void sync_begin_step(trainer_sync *s) { s->comm_seconds = 0.0; }

/* ---------------------------------------------------------------- allreduce */

/* Lets every reduction in flight advance: MPI progresses only inside library calls. */
static void poll(trainer_sync *s) {
  for (int i = 0; i < s->nreqs; i++) {
    if (s->reqs[i] == MLCOMM_REQUEST_NULL) continue;
    int done = 0;
    mlcommResult_t r;
    TIMED(s, r, mlcommTest(&s->reqs[i], &done, MLCOMM_STATUS_IGNORE));
    if (r != mlcommSuccess && s->failed == mlcommSuccess) s->failed = r;
  }
}

/* Room for k more requests; a failure is remembered for sync_step. */
static int reserve(trainer_sync *s, int k) {
  if (s->nreqs + k <= s->cap) return 1;
  int cap = s->cap ? 2 * s->cap : 16;
  while (cap < s->nreqs + k) cap *= 2;
  mlcommRequest_t *r = realloc(s->reqs, cap * sizeof *r);
  if (!r) {
    s->failed = mlcommSystemError;
    return 0;
  }
  s->reqs = r;
  s->cap = cap;
  return 1;
}

static void on_ready(void *ctx, size_t offset, size_t count) {
  trainer_sync *s = ctx;
  if (s->failed != mlcommSuccess) return;
  if (offset + count == s->n) count = s->padded - offset; /* the last range takes the pad */
  if (!reserve(s, 1)) return;
  float *g = s->grads + offset;
  mlcommResult_t r;
  TIMED(s, r,
        mlcommAllReduceAsync(g, g, count, mlcommFloat32, mlcommAvg, s->comm, &s->reqs[s->nreqs]));
  if (r != mlcommSuccess) {
    s->failed = r;
    return;
  }
  s->nreqs++;
  poll(s);
}

/* The encoder's share of the embeddings' gradient: gather every rank's. */
static void on_embeddings(void *ctx, const float *dx0, const int *inputs, int B, int T) {
  trainer_sync *s = ctx;
  if (s->failed != mlcommSuccess) return;
  size_t bt = (size_t)B * T, btc = bt * s->model->config.channels;
  if (B != s->B || T != s->T) {
    s->failed = mlcommInternalError; /* the buffers are sized for the run's batch */
    return;
  }
  if (!reserve(s, 2)) return;
  mlcommResult_t r;
  TIMED(s, r,
        mlcommAllGatherAsync(dx0, s->dx0_all, btc, mlcommFloat32, s->comm, &s->reqs[s->nreqs]));
  if (r == mlcommSuccess) {
    s->nreqs++;
    TIMED(
        s, r,
        mlcommAllGatherAsync(inputs, s->inputs_all, bt, mlcommInt32, s->comm, &s->reqs[s->nreqs]));
  }
  if (r != mlcommSuccess) {
    s->failed = r;
    return;
  }
  s->nreqs++;
  s->have_embeddings = 1;
  poll(s);
}

/* After the reductions: wte (averaged) += the average of every rank's encoder share,
 * wpe (zeroed by backward) = the same for positions, in rank order on every rank. */
static void add_embeddings(trainer_sync *s) {
  const gpt2_layout *lo = &s->model->layout;
  const int C = s->model->config.channels;
  const size_t btc = (size_t)s->B * s->T * C, total = btc * s->nranks;
  const float scale = 1.0f / s->nranks;
  float *d = s->dx0_all;
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < total; i++) d[i] *= scale;
  for (int r = 0; r < s->nranks; r++)
    gpt2_encoder_backward(s->grads + lo->wte, s->grads + lo->wpe, d + r * btc,
                          s->inputs_all + (size_t)r * s->B * s->T, s->B, s->T, C);
  s->have_embeddings = 0;
}

gpt2_grad_hook sync_grad_hook(trainer_sync *s) {
  gpt2_grad_hook h = {.ready = NULL};
  if (s->mode == SYNC_DILOCO) return h;
  h.ctx = s;
  if (s->mode == SYNC_ALLREDUCE) h.ready = on_ready;
  /* zero1 splits the embeddings' gradient too: summing each rank's whole wte gradient
   * rounds differently from adding the encoder's shares to the averaged head's, and
   * the two modes are to give the same bits */
  if (s->nranks > 1) h.embeddings = on_embeddings;
  return h;
}

/* Waits for the requests started during backward (zero1: the encoder's shares). */
static mlcommResult_t wait_hooked(trainer_sync *s) {
  mlcommResult_t r = s->failed;
  if (r == mlcommSuccess) TIMED(s, r, mlcommWaitAll(s->nreqs, s->reqs, NULL));
  s->nreqs = 0;
  s->failed = mlcommSuccess;
  return r;
}

/* ---------------------------------------------------------------- steps */

int sync_outer_step(trainer_sync *s, char *err, size_t errlen) {
  const size_t n = s->n;
  const float mu = s->outer_momentum, lr = s->outer_lr;
  float *global = s->global, *params = s->params, *delta = s->delta, *mom = s->momentum;
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) delta[i] = global[i] - params[i];
  mlcommResult_t r;
  TIMED(s, r, mlcommAllReduce(delta, delta, n, mlcommFloat32, mlcommAvg, s->comm));
  if (r != mlcommSuccess) return fail(err, errlen, s, "diloco: averaging the deltas", r);
    /* Nesterov: buf = mu*buf + g; p -= lr * (g + mu*buf) */
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    mom[i] = mu * mom[i] + delta[i];
    global[i] -= lr * (delta[i] + mu * mom[i]);
    params[i] = global[i];
  }
  return 0;
}

int sync_step(trainer_sync *s, const gpt2_adamw *opt, long step, int *outer, char *err,
              size_t errlen) {
  mlcommResult_t r;
  *outer = 0;
  switch (s->mode) {
    case SYNC_ALLREDUCE:
      r = wait_hooked(s);
      if (r != mlcommSuccess) return fail(err, errlen, s, "averaging gradients (all-reduce)", r);
      if (s->have_embeddings) add_embeddings(s);
      s->t++;
      gpt2_adamw_update(opt, s->params, s->grads, s->m, s->v, s->n, s->t);
      return 0;
    case SYNC_ZERO1: {
      float *mine = s->params + s->opt_offset;
      TIMED(s, r,
            mlcommReduceScatter(s->grads, s->grads + s->opt_offset, s->shard, mlcommFloat32,
                                mlcommAvg, s->comm));
      mlcommResult_t hooked = wait_hooked(s);
      if (r != mlcommSuccess)
        return fail(err, errlen, s, "averaging gradients (reduce-scatter)", r);
      if (hooked != mlcommSuccess)
        return fail(err, errlen, s, "gathering the encoder's gradients (all-gather)", hooked);
      /* all of wte and wpe, as allreduce mode does, though only this rank's shard is
       * used: the same code gives the same bits, and it is (nranks, B, T, C) adds */
      if (s->have_embeddings) add_embeddings(s);
      s->t++;
      gpt2_adamw_update(opt, mine, s->grads + s->opt_offset, s->m, s->v, s->shard, s->t);
      TIMED(s, r, mlcommAllGather(mine, s->params, s->shard, mlcommFloat32, s->comm));
      if (r != mlcommSuccess) return fail(err, errlen, s, "gathering parameters (all-gather)", r);
      return 0;
    }
    case SYNC_DILOCO:
      s->t++;
      gpt2_adamw_update(opt, s->params, s->grads, s->m, s->v, s->n, s->t);
      if (step % s->inner_steps != 0) return 0;
      *outer = 1;
      return sync_outer_step(s, err, errlen);
  }
  return 0;
}

int sync_average(trainer_sync *s, float *x, int count, char *err, size_t errlen) {
  mlcommResult_t r;
  TIMED(s, r, mlcommAllReduce(x, x, (size_t)count, mlcommFloat32, mlcommAvg, s->comm));
  return r == mlcommSuccess ? 0 : fail(err, errlen, s, "averaging the loss", r);
}

/* ---------------------------------------------------------------- optimizer state */

int sync_gather_optimizer(trainer_sync *s, float *m_out, float *v_out, char *err, size_t errlen) {
  if (s->mode != SYNC_ZERO1) {
    memcpy(m_out, s->m, s->n * sizeof(float));
    memcpy(v_out, s->v, s->n * sizeof(float));
    return 0;
  }
  /* gathered through one padded buffer (the gradients' memory is free between steps) */
  float *full = s->grads;
  float *outs[2] = {m_out, v_out}, *mine[2] = {s->m, s->v};
  for (int k = 0; k < 2; k++) {
    mlcommResult_t r;
    TIMED(s, r, mlcommAllGather(mine[k], full, s->shard, mlcommFloat32, s->comm));
    if (r != mlcommSuccess) return fail(err, errlen, s, "gathering the optimizer state", r);
    memmove(outs[k], full, s->n * sizeof(float));
  }
  memset(s->grads, 0, s->padded * sizeof(float));
  return 0;
}

void sync_load_optimizer(trainer_sync *s, const float *m_in, const float *v_in, long t) {
  size_t end = s->opt_offset + s->opt_count;
  size_t have = end <= s->n ? s->opt_count : s->opt_offset < s->n ? s->n - s->opt_offset : 0;
  memset(s->m, 0, s->opt_count * sizeof(float));
  memset(s->v, 0, s->opt_count * sizeof(float));
  if (have) {
    memcpy(s->m, m_in + s->opt_offset, have * sizeof(float));
    memcpy(s->v, v_in + s->opt_offset, have * sizeof(float));
  }
  s->t = t;
}

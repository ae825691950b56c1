/* dp.c - combining a part's gradients over its replicas, and AdamW (dp.h). */
#include "dp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void note(dp_sync *d, mlcommResult_t r) {
  if (r != mlcommSuccess && d->failed == mlcommSuccess) d->failed = r;
}

/* Starts the average of grads[off, off + cnt) over the replicas, and tests those in
 * flight so that MPI's progress runs while backward computes. */
static void start(dp_sync *d, size_t off, size_t cnt) {
  stage *s = d->s;
  grid *g = s->g;
  if (d->failed != mlcommSuccess || d->nreqs == d->cap) return;
  mlcommResult_t r = GRID_CALL(g, TRAFFIC_DP, cnt * sizeof(float),
                               mlcommAllReduceAsync(s->grads + off, s->grads + off, cnt,
                                                    mlcommFloat32, mlcommAvg, g->dp_comm,
                                                    &d->reqs[d->nreqs]));
  if (r == mlcommSuccess) d->nreqs++;
  note(d, r);
  for (int i = 0; i < d->nreqs; i++) {
    int done = 0;
    if (d->reqs[i] != MLCOMM_REQUEST_NULL)
      note(d, GRID_CALL(g, TRAFFIC_DP, 0, mlcommTest(&d->reqs[i], &done, NULL)));
  }
}

static void layer_ready(void *ctx, size_t off, size_t cnt) { start(ctx, off, cnt); }

int dp_init(dp_sync *d, stage *s, sync_mode mode, char *err, size_t errlen) {
  memset(d, 0, sizeof *d);
  if (s->g->dp == 1) mode = SYNC_ALLREDUCE; /* one replica: nothing to share or shard */
  d->mode = mode, d->s = s;
  d->k = stage_owned(s, d->off, d->cnt);
  for (int i = 0; i < d->k; i++) d->owned += d->cnt[i];
  if (mode != SYNC_ZERO1) {
    if (s->g->dp == 1) return 0;
    d->cap = s->nl + 4;
    d->reqs = calloc((size_t)d->cap, sizeof *d->reqs);
    if (!d->reqs) return snprintf(err, errlen, "out of memory"), -1;
    s->layer_ready = layer_ready, s->ready_ctx = d;
    return 0;
  }
  const size_t DP = (size_t)s->g->dp;
  d->shard = (d->owned + 16 * DP - 1) / (16 * DP) * 16;
  d->padded = d->shard * DP;
  d->pack = calloc(d->padded, sizeof(float));
  d->m = calloc(d->shard, sizeof(float));
  d->v = calloc(d->shard, sizeof(float));
  if (!d->pack || !d->m || !d->v) {
    snprintf(err, errlen, "out of memory for --sync zero1's buffers (%zu floats)", d->padded);
    return -1;
  }
  free(s->m), free(s->v);
  s->m = s->v = NULL;
  return 0;
}

void dp_free(dp_sync *d) {
  free(d->pack);
  free(d->m);
  free(d->v);
  free(d->reqs);
  memset(d, 0, sizeof *d);
}

/* the trained ranges of buf <-> the packed buffer */
static void pack(const dp_sync *d, float *buf, float *packed, int to_packed) {
  size_t p = 0;
  for (int i = 0; i < d->k; p += d->cnt[i], i++) {
    if (to_packed)
      memcpy(packed + p, buf + d->off[i], d->cnt[i] * sizeof(float));
    else
      memcpy(buf + d->off[i], packed + p, d->cnt[i] * sizeof(float));
  }
}

static mlcommResult_t allreduce_step(dp_sync *d, const gpt2_adamw *opt, long step) {
  stage *s = d->s;
  grid *g = s->g;
  if (g->dp > 1) { /* the layers' are in flight already: the embeddings and lnf now */
    for (int i = 0; i < d->k; i++)
      if (d->off[i] != s->part.layout.layers) start(d, d->off[i], d->cnt[i]);
    note(d, GRID_CALL(g, TRAFFIC_DP, 0, mlcommWaitAll(d->nreqs, d->reqs, NULL)));
    d->nreqs = 0;
    if (d->failed != mlcommSuccess) {
      mlcommResult_t r = d->failed;
      d->failed = mlcommSuccess;
      return r;
    }
  }
  for (int i = 0; i < d->k; i++)
    gpt2_adamw_update(opt, s->params + d->off[i], s->grads + d->off[i], s->m + d->off[i],
                      s->v + d->off[i], d->cnt[i], step);
  return mlcommSuccess;
}

static mlcommResult_t zero1_step(dp_sync *d, const gpt2_adamw *opt, long step) {
  stage *s = d->s;
  grid *g = s->g;
  float *mine = d->pack + (size_t)g->dp_rank * d->shard;
  pack(d, s->grads, d->pack, 1);
  memset(d->pack + d->owned, 0, (d->padded - d->owned) * sizeof(float));
  mlcommResult_t rc = GRID_CALL(g, TRAFFIC_DP, d->padded * sizeof(float),
                                mlcommReduceScatter(d->pack, mine, d->shard, mlcommFloat32,
                                                    mlcommAvg, g->dp_comm));
  if (rc != mlcommSuccess) return rc;
  /* the shard's gradient -> its parameters, updated in place */
  float *grad = malloc(d->shard * sizeof(float));
  if (!grad) return mlcommSystemError;
  memcpy(grad, mine, d->shard * sizeof(float));
  pack(d, s->params, d->pack, 1);
  gpt2_adamw_update(opt, mine, grad, d->m, d->v, d->shard, step);
  free(grad);
  rc = GRID_CALL(g, TRAFFIC_DP, d->shard * sizeof(float),
                 mlcommAllGather(mine, d->pack, d->shard, mlcommFloat32, g->dp_comm));
  if (rc == mlcommSuccess) pack(d, s->params, d->pack, 0);
  return rc;
}

mlcommResult_t dp_step(dp_sync *d, const gpt2_adamw *opt, long step) {
  stage *s = d->s;
  grid *g = s->g;
  if (g->emb_comm) { /* the tied wte: the encoder's share (first) and the head's (last) */
    size_t n = (size_t)s->vs * s->cfg.channels, at = s->part.layout.wte;
    mlcommResult_t rc = GRID_CALL(g, TRAFFIC_EMB, n * sizeof(float),
                                  mlcommAllReduce(s->grads + at, s->grads + at, n, mlcommFloat32,
                                                  mlcommSum, g->emb_comm));
    if (rc != mlcommSuccess) return rc;
  }
  return d->mode == SYNC_ZERO1 ? zero1_step(d, opt, step) : allreduce_step(d, opt, step);
}

mlcommResult_t dp_get_moments(dp_sync *d, float *m, float *v) {
  stage *s = d->s;
  const size_t n = s->part.layout.num_params;
  if (d->mode != SYNC_ZERO1) {
    memcpy(m, s->m, n * sizeof(float));
    memcpy(v, s->v, n * sizeof(float));
    return mlcommSuccess;
  }
  memset(m, 0, n * sizeof(float));
  memset(v, 0, n * sizeof(float));
  float *outs[2] = {m, v}, *mine[2] = {d->m, d->v};
  for (int k = 0; k < 2; k++) { /* through the pack buffer, free between steps */
    mlcommResult_t rc = mlcommAllGather(mine[k], d->pack, d->shard, mlcommFloat32, s->g->dp_comm);
    if (rc != mlcommSuccess) return rc;
    pack(d, outs[k], d->pack, 0);
  }
  return mlcommSuccess;
}

void dp_set_moments(dp_sync *d, const float *m, const float *v) {
  stage *s = d->s;
  if (d->mode != SYNC_ZERO1) {
    memcpy(s->m, m, s->part.layout.num_params * sizeof(float));
    memcpy(s->v, v, s->part.layout.num_params * sizeof(float));
    return;
  }
  const float *ins[2] = {m, v};
  float *mine[2] = {d->m, d->v};
  for (int k = 0; k < 2; k++) {
    memset(d->pack, 0, d->padded * sizeof(float));
    pack(d, (float *)ins[k], d->pack, 1);
    memcpy(mine[k], d->pack + (size_t)s->g->dp_rank * d->shard, d->shard * sizeof(float));
  }
}

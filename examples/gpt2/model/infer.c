/*
 * infer.c - generation: one position at a time, with each layer's keys and values of
 * earlier positions kept in a cache, so a token costs O(position) instead of a whole
 * forward pass over the sequence. Same arithmetic as gpt2_forward, as matrix-vector
 * products.
 *
 * On a tensor-parallel shard (gpt2_tp) the same loop runs at the shard's sizes: a
 * attention channels (its heads), f MLP units and its block of the output head, with the
 * shard's callbacks where the ranks' shares meet. The cache then holds its heads only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2.h"
#include "layers.h"

struct gpt2_kv {
  gpt2_config cfg;
  int max_len, len;
  int a, f, rows; /* attention channels, MLP units and logits this rank computes */
  int nranks;     /* of the shard it was made for; 0 for the whole model */
  float *k, *v;   /* (L, max_len, a) keys and values of positions < len */
  /* one position's scratch */
  float *x;        /* (C) residual stream */
  float *xn;       /* (C) layernorm output */
  float *qkv;      /* (3a) */
  float *y;        /* (a) attention output */
  float *h;        /* (f) MLP hidden */
  float *scores;   /* (max_len) */
  float *gathered; /* (nranks * rows) every rank's logits; NULL for the whole model */
};

/* What a rank computes: everything for the whole model, its share for a shard. */
static void held(const gpt2_config *cfg, const gpt2_tp *tp, int *a, int *f, int *rows) {
  const int C = cfg->channels, hs = C / cfg->num_heads;
  *a = tp ? tp->heads * hs : C;
  *f = tp ? tp->hidden : 4 * C;
  *rows = tp ? tp->vocab_stride : cfg->vocab_size;
}

int gpt2_kv_create_tp(gpt2_kv **out, const gpt2_config *cfg, const gpt2_tp *tp, int max_len,
                      char *err, size_t errlen) {
  *out = NULL;
  if (gpt2_config_check(cfg, err, errlen) != 0) return -1;
  if (tp && gpt2_tp_check(tp, cfg, err, errlen) != 0) return -1;
  if (max_len <= 0 || max_len > cfg->max_seq_len) {
    snprintf(err, errlen, "a key/value cache of %d positions: it must be 1..maxT (%d)", max_len,
             cfg->max_seq_len);
    return -1;
  }
  gpt2_kv *kv = calloc(1, sizeof *kv);
  int a, f, rows;
  held(cfg, tp, &a, &f, &rows);
  size_t C = (size_t)cfg->channels, cache = (size_t)cfg->num_layers * max_len * a;
  int ok = kv != NULL;
  if (kv) {
    kv->k = malloc(cache * sizeof(float));
    kv->v = malloc(cache * sizeof(float));
    kv->x = malloc(C * sizeof(float));
    kv->xn = malloc(C * sizeof(float));
    kv->qkv = malloc(3 * (size_t)a * sizeof(float));
    kv->y = malloc((size_t)a * sizeof(float));
    kv->h = malloc((size_t)f * sizeof(float));
    kv->scores = malloc((size_t)max_len * sizeof(float));
    if (tp) kv->gathered = malloc((size_t)tp->nranks * rows * sizeof(float));
    ok = kv->k && kv->v && kv->x && kv->xn && kv->qkv && kv->y && kv->h && kv->scores &&
         (!tp || kv->gathered);
  }
  if (!ok) {
    gpt2_kv_free(kv);
    snprintf(err, errlen, "out of memory for a key/value cache of %d positions", max_len);
    return -1;
  }
  kv->cfg = *cfg;
  kv->max_len = max_len;
  kv->a = a, kv->f = f, kv->rows = rows, kv->nranks = tp ? tp->nranks : 0;
  *out = kv;
  return 0;
}

int gpt2_kv_create(gpt2_kv **out, const gpt2_config *cfg, int max_len, char *err, size_t errlen) {
  return gpt2_kv_create_tp(out, cfg, NULL, max_len, err, errlen);
}

void gpt2_kv_reset(gpt2_kv *kv) { kv->len = 0; }
int gpt2_kv_length(const gpt2_kv *kv) { return kv->len; }
void gpt2_kv_truncate(gpt2_kv *kv, int len) {
  if (len >= 0 && len < kv->len) kv->len = len;
}

void gpt2_kv_free(gpt2_kv *kv) {
  if (!kv) return;
  free(kv->k);
  free(kv->v);
  free(kv->x);
  free(kv->xn);
  free(kv->qkv);
  free(kv->y);
  free(kv->h);
  free(kv->scores);
  free(kv->gathered);
  free(kv);
}

static void layernorm(float *out, const float *x, const float *weight, const float *bias, int C) {
  float mean, rstd;
  gpt2_layernorm_forward(out, &mean, &rstd, x, weight, bias, 1, C);
}

/* x (C) += w (C,K) @ in (K) + b. On a shard in holds this rank's K of the inputs, so the
 * product is a partial sum: the ranks' sums are added first, then the bias, once. */
static int project_add(float *x, float *tmp, const float *in, const float *w, const float *b,
                       int K, int C, const gpt2_tp *tp) {
  gpt2_matvec(tmp, in, w, tp ? NULL : b, K, C);
  if (!tp) {
    for (int c = 0; c < C; c++) x[c] += tmp[c];
    return 0;
  }
  if (tp->reduce(tp->ctx, tmp, C) != 0) return -1;
  for (int c = 0; c < C; c++) x[c] += tmp[c] + b[c];
  return 0;
}

/* x (C) = wte[token] + wpe[pos]; on a shard only the owner of the token's row has it */
static int embed(float *x, const gpt2_model *m, int token, int pos) {
  const int C = m->config.channels;
  const gpt2_tp *tp = m->tp;
  const float *wte = m->params + m->layout.wte, *wpe = m->params + m->layout.wpe + (long)pos * C;
  if (!tp) {
    for (int c = 0; c < C; c++) x[c] = wte[(long)token * C + c] + wpe[c];
    return 0;
  }
  int row = token - tp->vocab_lo;
  if (row >= 0 && row < tp->vocab_rows)
    memcpy(x, wte + (long)row * C, C * sizeof(float));
  else
    memset(x, 0, C * sizeof(float));
  if (tp->reduce(tp->ctx, x, C) != 0) return -1;
  for (int c = 0; c < C; c++) x[c] += wpe[c];
  return 0;
}

/* logits (V) = wte @ xn; a shard computes its rows and gathers everyone's */
static int head(float *logits, gpt2_kv *kv, const gpt2_model *m) {
  const int C = m->config.channels, V = m->config.vocab_size;
  const gpt2_tp *tp = m->tp;
  const float *wte = m->params + m->layout.wte;
  if (!tp) {
    gpt2_matvec(logits, kv->xn, wte, NULL, C, V);
    return 0;
  }
  float *part = kv->gathered + (size_t)tp->rank * kv->rows;
  gpt2_matvec(part, kv->xn, wte, NULL, C, kv->rows);
  if (tp->gather(tp->ctx, part, kv->gathered, kv->rows) != 0) return -1;
  memcpy(logits, kv->gathered, (size_t)V * sizeof(float));
  return 0;
}

int gpt2_forward_token(const gpt2_model *m, gpt2_kv *kv, int token, float *logits) {
  const int C = m->config.channels, hs = C / m->config.num_heads;
  const int L = m->config.num_layers, V = m->config.vocab_size;
  const int pos = kv->len;
  const gpt2_tp *tp = m->tp;
  int a, f, rows;
  held(&m->config, tp, &a, &f, &rows);
  if (pos >= kv->max_len || token < 0 || token >= V) return -1;
  if (a != kv->a || f != kv->f || rows != kv->rows || (tp ? tp->nranks : 0) != kv->nranks)
    return -1; /* a cache made for another split of the model */
  const gpt2_layout *lo = &m->layout;

  if (embed(kv->x, m, token, pos) != 0) return -1;
  for (int l = 0; l < L; l++) {
    gpt2_layer w = gpt2_layer_at(lo, m->params, l);
    float *kc = kv->k + (size_t)l * kv->max_len * a, *vc = kv->v + (size_t)l * kv->max_len * a;

    layernorm(kv->xn, kv->x, w.ln1w, w.ln1b, C);
    gpt2_matvec(kv->qkv, kv->xn, w.qkvw, w.qkvb, C, 3 * a);
    memcpy(kc + (size_t)pos * a, kv->qkv + a, a * sizeof(float));
    memcpy(vc + (size_t)pos * a, kv->qkv + 2 * a, a * sizeof(float));
    gpt2_attention_token(kv->y, kv->qkv, kc, vc, pos, a / hs, hs, a, kv->scores);
    if (project_add(kv->x, kv->xn, kv->y, w.attprojw, w.attprojb, a, C, tp) != 0) return -1;

    layernorm(kv->xn, kv->x, w.ln2w, w.ln2b, C);
    gpt2_matvec(kv->h, kv->xn, w.fcw, w.fcb, C, f);
    gpt2_gelu_forward(kv->h, kv->h, f);
    if (project_add(kv->x, kv->xn, kv->h, w.fcprojw, w.fcprojb, f, C, tp) != 0) return -1;
  }
  layernorm(kv->xn, kv->x, m->params + lo->lnfw, m->params + lo->lnfb, C);
  if (head(logits, kv, m) != 0) return -1;
  kv->len = pos + 1;
  return 0;
}

int gpt2_sample(const float *logits, int n, float temperature, float coin) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (logits[i] > logits[best]) best = i;
  if (temperature <= 0.0f) return best;
  double sum = 0.0;
  for (int i = 0; i < n; i++) sum += exp((logits[i] - logits[best]) / temperature);
  double target = coin * sum, cdf = 0.0;
  for (int i = 0; i < n; i++) {
    cdf += exp((logits[i] - logits[best]) / temperature);
    if (target < cdf) return i;
  }
  return n - 1;
}

/*
 * infer.c - generation: one position at a time, with each layer's keys and values of
 * earlier positions kept in a cache, so a token costs O(position) instead of a whole
 * forward pass over the sequence. Same arithmetic as gpt2_forward, as matrix-vector
 * products.
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
  float *k, *v; /* (L, max_len, C) keys and values of positions < len */
  /* one position's scratch */
  float *x;      /* (C) residual stream */
  float *xn;     /* (C) layernorm output */
  float *qkv;    /* (3C) */
  float *y;      /* (C) attention output */
  float *h;      /* (4C) MLP hidden */
  float *scores; /* (max_len) */
};

int gpt2_kv_create(gpt2_kv **out, const gpt2_config *cfg, int max_len, char *err, size_t errlen) {
  *out = NULL;
  if (gpt2_config_check(cfg, err, errlen) != 0) return -1;
  if (max_len <= 0 || max_len > cfg->max_seq_len) {
    snprintf(err, errlen, "a key/value cache of %d positions: it must be 1..maxT (%d)", max_len,
             cfg->max_seq_len);
    return -1;
  }
  gpt2_kv *kv = calloc(1, sizeof *kv);
  size_t C = (size_t)cfg->channels, cache = (size_t)cfg->num_layers * max_len * C;
  if (kv) {
    kv->k = malloc(cache * sizeof(float));
    kv->v = malloc(cache * sizeof(float));
    kv->x = malloc(C * sizeof(float));
    kv->xn = malloc(C * sizeof(float));
    kv->qkv = malloc(3 * C * sizeof(float));
    kv->y = malloc(C * sizeof(float));
    kv->h = malloc(4 * C * sizeof(float));
    kv->scores = malloc((size_t)max_len * sizeof(float));
  }
  if (!kv || !kv->k || !kv->v || !kv->x || !kv->xn || !kv->qkv || !kv->y || !kv->h || !kv->scores) {
    gpt2_kv_free(kv);
    snprintf(err, errlen, "out of memory for a key/value cache of %d positions", max_len);
    return -1;
  }
  kv->cfg = *cfg;
  kv->max_len = max_len;
  *out = kv;
  return 0;
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
  free(kv);
}

static void layernorm(float *out, const float *x, const float *weight, const float *bias, int C) {
  float mean, rstd;
  gpt2_layernorm_forward(out, &mean, &rstd, x, weight, bias, 1, C);
}

int gpt2_forward_token(const gpt2_model *m, gpt2_kv *kv, int token, float *logits) {
  const int C = m->config.channels, NH = m->config.num_heads, hs = C / NH;
  const int L = m->config.num_layers, V = m->config.vocab_size;
  const int pos = kv->len;
  if (pos >= kv->max_len || token < 0 || token >= V) return -1;
  const gpt2_layout *lo = &m->layout;
  const float *wte = m->params + lo->wte, *wpe = m->params + lo->wpe;

  for (int c = 0; c < C; c++) kv->x[c] = wte[(long)token * C + c] + wpe[(long)pos * C + c];
  for (int l = 0; l < L; l++) {
    gpt2_layer w = gpt2_layer_at(lo, m->params, l);
    float *kc = kv->k + (size_t)l * kv->max_len * C, *vc = kv->v + (size_t)l * kv->max_len * C;

    layernorm(kv->xn, kv->x, w.ln1w, w.ln1b, C);
    gpt2_matvec(kv->qkv, kv->xn, w.qkvw, w.qkvb, C, 3 * C);
    memcpy(kc + (size_t)pos * C, kv->qkv + C, C * sizeof(float));
    memcpy(vc + (size_t)pos * C, kv->qkv + 2 * C, C * sizeof(float));
    gpt2_attention_token(kv->y, kv->qkv, kc, vc, pos, NH, hs, C, kv->scores);
    gpt2_matvec(kv->xn, kv->y, w.attprojw, w.attprojb, C, C);
    for (int c = 0; c < C; c++) kv->x[c] += kv->xn[c];

    layernorm(kv->xn, kv->x, w.ln2w, w.ln2b, C);
    gpt2_matvec(kv->h, kv->xn, w.fcw, w.fcb, C, 4 * C);
    gpt2_gelu_forward(kv->h, kv->h, 4 * C);
    gpt2_matvec(kv->xn, kv->h, w.fcprojw, w.fcprojb, 4 * C, C);
    for (int c = 0; c < C; c++) kv->x[c] += kv->xn[c];
  }
  layernorm(kv->xn, kv->x, m->params + lo->lnfw, m->params + lo->lnfb, C);
  gpt2_matvec(logits, kv->xn, wte, NULL, C, V);
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

/*
 * gpt2.c - the whole model: activations, forward, backward.
 *
 *   x0 = wte[tokens] + wpe                                  encoder
 *   for each layer l:                                        pre-LN block
 *     x' = x + attproj(attention(qkv(ln1(x))))
 *     x  = x' + fcproj(gelu(fc(ln2(x'))))
 *   probs = softmax(lnf(x) @ wte^T)                          tied output head
 *
 * With targets, the output head, softmax and loss run fused (classifier.c); without,
 * the probabilities are computed and kept for the caller.
 *
 * Backward walks the same list in reverse. The residual stream's gradient lives in
 * one buffer (dresidual) that every block adds into; the block's inner gradients use
 * scratch buffers that the next layer reuses.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2.h"
#include "layers.h"

struct gpt2_acts {
  gpt2_config cfg;
  int B, T, training;
  float *memory;
  /* forward; "(L,..)" buffers hold one slot per layer when training, one in all
   * otherwise (inference reuses it layer after layer) */
  float *encoded;                   /* (B,T,C) */
  float *ln1, *ln1_mean, *ln1_rstd; /* (L,B,T,C) (L,B,T) (L,B,T) */
  float *qkv;                       /* (L,B,T,3C) */
  float *atty;                      /* (L,B,T,C) */
  float *att;                       /* (L,B,NH,T,T) */
  float *residual2;                 /* (L,B,T,C) */
  float *ln2, *ln2_mean, *ln2_rstd; /* (L,B,T,C) (L,B,T) (L,B,T) */
  float *fch, *fch_gelu;            /* (L,B,T,4C) each */
  float *residual3;                 /* (L,B,T,C) */
  float *lnf, *lnf_mean, *lnf_rstd; /* (B,T,C) (B,T) (B,T) */
  float *probs;                     /* (B,T,Vp), allocated by the first forward without targets */
  int have_probs;                   /* the last forward left probabilities there */
  float *losses, *lse;              /* (B,T) each: losses, log-sum-exp of each row's logits */
  float *cls_scratch;               /* gpt2_classifier_scratch(BT, C) */
  float *logits;                    /* (B,T,Vp) training only: logits -> dlogits */
  float *proj;                      /* (B,T,C) attproj / fcproj output before the add */
  /* backward scratch, training only */
  float *dresidual;        /* (B,T,C) */
  float *dbtc;             /* (B,T,C) dlnf, dln2, datty, dln1 in turn */
  float *dqkv;             /* (B,T,3C) */
  float *dfch, *dfch_gelu; /* (B,T,4C) each */
};

int gpt2_acts_create(gpt2_acts **out, const gpt2_config *cfg, int B, int T, int training, char *err,
                     size_t errlen) {
  *out = NULL;
  if (gpt2_config_check(cfg, err, errlen) != 0) return -1;
  if (B <= 0 || T <= 0) {
    snprintf(err, errlen, "batch size %d and sequence length %d must be positive", B, T);
    return -1;
  }
  if (T > cfg->max_seq_len) {
    snprintf(err, errlen, "sequence length T=%d exceeds the model's maximum maxT=%d", T,
             cfg->max_seq_len);
    return -1;
  }
  gpt2_acts *a = calloc(1, sizeof *a);
  if (!a) {
    snprintf(err, errlen, "out of memory for activations");
    return -1;
  }
  a->cfg = *cfg;
  a->B = B;
  a->T = T;
  a->training = training;
  size_t C = (size_t)cfg->channels, NH = (size_t)cfg->num_heads;
  size_t BT = (size_t)B * T, Ls = training ? (size_t)cfg->num_layers : 1;
  struct {
    float **ptr;
    size_t n;
  } bufs[] = {
      {&a->encoded, BT * C},
      {&a->ln1, Ls * BT * C},
      {&a->ln1_mean, Ls * BT},
      {&a->ln1_rstd, Ls * BT},
      {&a->qkv, Ls * BT * 3 * C},
      {&a->atty, Ls * BT * C},
      {&a->att, Ls * B * NH * T * T},
      {&a->residual2, Ls * BT * C},
      {&a->ln2, Ls * BT * C},
      {&a->ln2_mean, Ls * BT},
      {&a->ln2_rstd, Ls * BT},
      {&a->fch, Ls * BT * 4 * C},
      {&a->fch_gelu, Ls * BT * 4 * C},
      {&a->residual3, Ls * BT * C},
      {&a->lnf, BT * C},
      {&a->lnf_mean, BT},
      {&a->lnf_rstd, BT},
      {&a->lse, BT},
      {&a->losses, BT},
      {&a->proj, BT * C},
      {&a->cls_scratch, gpt2_classifier_scratch((int)BT, (int)C)},
      {&a->logits, training ? BT * (size_t)cfg->padded_vocab_size : 0},
      {&a->dresidual, training ? BT * C : 0},
      {&a->dbtc, training ? BT * C : 0},
      {&a->dqkv, training ? BT * 3 * C : 0},
      {&a->dfch, training ? BT * 4 * C : 0},
      {&a->dfch_gelu, training ? BT * 4 * C : 0},
  };
  size_t nbufs = sizeof bufs / sizeof bufs[0], total = 0;
  for (size_t i = 0; i < nbufs; i++) total += (bufs[i].n + 15) / 16 * 16; /* 64-byte aligned */
  a->memory = aligned_alloc(64, total * sizeof(float));
  if (!a->memory) {
    snprintf(err, errlen, "out of memory for activations (%.1f MiB for B=%d T=%d)",
             total * 4.0 / 1048576.0, B, T);
    free(a);
    return -1;
  }
  float *p = a->memory;
  for (size_t i = 0; i < nbufs; i++) {
    *bufs[i].ptr = bufs[i].n ? p : NULL;
    p += (bufs[i].n + 15) / 16 * 16;
  }
  *out = a;
  return 0;
}

void gpt2_acts_free(gpt2_acts *a) {
  if (!a) return;
  free(a->probs);
  free(a->memory);
  free(a);
}

const float *gpt2_probs(const gpt2_acts *a) { return a->have_probs ? a->probs : NULL; }
const float *gpt2_losses(const gpt2_acts *a) { return a->losses; }

/* Slot l of an "(L,..)" buffer of per-layer size n. */
static float *slot(const gpt2_acts *a, float *base, int l, size_t n) {
  return base + (a->training ? (size_t)l * n : 0);
}

/* One layer's activations: slot l of each "(L,..)" buffer. */
typedef struct {
  float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *residual2, *ln2, *ln2_mean, *ln2_rstd,
      *fch, *fch_gelu, *residual3;
} layer_acts;

static layer_acts layer_at(const gpt2_acts *a, int l, int B, int T, int C, int NH) {
  size_t BT = (size_t)B * T, btc = BT * C;
  return (layer_acts){
      .ln1 = slot(a, a->ln1, l, btc), .ln1_mean = slot(a, a->ln1_mean, l, BT),
      .ln1_rstd = slot(a, a->ln1_rstd, l, BT), .qkv = slot(a, a->qkv, l, 3 * btc),
      .atty = slot(a, a->atty, l, btc), .att = slot(a, a->att, l, (size_t)B * NH * T * T),
      .residual2 = slot(a, a->residual2, l, btc), .ln2 = slot(a, a->ln2, l, btc),
      .ln2_mean = slot(a, a->ln2_mean, l, BT), .ln2_rstd = slot(a, a->ln2_rstd, l, BT),
      .fch = slot(a, a->fch, l, 4 * btc), .fch_gelu = slot(a, a->fch_gelu, l, 4 * btc),
      .residual3 = slot(a, a->residual3, l, btc)};
}

float gpt2_forward(const gpt2_model *m, gpt2_acts *a, const int *inputs, const int *targets) {
  if (m->tp) return NAN; /* a shard runs only a token at a time (infer.c) */
  const int B = a->B, T = a->T, C = m->config.channels, NH = m->config.num_heads;
  const int L = m->config.num_layers, V = m->config.vocab_size, Vp = m->config.padded_vocab_size;
  const int BT = B * T;
  const size_t btc = (size_t)BT * C;
  const gpt2_layout *lo = &m->layout;
  float *params = m->params;

  gpt2_encoder_forward(a->encoded, inputs, params + lo->wte, params + lo->wpe, B, T, C);
  const float *residual = a->encoded;
  for (int l = 0; l < L; l++) {
    gpt2_layer w = gpt2_layer_at(lo, params, l);
    layer_acts x = layer_at(a, l, B, T, C, NH);

    gpt2_layernorm_forward(x.ln1, x.ln1_mean, x.ln1_rstd, residual, w.ln1w, w.ln1b, BT, C);
    gpt2_matmul_forward(x.qkv, x.ln1, w.qkvw, w.qkvb, BT, C, 3 * C);
    gpt2_attention_forward(x.atty, x.att, x.qkv, B, T, C, NH);
    gpt2_matmul_forward(a->proj, x.atty, w.attprojw, w.attprojb, BT, C, C);
    gpt2_residual_forward(x.residual2, residual, a->proj, (long)btc);
    gpt2_layernorm_forward(x.ln2, x.ln2_mean, x.ln2_rstd, x.residual2, w.ln2w, w.ln2b, BT, C);
    gpt2_matmul_forward(x.fch, x.ln2, w.fcw, w.fcb, BT, C, 4 * C);
    gpt2_gelu_forward(x.fch_gelu, x.fch, 4 * (long)btc);
    gpt2_matmul_forward(a->proj, x.fch_gelu, w.fcprojw, w.fcprojb, BT, 4 * C, C);
    gpt2_residual_forward(x.residual3, x.residual2, a->proj, (long)btc);
    residual = x.residual3;
  }
  gpt2_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, residual, params + lo->lnfw,
                         params + lo->lnfb, BT, C);
  a->have_probs = 0;
  if (!targets) {
    if (!a->probs && !(a->probs = malloc((size_t)BT * Vp * sizeof(float)))) return NAN;
    gpt2_matmul_forward(a->probs, a->lnf, params + lo->wte, NULL, BT, C, Vp);
    gpt2_softmax_crossentropy_forward(NULL, a->probs, NULL, BT, V, Vp);
    a->have_probs = 1;
    return 0.0f;
  }
  gpt2_classifier_forward(a->losses, a->lse, a->logits, a->cls_scratch, a->lnf, params + lo->wte,
                          targets, BT, C, V);
  double sum = 0.0;
  for (int i = 0; i < BT; i++) sum += a->losses[i];
  return (float)(sum / BT);
}

static void ready(const gpt2_grad_hook *hook, size_t offset, size_t count) {
  if (hook && hook->ready) hook->ready(hook->ctx, offset, count);
}

int gpt2_backward(const gpt2_model *m, gpt2_acts *a, float *grads, const int *inputs,
                  const int *targets, const gpt2_grad_hook *hook) {
  if (!a->training || m->tp) return -1;
  const int B = a->B, T = a->T, C = m->config.channels, NH = m->config.num_heads;
  const int L = m->config.num_layers, V = m->config.vocab_size, Vp = m->config.padded_vocab_size;
  const int BT = B * T;
  const size_t btc = (size_t)BT * C;
  const gpt2_layout *lo = &m->layout;
  float *params = m->params;

  /* the output head overwrites dwte; the rest accumulates, so is zeroed just before */
  memset(grads + lo->wpe, 0, (lo->layers - lo->wpe) * sizeof(float));
  memset(grads + lo->lnfw, 0, (lo->num_params - lo->lnfw) * sizeof(float));

  /* loss = mean of BT row losses, so each row's loss has gradient 1/BT */
  gpt2_classifier_backward(a->dbtc, grads + lo->wte, a->logits, a->cls_scratch, a->lnf,
                           params + lo->wte, a->lse, targets, 1.0f / BT, BT, C, V, Vp);
  const int split = hook && hook->embeddings;
  if (split) ready(hook, lo->wte, lo->wpe - lo->wte);
  const float *residual_last = L > 0 ? slot(a, a->residual3, L - 1, btc) : a->encoded;
  memset(a->dresidual, 0, btc * sizeof(float));
  gpt2_layernorm_backward(a->dresidual, grads + lo->lnfw, grads + lo->lnfb, a->dbtc, residual_last,
                          params + lo->lnfw, a->lnf_mean, a->lnf_rstd, BT, C);
  ready(hook, lo->lnfw, lo->num_params - lo->lnfw);

  for (int l = L - 1; l >= 0; l--) {
    gpt2_layer w = gpt2_layer_at(lo, params, l);
    gpt2_layer g = gpt2_layer_at(lo, grads, l);
    memset(grads + lo->layers + (size_t)l * lo->layer_size, 0, lo->layer_size * sizeof(float));
    const float *residual = l == 0 ? a->encoded : slot(a, a->residual3, l - 1, btc);
    layer_acts x = layer_at(a, l, B, T, C, NH);

    /* x = x' + fcproj(...): the projection's output gradient is dresidual itself */
    gpt2_matmul_backward(a->dfch_gelu, g.fcprojw, g.fcprojb, a->dresidual, x.fch_gelu, w.fcprojw, BT,
                         4 * C, C);
    gpt2_gelu_backward(a->dfch, x.fch, a->dfch_gelu, 4 * (long)btc);
    gpt2_matmul_backward(a->dbtc, g.fcw, g.fcb, a->dfch, x.ln2, w.fcw, BT, C, 4 * C);
    gpt2_layernorm_backward(a->dresidual, g.ln2w, g.ln2b, a->dbtc, x.residual2, w.ln2w, x.ln2_mean,
                            x.ln2_rstd, BT, C);
    /* x' = x + attproj(...): likewise */
    gpt2_matmul_backward(a->dbtc, g.attprojw, g.attprojb, a->dresidual, x.atty, w.attprojw, BT, C, C);
    gpt2_attention_backward(a->dqkv, a->dbtc, x.qkv, x.att, B, T, C, NH);
    gpt2_matmul_backward(a->dbtc, g.qkvw, g.qkvb, a->dqkv, x.ln1, w.qkvw, BT, C, 3 * C);
    gpt2_layernorm_backward(a->dresidual, g.ln1w, g.ln1b, a->dbtc, residual, w.ln1w, x.ln1_mean,
                            x.ln1_rstd, BT, C);
    ready(hook, lo->layers + (size_t)l * lo->layer_size, lo->layer_size);
  }
  if (split) {
    hook->embeddings(hook->ctx, a->dresidual, inputs, B, T);
  } else {
    gpt2_encoder_backward(grads + lo->wte, grads + lo->wpe, a->dresidual, inputs, B, T, C);
    ready(hook, 0, lo->layers);
  }
  return 0;
}

/*
 * tp.c - a pipeline stage's tensor-parallel part of GPT-2: parameters, activations,
 * forward and backward with the tensor group's all-reduces (tp.h says what is split).
 * The arithmetic is gpt2.c's, layer by layer, at the part's sizes: a attention channels
 * (hl heads), f MLP units, vs vocabulary rows. With one tensor rank the biases go into
 * the products as in gpt2.c, so the blocks compute the same bits as the whole model.
 */
#include "tp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

/* one layer's activations inside a slot's layers buffer */
typedef struct {
  float *ln1, *ln1_mean, *ln1_rstd; /* (BT,C) (BT) (BT) */
  float *qkv;                       /* (BT,3a) */
  float *atty;                      /* (BT,a) */
  float *att;                       /* (Bm,hl,T,T) */
  float *residual2;                 /* (BT,C) */
  float *ln2, *ln2_mean, *ln2_rstd; /* (BT,C) (BT) (BT) */
  float *fch, *fch_gelu;            /* (BT,f) each */
  float *residual3;                 /* (BT,C) the layer's output */
} layer_acts;

static size_t up16(size_t n) { return (n + 15) / 16 * 16; }

/* Lays out (or, with base NULL, measures) one layer's activations. */
static size_t layer_map(const stage *s, float *base, layer_acts *x) {
  const size_t BT = (size_t)s->Bm * s->T, C = (size_t)s->cfg.channels;
  struct {
    float **p;
    size_t n;
  } parts[] = {{&x->ln1, BT * C},         {&x->ln1_mean, BT},          {&x->ln1_rstd, BT},
               {&x->qkv, BT * 3 * s->a},  {&x->atty, BT * s->a},
               {&x->att, (size_t)s->Bm * s->hl * s->T * s->T},
               {&x->residual2, BT * C},   {&x->ln2, BT * C},           {&x->ln2_mean, BT},
               {&x->ln2_rstd, BT},        {&x->fch, BT * s->f},        {&x->fch_gelu, BT * s->f},
               {&x->residual3, BT * C}};
  size_t off = 0;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    *parts[i].p = base ? base + off : NULL;
    off += up16(parts[i].n);
  }
  return off;
}

static layer_acts layer_at(const stage *s, int sl, int l) {
  layer_acts x;
  layer_map(s, s->slots[sl].layers + (size_t)l * s->layer_acts, &x);
  return x;
}

static int unused_reduce(void *ctx, float *buf, int n) { return (void)ctx, (void)buf, (void)n, -1; }
static int unused_gather(void *ctx, const float *part, float *all, int n) {
  return (void)ctx, (void)part, (void)all, (void)n, -1;
}

int stage_init(stage *s, const gpt2_config *cfg, grid *g, int Bm, int T, int nslots, char *err,
               size_t errlen) {
  memset(s, 0, sizeof *s);
  s->cfg = *cfg, s->g = g, s->Bm = Bm, s->T = T, s->nslots = nslots;
  s->scfg = *cfg;
  s->nl = s->scfg.num_layers = cfg->num_layers / g->pp;
  s->l0 = g->pp_rank * s->nl;
  s->first = g->pp_rank == 0, s->last = g->pp_rank == g->pp - 1;
  if (gpt2_tp_init(&s->tp, cfg, g->tp_rank, g->tp, err, errlen) != 0) return -1;
  s->tp.reduce = unused_reduce, s->tp.gather = unused_gather; /* the stage calls mlcomm itself */
  if (gpt2_model_setup_tp(&s->part, &s->scfg, &s->tp, err, errlen) != 0) return -1;
  const int C = cfg->channels;
  s->hl = s->tp.heads, s->a = s->hl * (C / cfg->num_heads), s->f = s->tp.hidden;
  s->vs = s->tp.vocab_stride;
  if (!s->first && !s->last) { /* a middle stage holds no wte: the layout starts at wpe */
    gpt2_layout *lo = &s->part.layout;
    const size_t drop = (size_t)s->vs * C;
    lo->wpe -= drop, lo->layers -= drop, lo->lnfw -= drop, lo->lnfb -= drop;
    lo->num_params -= drop;
  }
  const size_t n = s->part.layout.num_params, BT = (size_t)Bm * T;
  s->params = calloc(n, sizeof(float));
  s->grads = calloc(n, sizeof(float));
  s->m = calloc(n, sizeof(float));
  s->v = calloc(n, sizeof(float));
  s->part.params = s->params;
  s->layer_acts = layer_map(s, NULL, &(layer_acts){0});
  size_t slot = 3 * up16(BT * C) + s->nl * s->layer_acts;
  if (s->last) slot += up16(BT * C) + 4 * up16(BT) + up16(BT * s->vs);
  s->slot_memory = aligned_alloc(64, nslots * slot * sizeof(float));
  s->slots = calloc(nslots, sizeof *s->slots);
  size_t scratch = 3 * up16(BT * C) + up16(BT * 3 * s->a) + 2 * up16(BT * s->f) + up16(4 * BT);
  s->scratch = aligned_alloc(64, scratch * sizeof(float));
  if (s->last) {
    s->cls_scratch = malloc(gpt2_classifier_scratch((int)BT, C) * sizeof(float));
    s->cls_dwte = malloc((size_t)s->vs * C * sizeof(float));
    s->cls_targets = malloc(BT * sizeof(int));
  }
  const int head = !s->last || (s->cls_scratch && s->cls_dwte && s->cls_targets);
  if (!s->params || !s->grads || !s->m || !s->v || !s->slot_memory || !s->slots || !s->scratch ||
      !head) {
    snprintf(err, errlen, "out of memory for this rank's part of the model (%zu parameters, "
             "%d activation slots of %.1f MiB)", n, nslots, slot * 4.0 / 1048576.0);
    return -1;
  }
  for (int i = 0; i < nslots; i++) {
    stage_slot *q = &s->slots[i];
    float *p = s->slot_memory + i * slot;
    q->input = p, p += up16(BT * C);
    q->gradin = p, p += up16(BT * C);
    q->dinput = p, p += up16(BT * C);
    q->layers = p, p += s->nl * s->layer_acts;
    if (s->last) {
      q->lnf = p, p += up16(BT * C);
      q->lnf_mean = p, p += up16(BT);
      q->lnf_rstd = p, p += up16(BT);
      q->lse = p, p += up16(BT);
      q->losses = p, p += up16(BT);
      q->logits = p;
    }
  }
  return 0;
}

void stage_free(stage *s) {
  free(s->params);
  free(s->grads);
  free(s->m);
  free(s->v);
  free(s->slot_memory);
  free(s->slots);
  free(s->scratch);
  free(s->cls_scratch);
  free(s->cls_dwte);
  free(s->cls_targets);
  memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- the part of the whole */

/* rows x cols floats between a block of the stage's buffer and one of the whole model's */
static void block(float *part, size_t pstride, float *whole, size_t wstride, size_t rows,
                  size_t cols, int to_whole) {
  for (size_t i = 0; i < rows; i++) {
    float *p = part + i * pstride, *w = whole + i * wstride;
    if (to_whole)
      memcpy(w, p, cols * sizeof(float));
    else
      memcpy(p, w, cols * sizeof(float));
  }
}

/* Walks every tensor this rank holds. to_whole: part -> whole, only the tensors this
 * rank is the one owner of; else whole -> part. */
static void walk(const stage *s, float *part, const gpt2_model *full, float *whole, int to_whole) {
  const grid *g = s->g;
  const size_t C = s->cfg.channels, a = s->a, a0 = (size_t)s->tp.head_lo * (C / s->cfg.num_heads);
  const size_t f = s->f, f0 = s->tp.hidden_lo;
  const gpt2_layout *pl = &s->part.layout, *wl = &full->layout;
  const int keep = !to_whole || g->dp_rank == 0;       /* replicas: dp rank 0 gives */
  const int repl = keep && (!to_whole || g->tp_rank == 0); /* tensor replicas: tp rank 0 */
  if (keep && (s->first || (!to_whole && s->last)))
    block(part + pl->wte, C, whole + wl->wte + (size_t)s->tp.vocab_lo * C, C, s->tp.vocab_rows, C,
          to_whole);
  if (repl && s->first) block(part + pl->wpe, 0, whole + wl->wpe, 0, 1, s->cfg.max_seq_len * C, to_whole);
  if (repl && s->last) block(part + pl->lnfw, 0, whole + wl->lnfw, 0, 1, 2 * C, to_whole);
  if (!keep) return;
  for (int l = 0; l < s->nl; l++) {
    gpt2_layer p = gpt2_layer_at(pl, part, l), w = gpt2_layer_at(wl, whole, s->l0 + l);
    if (repl) {
      float *mine[] = {p.ln1w, p.ln1b, p.ln2w, p.ln2b, p.attprojb, p.fcprojb};
      float *every[] = {w.ln1w, w.ln1b, w.ln2w, w.ln2b, w.attprojb, w.fcprojb};
      for (int i = 0; i < 6; i++) block(mine[i], 0, every[i], 0, 1, C, to_whole);
    }
    for (size_t q = 0; q < 3; q++) { /* q, k, v: this rank's heads of each */
      block(p.qkvw + q * a * C, C, w.qkvw + (q * C + a0) * C, C, a, C, to_whole);
      block(p.qkvb + q * a, 0, w.qkvb + q * C + a0, 0, 1, a, to_whole);
    }
    block(p.attprojw, a, w.attprojw + a0, C, C, a, to_whole);
    block(p.fcw, C, w.fcw + f0 * C, C, f, C, to_whole);
    block(p.fcb, 0, w.fcb + f0, 0, 1, f, to_whole);
    block(p.fcprojw, f, w.fcprojw + f0, 4 * C, C, f, to_whole);
  }
}

void stage_take(const stage *s, const gpt2_model *full, const float *whole, float *part) {
  walk(s, part, full, (float *)whole, 0);
}

void stage_give(const stage *s, const float *src, const gpt2_model *full, float *dst) {
  walk(s, (float *)src, full, dst, 1);
}

int stage_owned(const stage *s, size_t off[4], size_t cnt[4]) {
  const gpt2_layout *lo = &s->part.layout;
  const size_t C = s->cfg.channels;
  int n = 0;
  if (s->first || s->last) off[n] = lo->wte, cnt[n++] = (size_t)s->vs * C;
  if (s->first) off[n] = lo->wpe, cnt[n++] = (size_t)s->cfg.max_seq_len * C;
  off[n] = lo->layers, cnt[n++] = (size_t)s->nl * lo->layer_size;
  if (s->last) off[n] = lo->lnfw, cnt[n++] = 2 * C;
  return n;
}

/* ---------------------------------------------------------------- forward */

static void tp_reduce(stage *s, float *buf, size_t n, mlcommRedOp_t op) {
  grid *g = s->g;
  if (g->tp == 1) return;
  mlcommResult_t r = GRID_CALL(g, TRAFFIC_TP, n * sizeof(float),
                               mlcommAllReduce(buf, buf, n, mlcommFloat32, op, g->tp_comm));
  if (r != mlcommSuccess && s->failed == mlcommSuccess) s->failed = r;
}

/* x (BT,C) = res + the tensor group's sum of part (BT,C) + bias (after the sum: once) */
static void row_parallel_add(stage *s, float *x, const float *res, float *part, const float *bias) {
  const long BT = (long)s->Bm * s->T, C = s->cfg.channels;
  if (s->g->tp == 1) { /* the bias went into the product, as in gpt2.c */
    gpt2_residual_forward(x, res, part, BT * C);
    return;
  }
  tp_reduce(s, part, (size_t)(BT * C), mlcommSum);
#pragma omp parallel for
  for (long n = 0; n < BT; n++)
    for (long c = 0; c < C; c++) x[n * C + c] = res[n * C + c] + (part[n * C + c] + bias[c]);
}

/* x (BT,C) = wte[token] + wpe[t]: the owner of a token's row supplies it */
static void embed(stage *s, stage_slot *q) {
  const int BT = s->Bm * s->T, C = s->cfg.channels;
  const float *wte = s->params + s->part.layout.wte, *wpe = s->params + s->part.layout.wpe;
  for (int n = 0; n < BT; n++) {
    int row = q->inputs[n] - s->tp.vocab_lo;
    if (row >= 0 && row < s->tp.vocab_rows)
      memcpy(q->input + (size_t)n * C, wte + (size_t)row * C, C * sizeof(float));
    else
      memset(q->input + (size_t)n * C, 0, C * sizeof(float));
  }
  tp_reduce(s, q->input, (size_t)BT * C, mlcommSum);
  for (int n = 0; n < BT; n++)
    for (int c = 0; c < C; c++) q->input[(size_t)n * C + c] += wpe[(size_t)(n % s->T) * C + c];
}

/* This rank's targets as rows of its wte block; others fall outside [0, rows), which
 * the fused output head then never matches. */
static const int *local_targets(stage *s, const int *targets) {
  const int BT = s->Bm * s->T;
  if (s->g->tp == 1) return targets;
  for (int n = 0; n < BT; n++) s->cls_targets[n] = targets[n] - s->tp.vocab_lo;
  return s->cls_targets;
}

/* losses (BT) of the output head: classifier.c's fused head over this rank's vocabulary
 * rows, then the ranks' log-sum-exps and target logits combined */
static double parallel_cross_entropy(stage *s, stage_slot *q) {
  const int BT = s->Bm * s->T, C = s->cfg.channels, rows = s->tp.vocab_rows;
  const float *wte = s->params + s->part.layout.wte;
  if (s->g->tp == 1) { /* the whole head: gpt2.c's call */
    gpt2_classifier_forward(q->losses, q->lse, q->logits, s->cls_scratch, q->lnf, wte, q->targets,
                            BT, C, rows);
  } else {
    float *mx = s->scratch, *st = mx + BT, *lse = st + 2 * BT; /* (BT) (2BT) (BT) */
    const int *t = local_targets(s, q->targets);
    if (rows > 0)
      gpt2_classifier_forward(q->losses, lse, q->logits, s->cls_scratch, q->lnf, wte, t, BT, C,
                              rows);
    for (int n = 0; n < BT; n++) mx[n] = rows > 0 ? lse[n] : -INFINITY;
    tp_reduce(s, mx, BT, mlcommMax);
    for (int n = 0; n < BT; n++) { /* the owner's target logit is lse - loss */
      st[n] = rows > 0 ? expf(lse[n] - mx[n]) : 0.0f;
      st[BT + n] = t[n] >= 0 && t[n] < rows ? lse[n] - q->losses[n] : 0.0f;
    }
    tp_reduce(s, st, 2 * (size_t)BT, mlcommSum);
    for (int n = 0; n < BT; n++) {
      q->lse[n] = mx[n] + logf(st[n]);
      q->losses[n] = q->lse[n] - st[BT + n];
    }
  }
  double total = 0.0;
  for (int n = 0; n < BT; n++) total += q->losses[n];
  return total;
}

float *stage_output(stage *s, int sl) { return layer_at(s, sl, s->nl - 1).residual3; }

double stage_forward(stage *s, int sl) {
  stage_slot *q = &s->slots[sl];
  const int Bm = s->Bm, T = s->T, BT = Bm * T, C = s->cfg.channels, a = s->a, f = s->f;
  const int whole = s->g->tp == 1;
  float *proj = s->scratch + 2 * up16((size_t)BT * C);
  if (s->first) embed(s, q);
  const float *res = q->input;
  for (int l = 0; l < s->nl; l++) {
    gpt2_layer w = gpt2_layer_at(&s->part.layout, s->params, l);
    layer_acts x = layer_at(s, sl, l);
    gpt2_layernorm_forward(x.ln1, x.ln1_mean, x.ln1_rstd, res, w.ln1w, w.ln1b, BT, C);
    gpt2_matmul_forward(x.qkv, x.ln1, w.qkvw, w.qkvb, BT, C, 3 * a); /* column-parallel */
    gpt2_attention_forward(x.atty, x.att, x.qkv, Bm, T, a, s->hl);
    gpt2_matmul_forward(proj, x.atty, w.attprojw, whole ? w.attprojb : NULL, BT, a, C); /* row */
    row_parallel_add(s, x.residual2, res, proj, w.attprojb);
    gpt2_layernorm_forward(x.ln2, x.ln2_mean, x.ln2_rstd, x.residual2, w.ln2w, w.ln2b, BT, C);
    gpt2_matmul_forward(x.fch, x.ln2, w.fcw, w.fcb, BT, C, f);
    gpt2_gelu_forward(x.fch_gelu, x.fch, (long)BT * f);
    gpt2_matmul_forward(proj, x.fch_gelu, w.fcprojw, whole ? w.fcprojb : NULL, BT, f, C);
    row_parallel_add(s, x.residual3, x.residual2, proj, w.fcprojb);
    res = x.residual3;
  }
  if (!s->last) return 0.0;
  const gpt2_layout *lo = &s->part.layout;
  gpt2_layernorm_forward(q->lnf, q->lnf_mean, q->lnf_rstd, res, s->params + lo->lnfw,
                         s->params + lo->lnfb, BT, C);
  return parallel_cross_entropy(s, q);
}

/* ---------------------------------------------------------------- backward */

void stage_backward(stage *s, int sl, float dloss, int last_one) {
  stage_slot *q = &s->slots[sl];
  const int Bm = s->Bm, T = s->T, BT = Bm * T, C = s->cfg.channels, a = s->a, f = s->f;
  const size_t btc = (size_t)BT * C;
  const gpt2_layout *lo = &s->part.layout;
  float *params = s->params, *grads = s->grads;
  float *dres = s->scratch, *dbtc = dres + up16(btc);
  float *dqkv = dbtc + 2 * up16(btc), *dfch = dqkv + up16((size_t)BT * 3 * a);
  float *dfch_gelu = dfch + up16((size_t)BT * f);
  if (s->last) {
    /* dlogits from the combined lse; the head overwrites its dwte, so it goes to
     * scratch and is added (micro-batches accumulate) */
    const int rows = s->tp.vocab_rows;
    const size_t nw = (size_t)s->vs * C;
    float *dwte = grads + lo->wte;
    if (rows > 0)
      gpt2_classifier_backward(dbtc, s->cls_dwte, q->logits, s->cls_scratch, q->lnf,
                               params + lo->wte, q->lse, local_targets(s, q->targets), dloss, BT,
                               C, rows, s->vs);
    else
      memset(dbtc, 0, btc * sizeof(float)), memset(s->cls_dwte, 0, nw * sizeof(float));
#pragma omp parallel for
    for (size_t i = 0; i < nw; i++) dwte[i] += s->cls_dwte[i];
    tp_reduce(s, dbtc, btc, mlcommSum);
    memset(dres, 0, btc * sizeof(float));
    gpt2_layernorm_backward(dres, grads + lo->lnfw, grads + lo->lnfb, dbtc, stage_output(s, sl),
                            params + lo->lnfw, q->lnf_mean, q->lnf_rstd, BT, C);
  } else {
    memcpy(dres, q->gradin, btc * sizeof(float));
  }
  for (int l = s->nl - 1; l >= 0; l--) {
    gpt2_layer w = gpt2_layer_at(lo, params, l), g = gpt2_layer_at(lo, grads, l);
    layer_acts x = layer_at(s, sl, l);
    const float *res = l == 0 ? q->input : layer_at(s, sl, l - 1).residual3;
    gpt2_matmul_backward(dfch_gelu, g.fcprojw, g.fcprojb, dres, x.fch_gelu, w.fcprojw, BT, f, C);
    gpt2_gelu_backward(dfch, x.fch, dfch_gelu, (long)BT * f);
    gpt2_matmul_backward(dbtc, g.fcw, g.fcb, dfch, x.ln2, w.fcw, BT, C, f);
    tp_reduce(s, dbtc, btc, mlcommSum); /* the column-parallel product's input gradient */
    gpt2_layernorm_backward(dres, g.ln2w, g.ln2b, dbtc, x.residual2, w.ln2w, x.ln2_mean,
                            x.ln2_rstd, BT, C);
    gpt2_matmul_backward(dbtc, g.attprojw, g.attprojb, dres, x.atty, w.attprojw, BT, a, C);
    gpt2_attention_backward(dqkv, dbtc, x.qkv, x.att, Bm, T, a, s->hl);
    gpt2_matmul_backward(dbtc, g.qkvw, g.qkvb, dqkv, x.ln1, w.qkvw, BT, C, 3 * a);
    tp_reduce(s, dbtc, btc, mlcommSum);
    gpt2_layernorm_backward(dres, g.ln1w, g.ln1b, dbtc, res, w.ln1w, x.ln1_mean, x.ln1_rstd, BT,
                            C);
    if (last_one && s->layer_ready)
      s->layer_ready(s->ready_ctx, lo->layers + (size_t)l * lo->layer_size, lo->layer_size);
  }
  if (!s->first) {
    memcpy(q->dinput, dres, btc * sizeof(float));
    return;
  }
  float *dwte = grads + lo->wte, *dwpe = grads + lo->wpe;
  for (int n = 0; n < BT; n++) { /* the encoder: this rank's rows of wte, and wpe */
    int row = q->inputs[n] - s->tp.vocab_lo;
    const float *d = dres + (size_t)n * C;
    float *pe = dwpe + (size_t)(n % T) * C;
    for (int c = 0; c < C; c++) pe[c] += d[c];
    if (row < 0 || row >= s->tp.vocab_rows) continue;
    float *te = dwte + (size_t)row * C;
    for (int c = 0; c < C; c++) te[c] += d[c];
  }
}

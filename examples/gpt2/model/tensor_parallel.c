/*
 * tensor_parallel.c - one rank's part of a model split over ranks for generation
 * (gpt2_tp in gpt2.h): which heads, hidden units and vocabulary rows it holds, and
 * copying them out of the whole model. The shard's layout is params.c's; infer.c runs it.
 */
#include <stdio.h>
#include <string.h>

#include "gpt2.h"

int gpt2_tp_init(gpt2_tp *tp, const gpt2_config *cfg, int rank, int nranks, char *err,
                 size_t errlen) {
  if (gpt2_config_check(cfg, err, errlen) != 0) return -1;
  if (nranks < 1 || rank < 0 || rank >= nranks) {
    snprintf(err, errlen, "tensor parallelism: rank %d of %d ranks; the rank must be 0..%d and "
             "the count at least 1", rank, nranks, nranks - 1);
    return -1;
  }
  const int NH = cfg->num_heads, F = 4 * cfg->channels, V = cfg->vocab_size;
  if (NH % nranks || F % nranks) {
    snprintf(err, errlen, "tensor parallelism over %d ranks needs the head count (%d) and "
             "the MLP width (%d) divisible by it", nranks, NH, F);
    return -1;
  }
  *tp = (gpt2_tp){.rank = rank, .nranks = nranks};
  tp->heads = NH / nranks, tp->head_lo = rank * tp->heads;
  tp->hidden = F / nranks, tp->hidden_lo = rank * tp->hidden;
  tp->vocab_stride = (V + nranks - 1) / nranks;
  tp->vocab_lo = rank * tp->vocab_stride;
  tp->vocab_rows = V - tp->vocab_lo < tp->vocab_stride ? V - tp->vocab_lo : tp->vocab_stride;
  if (tp->vocab_rows < 0) tp->vocab_rows = 0; /* more ranks than rows to go round */
  return 0;
}

int gpt2_tp_check(const gpt2_tp *tp, const gpt2_config *cfg, char *err, size_t errlen) {
  gpt2_tp want;
  if (!tp) {
    snprintf(err, errlen, "tensor parallelism: the gpt2_tp is NULL");
    return -1;
  }
  if (gpt2_tp_init(&want, cfg, tp->rank, tp->nranks, err, errlen) != 0) return -1;
  if (tp->head_lo != want.head_lo || tp->heads != want.heads || tp->hidden_lo != want.hidden_lo ||
      tp->hidden != want.hidden || tp->vocab_lo != want.vocab_lo ||
      tp->vocab_rows != want.vocab_rows || tp->vocab_stride != want.vocab_stride) {
    snprintf(err, errlen, "tensor parallelism: rank %d of %d does not hold the ranges "
             "gpt2_tp_init gives it (heads %d+%d, hidden units %d+%d, vocabulary rows %d+%d of %d)",
             tp->rank, tp->nranks, want.head_lo, want.heads, want.hidden_lo, want.hidden,
             want.vocab_lo, want.vocab_rows, want.vocab_stride);
    return -1;
  }
  if (!tp->reduce || !tp->gather) {
    snprintf(err, errlen, "tensor parallelism: rank %d has no %s callback", tp->rank,
             !tp->reduce ? "reduce" : "gather");
    return -1;
  }
  return 0;
}

/* dst (rows, cols) <- the block of src whose rows lie stride floats apart */
static void copy_block(float *dst, const float *src, size_t rows, size_t cols, size_t stride) {
  for (size_t i = 0; i < rows; i++) memcpy(dst + i * cols, src + i * stride, cols * sizeof(float));
}

int gpt2_tp_fill_params(const gpt2_model *m, const gpt2_model *full, char *err, size_t errlen) {
  const gpt2_tp *tp = m->tp;
  if (!tp || full->tp || memcmp(&m->config, &full->config, sizeof m->config) != 0) {
    snprintf(err, errlen, "tensor parallelism: filling a shard needs a shard (gpt2_model_setup_tp) "
             "and the whole model of the same shape");
    return -1;
  }
  const gpt2_config *c = &full->config;
  const size_t C = c->channels, hs = C / c->num_heads, a = tp->heads * hs, a0 = tp->head_lo * hs;
  const size_t f = tp->hidden, f0 = tp->hidden_lo;
  const gpt2_layout *fl = &full->layout, *ml = &m->layout;
  const float *fp = full->params;
  float *mp = m->params;
  copy_block(mp + ml->wte, fp + fl->wte + (size_t)tp->vocab_lo * C, tp->vocab_rows, C, C);
  memset(mp + ml->wte + (size_t)tp->vocab_rows * C, 0,
         (size_t)(tp->vocab_stride - tp->vocab_rows) * C * sizeof(float));
  memcpy(mp + ml->wpe, fp + fl->wpe, (size_t)c->max_seq_len * C * sizeof(float));
  memcpy(mp + ml->lnfw, fp + fl->lnfw, C * sizeof(float));
  memcpy(mp + ml->lnfb, fp + fl->lnfb, C * sizeof(float));
  for (int l = 0; l < c->num_layers; l++) {
    gpt2_layer w = gpt2_layer_at(fl, full->params, l), s = gpt2_layer_at(ml, mp, l);
    const float *every[] = {w.ln1w, w.ln1b, w.ln2w, w.ln2b, w.attprojb, w.fcprojb};
    float *mine[] = {s.ln1w, s.ln1b, s.ln2w, s.ln2b, s.attprojb, s.fcprojb};
    for (int i = 0; i < 6; i++) memcpy(mine[i], every[i], C * sizeof(float));
    for (size_t part = 0; part < 3; part++) { /* q, k, v: this rank's heads of each */
      copy_block(s.qkvw + part * a * C, w.qkvw + (part * C + a0) * C, a, C, C);
      memcpy(s.qkvb + part * a, w.qkvb + part * C + a0, a * sizeof(float));
    }
    copy_block(s.attprojw, w.attprojw + a0, C, a, C);
    copy_block(s.fcw, w.fcw + f0 * C, f, C, C);
    memcpy(s.fcb, w.fcb + f0, f * sizeof(float));
    copy_block(s.fcprojw, w.fcprojw + f0, C, f, 4 * C);
  }
  return 0;
}

/* params.c - the model's shape, where each tensor lives, and GPT-2's initialisation. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gpt2.h"
#include "rng.h"

int gpt2_padded_vocab(int vocab_size) {
  return (vocab_size + GPT2_VOCAB_PAD - 1) / GPT2_VOCAB_PAD * GPT2_VOCAB_PAD;
}

int gpt2_config_check(const gpt2_config *cfg, char *err, size_t errlen) {
  const struct {
    const char *name;
    int value;
  } fields[] = {{"max sequence length (maxT)", cfg->max_seq_len},
                {"vocabulary size (V)", cfg->vocab_size},
                {"padded vocabulary size (Vp)", cfg->padded_vocab_size},
                {"layer count (L)", cfg->num_layers},
                {"head count (NH)", cfg->num_heads},
                {"channel count (C)", cfg->channels}};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    if (fields[i].value <= 0) {
      snprintf(err, errlen, "the %s is %d; it must be positive", fields[i].name, fields[i].value);
      return -1;
    }
  }
  if (cfg->channels % cfg->num_heads != 0) {
    snprintf(err, errlen, "%d channels do not split into %d heads (C %% NH must be 0)",
             cfg->channels, cfg->num_heads);
    return -1;
  }
  if (cfg->padded_vocab_size < cfg->vocab_size) {
    snprintf(err, errlen, "the padded vocabulary (%d) is smaller than the vocabulary (%d)",
             cfg->padded_vocab_size, cfg->vocab_size);
    return -1;
  }
  /* every size computed later must fit comfortably */
  double n =
      (double)cfg->padded_vocab_size * cfg->channels + (double)cfg->max_seq_len * cfg->channels +
      (double)cfg->num_layers * (12.0 * cfg->channels * cfg->channels + 13.0 * cfg->channels);
  if (n > 1e11 || cfg->channels > (1 << 20) || cfg->max_seq_len > (1 << 20)) {
    snprintf(err, errlen, "the shape (C=%d, L=%d, Vp=%d, maxT=%d) is too large", cfg->channels,
             cfg->num_layers, cfg->padded_vocab_size, cfg->max_seq_len);
    return -1;
  }
  return 0;
}

/* a: attention channels held (C, or a shard's heads), f: MLP hidden units held (4C, or a
 * shard's), vrows: rows of wte held (Vp, or a shard's vocab_stride) */
static void layout_build(gpt2_layout *lo, const gpt2_config *cfg, size_t a, size_t f,
                         size_t vrows) {
  size_t C = (size_t)cfg->channels, L = (size_t)cfg->num_layers;
  memset(lo, 0, sizeof *lo);
  size_t off = 0;
  lo->ln1w = off, off += C;
  lo->ln1b = off, off += C;
  lo->qkvw = off, off += 3 * a * C;
  lo->qkvb = off, off += 3 * a;
  lo->attprojw = off, off += C * a;
  lo->attprojb = off, off += C;
  lo->ln2w = off, off += C;
  lo->ln2b = off, off += C;
  lo->fcw = off, off += f * C;
  lo->fcb = off, off += f;
  lo->fcprojw = off, off += C * f;
  lo->fcprojb = off, off += C;
  lo->layer_size = off;

  off = 0;
  lo->wte = off, off += vrows * C;
  lo->wpe = off, off += (size_t)cfg->max_seq_len * C;
  lo->layers = off, off += L * lo->layer_size;
  lo->lnfw = off, off += C;
  lo->lnfb = off, off += C;
  lo->num_params = off;
}

void gpt2_layout_init(gpt2_layout *lo, const gpt2_config *cfg) {
  size_t C = (size_t)cfg->channels;
  layout_build(lo, cfg, C, 4 * C, (size_t)cfg->padded_vocab_size);
}

gpt2_layer gpt2_layer_at(const gpt2_layout *lo, float *base, int l) {
  float *p = base + lo->layers + (size_t)l * lo->layer_size;
  gpt2_layer x = {
      .ln1w = p + lo->ln1w,
      .ln1b = p + lo->ln1b,
      .qkvw = p + lo->qkvw,
      .qkvb = p + lo->qkvb,
      .attprojw = p + lo->attprojw,
      .attprojb = p + lo->attprojb,
      .ln2w = p + lo->ln2w,
      .ln2b = p + lo->ln2b,
      .fcw = p + lo->fcw,
      .fcb = p + lo->fcb,
      .fcprojw = p + lo->fcprojw,
      .fcprojb = p + lo->fcprojb,
  };
  return x;
}

int gpt2_model_setup(gpt2_model *m, const gpt2_config *cfg, char *err, size_t errlen) {
  if (gpt2_config_check(cfg, err, errlen) != 0) return -1;
  m->config = *cfg;
  gpt2_layout_init(&m->layout, cfg);
  m->params = NULL;
  m->tp = NULL;
  return 0;
}

int gpt2_model_setup_tp(gpt2_model *m, const gpt2_config *cfg, const gpt2_tp *tp, char *err,
                        size_t errlen) {
  if (gpt2_tp_check(tp, cfg, err, errlen) != 0) return -1;
  m->config = *cfg;
  layout_build(&m->layout, cfg, (size_t)tp->heads * (cfg->channels / cfg->num_heads),
               (size_t)tp->hidden, (size_t)tp->vocab_stride);
  m->params = NULL;
  m->tp = tp;
  return 0;
}

static void fill_normal(float *p, size_t n, float std, uint64_t *rng) {
  for (size_t i = 0; i < n; i++) p[i] = std * gpt2_rng_normal(rng);
}

static void fill(float *p, size_t n, float value) {
  for (size_t i = 0; i < n; i++) p[i] = value;
}

void gpt2_init_params(const gpt2_model *m, uint64_t seed) {
  if (m->tp) return; /* it fills the whole model's shapes, which a shard has not */
  const gpt2_config *cfg = &m->config;
  const gpt2_layout *lo = &m->layout;
  size_t C = (size_t)cfg->channels;
  float *p = m->params;
  float proj_std = 0.02f / sqrtf(2.0f * cfg->num_layers);
  uint64_t rng = gpt2_rng_seed(seed);

  fill_normal(p + lo->wte, (size_t)cfg->vocab_size * C, 0.02f, &rng);
  fill(p + lo->wte + (size_t)cfg->vocab_size * C,
       (size_t)(cfg->padded_vocab_size - cfg->vocab_size) * C, 0.0f);
  fill_normal(p + lo->wpe, (size_t)cfg->max_seq_len * C, 0.02f, &rng);
  for (int l = 0; l < cfg->num_layers; l++) {
    gpt2_layer x = gpt2_layer_at(lo, p, l);
    fill(x.ln1w, C, 1.0f);
    fill(x.ln1b, C, 0.0f);
    fill_normal(x.qkvw, 3 * C * C, 0.02f, &rng);
    fill(x.qkvb, 3 * C, 0.0f);
    fill_normal(x.attprojw, C * C, proj_std, &rng);
    fill(x.attprojb, C, 0.0f);
    fill(x.ln2w, C, 1.0f);
    fill(x.ln2b, C, 0.0f);
    fill_normal(x.fcw, 4 * C * C, 0.02f, &rng);
    fill(x.fcb, 4 * C, 0.0f);
    fill_normal(x.fcprojw, 4 * C * C, proj_std, &rng);
    fill(x.fcprojb, C, 0.0f);
  }
  fill(p + lo->lnfw, C, 1.0f);
  fill(p + lo->lnfb, C, 0.0f);
}

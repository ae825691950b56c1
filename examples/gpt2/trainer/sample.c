/* sample.c - text samples during training (sample.h). */
#include "sample.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rng.h"

int sampler_open(sampler *s, const gpt2_config *cfg, const char *tokenizer_path, int required,
                 int max_tokens, uint64_t seed, char *note, size_t notelen, char *err,
                 size_t errlen) {
  memset(s, 0, sizeof *s);
  note[0] = 0;
  if (!required && access(tokenizer_path, F_OK) != 0) {
    snprintf(note, notelen, "no tokenizer file %s: samples print as token ids", tokenizer_path);
  } else if (gpt2_tokenizer_load(&s->tok, tokenizer_path, err, errlen) != 0) {
    return -1;
  } else if ((int)gpt2_tokenizer_vocab_size(s->tok) != cfg->vocab_size) {
    snprintf(note, notelen, "tokenizer %s has %u tokens but the model %d", tokenizer_path,
             gpt2_tokenizer_vocab_size(s->tok), cfg->vocab_size);
  }
  s->max_tokens = max_tokens < cfg->max_seq_len - 1 ? max_tokens : cfg->max_seq_len - 1;
  if (s->max_tokens < 1) s->max_tokens = 1;
  s->eot = s->tok ? (int)gpt2_tokenizer_eot(s->tok) : 50256;
  if (s->eot >= cfg->vocab_size) s->eot = cfg->vocab_size - 1;
  s->rng = gpt2_rng_seed(seed);
  s->logits = malloc((size_t)cfg->vocab_size * sizeof(float));
  s->ids = malloc((size_t)s->max_tokens * sizeof(int));
  if (!s->logits || !s->ids || gpt2_kv_create(&s->kv, cfg, s->max_tokens + 1, err, errlen) != 0) {
    if (!err[0]) snprintf(err, errlen, "out of memory for sampling");
    sampler_close(s);
    return -1;
  }
  return 0;
}

int sampler_run(sampler *s, const gpt2_model *m, const char **text, size_t *len) {
  gpt2_kv_reset(s->kv);
  int token = s->eot, n = 0;
  for (; n < s->max_tokens; n++) {
    if (gpt2_forward_token(m, s->kv, token, s->logits) != 0) break;
    token = gpt2_sample(s->logits, m->config.vocab_size, 1.0f, gpt2_rng_f32(&s->rng));
    s->ids[n] = token;
  }
  size_t need =
      s->tok ? gpt2_tokenizer_decode_all(s->tok, s->ids, (size_t)n, NULL, 0) : (size_t)n * 8;
  if (need + 1 > s->text_cap) {
    char *t = realloc(s->text, need + 1);
    if (!t) return -1;
    s->text = t;
    s->text_cap = need + 1;
  }
  size_t used = 0;
  if (s->tok) {
    used = gpt2_tokenizer_decode_all(s->tok, s->ids, (size_t)n, s->text, s->text_cap);
  } else {
    for (int i = 0; i < n; i++)
      used += (size_t)snprintf(s->text + used, s->text_cap - used, "%s%d", i ? " " : "", s->ids[i]);
  }
  *text = s->text;
  *len = used < s->text_cap ? used : s->text_cap - 1;
  return 0;
}

void sampler_close(sampler *s) {
  gpt2_tokenizer_free(s->tok);
  gpt2_kv_free(s->kv);
  free(s->logits);
  free(s->ids);
  free(s->text);
  memset(s, 0, sizeof *s);
}

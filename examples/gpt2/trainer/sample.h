/* sample.h - text generation during training: the KV-cache forward from an
 * end-of-text token, sampled at temperature 1, decoded with an llm.c tokenizer file. */
#ifndef GPT2_TRAINER_SAMPLE_H
#define GPT2_TRAINER_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2.h"
#include "tokenizer.h"

typedef struct {
  gpt2_tokenizer *tok; /* NULL: samples print as token ids */
  gpt2_kv *kv;
  float *logits;
  int *ids;
  int max_tokens, eot;
  uint64_t rng; /* checkpointed, so a resumed run samples the same text */
  char *text;
  size_t text_cap;
} sampler;

/* Loads the tokenizer. A missing file is an error only when required (the user named
 * it); otherwise *note explains that samples will be token ids. */
int sampler_open(sampler *s, const gpt2_config *cfg, const char *tokenizer_path, int required,
                 int max_tokens, uint64_t seed, char *note, size_t notelen, char *err,
                 size_t errlen);

/* Generates max_tokens tokens (fewer if maxT is smaller); *text is valid until the next
 * call. */
int sampler_run(sampler *s, const gpt2_model *m, const char **text, size_t *len);

void sampler_close(sampler *s);

#endif /* GPT2_TRAINER_SAMPLE_H */

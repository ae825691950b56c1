/*
 * engine.h - one loaded graph: the GPT-2 model (whole, or this rank's shard under
 * mpirun), its tokenizer and encoder, and key/value caches that run it a token at a time.
 */
#ifndef WASI_NN_ENGINE_H
#define WASI_NN_ENGINE_H

#include "gpt2.h"
#include "tokenizer.h"
#include "tp.h"
#include "wasi_nn_abi.h"

typedef struct {
  gpt2_config cfg;
  gpt2_model model;   /* params NULL under tensor parallelism */
  tp_model *tp;       /* this rank's shard, or NULL for one rank */
  gpt2_tokenizer *tok;
  gpt2_encoder *enc;
} engine;

typedef struct {
  const engine *e;
  gpt2_kv *kv;
  tp_kv *tkv;
} engine_kv;

/* Loads an llm.c checkpoint (fp32 or bf16) and tokenizer file. Collective under
 * tensor parallelism (every rank agrees on failure). Returns a wasi_nn_error with a
 * sentence in err. */
wasi_nn_error engine_load(engine **out, const char *model_path, const char *tokenizer_path,
                          const tp_world *w, char *err, size_t errlen);
void engine_free(engine *e);

int engine_kv_create(engine_kv *kv, const engine *e, int max_len, char *err, size_t errlen);
void engine_kv_free(engine_kv *kv);
int engine_kv_length(const engine_kv *kv);
void engine_kv_truncate(engine_kv *kv, int len);
int engine_forward_token(engine_kv *kv, int token, float *logits);

#endif

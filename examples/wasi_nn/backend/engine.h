/*
 * engine.h - one loaded graph: the GPT-2 model (whole, or this rank's shard under
 * mpirun), its tokenizer and encoder. Either runs a token at a time through the model
 * library's gpt2_forward_token and a cache from engine_kv_create.
 */
#ifndef WASI_NN_ENGINE_H
#define WASI_NN_ENGINE_H

#include "gpt2.h"
#include "tokenizer.h"
#include "tp.h"
#include "wasi_nn_abi.h"

typedef struct {
  gpt2_config cfg;
  gpt2_model model;   /* the whole model, or this rank's shard (model.tp = &tp) */
  gpt2_tp tp;         /* the split under tensor parallelism */
  gpt2_tokenizer *tok;
  gpt2_encoder *enc;
} engine;

/* Loads an llm.c checkpoint (fp32 or bf16) and tokenizer file. Collective under
 * tensor parallelism (every rank agrees on failure). Returns a wasi_nn_error with a
 * sentence in err. */
wasi_nn_error engine_load(engine **out, const char *model_path, const char *tokenizer_path,
                          const tp_world *w, char *err, size_t errlen);
void engine_free(engine *e);

/* A key/value cache of max_len positions for e's model (its heads only on a shard). */
int engine_kv_create(gpt2_kv **kv, const engine *e, int max_len, char *err, size_t errlen);

#endif

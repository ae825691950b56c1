/*
 * models.h - which host files a guest may load. A guest names a model; the host
 * operator decides what the names mean, as WasmEdge's --nn-preload does:
 *   WASI_NN_GPT2_MODELS=name=path[,name=path...]  names mapped to host paths, and/or
 *   WASI_NN_GPT2_MODEL_DIR=DIR                    relative names inside DIR, with no
 *                                                 absolute path, no "..", and symlinks
 *                                                 resolved and checked to stay in DIR.
 * Any other name is refused, so a guest cannot open a host path it was not given.
 */
#ifndef WASI_NN_MODELS_H
#define WASI_NN_MODELS_H

#include <stddef.h>

#include "wasi_nn_abi.h"

typedef struct {
  char **names, **paths; /* the WASI_NN_GPT2_MODELS entries */
  int n;
  char *dir;             /* realpath of WASI_NN_GPT2_MODEL_DIR, or NULL */
} model_table;

/* Reads both variables. -1 with a sentence in err when one is malformed. */
int model_table_init(model_table *t, char *err, size_t errlen);
void model_table_free(model_table *t);

/* The host path for a guest's name (what: "model" or "tokenizer", for messages).
 * model_not_found for a name the host does not offer, invalid_argument for one that
 * would leave the models directory; err holds the sentence. */
wasi_nn_error model_resolve(const model_table *t, const char *name, const char *what,
                            char *path, size_t cap, char *err, size_t errlen);

#endif

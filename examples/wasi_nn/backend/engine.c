/*
 * engine.c - see engine.h. One rank keeps the whole model; several keep tp.c's shards,
 * which the model library's gpt2_forward_token runs too.
 */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static wasi_nn_error load_local(engine *e, const char *model_path, const char *tok_path,
                                const tp_world *w, char *err, size_t errlen) {
  struct stat st;
  if (stat(model_path, &st) != 0) {
    snprintf(err, errlen, "model file %s: %s", model_path, strerror(errno));
    return errno == ENOENT ? model_not_found : invalid_argument;
  }
  if (stat(tok_path, &st) != 0) {
    snprintf(err, errlen, "tokenizer file %s: %s (give its path with the config key "
             "\"tokenizer\", or put tokenizer.bin beside the model)", tok_path, strerror(errno));
    return errno == ENOENT ? model_not_found : invalid_argument;
  }
  if (gpt2_checkpoint_read_config(model_path, &e->cfg, NULL, err, errlen) != 0 ||
      gpt2_model_setup(&e->model, &e->cfg, err, errlen) != 0)
    return invalid_argument;
  e->model.params = malloc(e->model.layout.num_params * sizeof(float));
  if (!e->model.params) {
    snprintf(err, errlen, "out of memory for the %zu parameters of %s",
             e->model.layout.num_params, model_path);
    return missing_memory;
  }
  if (gpt2_checkpoint_read_params(model_path, &e->model, err, errlen) != 0)
    return invalid_argument;
  if (gpt2_tokenizer_load(&e->tok, tok_path, err, errlen) != 0) return invalid_argument;
  if (gpt2_tokenizer_vocab_size(e->tok) != (uint32_t)e->cfg.vocab_size) {
    snprintf(err, errlen, "tokenizer %s has %u tokens but model %s has a vocabulary of %d",
             tok_path, gpt2_tokenizer_vocab_size(e->tok), model_path, e->cfg.vocab_size);
    return invalid_argument;
  }
  if (gpt2_encoder_new(&e->enc, e->tok, err, errlen) != 0) return invalid_argument;
  if (w->nranks > 1) {
    gpt2_model shard;
    if (tp_shard(&shard, &e->tp, &e->model, w, err, errlen) != 0) return invalid_argument;
    free(e->model.params); /* the shard is all this rank keeps */
    e->model = shard;
  }
  return success;
}

wasi_nn_error engine_load(engine **out, const char *model_path, const char *tokenizer_path,
                          const tp_world *w, char *err, size_t errlen) {
  *out = NULL;
  engine *e = calloc(1, sizeof *e);
  wasi_nn_error rc = e ? load_local(e, model_path, tokenizer_path, w, err, errlen) : missing_memory;
  if (!e) snprintf(err, errlen, "out of memory");
  /* every rank must agree, or the ones that loaded would wait for the others forever */
  if (tp_any(w, rc != success) && rc == success) {
    snprintf(err, errlen, "another rank failed to load %s (its message is on its stderr)",
             model_path);
    rc = runtime_error;
  }
  if (rc != success) {
    engine_free(e);
    return rc;
  }
  *out = e;
  return success;
}

void engine_free(engine *e) {
  if (!e) return;
  free(e->model.params);
  gpt2_encoder_free(e->enc);
  gpt2_tokenizer_free(e->tok);
  free(e);
}

int engine_kv_create(gpt2_kv **kv, const engine *e, int max_len, char *err, size_t errlen) {
  return gpt2_kv_create_tp(kv, &e->cfg, e->model.tp, max_len, err, errlen);
}

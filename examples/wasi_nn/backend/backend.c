/*
 * backend.c - the nine WASI-NN entry points (wasi_nn_abi.h) over engine.c.
 *
 * Everything lives in the context init_backend returns (one per wasm instance): the
 * graphs, the execution contexts and the MPI communicator. Handles are indices into
 * its tables, checked on every call. Pointers and sizes from the runtime point into
 * guest memory: each is checked, only size bytes are read, and what is kept is copied.
 * Messages go to stderr (WAMR writes its own on stdout), one sentence each.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine.h"
#include "models.h"
#include "sampler.h"
#include "settings.h"
#include "wasi_nn_abi.h"

#define MAX_PROMPT_BYTES (1u << 20)

typedef struct {
  engine *e;
  settings cfg; /* from the load config; each context starts from a copy */
} graph_slot;

typedef struct {
  int used;
  graph g;
  settings cfg;
  gpt2_kv *kv;
  int kv_len_max;      /* positions kv was made for, 0 = none yet */
  int *hist;           /* the tokens in kv, in order */
  char *prompt;        /* set_input 0 */
  size_t prompt_len;
  int have_prompt;
  char *out;           /* the last compute's text */
  size_t out_len, out_cap;
  int in_tokens, out_tokens;
  float *logits;
  sampler_cand *cand;
  int *ids;            /* encoding scratch */
} exec_slot;

typedef struct {
  graph_slot *graphs;
  int n_graphs, max_graphs;
  exec_slot *ctxs;
  int n_ctxs, max_ctxs;
  tp_world world;
  int world_ready;
  model_table models; /* the names a guest may load (models.h) */
} backend;

static wasi_nn_error report(wasi_nn_error rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("wasi-nn gpt2: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return rc;
}

static int env_limit(const char *name, int dflt) {
  const char *s = getenv(name);
  char *end;
  long v = s ? strtol(s, &end, 10) : dflt;
  if (s && (*end || v < 1 || v > 65536)) {
    report(success, "%s=%s is not an integer from 1 to 65536; using %d", name, s, dflt);
    return dflt;
  }
  return (int)v;
}

WASI_NN_EXPORT wasi_nn_error init_backend(void **ctx) {
  if (!ctx) return invalid_argument;
  backend *b = calloc(1, sizeof *b);
  if (!b) return report(missing_memory, "out of memory for the backend context");
  b->max_graphs = env_limit("WASI_NN_GPT2_MAX_GRAPHS", 4);
  b->max_ctxs = env_limit("WASI_NN_GPT2_MAX_CONTEXTS", 16);
  b->graphs = calloc((size_t)b->max_graphs, sizeof *b->graphs);
  b->ctxs = calloc((size_t)b->max_ctxs, sizeof *b->ctxs);
  if (!b->graphs || !b->ctxs) {
    free(b->graphs), free(b->ctxs), free(b);
    return report(missing_memory, "out of memory for the backend context");
  }
  b->world = (tp_world){0, 1, NULL};
  char err[512];
  if (model_table_init(&b->models, err, sizeof err) != 0) {
    free(b->graphs), free(b->ctxs), free(b);
    return report(runtime_error, "%s", err);
  }
  *ctx = b;
  return success;
}

static void exec_free(exec_slot *x) {
  gpt2_kv_free(x->kv);
  free(x->hist), free(x->prompt), free(x->out), free(x->logits), free(x->cand), free(x->ids);
  memset(x, 0, sizeof *x);
}

WASI_NN_EXPORT wasi_nn_error deinit_backend(void *ctx) {
  backend *b = ctx;
  if (!b) return invalid_argument;
  for (int i = 0; i < b->n_ctxs; i++) exec_free(&b->ctxs[i]);
  for (int i = 0; i < b->n_graphs; i++) engine_free(b->graphs[i].e);
  tp_world_free(&b->world);
  model_table_free(&b->models);
  free(b->ctxs), free(b->graphs), free(b);
  return success;
}

/* ---------------------------------------------------------------- loading */

/* tok_override (may be NULL) wins over the config's "tokenizer" and the file beside. */
static wasi_nn_error add_graph(backend *b, const char *model, const char *cfg_json,
                               size_t cfg_len, const char *tok_override, graph *g) {
  if (b->n_graphs >= b->max_graphs)
    return report(runtime_error, "this instance already holds %d graphs, the most allowed "
                "(WASI_NN_GPT2_MAX_GRAPHS)", b->max_graphs);
  settings s;
  char err[512];
  settings_default(&s);
  if (cfg_json && settings_apply_json(&s, cfg_json, cfg_len, 1, err, sizeof err) != 0)
    return report(invalid_argument, "%s", err);
  char tok[PATH_MAX + 32];
  if (tok_override) {
    snprintf(tok, sizeof tok, "%s", tok_override);
  } else if (s.tokenizer[0]) { /* a guest's name, like the model's */
    wasi_nn_error rc = model_resolve(&b->models, s.tokenizer, "tokenizer", tok, sizeof tok, err,
                                     sizeof err);
    if (rc != success) return report(rc, "%s", err);
  } else { /* beside the model: tokenizer.bin, or llm.c's gpt2_tokenizer.bin */
    const char *slash = strrchr(model, '/');
    int dir = slash ? (int)(slash - model + 1) : 0;
    snprintf(tok, sizeof tok, "%.*stokenizer.bin", dir, model);
    if (access(tok, R_OK) != 0) snprintf(tok, sizeof tok, "%.*sgpt2_tokenizer.bin", dir, model);
  }
  if (!b->world_ready) {
    if (tp_world_init(&b->world, err, sizeof err) != 0) return report(runtime_error, "%s", err);
    b->world_ready = 1;
  }
  engine *e;
  wasi_nn_error rc = engine_load(&e, model, tok, &b->world, err, sizeof err);
  if (rc != success) return report(rc, "%s", err);
  if (s.ctx_size > e->cfg.max_seq_len) {
    int max = e->cfg.max_seq_len;
    engine_free(e);
    return report(invalid_argument, "config key \"ctx-size\" has the value %d: it must be from 0 "
                "to the model's context, %d", s.ctx_size, max);
  }
  if (s.enable_log)
    report(success, "loaded %s: L=%d NH=%d C=%d maxT=%d V=%d, rank %d of %d", model,
         e->cfg.num_layers, e->cfg.num_heads, e->cfg.channels, e->cfg.max_seq_len,
         e->cfg.vocab_size, b->world.rank, b->world.nranks);
  b->graphs[b->n_graphs] = (graph_slot){e, s};
  *g = (graph)b->n_graphs++;
  return success;
}

/* A name from the runtime: namelen bytes, no NUL among them, copied. */
static char *copy_name(const char *name, uint32_t len) {
  if (!name || len == 0 || len >= PATH_MAX || memchr(name, 0, len)) return NULL;
  char *s = malloc(len + 1);
  if (s) memcpy(s, name, len), s[len] = 0;
  return s;
}

WASI_NN_EXPORT wasi_nn_error load_by_name_with_config(void *ctx, const char *name,
                                                      uint32_t namelen, const char *config,
                                                      uint32_t config_len, graph *g) {
  backend *b = ctx;
  if (!b || !g) return report(invalid_argument, "load_by_name: a NULL context or graph pointer");
  if (!config && config_len) return report(invalid_argument, "load_by_name_with_config: NULL config of %u bytes", config_len);
  char *path = copy_name(name, namelen);
  if (!path)
    return report(invalid_argument, "load_by_name: the model name (%u bytes) must be a path of 1 "
                "to %d bytes without NUL", namelen, PATH_MAX - 1);
  char host_path[PATH_MAX], err[768];
  wasi_nn_error rc = model_resolve(&b->models, path, "model", host_path, sizeof host_path, err,
                                   sizeof err);
  if (rc == success)
    rc = add_graph(b, host_path, config_len ? config : NULL, config_len, NULL, g);
  else
    report(rc, "load_by_name: %s", err);
  free(path);
  return rc;
}

WASI_NN_EXPORT wasi_nn_error load_by_name(void *ctx, const char *name, uint32_t namelen,
                                          graph *g) {
  return load_by_name_with_config(ctx, name, namelen, NULL, 0, g);
}

/* Guest bytes to a private temporary file, for the checkpoint and tokenizer readers. */
static int spill(const graph_builder *gb, char *path, size_t cap) {
  const char *dir = getenv("TMPDIR");
  snprintf(path, cap, "%s/wasi-nn-gpt2-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < gb->size) {
    ssize_t n = write(fd, gb->buf + done, gb->size - done);
    if (n <= 0) break;
    done += (size_t)n;
  }
  close(fd);
  if (done != gb->size) unlink(path);
  return done == gb->size ? 0 : -1;
}

/* builder[0]: the checkpoint's bytes; [1]: the tokenizer file's; [2] (optional): a JSON
 * config. The bytes go through a temporary file, removed at once. */
WASI_NN_EXPORT wasi_nn_error load(void *ctx, graph_builder_array *builder,
                                  graph_encoding encoding, execution_target target, graph *g) {
  backend *b = ctx;
  if (!b || !g || !builder || (!builder->buf && builder->size))
    return report(invalid_argument, "load: a NULL context, graph or builder pointer");
  if (encoding == onnx)
    return report(invalid_encoding, "load: encoding onnx (1): this backend runs llm.c GPT-2 "
                "checkpoints only; an ONNX export (examples/gpt2/gpt2_export_onnx.py) is for "
                "runtimes with an ONNX backend");
  if (encoding != ggml && encoding != autodetect)
    return report(invalid_encoding, "load: encoding %d is not ggml (5) or autodetect (6), the "
                "ones this GPT-2 backend answers", (int)encoding);
  if (target != cpu)
    return report(unsupported_operation, "load: execution target %d: this backend runs on the "
                "CPU (0) only", (int)target);
  if (builder->size < 2 || builder->size > 3)
    return report(invalid_argument, "load: %u builders; give 2 or 3: the llm.c checkpoint, the "
                "tokenizer file, and optionally a JSON config", builder->size);
  for (uint32_t i = 0; i < builder->size; i++)
    if (!builder->buf[i].buf || builder->buf[i].size == 0)
      return report(invalid_argument, "load: builder %u is empty or NULL", i);
  char model[PATH_MAX], tok[PATH_MAX];
  if (spill(&builder->buf[0], model, sizeof model) != 0)
    return report(runtime_error, "load: cannot write the checkpoint to a temporary file in %s",
                getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (spill(&builder->buf[1], tok, sizeof tok) != 0) {
    unlink(model);
    return report(runtime_error, "load: cannot write the tokenizer to a temporary file");
  }
  const graph_builder *cfg = builder->size == 3 ? &builder->buf[2] : NULL;
  wasi_nn_error rc = add_graph(b, model, cfg ? (const char *)cfg->buf : NULL, cfg ? cfg->size : 0,
                               tok, g);
  unlink(model), unlink(tok);
  return rc;
}

/* ---------------------------------------------------------------- execution */

static exec_slot *get_exec(backend *b, graph_execution_context x, const char *who) {
  if (!b || x >= (uint32_t)b->n_ctxs || !b->ctxs[x].used) {
    report(invalid_argument, "%s: %u is not an execution context of this instance", who, x);
    return NULL;
  }
  return &b->ctxs[x];
}

WASI_NN_EXPORT wasi_nn_error init_execution_context(void *ctx, graph g,
                                                    graph_execution_context *exec_ctx) {
  backend *b = ctx;
  if (!b || !exec_ctx) return report(invalid_argument, "init_execution_context: a NULL pointer");
  if (g >= (uint32_t)b->n_graphs)
    return report(invalid_argument, "init_execution_context: %u is not a graph of this instance", g);
  if (b->n_ctxs >= b->max_ctxs)
    return report(runtime_error, "this instance already holds %d execution contexts, the most "
                "allowed (WASI_NN_GPT2_MAX_CONTEXTS)", b->max_ctxs);
  const engine *e = b->graphs[g].e;
  exec_slot *x = &b->ctxs[b->n_ctxs];
  memset(x, 0, sizeof *x);
  x->g = g;
  x->cfg = b->graphs[g].cfg;
  x->logits = malloc((size_t)e->cfg.vocab_size * sizeof(float));
  x->cand = malloc((size_t)e->cfg.vocab_size * sizeof *x->cand);
  x->hist = malloc((size_t)e->cfg.max_seq_len * sizeof(int));
  if (!x->logits || !x->cand || !x->hist) {
    exec_free(x);
    return report(missing_memory, "out of memory for an execution context");
  }
  x->used = 1;
  *exec_ctx = (graph_execution_context)b->n_ctxs++;
  return success;
}

WASI_NN_EXPORT wasi_nn_error set_input(void *ctx, graph_execution_context exec_ctx,
                                       uint32_t index, tensor *t) {
  exec_slot *x = get_exec(ctx, exec_ctx, "set_input");
  if (!x) return invalid_argument;
  if (!t) return report(invalid_argument, "set_input: a NULL tensor");
  if (index > 1)
    return report(invalid_argument, "set_input: index %u; 0 is the prompt, 1 a JSON config", index);
  if (t->type != u8)
    return report(invalid_argument, "set_input: tensor type %d; the prompt and config are u8 (3)",
                (int)t->type);
  if (!t->data.buf && t->data.size)
    return report(invalid_argument, "set_input: NULL data of %u bytes", t->data.size);
  if (t->data.size > MAX_PROMPT_BYTES)
    return report(too_large, "set_input: %u bytes; at most %u are taken", t->data.size,
                MAX_PROMPT_BYTES);
  if (index == 1) {
    char err[512];
    settings s = x->cfg;
    if (settings_apply_json(&s, (const char *)t->data.buf, t->data.size, 0, err, sizeof err) != 0)
      return report(invalid_argument, "%s", err);
    const engine *e = ((backend *)ctx)->graphs[x->g].e;
    if (s.ctx_size > e->cfg.max_seq_len)
      return report(invalid_argument, "config key \"ctx-size\" has the value %d: it must be from "
                  "0 to the model's context, %d", s.ctx_size, e->cfg.max_seq_len);
    x->cfg = s;
    return success;
  }
  char *p = malloc(t->data.size + 1);
  if (!p) return report(missing_memory, "set_input: out of memory for a %u-byte prompt", t->data.size);
  if (t->data.size) memcpy(p, t->data.buf, t->data.size);
  free(x->prompt);
  x->prompt = p;
  x->prompt_len = t->data.size;
  x->have_prompt = 1;
  return success;
}

/* Appends bytes to the context's output text. */
static int out_append(exec_slot *x, const char *s, size_t n) {
  if (x->out_len + n + 1 > x->out_cap) {
    size_t cap = (x->out_len + n + 1) * 2;
    char *p = realloc(x->out, cap);
    if (!p) return -1;
    x->out = p, x->out_cap = cap;
  }
  memcpy(x->out + x->out_len, s, n);
  x->out_len += n;
  x->out[x->out_len] = 0;
  return 0;
}

/* Looks for a stop string in the text the last token (added bytes) could have completed;
 * cuts the text where it starts. 1 when one was found. */
static int hit_stop(exec_slot *x, size_t added) {
  for (int i = 0; i < x->cfg.n_stops; i++) {
    size_t n = strlen(x->cfg.stops[i]), from = x->out_len - added;
    from = from > n ? from - n + 1 : 0;
    char *p = memmem(x->out + from, x->out_len - from, x->cfg.stops[i], n);
    if (p) {
      x->out_len = (size_t)(p - x->out);
      x->out[x->out_len] = 0;
      return 1;
    }
  }
  return 0;
}

static wasi_nn_error generate(backend *b, exec_slot *x, const engine *e);

/* Encodes the prompt, reuses the cached prefix it shares with the tokens already in the
 * KV cache (a chat resending its whole conversation pays only for the new turn), runs
 * the rest, then generates up to n-predict tokens. */
WASI_NN_EXPORT wasi_nn_error compute(void *ctx, graph_execution_context exec_ctx) {
  backend *b = ctx;
  exec_slot *x = get_exec(b, exec_ctx, "compute");
  if (!x) return invalid_argument;
  if (!x->have_prompt) return report(invalid_argument, "compute: no prompt; set input 0 first");
  const engine *e = b->graphs[x->g].e;
#ifdef _OPENMP
  /* omp_set_num_threads binds the calling thread: restore it for the other contexts */
  int omp_before = omp_get_max_threads();
  if (x->cfg.threads > 0) omp_set_num_threads(x->cfg.threads);
#endif
  wasi_nn_error rc = generate(b, x, e);
#ifdef _OPENMP
  omp_set_num_threads(omp_before);
#endif
  return rc;
}

static wasi_nn_error generate(backend *b, exec_slot *x, const engine *e) {
  const int V = e->cfg.vocab_size, eot = (int)gpt2_tokenizer_eot(e->tok);
  const int n_ctx = x->cfg.ctx_size > 0 ? x->cfg.ctx_size : e->cfg.max_seq_len;
  char err[256];
  x->out_len = 0;
  x->in_tokens = x->out_tokens = 0;
  if (out_append(x, "", 0) != 0) return report(missing_memory, "compute: out of memory");

  int *ids = realloc(x->ids, (x->prompt_len + 1) * sizeof(int));
  if (!ids) return report(missing_memory, "compute: out of memory for the prompt's tokens");
  x->ids = ids;
  size_t n = gpt2_encoder_encode(e->enc, x->prompt, x->prompt_len, ids, x->prompt_len);
  if (n == SIZE_MAX) return report(missing_memory, "compute: out of memory encoding the prompt");
  if (n == 0) ids[n++] = eot; /* an empty prompt: start a document */
  x->in_tokens = (int)n;
  if (n > (size_t)n_ctx)
    return report(prompt_too_long, "compute: the prompt is %zu tokens, the context %d", n, n_ctx);

  if (x->kv_len_max != n_ctx) { /* first compute, or ctx-size changed */
    gpt2_kv_free(x->kv);
    x->kv = NULL;
    x->kv_len_max = 0;
    if (engine_kv_create(&x->kv, e, n_ctx, err, sizeof err) != 0)
      return report(missing_memory, "compute: %s", err);
    x->kv_len_max = n_ctx;
  }
  int keep = 0, have = gpt2_kv_length(x->kv);
  while (keep < have && keep < (int)n - 1 && x->hist[keep] == ids[keep]) keep++;
  gpt2_kv_truncate(x->kv, keep);
  for (int i = keep; i < (int)n; i++) {
    if (gpt2_forward_token(&e->model, x->kv, ids[i], x->logits) != 0)
      return report(runtime_error, "compute: the forward pass failed at position %d", i);
    x->hist[i] = ids[i];
  }

  uint64_t rng = sampler_seed(x->cfg.seed);
  tp_broadcast_u64(&b->world, &rng); /* every rank must draw the same tokens */
  wasi_nn_error rc = success;
  for (int i = 0; i < x->cfg.n_predict; i++) {
    int len = gpt2_kv_length(x->kv);
    int tok = sampler_pick(&x->cfg, x->logits, V, x->hist, len, x->cand, &rng);
    if (x->cfg.enable_debug_log) report(success, "position %d: token %d", len, tok);
    if (tok == eot) break;
    size_t blen;
    const char *bytes = gpt2_tokenizer_decode(e->tok, (uint32_t)tok, &blen);
    if (out_append(x, bytes, blen) != 0) return report(missing_memory, "compute: out of memory");
    x->out_tokens++;
    if (x->cfg.stream_stdout && b->world.rank == 0) fwrite(bytes, 1, blen, stdout), fflush(stdout);
    if (hit_stop(x, blen) || i + 1 == x->cfg.n_predict) break;
    if (len >= n_ctx) {
      rc = context_full; /* the text so far stays readable through get_output */
      report(rc, "compute: the context of %d tokens is full after %d generated", n_ctx,
           x->out_tokens);
      break;
    }
    if (gpt2_forward_token(&e->model, x->kv, tok, x->logits) != 0)
      return report(runtime_error, "compute: the forward pass failed at position %d", len);
    x->hist[len] = tok;
  }
  if (x->cfg.enable_log)
    report(success, "compute: %d prompt tokens (%d reused from the cache), %d generated",
         x->in_tokens, keep, x->out_tokens);
  return rc;
}

WASI_NN_EXPORT wasi_nn_error get_output(void *ctx, graph_execution_context exec_ctx,
                                        uint32_t index, tensor_data *output,
                                        uint32_t *output_size) {
  exec_slot *x = get_exec(ctx, exec_ctx, "get_output");
  if (!x) return invalid_argument;
  if (!output || !output_size || (!output->buf && output->size))
    return report(invalid_argument, "get_output: a NULL output buffer or size pointer");
  if (index > 1)
    return report(invalid_argument, "get_output: index %u; 0 is the text, 1 the token counts", index);
  char counts[64];
  const char *src = x->out ? x->out : "";
  size_t n = x->out_len;
  if (index == 1) {
    n = (size_t)snprintf(counts, sizeof counts, "{\"input_tokens\":%d,\"output_tokens\":%d}",
                         x->in_tokens, x->out_tokens);
    src = counts;
  }
  if (n > UINT32_MAX) return report(too_large, "get_output: %zu bytes do not fit a u32", n);
  *output_size = (uint32_t)n;
  if (n > output->size) return too_large; /* a guest sizing its buffer: not worth a log line */
  if (n) memcpy(output->buf, src, n);
  return success;
}

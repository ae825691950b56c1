/*
 * test_backend.c - the backend called as a runtime calls it: dlopen() of
 * libwasi_nn_llamacpp.so, dlsym() of the nine entry points, guest-like buffers.
 * Every entry point, every error path, many sessions, init/deinit cycles, and greedy
 * text equal to the model library's own generation.
 *
 * usage: test_backend BACKEND.so TOKENIZER.bin   (exit 77 when the tokenizer is absent)
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpt2.h"
#include "tokenizer.h"
#include "wasi_nn_table.h"

static int failures;
#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
      failures++;                                                                    \
    }                                                                                \
  } while (0)

static wasi_nn_table B; /* the entry points, found as a runtime finds them */

static char dir[] = "/tmp/wasi-nn-test-XXXXXX";
/* files, and the names a guest gives for them (relative to WASI_NN_GPT2_MODEL_DIR) */
static char model_file[256], tok_file[256], nested_file[256];
static const char *model_path = "model.bin", *tok_path = "tokenizer.bin",
                  *nested_model = "alone/model_bf16.bin";

static wasi_nn_error load_cfg(void *ctx, const char *path, const char *cfg, graph *g) {
  return B.load_by_name_with_config(ctx, path, (uint32_t)strlen(path), cfg,
                                    cfg ? (uint32_t)strlen(cfg) : 0, g);
}

static wasi_nn_error set_u8(void *ctx, graph_execution_context x, uint32_t idx, const char *s) {
  uint32_t dim = 1;
  tensor_dimensions d = {&dim, 1};
  tensor t = {&d, u8, {(uint8_t *)s, (uint32_t)strlen(s)}};
  return B.set_input(ctx, x, idx, &t);
}

static wasi_nn_error run(void *ctx, graph_execution_context x, const char *prompt, char *out,
                         uint32_t cap, uint32_t *len) {
  wasi_nn_error rc = set_u8(ctx, x, 0, prompt);
  if (rc == success) rc = B.compute(ctx, x);
  if (rc != success && rc != context_full) return rc;
  tensor_data td = {(uint8_t *)out, cap - 1};
  wasi_nn_error r2 = B.get_output(ctx, x, 0, &td, len);
  if (r2 == success) out[*len] = 0;
  return r2 != success ? r2 : rc;
}

/* The model library's own greedy generation, decoded. */
static void native_greedy(const gpt2_model *m, const gpt2_tokenizer *tok, const int *ids, int n,
                          int steps, char *out, size_t cap) {
  gpt2_kv *kv;
  char err[256];
  float *logits = malloc((size_t)m->config.vocab_size * sizeof(float));
  if (gpt2_kv_create(&kv, &m->config, m->config.max_seq_len, err, sizeof err) != 0) abort();
  for (int i = 0; i < n; i++) gpt2_forward_token(m, kv, ids[i], logits);
  size_t len = 0;
  for (int s = 0; s < steps; s++) {
    int t = gpt2_sample(logits, m->config.vocab_size, 0.0f, 0.0f);
    if (t == (int)gpt2_tokenizer_eot(tok)) break;
    size_t bl;
    const char *b = gpt2_tokenizer_decode(tok, (uint32_t)t, &bl);
    if (len + bl < cap) memcpy(out + len, b, bl), len += bl;
    if (s + 1 < steps) gpt2_forward_token(m, kv, t, logits);
  }
  out[len] = 0;
  gpt2_kv_free(kv);
  free(logits);
}

static void *read_all(const char *path, uint32_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *p = malloc((size_t)n);
  if (fread(p, 1, (size_t)n, f) != (size_t)n) abort();
  fclose(f);
  *size = (uint32_t)n;
  return p;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: test_backend BACKEND.so TOKENIZER.bin\n");
    return 2;
  }
  if (access(argv[2], R_OK) != 0) {
    printf("SKIP: no GPT-2 tokenizer file at %s (run examples/gpt2/prepare_data.sh)\n", argv[2]);
    return 77;
  }
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
    return 1;
  }
  const char *missing = wasi_nn_table_lookup(lib, &B);
  CHECK(missing == NULL);
  if (missing) fprintf(stderr, "the backend does not export %s\n", missing);
  if (failures) return 1;
  /* nothing else is exported */
  const char *hidden[] = {"engine_load", "settings_apply_json", "sampler_pick", "tp_forward_token",
                          "gpt2_forward_token", "gpt2_tokenizer_load", "fail", "exec_free"};
  for (size_t i = 0; i < sizeof hidden / sizeof *hidden; i++) CHECK(dlsym(lib, hidden[i]) == NULL);

  /* a small random GPT-2 with the real vocabulary, and its tokenizer beside it */
  if (!mkdtemp(dir)) abort();
  snprintf(model_file, sizeof model_file, "%s/%s", dir, model_path);
  snprintf(tok_file, sizeof tok_file, "%s/%s", dir, tok_path);
  snprintf(nested_file, sizeof nested_file, "%s/%s", dir, nested_model);
  setenv("WASI_NN_GPT2_MODEL_DIR", dir, 1); /* the host offers the models in dir */
  unsetenv("WASI_NN_GPT2_MODELS");
  char err[256], cmd[1024];
  gpt2_config cfg = {32, 50257, gpt2_padded_vocab(50257), 2, 4, 32};
  gpt2_model m;
  if (gpt2_model_setup(&m, &cfg, err, sizeof err) != 0) abort();
  m.params = malloc(m.layout.num_params * sizeof(float));
  gpt2_init_params(&m, 7);
  gpt2_tokenizer *tok;
  if (gpt2_checkpoint_write(model_file, &m, GPT2_CHECKPOINT_FP32, err, sizeof err) != 0 ||
      gpt2_tokenizer_load(&tok, argv[2], err, sizeof err) != 0 ||
      gpt2_tokenizer_save(tok, tok_file, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  snprintf(cmd, sizeof cmd, "mkdir -p %s/alone", dir);
  if (system(cmd) != 0) abort();
  if (gpt2_checkpoint_write(nested_file, &m, GPT2_CHECKPOINT_BF16, err, sizeof err) != 0) abort();
  gpt2_encoder *enc;
  if (gpt2_encoder_new(&enc, tok, err, sizeof err) != 0) abort();

  void *ctx = NULL;
  graph g = 99, g2;
  graph_execution_context x = 99, x2;
  char out[4096], want[4096];
  uint32_t len = 0;

  /* ---- init / load errors */
  CHECK(B.init_backend(NULL) == invalid_argument);
  CHECK(B.deinit_backend(NULL) == invalid_argument);
  CHECK(B.init_backend(&ctx) == success && ctx);
  CHECK(load_cfg(ctx, "nonexistent/model.bin", NULL, &g) == model_not_found);
  CHECK(B.load_by_name(ctx, model_path, 0, &g) == invalid_argument);
  CHECK(B.load_by_name(ctx, NULL, 5, &g) == invalid_argument);
  CHECK(B.load_by_name(ctx, model_path, (uint32_t)strlen(model_path), NULL) == invalid_argument);
  char with_nul[300];
  memcpy(with_nul, model_path, strlen(model_path) + 1);
  CHECK(B.load_by_name(ctx, with_nul, (uint32_t)strlen(model_path) + 1, &g) == invalid_argument);
  CHECK(load_cfg(ctx, tok_path, NULL, &g) == invalid_argument); /* not a checkpoint */
  CHECK(load_cfg(ctx, nested_model, NULL, &g) == model_not_found); /* no tokenizer beside */
  const char *bad_cfgs[] = {
      "not json", "[1,2]", "{\"n-predict\": 0}", "{\"n-predict\": 1.5}", "{\"n-predict\": \"3\"}",
      "{\"temp\": -1}", "{\"temp\": \"hot\"}", "{\"top-p\": 0}", "{\"top-p\": 1.5}",
      "{\"top-k\": -1}", "{\"repeat-penalty\": 0}", "{\"seed\": -2}", "{\"seed\": 4294967296}",
      "{\"reverse-prompt\": 5}", "{\"reverse-prompt\": [\"a\", 1]}", "{\"reverse-prompt\": \"\"}",
      "{\"enable-log\": 1}", "{\"threads\": 5000}", "{\"n-gpu-layers\": 10}", "{\"colour\": 1}",
      "{\"ctx-size\": 33}", "{\"tokenizer\": \"nonexistent/tok.bin\"}", "{\"tokenizer\": 3}"};
  for (size_t i = 0; i < sizeof bad_cfgs / sizeof *bad_cfgs; i++) {
    wasi_nn_error rc = load_cfg(ctx, model_path, bad_cfgs[i], &g);
    if (rc == success) fprintf(stderr, "accepted: %s\n", bad_cfgs[i]);
    CHECK(rc != success);
  }

  /* ---- load by name with a config, the tokenizer by key, greedy equals native */
  char cfgbuf[4400];
  snprintf(cfgbuf, sizeof cfgbuf, "{\"n-predict\": 12, \"temp\": 0, \"repeat-penalty\": 1.0, "
           "\"tokenizer\": \"%s\", \"enable-log\": true}", tok_path);
  CHECK(load_cfg(ctx, nested_model, cfgbuf, &g) == success && g == 0);
  CHECK(load_cfg(ctx, model_path, "{\"n-predict\": 12, \"temp\": 0, \"repeat-penalty\": 1}", &g2) ==
        success && g2 == 1);
  CHECK(B.init_execution_context(ctx, 7, &x) == invalid_argument);
  CHECK(B.init_execution_context(ctx, g2, NULL) == invalid_argument);
  CHECK(B.init_execution_context(ctx, g2, &x) == success);
  const char *prompt = "The hacker said";
  int ids[64];
  int n = (int)gpt2_encoder_encode(enc, prompt, strlen(prompt), ids, 64);
  native_greedy(&m, tok, ids, n, 12, want, sizeof want);
  CHECK(run(ctx, x, prompt, out, sizeof out, &len) == success);
  CHECK(strcmp(out, want) == 0);
  tensor_data td = {(uint8_t *)out, sizeof out};
  CHECK(B.get_output(ctx, x, 1, &td, &len) == success);
  out[len] = 0;
  char counts[64];
  snprintf(counts, sizeof counts, "{\"input_tokens\":%d,\"output_tokens\":12}", n);
  CHECK(strcmp(out, counts) == 0);
  /* the bf16 model (g) is the same model rounded: it runs and gives 12 tokens */
  CHECK(B.init_execution_context(ctx, g, &x2) == success);
  CHECK(run(ctx, x2, prompt, out, sizeof out, &len) == success && len > 0);

  /* ---- output too small: too_large and the size needed */
  CHECK(run(ctx, x, prompt, out, sizeof out, &len) == success);
  uint32_t need = len, got = 0;
  tensor_data small = {(uint8_t *)out, need - 1};
  CHECK(B.get_output(ctx, x, 0, &small, &got) == too_large && got == need);
  tensor_data tiny = {(uint8_t *)out, 3};
  CHECK(B.get_output(ctx, x, 1, &tiny, &got) == too_large && got == strlen(counts));
  CHECK(B.get_output(ctx, x, 2, &td, &got) == invalid_argument);
  CHECK(B.get_output(ctx, x, 0, NULL, &got) == invalid_argument);
  CHECK(B.get_output(ctx, x, 0, &td, NULL) == invalid_argument);
  tensor_data nullbuf = {NULL, 10};
  CHECK(B.get_output(ctx, x, 0, &nullbuf, &got) == invalid_argument);
  CHECK(B.get_output(ctx, 55, 0, &td, &got) == invalid_argument);

  /* ---- set_input errors */
  uint32_t dim = 1;
  tensor_dimensions d = {&dim, 1};
  tensor tf = {&d, fp32, {(uint8_t *)"abcd", 4}};
  CHECK(B.set_input(ctx, x, 0, &tf) == invalid_argument);
  tensor tn = {&d, u8, {NULL, 4}};
  CHECK(B.set_input(ctx, x, 0, &tn) == invalid_argument);
  CHECK(B.set_input(ctx, x, 0, NULL) == invalid_argument);
  CHECK(set_u8(ctx, x, 2, "x") == invalid_argument);
  CHECK(set_u8(ctx, 77, 0, "x") == invalid_argument);
  CHECK(set_u8(ctx, x, 1, "{\"temp\": 7777}") == invalid_argument);
  CHECK(set_u8(ctx, x, 1, "{\"tokenizer\": \"/x\"}") == invalid_argument);
  CHECK(set_u8(ctx, x, 1, "{\"ctx-size\": 64}") == invalid_argument);
  CHECK(set_u8(ctx, x, 1, "{broken") == invalid_argument);
  CHECK(B.compute(ctx, 77) == invalid_argument);

  /* ---- prompt too long, context full (the text so far still readable) */
  CHECK(set_u8(ctx, x, 1, "{\"ctx-size\": 8}") == success);
  CHECK(run(ctx, x, "one two three four five six seven eight nine ten", out, sizeof out, &len) ==
        prompt_too_long);
  CHECK(run(ctx, x, prompt, out, sizeof out, &len) == context_full);
  CHECK(B.get_output(ctx, x, 1, &td, &got) == success);
  out[got] = 0;
  char expect_full[64];
  snprintf(expect_full, sizeof expect_full, "{\"input_tokens\":%d,\"output_tokens\":%d}", n, 9 - n);
  CHECK(strcmp(out, expect_full) == 0);
  CHECK(set_u8(ctx, x, 1, "{\"ctx-size\": 0}") == success);

  /* ---- a context without a prompt; a session keeps its cache across computes */
  CHECK(B.init_execution_context(ctx, g2, &x2) == success);
  CHECK(B.compute(ctx, x2) == invalid_argument);
  CHECK(run(ctx, x2, prompt, out, sizeof out, &len) == success);
  char turn2[4400];
  snprintf(turn2, sizeof turn2, "%s%s and then", prompt, out);
  CHECK(run(ctx, x2, turn2, out, sizeof out, &len) == success);
  n = (int)gpt2_encoder_encode(enc, turn2, strlen(turn2), ids, 64);
  native_greedy(&m, tok, ids, n, 12, want, sizeof want);
  CHECK(strcmp(out, want) == 0); /* the reused prefix gives what a fresh run gives */

  /* ---- seeded sampling is reproducible; stop strings end it */
  const char *sampled = "{\"temp\": 1.0, \"top-k\": 50, \"top-p\": 0.9, \"seed\": 42, "
                        "\"repeat-penalty\": 1.2, \"presence-penalty\": 0.5, "
                        "\"frequency-penalty\": 0.5}";
  char first[4096];
  CHECK(set_u8(ctx, x2, 1, sampled) == success);
  CHECK(run(ctx, x2, prompt, first, sizeof first, &len) == success);
  CHECK(run(ctx, x2, "something else entirely", out, sizeof out, &len) == success);
  CHECK(run(ctx, x2, prompt, out, sizeof out, &len) == success);
  CHECK(strcmp(out, first) == 0);
  CHECK(set_u8(ctx, x2, 1, "{\"temp\": 1.0, \"top-k\": 0, \"top-p\": 1.0, \"seed\": 42}") == success);
  CHECK(run(ctx, x2, prompt, out, sizeof out, &len) == success);
  char stop[8] = {0};
  if (len >= 2) {
    memcpy(stop, out + len / 2, 1);
    char stopcfg[64];
    snprintf(stopcfg, sizeof stopcfg, "{\"reverse-prompt\": [\"%s\"]}", stop[0] == '"' || stop[0] == '\\' ? "q" : stop);
    CHECK(set_u8(ctx, x2, 1, stopcfg) == success);
    CHECK(run(ctx, x2, prompt, out, sizeof out, &len) == success);
    if (stop[0] != '"' && stop[0] != '\\') CHECK(strchr(out, stop[0]) == NULL);
  }
  /* an empty prompt starts a document */
  CHECK(run(ctx, x2, "", out, sizeof out, &len) == success);
  CHECK(B.get_output(ctx, x2, 1, &td, &got) == success && !memcmp(td.buf, "{\"input_tokens\":1,", 18));

  /* ---- load() from bytes: checkpoint + tokenizer (+ config) */
  uint32_t msize, tsize;
  uint8_t *mbytes = read_all(model_file, &msize), *tbytes = read_all(tok_file, &tsize);
  const char *lcfg = "{\"n-predict\": 12, \"temp\": 0, \"repeat-penalty\": 1}";
  graph_builder gb[3] = {{mbytes, msize}, {tbytes, tsize}, {(uint8_t *)lcfg, (uint32_t)strlen(lcfg)}};
  graph_builder_array arr = {gb, 3};
  CHECK(B.load(ctx, &arr, ggml, gpu, &g) == unsupported_operation);
  CHECK(B.load(ctx, &arr, onnx, cpu, &g) == invalid_encoding);
  CHECK(B.load(ctx, NULL, ggml, cpu, &g) == invalid_argument);
  graph_builder_array one = {gb, 1};
  CHECK(B.load(ctx, &one, ggml, cpu, &g) == invalid_argument);
  graph_builder bad[2] = {{mbytes, 1000}, {tbytes, tsize}}; /* truncated checkpoint */
  graph_builder_array badarr = {bad, 2};
  CHECK(B.load(ctx, &badarr, ggml, cpu, &g) == invalid_argument);
  graph_builder badcfg[3] = {{mbytes, msize}, {tbytes, tsize}, {(uint8_t *)"{\"top-k\": -3}", 13}};
  graph_builder_array badcfgarr = {badcfg, 3};
  CHECK(B.load(ctx, &badcfgarr, ggml, cpu, &g) == invalid_argument);
  CHECK(B.load(ctx, &arr, autodetect, cpu, &g) == success && g == 2);
  CHECK(B.init_execution_context(ctx, g, &x) == success);
  n = (int)gpt2_encoder_encode(enc, prompt, strlen(prompt), ids, 64);
  native_greedy(&m, tok, ids, n, 12, want, sizeof want);
  CHECK(run(ctx, x, prompt, out, sizeof out, &len) == success && strcmp(out, want) == 0);

  /* ---- limits: 4 graphs and 16 contexts by default */
  CHECK(B.load_by_name(ctx, model_path, (uint32_t)strlen(model_path), &g) == success && g == 3);
  CHECK(load_cfg(ctx, model_path, NULL, &g) == runtime_error);
  int made = 4;
  while (B.init_execution_context(ctx, g, &x) == success) made++;
  CHECK(made == 16);
  CHECK(B.deinit_backend(ctx) == success);

  /* ---- many sessions at once, each with its own cache, and init/deinit cycles */
  setenv("WASI_NN_GPT2_MAX_CONTEXTS", "40", 1);
  for (int cycle = 0; cycle < 3; cycle++) {
    void *c2;
    CHECK(B.init_backend(&c2) == success);
    CHECK(load_cfg(c2, model_path, "{\"n-predict\": 4, \"temp\": 0, \"repeat-penalty\": 1}", &g) == success);
    graph_execution_context xs[40];
    for (int i = 0; i < 40; i++) CHECK(B.init_execution_context(c2, g, &xs[i]) == success);
    CHECK(B.init_execution_context(c2, g, &x) == runtime_error);
    char outs[2][256];
    for (int i = 0; i < 40; i++) CHECK(set_u8(c2, xs[i], 0, i % 2 ? "Unix" : "A hacker") == success);
    for (int i = 0; i < 40; i++) CHECK(B.compute(c2, xs[i]) == success);
    for (int i = 0; i < 40; i++) {
      tensor_data o = {(uint8_t *)outs[i % 2], 255};
      char mine[256];
      CHECK(B.get_output(c2, xs[i], 0, &o, &len) == success);
      memcpy(mine, outs[i % 2], len), mine[len] = 0;
      if (i < 2) continue;
      tensor_data o0 = {(uint8_t *)want, 255};
      CHECK(B.get_output(c2, xs[i % 2], 0, &o0, &got) == success && got == len && !memcmp(want, mine, len));
    }
    CHECK(B.deinit_backend(c2) == success);
  }

  /* ---- names: the guest reaches only the models the host offers */
  snprintf(cmd, sizeof cmd, "ln -s %s %s/inside.bin && ln -s %s %s/outside.bin && mkdir %s/sub",
           model_file, dir, argv[2], dir, dir);
  if (system(cmd) != 0) abort();
  void *c3;
  CHECK(B.init_backend(&c3) == success);
  CHECK(load_cfg(c3, "inside.bin", NULL, &g) == success);      /* a symlink that stays in */
  CHECK(load_cfg(c3, "outside.bin", NULL, &g) == invalid_argument); /* one that leaves */
  CHECK(load_cfg(c3, "../model.bin", NULL, &g) == invalid_argument);
  CHECK(load_cfg(c3, "sub/../model.bin", NULL, &g) == invalid_argument);
  CHECK(load_cfg(c3, model_file, NULL, &g) == invalid_argument); /* absolute, even inside */
  CHECK(load_cfg(c3, "/etc/passwd", NULL, &g) == invalid_argument);
  CHECK(load_cfg(c3, "model.bin", "{\"tokenizer\": \"../tokenizer.bin\"}", &g) ==
        invalid_argument);
  CHECK(load_cfg(c3, "model.bin", "{\"tokenizer\": \"outside.bin\"}", &g) == invalid_argument);
  CHECK(B.deinit_backend(c3) == success);
  char table[600];
  snprintf(table, sizeof table, "gpt=%s,tok=%s", model_file, tok_file);
  setenv("WASI_NN_GPT2_MODELS", table, 1);
  unsetenv("WASI_NN_GPT2_MODEL_DIR");
  CHECK(B.init_backend(&c3) == success);
  CHECK(load_cfg(c3, "gpt", "{\"tokenizer\": \"tok\"}", &g) == success);
  CHECK(load_cfg(c3, "model.bin", NULL, &g) == model_not_found); /* no directory offered */
  CHECK(load_cfg(c3, model_file, NULL, &g) == model_not_found);
  CHECK(B.deinit_backend(c3) == success);
  setenv("WASI_NN_GPT2_MODELS", "gpt", 1); /* not name=path */
  CHECK(B.init_backend(&c3) == runtime_error);
  unsetenv("WASI_NN_GPT2_MODELS");
  setenv("WASI_NN_GPT2_MODEL_DIR", "/nonexistent-models", 1);
  CHECK(B.init_backend(&c3) == runtime_error);
  unsetenv("WASI_NN_GPT2_MODEL_DIR");

  free(mbytes), free(tbytes), free(m.params);
  gpt2_encoder_free(enc);
  gpt2_tokenizer_free(tok);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) failures++;
  dlclose(lib);
  if (failures) fprintf(stderr, "%d checks failed\n", failures);
  else printf("all backend checks passed\n");
  return failures ? 1 : 0;
}

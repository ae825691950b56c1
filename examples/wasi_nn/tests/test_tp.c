/*
 * test_tp.c - tensor parallelism: run under mpirun -np N, every rank drives the backend
 * (dlopen, as a runtime would) on the same model; the backend shards it over the ranks.
 * Each rank checks that greedy generation gives the text of the model library's own
 * single-process generation, and that the ranks agree on seeded sampling.
 *
 * usage: mpirun -np N test_tp BACKEND.so TOKENIZER.bin   (77 when the tokenizer is absent)
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpt2.h"
#include "tokenizer.h"
#include "wasi_nn_abi.h"

#define GET(name) wasi_nn_error (*name)() = (wasi_nn_error(*)())dlsym(lib, #name)

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  if (access(argv[2], R_OK) != 0) {
    printf("SKIP: no GPT-2 tokenizer file at %s\n", argv[2]);
    return 77;
  }
  const char *r = getenv("OMPI_COMM_WORLD_RANK");
  int rank = r ? atoi(r) : 0;
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) return fprintf(stderr, "%s\n", dlerror()), 1;
  GET(init_backend); GET(deinit_backend); GET(load_by_name_with_config);
  GET(init_execution_context); GET(set_input); GET(compute); GET(get_output);

  /* every rank writes the same model (same seed) into a directory of its own */
  char dir[256], model[300], tokp[300], err[256];
  snprintf(dir, sizeof dir, "/tmp/wasi-nn-tp-%d-%d", (int)getppid(), rank);
  snprintf(model, sizeof model, "%s/model.bin", dir);
  snprintf(tokp, sizeof tokp, "%s/tokenizer.bin", dir);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
  if (system(cmd) != 0) return 1;
  gpt2_config cfg = {64, 50257, gpt2_padded_vocab(50257), 3, 4, 64};
  gpt2_model m;
  gpt2_tokenizer *tok;
  gpt2_encoder *enc;
  if (gpt2_model_setup(&m, &cfg, err, sizeof err) != 0) return 1;
  m.params = malloc(m.layout.num_params * sizeof(float));
  gpt2_init_params(&m, 11);
  for (size_t i = 0; i < m.layout.num_params; i++) m.params[i] *= 20.0f; /* clear arg maxes */
  if (gpt2_checkpoint_write(model, &m, GPT2_CHECKPOINT_FP32, err, sizeof err) != 0 ||
      gpt2_tokenizer_load(&tok, argv[2], err, sizeof err) != 0 ||
      gpt2_tokenizer_save(tok, tokp, err, sizeof err) != 0 ||
      gpt2_encoder_new(&enc, tok, err, sizeof err) != 0)
    return fprintf(stderr, "%s\n", err), 1;

  const char *prompt = "The story of Mel, a real programmer";
  int ids[64], n = (int)gpt2_encoder_encode(enc, prompt, strlen(prompt), ids, 64), steps = 40;
  char want[4096], out[4096];
  size_t wl = 0;
  gpt2_kv *kv;
  float *logits = malloc(50257 * sizeof(float));
  gpt2_kv_create(&kv, &cfg, 64, err, sizeof err);
  for (int i = 0; i < n; i++) gpt2_forward_token(&m, kv, ids[i], logits);
  for (int s = 0; s < steps; s++) {
    int t = gpt2_sample(logits, 50257, 0.0f, 0.0f);
    if (t == 50256) break;
    size_t bl;
    const char *b = gpt2_tokenizer_decode(tok, (uint32_t)t, &bl);
    memcpy(want + wl, b, bl), wl += bl;
    if (s + 1 < steps) gpt2_forward_token(&m, kv, t, logits);
  }
  want[wl] = 0;

  void *ctx;
  graph g;
  graph_execution_context x;
  const char *c = "{\"n-predict\": 40, \"temp\": 0, \"repeat-penalty\": 1}";
  int fails = 0;
  setenv("WASI_NN_GPT2_MODEL_DIR", dir, 1); /* the host offers its models by name */
  fails += init_backend(&ctx) != success;
  fails += load_by_name_with_config(ctx, "model.bin", 9, c, (uint32_t)strlen(c), &g) != success;
  fails += init_execution_context(ctx, g, &x) != success;
  uint32_t dim = 1, len = 0;
  tensor_dimensions d = {&dim, 1};
  tensor t = {&d, u8, {(uint8_t *)prompt, (uint32_t)strlen(prompt)}};
  fails += set_input(ctx, x, 0, &t) != success;
  fails += compute(ctx, x) != success;
  tensor_data td = {(uint8_t *)out, sizeof out - 1};
  fails += get_output(ctx, x, 0, &td, &len) != success;
  out[len] = 0;
  if (strcmp(out, want) != 0) {
    fprintf(stderr, "rank %d: tensor-parallel greedy text differs:\n got  [%s]\n want [%s]\n", rank,
            out, want);
    fails++;
  }
  /* a random seed is drawn on rank 0 and shared, so every rank samples the same text */
  const char *s = "{\"temp\": 1.0, \"seed\": -1, \"n-predict\": 20}";
  tensor ts = {&d, u8, {(uint8_t *)s, (uint32_t)strlen(s)}};
  fails += set_input(ctx, x, 1, &ts) != success;
  fails += compute(ctx, x) != success;
  fails += get_output(ctx, x, 0, &td, &len) != success;
  printf("rank %d sampled %u bytes, checksum %u\n", rank, len, (unsigned)(len ? out[0] * 31 + out[len - 1] : 0));
  fails += deinit_backend(ctx) != success;
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  fails += system(cmd) != 0;
  printf("rank %d: %s (%zu bytes of greedy text)\n", rank, fails ? "FAILED" : "ok", wl);
  gpt2_kv_free(kv), free(logits), free(m.params), gpt2_encoder_free(enc), gpt2_tokenizer_free(tok);
  dlclose(lib);
  return fails ? 1 : 0;
}

/*
 * test_unload.c - a runtime's whole life with the backend: dlopen, a compute on two
 * OpenMP threads, deinit_backend, dlclose, and then the process goes on and exits 0.
 * WAMR's iwasm does exactly this at teardown; if dlclose unmapped the backend (and with
 * it libgomp) while OpenMP's workers were still spinning there, they would fault.
 * This program links neither OpenMP nor the model library, so nothing else holds
 * libgomp: it writes its own small llm.c checkpoint. Also checks that guest names
 * resolve only through the host's table (WASI_NN_GPT2_MODELS).
 *
 * usage: test_unload BACKEND.so TOKENIZER.bin   (exit 77 when the tokenizer is absent)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wasi_nn_table.h"

enum { MAXT = 64, V = 50257, VP = 50304, L = 2, NH = 4, C = 32 };

static int write_checkpoint(const char *path) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int h[256] = {20240326, 3, MAXT, V, L, NH, C, VP};
  size_t n = (size_t)VP * C + (size_t)MAXT * C + (size_t)L * (12 * C * C + 13 * C) + 2 * C;
  fwrite(h, sizeof h, 1, f);
  uint64_t s = 12345;
  for (size_t i = 0; i < n; i++) { /* small weights; layer norm scales are noise too */
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    float w = ((float)(s >> 40) / (float)(1 << 24) - 0.5f) * 0.1f;
    fwrite(&w, sizeof w, 1, f);
  }
  return fclose(f);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: test_unload BACKEND.so TOKENIZER.bin\n");
    return 2;
  }
  if (access(argv[2], R_OK) != 0) {
    printf("SKIP: no GPT-2 tokenizer file at %s (run examples/gpt2/prepare_data.sh)\n", argv[2]);
    return 77;
  }
  char dir[] = "/tmp/wasi-nn-unload-XXXXXX", model[64], models[4200];
  if (!mkdtemp(dir)) return 1;
  snprintf(model, sizeof model, "%s/model.bin", dir);
  if (write_checkpoint(model) != 0) return 1;
  snprintf(models, sizeof models, "m=%s,tok=%s", model, argv[2]);
  setenv("WASI_NN_GPT2_MODELS", models, 1);
  unsetenv("WASI_NN_GPT2_MODEL_DIR");

  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  wasi_nn_table B;
  if (!lib || wasi_nn_table_lookup(lib, &B)) {
    fprintf(stderr, "cannot use %s: %s\n", argv[1], lib ? "a symbol is missing" : dlerror());
    return 1;
  }
  int fails = 0;
  void *ctx;
  graph g;
  graph_execution_context x;
  const char *cfg = "{\"threads\": 2, \"n-predict\": 16, \"temp\": 0, \"tokenizer\": \"tok\"}";
  fails += B.init_backend(&ctx) != success;
  /* only the names the host gave: not the path itself, not another file */
  fails += B.load_by_name_with_config(ctx, model, (uint32_t)strlen(model), cfg,
                                      (uint32_t)strlen(cfg), &g) != model_not_found;
  fails += B.load_by_name(ctx, "/etc/passwd", 11, &g) != model_not_found;
  fails += B.load_by_name_with_config(ctx, "m", 1, cfg, (uint32_t)strlen(cfg), &g) != success;
  fails += B.init_execution_context(ctx, g, &x) != success;
  uint32_t dim = 1, len = 0;
  tensor_dimensions d = {&dim, 1};
  tensor t = {&d, u8, {(uint8_t *)"The hacker", 10}};
  char out[4096];
  tensor_data td = {(uint8_t *)out, sizeof out};
  fails += B.set_input(ctx, x, 0, &t) != success;
  fails += B.compute(ctx, x) != success;
  fails += B.get_output(ctx, x, 0, &td, &len) != success || len == 0;
  fails += B.deinit_backend(ctx) != success;
  fails += dlclose(lib) != 0;
  /* OpenMP's workers spin a while after a parallel region (GOMP_SPINCOUNT=infinite here:
   * all the time; more threads than cores would make them sleep instead); they must
   * still find their code */
  struct timespec ts = {0, 300 * 1000 * 1000};
  nanosleep(&ts, NULL);
  remove(model), rmdir(dir);
  printf("unload: %s\n", fails ? "FAILED" : "ok");
  return fails ? 1 : 0;
}

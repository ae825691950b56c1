/*
 * generate.c - a WASI-NN guest: one prompt in, the generated text out.
 *
 * usage: generate.wasm MODEL PROMPT [JSON-CONFIG]
 * Prints the text, then a line "{"input_tokens":N,"output_tokens":M}". MODEL is a
 * host path (relative to the host's working directory), loaded with
 * load_by_name_with_config as WasmEdge and WAMR guests do. With WASI_NN_TIME set in the
 * environment, stderr gets the wall time of compute() as the guest sees it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wasi_nn_guest.h"

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: generate MODEL PROMPT [JSON-CONFIG]\n");
    return 2;
  }
  const char *cfg = argc == 4 ? argv[3] : "{}";
  uint32_t g, ctx, len;
  int32_t rc = nn_load_by_name_with_config(argv[1], strlen(argv[1]), cfg, strlen(cfg), &g);
  if (rc != NN_SUCCESS) {
    fprintf(stderr, "generate: loading %s failed (wasi-nn error %d)\n", argv[1], rc);
    return 1;
  }
  if ((rc = nn_init_execution_context(g, &ctx)) != NN_SUCCESS ||
      (rc = nn_set_text(ctx, 0, argv[2], strlen(argv[2]))) != NN_SUCCESS) {
    fprintf(stderr, "generate: setting up failed (wasi-nn error %d)\n", rc);
    return 1;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  rc = nn_compute(ctx);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (getenv("WASI_NN_TIME"))
    fprintf(stderr, "generate: compute %.3f ms\n",
            (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6);
  if (rc != NN_SUCCESS && rc != NN_CONTEXT_FULL) {
    fprintf(stderr, "generate: compute failed (wasi-nn error %d)\n", rc);
    return 1;
  }
  if (rc == NN_CONTEXT_FULL) fprintf(stderr, "generate: the context filled up\n");
  char *text, *counts;
  if (nn_get_text(ctx, 0, &text, &len) != NN_SUCCESS ||
      nn_get_text(ctx, 1, &counts, &len) != NN_SUCCESS) {
    fprintf(stderr, "generate: get_output failed\n");
    return 1;
  }
  printf("%s\n%s\n", text, counts);
  free(text);
  free(counts);
  return 0;
}

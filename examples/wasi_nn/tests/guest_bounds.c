/*
 * guest_bounds.c - a hostile guest: hands the host offsets and lengths outside its own
 * memory, which the host bridge must refuse with invalid_argument (1) without touching
 * anything; then checks that ordinary calls still work.
 *
 * usage: guest_bounds.wasm MODEL     prints "bounds: ok" and exits 0, or names the call
 */
#include <stdio.h>
#include <string.h>

#include "../guest/wasi_nn_guest.h"

static int fails;
static void expect(int32_t got, int32_t want, const char *what) {
  if (got != want) {
    printf("bounds: %s returned %d, expected %d\n", what, got, want);
    fails++;
  }
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  uint32_t end = (uint32_t)__builtin_wasm_memory_size(0) * 65536u; /* first byte outside */
  uint32_t g, ctx, size;
  const char *m = argv[1];
  char *far = (char *)(uintptr_t)(end - 4);

  expect(nn_load_by_name(far, 100, &g), 1, "load_by_name with a name past the end");
  expect(nn_load_by_name((char *)(uintptr_t)0xfffffff0u, 32, &g), 1, "load_by_name wrapping");
  expect(nn_load_by_name_with_config(m, strlen(m), far, 64, &g), 1, "a config past the end");
  expect(nn_load_by_name(m, strlen(m), (uint32_t *)(uintptr_t)(end - 2)), 1, "graph out past the end");
  expect(nn_load((nn_bytes *)(uintptr_t)(end - 8), 4, NN_GGML, NN_CPU, &g), 1, "builders past the end");
  nn_bytes b[2] = {{(uint8_t *)(uintptr_t)(end - 10), 100}, {(uint8_t *)m, 4}};
  expect(nn_load(b, 2, NN_GGML, NN_CPU, &g), 1, "a builder's bytes past the end");

  const char *cfg = "{\"n-predict\": 4, \"temp\": 0}";
  expect(nn_load_by_name_with_config(m, strlen(m), cfg, strlen(cfg), &g), 0, "a good load");
  expect(nn_init_execution_context(g, (uint32_t *)(uintptr_t)end), 1, "context out at the end");
  expect(nn_init_execution_context(g, &ctx), 0, "a good context");
  expect(nn_set_input(ctx, 0, (nn_tensor *)(uintptr_t)(end - 12)), 1, "a tensor past the end");
  static uint32_t one = 1;
  nn_tensor t = {{&one, 1}, NN_U8, {(uint8_t *)(uintptr_t)(end - 3), 50}};
  expect(nn_set_input(ctx, 0, &t), 1, "tensor data past the end");
  nn_tensor d = {{(uint32_t *)(uintptr_t)(end - 4), 9}, NN_U8, {(uint8_t *)"Hi", 2}};
  expect(nn_set_input(ctx, 0, &d), 1, "tensor dimensions past the end");
  expect(nn_set_text(ctx, 0, "Hi", 2), 0, "a good prompt");
  expect(nn_compute(ctx), 0, "compute");
  char buf[256];
  expect(nn_get_output(ctx, 0, (uint8_t *)(uintptr_t)(end - 16), 256, &size), 1,
         "an output buffer past the end");
  expect(nn_get_output(ctx, 0, (uint8_t *)buf, sizeof buf, (uint32_t *)(uintptr_t)(end - 1)), 1,
         "the size out past the end");
  expect(nn_get_output(ctx, 1, (uint8_t *)buf, sizeof buf, &size), 0, "a good get_output");
  printf("bounds: %s\n", fails ? "FAILED" : "ok");
  return fails ? 1 : 0;
}

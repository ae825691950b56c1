/*
 * wasi_nn_guest.h - the wasi_ephemeral_nn imports as a wasm32 guest sees them (every
 * argument and result an i32; pointers are offsets into the guest's memory), and small
 * helpers the guests share.
 */
#ifndef WASI_NN_GUEST_H
#define WASI_NN_GUEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NN_IMPORT(name) __attribute__((import_module("wasi_ephemeral_nn"), import_name(name)))

typedef struct { uint32_t *buf; uint32_t size; } nn_dims;  /* 8 bytes */
typedef struct { uint8_t *buf; uint32_t size; } nn_bytes;  /* 8 bytes */
typedef struct {
  nn_dims dimensions; /* offset 0 */
  uint8_t type;       /* offset 8, then 3 bytes of padding */
  nn_bytes data;      /* offset 12 */
} nn_tensor;          /* 20 bytes */
_Static_assert(sizeof(nn_tensor) == 20, "the guest tensor is 20 bytes");

enum { NN_U8 = 3, NN_GGML = 5, NN_CPU = 0 };
enum { NN_SUCCESS = 0, NN_TOO_LARGE = 7, NN_CONTEXT_FULL = 101, NN_PROMPT_TOO_LONG = 102 };

NN_IMPORT("load") int32_t nn_load(nn_bytes *builders, uint32_t n, uint32_t encoding,
                                  uint32_t target, uint32_t *graph);
NN_IMPORT("load_by_name") int32_t nn_load_by_name(const char *name, uint32_t len, uint32_t *graph);
NN_IMPORT("load_by_name_with_config")
int32_t nn_load_by_name_with_config(const char *name, uint32_t len, const char *cfg,
                                    uint32_t cfg_len, uint32_t *graph);
NN_IMPORT("init_execution_context") int32_t nn_init_execution_context(uint32_t graph, uint32_t *ctx);
NN_IMPORT("set_input") int32_t nn_set_input(uint32_t ctx, uint32_t index, nn_tensor *t);
NN_IMPORT("compute") int32_t nn_compute(uint32_t ctx);
NN_IMPORT("get_output")
int32_t nn_get_output(uint32_t ctx, uint32_t index, uint8_t *buf, uint32_t max, uint32_t *size);

static inline int32_t nn_set_text(uint32_t ctx, uint32_t index, const char *s, size_t len) {
  static uint32_t one = 1;
  nn_tensor t = {{&one, 1}, NN_U8, {(uint8_t *)s, (uint32_t)len}};
  return nn_set_input(ctx, index, &t);
}

/* Output index as a NUL-terminated malloc'd string; grows the buffer on too_large. */
static inline int32_t nn_get_text(uint32_t ctx, uint32_t index, char **out, uint32_t *len) {
  uint32_t cap = 256, size = 0;
  char *buf = malloc(cap + 1);
  int32_t rc;
  while ((rc = nn_get_output(ctx, index, (uint8_t *)buf, cap, &size)) == NN_TOO_LARGE &&
         size > cap) {
    cap = size;
    buf = realloc(buf, cap + 1);
  }
  if (rc != NN_SUCCESS) size = 0;
  buf[size] = 0;
  *out = buf;
  *len = size;
  return rc;
}

#endif

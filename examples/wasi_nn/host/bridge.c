/*
 * bridge.c - a Node-API addon that carries the wasi_ephemeral_nn imports of a guest to
 * a WASI-NN backend library, the way WAMR's wasi-nn native wrapper does: it dlopen()s
 * the backend, translates guest offsets (wasm32, little-endian) into host pointers into
 * the guest's memory after checking every range against the memory's size, and hands
 * the backend host-layout structs (wasi_nn_abi.h). No copy of tensors is made.
 *
 * JS: open(path); then each import as fn(memoryArrayBuffer, ...i32) -> error code;
 * close() deinits the backend context (also done at environment teardown).
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>

#include "wasi_nn_table.h"

typedef struct {
  void *lib, *ctx;
  wasi_nn_table f; /* the backend's entry points */
} bridge;

typedef struct {
  uint8_t *mem;
  size_t size;
} guest;

/* A pointer to len bytes at guest offset off, or NULL when they are not all inside. */
static uint8_t *at(const guest *g, uint32_t off, uint64_t len) {
  return (uint64_t)off + len <= g->size ? g->mem + off : NULL;
}
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static void throw_if(napi_env env, int bad, const char *msg) {
  if (bad) napi_throw_error(env, NULL, msg);
}

/* Reads (memory, a1..an): the guest memory and n u32 arguments. */
static int args(napi_env env, napi_callback_info info, guest *g, uint32_t *a, size_t n,
                bridge **b) {
  napi_value argv[8];
  size_t argc = 8;
  void *data;
  napi_get_cb_info(env, info, &argc, argv, NULL, &data);
  *b = data;
  if (argc != n + 1 || !(*b)->lib) {
    throw_if(env, 1, argc != n + 1 ? "wasi-nn bridge: wrong argument count" : "wasi-nn bridge: open() a backend first");
    return -1;
  }
  void *mem;
  size_t size;
  if (napi_get_arraybuffer_info(env, argv[0], &mem, &size) != napi_ok) {
    throw_if(env, 1, "wasi-nn bridge: the first argument must be the guest memory's ArrayBuffer");
    return -1;
  }
  g->mem = mem, g->size = size;
  for (size_t i = 0; i < n; i++) napi_get_value_uint32(env, argv[i + 1], &a[i]);
  return 0;
}

static napi_value num(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

/* WAMR inits the backend lazily, on the first load */
static wasi_nn_error ensure_ctx(bridge *b) {
  return b->ctx ? success : b->f.init_backend(&b->ctx);
}

static napi_value js_load(napi_env env, napi_callback_info info) {
  guest g; uint32_t a[5]; bridge *b;
  if (args(env, info, &g, a, 5, &b)) return NULL;
  uint8_t *list = at(&g, a[0], (uint64_t)a[1] * 8), *out = at(&g, a[4], 4);
  if (!list || !out || a[1] > 16) return num(env, invalid_argument);
  graph_builder gb[16];
  for (uint32_t i = 0; i < a[1]; i++) {
    uint32_t p = rd32(list + 8 * i), n = rd32(list + 8 * i + 4);
    if (!(gb[i].buf = at(&g, p, n))) return num(env, invalid_argument);
    gb[i].size = n;
  }
  graph_builder_array arr = {gb, a[1]};
  graph gr;
  wasi_nn_error rc = ensure_ctx(b);
  if (rc == success) rc = b->f.load(b->ctx, &arr, (graph_encoding)a[2], (execution_target)a[3], &gr);
  if (rc == success) wr32(out, gr);
  return num(env, rc);
}

/* name and config become NUL-terminated copies, as the runtime hands them over */
static wasi_nn_error by_name(bridge *b, const guest *g, uint32_t np, uint32_t nl, uint32_t cp,
                             uint32_t cl, uint32_t outp) {
  uint8_t *name = at(g, np, nl), *cfg = at(g, cp, cl), *out = at(g, outp, 4);
  if (!name || !cfg || !out) return invalid_argument;
  char *n = malloc((size_t)nl + 1), *c = malloc((size_t)cl + 1);
  wasi_nn_error rc = n && c ? ensure_ctx(b) : missing_memory;
  if (rc == success) {
    memcpy(n, name, nl), n[nl] = 0;
    memcpy(c, cfg, cl), c[cl] = 0;
    graph gr;
    rc = b->f.load_by_name_with_config(b->ctx, n, nl, c, cl, &gr);
    if (rc == success) wr32(out, gr);
  }
  free(n), free(c);
  return rc;
}

static napi_value js_load_by_name(napi_env env, napi_callback_info info) {
  guest g; uint32_t a[3]; bridge *b;
  if (args(env, info, &g, a, 3, &b)) return NULL;
  return num(env, by_name(b, &g, a[0], a[1], 0, 0, a[2]));
}

static napi_value js_load_by_name_with_config(napi_env env, napi_callback_info info) {
  guest g; uint32_t a[5]; bridge *b;
  if (args(env, info, &g, a, 5, &b)) return NULL;
  return num(env, by_name(b, &g, a[0], a[1], a[2], a[3], a[4]));
}

static napi_value js_init_execution_context(napi_env env, napi_callback_info info) {
  guest g; uint32_t a[2]; bridge *b;
  if (args(env, info, &g, a, 2, &b)) return NULL;
  uint8_t *out = at(&g, a[1], 4);
  if (!out || !b->ctx) return num(env, out ? runtime_error : invalid_argument);
  graph_execution_context x;
  wasi_nn_error rc = b->f.init_execution_context(b->ctx, a[0], &x);
  if (rc == success) wr32(out, x);
  return num(env, rc);
}

static napi_value js_set_input(napi_env env, napi_callback_info info) {
  guest g; uint32_t a[3]; bridge *b;
  if (args(env, info, &g, a, 3, &b)) return NULL;
  uint8_t *t = at(&g, a[2], 20); /* guest tensor: dims {ptr,len} @0, type @8, data {ptr,len} @12 */
  if (!t || !b->ctx) return num(env, t ? runtime_error : invalid_argument);
  uint32_t dn = rd32(t + 4), dl = rd32(t + 16);
  tensor_dimensions dims = {(uint32_t *)(void *)at(&g, rd32(t), (uint64_t)dn * 4), dn};
  tensor host = {&dims, t[8], {at(&g, rd32(t + 12), dl), dl}};
  if (!dims.buf || !host.data.buf) return num(env, invalid_argument);
  return num(env, b->f.set_input(b->ctx, a[0], a[1], &host));
}

static napi_value js_compute(napi_env env, napi_callback_info info) {
  guest g; uint32_t a[1]; bridge *b;
  if (args(env, info, &g, a, 1, &b)) return NULL;
  return num(env, b->ctx ? b->f.compute(b->ctx, a[0]) : runtime_error);
}

static napi_value js_get_output(napi_env env, napi_callback_info info) {
  guest g; uint32_t a[5]; bridge *b;
  if (args(env, info, &g, a, 5, &b)) return NULL;
  uint8_t *buf = at(&g, a[2], a[3]), *out = at(&g, a[4], 4);
  if (!buf || !out || !b->ctx) return num(env, buf && out ? runtime_error : invalid_argument);
  tensor_data td = {buf, a[3]};
  uint32_t size = 0;
  wasi_nn_error rc = b->f.get_output(b->ctx, a[0], a[1], &td, &size);
  wr32(out, size);
  return num(env, rc);
}

static void close_bridge(bridge *b) {
  if (b->ctx) b->f.deinit_backend(b->ctx);
  b->ctx = NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  void *data;
  napi_get_cb_info(env, info, NULL, NULL, NULL, &data);
  close_bridge(data);
  return NULL;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1, len;
  void *data;
  char path[4096];
  napi_get_cb_info(env, info, &argc, argv, NULL, &data);
  bridge *b = data;
  if (argc != 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok) {
    throw_if(env, 1, "wasi-nn bridge: open(path of the backend library)");
    return NULL;
  }
  if (b->lib) {
    throw_if(env, 1, "wasi-nn bridge: a backend is already open");
    return NULL;
  }
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    throw_if(env, 1, dlerror());
    return NULL;
  }
  if (wasi_nn_table_lookup(lib, &b->f) != NULL) {
    dlclose(lib);
    throw_if(env, 1, "wasi-nn bridge: the library lacks a WASI-NN backend entry point");
    return NULL;
  }
  b->lib = lib;
  return NULL;
}

static void cleanup(void *data) {
  close_bridge(data); /* the library stays loaded: MPI, if it started it, ends at exit */
  free(data);
}

NAPI_MODULE_INIT() {
  bridge *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  napi_add_env_cleanup_hook(env, cleanup, b);
  const struct { const char *name; napi_callback fn; } fns[] = {
      {"open", js_open}, {"close", js_close}, {"load", js_load},
      {"load_by_name", js_load_by_name}, {"load_by_name_with_config", js_load_by_name_with_config},
      {"init_execution_context", js_init_execution_context}, {"set_input", js_set_input},
      {"compute", js_compute}, {"get_output", js_get_output}};
  for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, b, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}

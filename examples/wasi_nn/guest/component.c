/*
 * component.c - the core module of the mlcomm:llm component (wit/world.wit): it exports
 * generate(prompt, options) -> result<string, error> and imports wasi:nn
 * (wit/deps/wasi-nn) through the component model's canonical ABI, written here by hand
 * for these few functions (no binding generator is packaged for Debian or npm's jco).
 * `jco embed` adds the world's types and `jco new` makes it a component.
 *
 * Freestanding: no libc, no WASI, so the component imports wasi:nn and nothing else.
 * Memory is a bump heap that the post-return function empties once the host has
 * read a call's result. Canonical ABI layouts used (wasm32, little-endian):
 *   string, list<T>      {u32 ptr; u32 len}
 *   result<own<R>, own<error>>   u8 tag at 0, the handle at 4
 *   result<list<named-tensor>, own<error>>   u8 tag at 0, the list or the handle at 4
 *   named-tensor = tuple<string, own<tensor>>   12 bytes: string at 0, handle at 8
 *   our result<string, error{code: u8 enum, message: string}>   16 bytes: u8 tag at 0;
 *       ok: the string at 4; err: the code at 4, the message at 8
 */
#include <stddef.h>
#include <stdint.h>

#define NN(iface) "wasi:nn/" iface "@0.2.0-rc-2024-10-28"
#define IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT(NN("graph"), "load-by-name") void nn_load_by_name(const char *name, size_t len, void *ret);
IMPORT(NN("graph"), "[method]graph.init-execution-context")
void nn_init_execution_context(uint32_t graph, void *ret);
IMPORT(NN("graph"), "[resource-drop]graph") void nn_drop_graph(uint32_t graph);
IMPORT(NN("tensor"), "[constructor]tensor")
uint32_t nn_tensor(const uint32_t *dims, size_t ndims, uint32_t type, const void *data, size_t len);
IMPORT(NN("tensor"), "[method]tensor.data") void nn_tensor_data(uint32_t tensor, void *ret);
IMPORT(NN("tensor"), "[resource-drop]tensor") void nn_drop_tensor(uint32_t tensor);
IMPORT(NN("inference"), "[resource-drop]graph-execution-context") void nn_drop_context(uint32_t ctx);
IMPORT(NN("inference"), "[method]graph-execution-context.compute")
void nn_compute(uint32_t ctx, const void *inputs, size_t n, void *ret);
IMPORT(NN("errors"), "[method]error.code") uint32_t nn_error_code(uint32_t error);
IMPORT(NN("errors"), "[method]error.data") void nn_error_data(uint32_t error, void *ret);
IMPORT(NN("errors"), "[resource-drop]error") void nn_drop_error(uint32_t error);

enum { TENSOR_U8 = 4 };                                /* wasi:nn tensor-type */
enum { E_INVALID_ARGUMENT = 0, E_UNKNOWN = 8 };        /* wasi:nn error-code */

/* ---------------------------------------------------------------- memory */

extern unsigned char __heap_base;
static uintptr_t heap_top;

void *memcpy(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void *memset(void *dst, int c, size_t n) {
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}

static void *alloc(size_t align, size_t size) {
  if (!heap_top) heap_top = (uintptr_t)&__heap_base;
  uintptr_t p = (heap_top + align - 1) & ~(uintptr_t)(align - 1);
  uintptr_t end = p + size, have = __builtin_wasm_memory_size(0) * 65536u;
  if (end < p) return NULL;
  if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535) / 65536) == (size_t)-1)
    return NULL;
  heap_top = end;
  return (void *)p;
}

/* The host allocates the arguments and the results of imports here. */
EXPORT("cabi_realloc")
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
  void *p = alloc(align, new_size);
  if (!p) __builtin_trap(); /* the canonical ABI has no way to fail an allocation */
  if (old) memcpy(p, old, old_size < new_size ? old_size : new_size);
  return p;
}

/* ---------------------------------------------------------------- the session */

typedef struct {
  uint32_t ptr, len;
} slice;

/* One loaded model and its execution context, reused by the calls that name it: the
 * backend keeps a bounded number of graphs and contexts per instance. The name lives
 * in static storage because the heap is emptied after every call. */
static char session_model[256];
static size_t session_model_len;
static uint32_t session_graph, session_ctx;
static int session_open;

static uint8_t result_area[16] __attribute__((aligned(8)));

static uint8_t *fail(uint32_t code, const char *msg, size_t len) {
  result_area[0] = 1;
  *(uint32_t *)(result_area + 4) = code; /* the enum is a u8; the rest is padding */
  *(uint32_t *)(result_area + 8) = (uint32_t)(uintptr_t)msg;
  *(uint32_t *)(result_area + 12) = (uint32_t)len;
  return result_area;
}

#define FAIL(code, text) fail(code, text, sizeof text - 1)

/* An error resource from the host: its code and message, and drop it. */
static uint8_t *fail_nn(uint32_t err) {
  slice data __attribute__((aligned(4)));
  uint32_t code = nn_error_code(err);
  nn_error_data(err, &data);
  nn_drop_error(err);
  return fail(code, (const char *)(uintptr_t)data.ptr, data.len);
}

static int same(const char *a, size_t an, const char *b, size_t bn) {
  if (an != bn) return 0;
  for (size_t i = 0; i < an; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

/* Opens the session for this model (or keeps the open one); NULL or an error result. */
static uint8_t *open_session(const char *model, size_t len) {
  if (session_open && same(model, len, session_model, session_model_len)) return NULL;
  if (len == 0 || len >= sizeof session_model)
    return FAIL(E_INVALID_ARGUMENT, "the model name must be 1 to 255 bytes");
  uint32_t ret[2];
  nn_load_by_name(model, len, ret);
  if (ret[0] & 0xff) return fail_nn(ret[1]);
  uint32_t graph = ret[1];
  nn_init_execution_context(graph, ret);
  if (ret[0] & 0xff) {
    nn_drop_graph(graph);
    return fail_nn(ret[1]);
  }
  if (session_open) nn_drop_context(session_ctx), nn_drop_graph(session_graph);
  memcpy(session_model, model, len);
  session_model_len = len, session_graph = graph, session_ctx = ret[1], session_open = 1;
  return NULL;
}

/* Writes v in decimal at p; returns the end. */
static char *put_u32(char *p, uint32_t v) {
  char tmp[10];
  int n = 0;
  do tmp[n++] = (char)('0' + v % 10), v /= 10; while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

static char *put_str(char *p, const char *s) {
  while (*s) *p++ = *s++;
  return p;
}

typedef struct {
  slice name;
  uint32_t tensor;
} named_tensor;

/* The length of the well-formed UTF-8 sequence at s (n bytes left), or minus the length
 * of its maximal ill-formed prefix (Unicode 3.9, table 3-7). */
static int utf8_seq(const uint8_t *s, size_t n) {
  uint8_t c = s[0], lo = 0x80, hi = 0xbf;
  int need;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) need = 1;
  else if (c >= 0xe0 && c <= 0xef) need = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
  else if (c >= 0xf0 && c <= 0xf4) need = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
  else return -1;
  for (int i = 1; i <= need; i++) {
    if ((size_t)i >= n || s[i] < lo || s[i] > hi) return -i;
    lo = 0x80, hi = 0xbf;
  }
  return need + 1;
}

/* A component string must be UTF-8; tokens can end inside a character. Ill-formed
 * bytes become U+FFFD, one per maximal ill-formed prefix, as decoders do. */
static slice to_utf8(slice in) {
  const uint8_t *s = (const uint8_t *)(uintptr_t)in.ptr;
  uint8_t *out = alloc(1, (size_t)in.len * 3), *o = out;
  if (!out) __builtin_trap();
  for (size_t i = 0; i < in.len;) {
    int k = utf8_seq(s + i, in.len - i);
    if (k > 0) {
      memcpy(o, s + i, (size_t)k), o += k, i += (size_t)k;
    } else {
      *o++ = 0xef, *o++ = 0xbf, *o++ = 0xbd;
      i += (size_t)-k;
    }
  }
  return (slice){(uint32_t)(uintptr_t)out, (uint32_t)(o - out)};
}

static uint32_t u8_tensor(const char *data, size_t len) {
  uint32_t dims[1] = {(uint32_t)len};
  return nn_tensor(dims, 1, TENSOR_U8, data, len);
}

EXPORT("mlcomm:llm/generate@0.1.0#generate")
uint8_t *generate(const char *prompt, size_t prompt_len, const char *model, size_t model_len,
                  uint32_t max_tokens, uint32_t has_seed, uint32_t seed, const char *settings,
                  size_t settings_len) {
  if (max_tokens == 0) return FAIL(E_INVALID_ARGUMENT, "max-tokens must be 1 or more");
  uint8_t *err = open_session(model, model_len);
  if (err) return err;
  /* the call's own settings, then the caller's JSON over them */
  char cfg[64], *p = cfg;
  p = put_str(p, "{\"n-predict\": ");
  p = put_u32(p, max_tokens);
  p = put_str(p, ", \"seed\": ");
  p = has_seed ? put_u32(p, seed) : put_str(p, "-1");
  p = put_str(p, "}");
  named_tensor in[3] = {
      {{(uint32_t)(uintptr_t) "prompt", 6}, u8_tensor(prompt, prompt_len)},
      {{(uint32_t)(uintptr_t) "config", 6}, u8_tensor(cfg, (size_t)(p - cfg))},
      {{(uint32_t)(uintptr_t) "config", 6}, 0},
  };
  size_t n_in = 2;
  if (settings_len) in[n_in++].tensor = u8_tensor(settings, settings_len);
  uint32_t ret[3];
  nn_compute(session_ctx, in, n_in, ret); /* the inputs' tensors move to the host */
  if (ret[0] & 0xff) return fail_nn(ret[1]);
  const named_tensor *out = (const named_tensor *)(uintptr_t)ret[1];
  slice text = {0, 0};
  int found = 0;
  for (uint32_t i = 0; i < ret[2]; i++) {
    if (same((const char *)(uintptr_t)out[i].name.ptr, out[i].name.len, "text", 4)) {
      nn_tensor_data(out[i].tensor, &text);
      found = 1;
    }
    nn_drop_tensor(out[i].tensor);
  }
  if (!found) return FAIL(E_UNKNOWN, "the host's compute returned no \"text\" output");
  text = to_utf8(text);
  result_area[0] = 0;
  *(uint32_t *)(result_area + 4) = text.ptr;
  *(uint32_t *)(result_area + 8) = text.len;
  return result_area;
}

/* After the host has read the result: nothing on the heap is needed any more. */
EXPORT("cabi_post_mlcomm:llm/generate@0.1.0#generate")
void generate_post_return(uint8_t *result) {
  (void)result;
  heap_top = (uintptr_t)&__heap_base;
}

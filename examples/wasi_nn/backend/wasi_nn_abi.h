/*
 * wasi_nn_abi.h - the host-side WASI-NN backend ABI that WebAssembly Micro Runtime
 * (WAMR) 2.4+ dlopen()s (see docs/wasi_nn.md). Written from the facts in
 * shared/wasi-nn-abi.md: layouts are for x86_64 and must not change.
 */
#ifndef WASI_NN_ABI_H
#define WASI_NN_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  success = 0,
  invalid_argument = 1,
  invalid_encoding = 2,
  missing_memory = 3,
  busy = 4,
  runtime_error = 5,
  unsupported_operation = 6,
  too_large = 7,
  not_found = 8,
  end_of_sequence = 100,
  context_full = 101,
  prompt_too_long = 102,
  model_not_found = 103,
} wasi_nn_error;

typedef enum { fp16 = 0, fp32 = 1, fp64 = 2, u8 = 3, i32 = 4, i64 = 5 } tensor_type;

typedef enum {
  openvino = 0,
  onnx = 1,
  tensorflow = 2,
  pytorch = 3,
  tensorflowlite = 4,
  ggml = 5,
  autodetect = 6,
  unknown_backend = 7,
} graph_encoding;

typedef enum { cpu = 0, gpu = 1, tpu = 2 } execution_target;

typedef uint32_t graph;
typedef uint32_t graph_execution_context;

typedef struct {
  uint32_t *buf;
  uint32_t size;
} tensor_dimensions;

typedef struct {
  uint8_t *buf;
  uint32_t size;
} tensor_data;

typedef struct {
  tensor_dimensions *dimensions;
  uint8_t type; /* tensor_type, one byte, then 3 bytes of padding */
  tensor_data data;
} tensor;

typedef struct {
  uint8_t *buf;
  uint32_t size;
} graph_builder;

typedef struct {
  graph_builder *buf;
  uint32_t size;
} graph_builder_array;

#if defined(__x86_64__)
_Static_assert(sizeof(tensor) == 32, "tensor is 32 bytes on x86_64");
_Static_assert(__builtin_offsetof(tensor, type) == 8, "tensor.type at offset 8");
_Static_assert(__builtin_offsetof(tensor, data) == 16, "tensor.data at offset 16");
#endif

#define WASI_NN_EXPORT __attribute__((visibility("default")))

/* The nine entry points, looked up by name with dlsym(). */
WASI_NN_EXPORT wasi_nn_error init_backend(void **ctx);
WASI_NN_EXPORT wasi_nn_error deinit_backend(void *ctx);
WASI_NN_EXPORT wasi_nn_error load(void *ctx, graph_builder_array *builder, graph_encoding encoding,
                                  execution_target target, graph *g);
WASI_NN_EXPORT wasi_nn_error load_by_name(void *ctx, const char *name, uint32_t namelen, graph *g);
WASI_NN_EXPORT wasi_nn_error load_by_name_with_config(void *ctx, const char *name, uint32_t namelen,
                                                      const char *config, uint32_t config_len,
                                                      graph *g);
WASI_NN_EXPORT wasi_nn_error init_execution_context(void *ctx, graph g,
                                                    graph_execution_context *exec_ctx);
WASI_NN_EXPORT wasi_nn_error set_input(void *ctx, graph_execution_context exec_ctx, uint32_t index,
                                       tensor *input_tensor);
WASI_NN_EXPORT wasi_nn_error compute(void *ctx, graph_execution_context exec_ctx);
WASI_NN_EXPORT wasi_nn_error get_output(void *ctx, graph_execution_context exec_ctx, uint32_t index,
                                        tensor_data *output_tensor, uint32_t *output_tensor_size);

#ifdef __cplusplus
}
#endif
#endif

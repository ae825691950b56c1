/*
 * The backend's nine entry points as a runtime sees them: looked up by name with
 * dlsym() in the loaded library. Shared by the Node host bridge and the tests that
 * call the backend the way WAMR does.
 */
#ifndef WASI_NN_TABLE_H
#define WASI_NN_TABLE_H

#include <dlfcn.h>

#include "wasi_nn_abi.h"

typedef struct {
  wasi_nn_error (*init_backend)(void **);
  wasi_nn_error (*deinit_backend)(void *);
  wasi_nn_error (*load)(void *, graph_builder_array *, graph_encoding, execution_target, graph *);
  wasi_nn_error (*load_by_name)(void *, const char *, uint32_t, graph *);
  wasi_nn_error (*load_by_name_with_config)(void *, const char *, uint32_t, const char *, uint32_t,
                                            graph *);
  wasi_nn_error (*init_execution_context)(void *, graph, graph_execution_context *);
  wasi_nn_error (*set_input)(void *, graph_execution_context, uint32_t, tensor *);
  wasi_nn_error (*compute)(void *, graph_execution_context);
  wasi_nn_error (*get_output)(void *, graph_execution_context, uint32_t, tensor_data *, uint32_t *);
} wasi_nn_table;

/* Fills t from lib; returns the name of the first entry point missing, or NULL. */
static inline const char *wasi_nn_table_lookup(void *lib, wasi_nn_table *t) {
#define WASI_NN_SYM(n)                                                                     \
  if ((*(void **)&t->n = dlsym(lib, #n)) == NULL) return #n
  WASI_NN_SYM(init_backend);
  WASI_NN_SYM(deinit_backend);
  WASI_NN_SYM(load);
  WASI_NN_SYM(load_by_name);
  WASI_NN_SYM(load_by_name_with_config);
  WASI_NN_SYM(init_execution_context);
  WASI_NN_SYM(set_input);
  WASI_NN_SYM(compute);
  WASI_NN_SYM(get_output);
#undef WASI_NN_SYM
  return NULL;
}

#endif

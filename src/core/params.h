/*
 * Settings read from MLCOMM_* environment variables. Each one is declared once, beside
 * the code that uses it, with MLCOMM_PARAM (NCCL_PARAM's idea): the declaration names
 * the variable, its default and its range, and places a pointer to itself in the
 * mlcomm_params linker section. The core walks that section, so every declared
 * variable is read and checked at communicator creation, strictly and alike, and a
 * variable nobody declared is recognised as unknown (a misspelling) without a central
 * list to keep in step.
 */
#ifndef MLCOMM_CORE_PARAMS_H
#define MLCOMM_CORE_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mlcomm/mlcomm.h"

/* A named value a variable accepts besides integers (MLCOMM_DEBUG=INFO). */
struct mlcomm_param_word {
  const char *word; /* matched case-insensitively */
  int64_t value;
};

struct mlcomm_param {
  const char *env;  /* the whole variable name */
  int64_t def;      /* when unset or empty */
  int64_t lo, hi;   /* accepted integers; lo > hi: words only */
  const struct mlcomm_param_word *words; /* NULL-terminated, or NULL */
};

#define MLCOMM_PARAM_SECTION "mlcomm_params"

/* Declares param `id` (mlcomm_param_<id>): MLCOMM_PARAM(ShmSlots, "MLCOMM_SHM_SLOTS", 4,
 * 2, 64). The struct is global (hidden to the library) so that other files of the same
 * folder may read it through an extern declaration. */
#define MLCOMM_PARAM_WORDS(id, name, def_, lo_, hi_, words_)                               \
  const struct mlcomm_param mlcomm_param_##id = {                                          \
      .env = (name), .def = (def_), .lo = (lo_), .hi = (hi_), .words = (words_)};          \
  __attribute__((used, section(MLCOMM_PARAM_SECTION)))                                     \
  static const struct mlcomm_param *const mlcomm_param_entry_##id = &mlcomm_param_##id
#define MLCOMM_PARAM(id, name, def_, lo_, hi_) MLCOMM_PARAM_WORDS(id, name, def_, lo_, hi_, NULL)
#define MLCOMM_PARAM_EXTERN(id) extern const struct mlcomm_param mlcomm_param_##id

struct mlcomm_comm;

/* Parses text for p: a word, or a whole decimal integer in [lo, hi]. No side effect. */
bool mlcomm_param_parse(const struct mlcomm_param *p, const char *text, int64_t *out);
/* p's value from the environment, or its default when unset; a bad value is an
 * mlcommInvalidArgument whose sentence names the variable, the value and what it
 * accepts. */
mlcommResult_t mlcomm_param_env(const struct mlcomm_param *p, int64_t *out);

/* Reads every declared variable into a fresh array (for a new communicator). */
mlcommResult_t mlcomm_params_read(int64_t **values);
/* A copy of an array from mlcomm_params_read (NULL when out of memory). */
int64_t *mlcomm_params_dup(const int64_t *src);
/* p's value in an array from mlcomm_params_read. */
int64_t mlcomm_param_at(const int64_t *values, const struct mlcomm_param *p);
/* The value in force on comm. */
int64_t mlcomm_param(const struct mlcomm_comm *comm, const struct mlcomm_param *p);
/* Whether name is a variable the library reads (declared, or a transport's tune
 * string); for the unknown-variable warning. */
bool mlcomm_param_known(const char *name);
/* Once per process: an INFO line for every MLCOMM_* variable in the environment that
 * the library does not read, with the nearest known name when one is close. */
void mlcomm_params_warn_unknown(void);

#endif

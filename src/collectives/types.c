/*
 * Datatype and reduction-op metadata: sizes, display names and name parsing.
 * Names follow nccl-tests so benchmark output and command lines read the same.
 */
#include "collectives/reduce.h"

#include <stddef.h>

static const size_t type_sizes[mlcommNumTypes] = {
    [mlcommInt8] = 1,    [mlcommUint8] = 1,   [mlcommInt32] = 4,   [mlcommUint32] = 4,
    [mlcommInt64] = 8,   [mlcommUint64] = 8,  [mlcommFloat16] = 2, [mlcommFloat32] = 4,
    [mlcommFloat64] = 8, [mlcommBfloat16] = 2,
};

static const char *const type_names[mlcommNumTypes] = {
    [mlcommInt8] = "int8",       [mlcommUint8] = "uint8",     [mlcommInt32] = "int32",
    [mlcommUint32] = "uint32",   [mlcommInt64] = "int64",     [mlcommUint64] = "uint64",
    [mlcommFloat16] = "half",    [mlcommFloat32] = "float",   [mlcommFloat64] = "double",
    [mlcommBfloat16] = "bfloat16",
};

static const char *const op_names[mlcommNumOps] = {
    [mlcommSum] = "sum", [mlcommProd] = "prod", [mlcommMax] = "max",
    [mlcommMin] = "min", [mlcommAvg] = "avg",
};

/* Spellings accepted on top of the canonical names, from other frameworks' usage. */
static const struct {
  const char *name;
  mlcommDataType_t type;
} type_aliases[] = {
    {"float16", mlcommFloat16}, {"fp16", mlcommFloat16},  {"float32", mlcommFloat32},
    {"fp32", mlcommFloat32},    {"float64", mlcommFloat64}, {"fp64", mlcommFloat64},
    {"bf16", mlcommBfloat16},   {"char", mlcommInt8},     {"int", mlcommInt32},
};

/* ASCII-only case folding: names come from command lines and environment variables,
 * and the result must not depend on the process locale. */
static int name_equal(const char *a, const char *b) {
  for (;; a++, b++) {
    char ca = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
    char cb = (*b >= 'A' && *b <= 'Z') ? (char)(*b - 'A' + 'a') : *b;
    if (ca != cb) return 0;
    if (ca == '\0') return 1;
  }
}

size_t mlcomm_type_size(mlcommDataType_t type) {
  /* The enum may be signed or unsigned; compare as unsigned to reject negatives too. */
  if ((unsigned)type >= (unsigned)mlcommNumTypes) return 0;
  return type_sizes[type];
}

const char *mlcomm_type_name(mlcommDataType_t type) {
  if ((unsigned)type >= (unsigned)mlcommNumTypes) return "unknown";
  return type_names[type];
}

const char *mlcomm_op_name(mlcommRedOp_t op) {
  if ((unsigned)op >= (unsigned)mlcommNumOps) return "unknown";
  return op_names[op];
}

int mlcomm_type_from_name(const char *name) {
  if (name == NULL) return -1;
  for (int t = 0; t < mlcommNumTypes; t++)
    if (name_equal(name, type_names[t])) return t;
  for (size_t i = 0; i < sizeof type_aliases / sizeof type_aliases[0]; i++)
    if (name_equal(name, type_aliases[i].name)) return (int)type_aliases[i].type;
  return -1;
}

int mlcomm_op_from_name(const char *name) {
  if (name == NULL) return -1;
  for (int op = 0; op < mlcommNumOps; op++)
    if (name_equal(name, op_names[op])) return op;
  return -1;
}

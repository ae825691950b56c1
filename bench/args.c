/*
 * args.c - the command line: the names -d, -o, -t and -m accept, the flags, -h's text
 * and the messages for a flag that cannot be used.
 */
#include "harness_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct hb_type_info types[] = {
    {"int8", NULL, mlcommInt8, 1},         {"uint8", NULL, mlcommUint8, 1},
    {"int32", NULL, mlcommInt32, 4},       {"uint32", NULL, mlcommUint32, 4},
    {"int64", NULL, mlcommInt64, 8},       {"uint64", NULL, mlcommUint64, 8},
    {"half", "float16", mlcommFloat16, 2}, {"float", "float32", mlcommFloat32, 4},
    {"double", "float64", mlcommFloat64, 8}, {"bfloat16", "bf16", mlcommBfloat16, 2},
};
#define N_TYPES (sizeof(types) / sizeof(types[0]))
#define TYPE_LIST \
  "int8 uint8 int32 uint32 int64 uint64 half float16 float float32 double float64 bfloat16 bf16"

/* indexed by mlcommRedOp_t */
static const char *const ops[] = {"sum", "prod", "max", "min", "avg"};
#define OP_LIST "sum prod max min avg"

/* indexed by mlcommConfig_t.transport */
static const char *const transports[] = {"auto", "mpi", "shm", "nccl"};
#define TRANSPORT_LIST "auto mpi shm nccl"

/* indexed by enum hb_memory (memory.c names them); "device" only with CUDA */
#if HB_HAVE_CUDA
static const char *const memories[] = {"host", "alloc", "device"};
#define MEMORY_LIST "host alloc device"
#else
static const char *const memories[] = {"host", "alloc"};
#define MEMORY_LIST "host alloc"
#endif


const struct hb_type_info *hb_type(mlcommDataType_t t) {
  for (size_t k = 0; k < N_TYPES; k++)
    if (types[k].type == t) return &types[k];
  return &types[0]; /* unreachable: types come from the table */
}

size_t hb_type_size(mlcommDataType_t t) { return hb_type(t)->size; }

const char *hb_op_name(mlcommRedOp_t op) { return ops[op]; }

const char *hb_transport_name(int transport) {
  if (transport < 0 || transport >= (int)(sizeof(transports) / sizeof(transports[0])))
    return "?";
  return transports[transport];
}

static void usage(FILE *f, const struct hb_collective *coll) {
  fprintf(f,
          "usage: mpirun -np N %s [flags]\n"
          "  -b, --minbytes SIZE      smallest size in bytes (default 8)\n"
          "  -e, --maxbytes SIZE      largest size in bytes (default 64M)\n"
          "  -f, --stepfactor N       multiply the size by N between rows (default 2)\n"
          "                           SIZE is an integer with an optional K, M or G suffix\n"
          "                           (powers of 1024)\n"
          "  -d, --datatype TYPE      " TYPE_LIST "\n"
          "                           (default float)\n"
          "  -o, --op OP              " OP_LIST " (default sum)%s\n"
          "  -r, --root R             root rank, 0..nranks-1 (default 0)%s\n"
          "  -n, --iters N            timed iterations per size (default 20)\n"
          "  -w, --warmup_iters N     untimed iterations per size (default 5)\n"
          "  -c, --check 0|1          verify the results (default 1)\n"
          "  -t, --transport T        " TRANSPORT_LIST " (default: the library's, or\n"
          "                           MLCOMM_TRANSPORT)\n"
          "  -m, --memory KIND        " MEMORY_LIST " (default host): malloc'ed buffers, or\n"
          "                           mlcommMemAlloc's (zero-copy on the shm transport), or\n"
          "                           CUDA device memory (cudaMalloc; checked through host\n"
          "                           copies, outside the timing)\n"
          "      --vs-mpi             also time the plain MPI call on the same buffers\n"
          "      --json PATH          rank 0 writes every row to PATH as JSON\n"
          "      --bound              first measure the node's memory bandwidth (every rank\n"
          "                           copying 256 MiB at once), then print busbw as a\n"
          "                           fraction of the bound it sets for this collective\n"
          "  -a, --async              use the ...Async forms and mlcommWait\n"
          "  -i, --in-place           run every call in place (sendbuff and recvbuff overlap\n"
          "                           as mlcomm.h defines; MPI_IN_PLACE for --vs-mpi)%s\n"
          "  -h, --help               this text\n",
          coll->bench, coll->uses_op ? "" : " (ignored here)",
          coll->uses_root ? "" : " (ignored here)",
          coll->in_place ? "" : "\n                           (not available here)");
}

/* Sizes: an integer with an optional K/M/G suffix (1024-based, as nccl-tests). */
static int parse_size(const char *s, size_t *out) {
  if (*s < '0' || *s > '9') return 0;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0) return 0;
  unsigned long long mul = 1;
  switch (*end) {
  case 'k': case 'K': mul = 1ull << 10; end++; break;
  case 'm': case 'M': mul = 1ull << 20; end++; break;
  case 'g': case 'G': mul = 1ull << 30; end++; break;
  default: break;
  }
  if (*end != '\0' || (v != 0 && mul > SIZE_MAX / v)) return 0;
  *out = (size_t)(v * mul);
  return 1;
}

static int parse_int(const char *s, long lo, long hi, long *out) {
  if (*s == '\0') return 0;
  errno = 0;
  char *end;
  long v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return 0;
  *out = v;
  return 1;
}

/* One accepted flag. Short-only or long-only flags have 0 / NULL in the other slot;
 * key tells them apart in the parser (the short name, or an upper-case letter for a
 * long-only flag); allowed describes the values in error messages. */
struct hb_flag {
  char key;
  char short_name;
  const char *long_name;
  int takes_value;
  const char *allowed;
};

#define SIZE_TEXT "bytes as an integer with an optional K, M or G suffix (e.g. 8, 1K, 64M)"
static const struct hb_flag flags[] = {
    {'b', 'b', "minbytes", 1, SIZE_TEXT},
    {'e', 'e', "maxbytes", 1, SIZE_TEXT},
    {'f', 'f', "stepfactor", 1, "an integer from 2 to 1073741824"},
    {'d', 'd', "datatype", 1, TYPE_LIST},
    {'o', 'o', "op", 1, OP_LIST},
    {'r', 'r', "root", 1, "a rank from 0 to nranks-1"},
    {'n', 'n', "iters", 1, "an integer >= 1"},
    {'w', 'w', "warmup_iters", 1, "an integer >= 0"},
    {'c', 'c', "check", 1, "0 or 1"},
    {'t', 't', "transport", 1, TRANSPORT_LIST},
    {'m', 'm', "memory", 1, MEMORY_LIST},
    {'V', 0, "vs-mpi", 0, NULL},
    {'J', 0, "json", 1, "a file path"},
    {'B', 0, "bound", 0, NULL},
    {'a', 'a', "async", 0, NULL},
    {'i', 'i', "in-place", 0, NULL},
    {'h', 'h', "help", 0, NULL},
};

/* Errors name the flag as the user spelled it and list what it accepts. */
int hb_parse_args(int argc, char **argv, const struct hb_collective *coll, int nranks,
                  int talk, struct hb_args *a) {
  *a = (struct hb_args){.min_bytes = 8, .max_bytes = 64u << 20, .factor = 2,
                        .type = mlcommFloat32, .op = mlcommSum, .root = 0, .iters = 20,
                        .warmup = 5, .check = 1, .transport = -1,
                        .memory = HB_MEMORY_HOST};
  const char *prog = coll->bench;
#define BAD(...)                     \
  do {                               \
    if (talk) {                      \
      fprintf(stderr, "%s: ", prog); \
      fprintf(stderr, __VA_ARGS__);  \
      fprintf(stderr, "\n");         \
    }                                \
    return 2;                        \
  } while (0)

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const struct hb_flag *flag = NULL;
    const char *value = NULL;
    char shown[64]; /* the flag as the user spelled it, for messages */

    if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0') {
      const char *eq = strchr(arg, '=');
      size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
      for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
        if (flags[k].long_name && strlen(flags[k].long_name) == len &&
            strncmp(flags[k].long_name, arg + 2, len) == 0)
          flag = &flags[k];
      if (flag) {
        snprintf(shown, sizeof shown, "--%s", flag->long_name);
        if (eq) {
          if (!flag->takes_value) BAD("%s takes no value (got '%s')", shown, arg);
          value = eq + 1;
        }
      }
    } else if (arg[0] == '-' && arg[1] != '\0' && arg[1] != '-') {
      for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
        if (flags[k].short_name == arg[1]) flag = &flags[k];
      if (flag) {
        snprintf(shown, sizeof shown, "-%c", flag->short_name);
        if (arg[2] != '\0') {
          if (!flag->takes_value) BAD("%s takes no value (got '%s')", shown, arg);
          value = arg + 2; /* -b8 as well as -b 8 */
        }
      }
    }
    if (!flag)
      BAD("'%s' is not a flag; allowed: -b -e -f -d -o -r -n -w -c -t -m -a -i --vs-mpi "
          "--json --bound -h (run with -h for details)",
          arg);
    if (flag->takes_value && !value) {
      if (i + 1 >= argc) BAD("%s needs a value; allowed: %s", shown, flag->allowed);
      value = argv[++i];
    }

    long v;
    switch (flag->key) {
    case 'b':
    case 'e': {
      size_t *dst = flag->short_name == 'b' ? &a->min_bytes : &a->max_bytes;
      if (!parse_size(value, dst))
        BAD("%s '%s' is not a size; allowed: %s", shown, value, flag->allowed);
      break;
    }
    case 'f':
      if (!parse_int(value, 2, 1L << 30, &v))
        BAD("%s '%s' is not a valid factor; allowed: %s", shown, value, flag->allowed);
      a->factor = (size_t)v;
      break;
    case 'd': {
      const struct hb_type_info *t = NULL;
      for (size_t k = 0; k < N_TYPES; k++)
        if (strcmp(value, types[k].name) == 0 ||
            (types[k].alias && strcmp(value, types[k].alias) == 0))
          t = &types[k];
      if (!t) BAD("%s '%s' is not a type; allowed: " TYPE_LIST, shown, value);
      a->type = t->type;
      break;
    }
    case 'o': {
      int found = -1;
      for (int k = 0; k < (int)(sizeof(ops) / sizeof(ops[0])); k++)
        if (strcmp(value, ops[k]) == 0) found = k;
      if (found < 0) BAD("%s '%s' is not an op; allowed: " OP_LIST, shown, value);
      a->op = (mlcommRedOp_t)found;
      break;
    }
    case 'r':
      /* checked against nranks even where -r is ignored: a root that cannot exist is a
       * mistake in the command line either way */
      if (!parse_int(value, 0, nranks - 1, &v))
        BAD("%s '%s' is not a valid root; allowed: 0..%d (nranks - 1)", shown, value,
            nranks - 1);
      a->root = (int)v;
      break;
    case 'n':
      if (!parse_int(value, 1, 1L << 30, &v))
        BAD("%s '%s' is not a valid iteration count; allowed: %s", shown, value,
            flag->allowed);
      a->iters = (int)v;
      break;
    case 'w':
      if (!parse_int(value, 0, 1L << 30, &v))
        BAD("%s '%s' is not a valid warm-up count; allowed: %s", shown, value, flag->allowed);
      a->warmup = (int)v;
      break;
    case 'c':
      if (!parse_int(value, 0, 1, &v))
        BAD("%s '%s' is not allowed; allowed: 0 or 1", shown, value);
      a->check = (int)v;
      break;
    case 't': {
      int found = -1;
      for (int k = 0; k < (int)(sizeof(transports) / sizeof(transports[0])); k++)
        if (strcmp(value, transports[k]) == 0) found = k;
      if (found < 0)
        BAD("%s '%s' is not a transport; allowed: " TRANSPORT_LIST, shown, value);
      a->transport = found;
      break;
    }
    case 'm': {
      int found = -1;
      for (int k = 0; k < (int)(sizeof(memories) / sizeof(memories[0])); k++)
        if (strcmp(value, memories[k]) == 0) found = k;
      if (found < 0 && strcmp(value, "device") == 0)
        BAD("%s 'device' is not available: this build of the benchmarks has no CUDA (meson "
            "found no toolkit, or -Dcuda=disabled); allowed: " MEMORY_LIST,
            shown);
      if (found < 0) BAD("%s '%s' is not a memory kind; allowed: " MEMORY_LIST, shown, value);
      a->memory = found;
      break;
    }
    case 'V': a->vs_mpi = 1; break;
    case 'B': a->bound = 1; break;
    case 'J':
      if (*value == '\0') BAD("%s needs a value; allowed: %s", shown, flag->allowed);
      a->json_path = value;
      break;
    case 'a': a->async = 1; break;
    case 'i':
      /* refused here rather than by the library, so that it is a flag error (exit 2)
       * before anything runs, with a reason the user can act on */
      if (!coll->in_place)
        BAD("%s is not available here: %s has no in-place form (each rank sends one "
            "buffer and receives into another); run without %s",
            shown, coll->call, shown);
      a->in_place = 1;
      break;
    case 'h':
      if (talk) usage(stdout, coll);
      return 1;
    default: break;
    }
  }
  if (a->min_bytes > a->max_bytes)
    BAD("-b %zu is larger than -e %zu; the smallest size must not exceed the largest",
        a->min_bytes, a->max_bytes);
  if (a->vs_mpi && a->memory == HB_MEMORY_DEVICE)
    BAD("--vs-mpi with -m device is not available: the plain MPI reference would hand "
        "device pointers to MPI, which only a CUDA-aware MPI accepts; run without --vs-mpi");
#undef BAD
  return 0;
}

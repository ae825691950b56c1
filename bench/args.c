/*
 * args.c - the command line. Every short flag means what it means in nccl-tests; the
 * options only mlcomm has are long names (--transport, --memory, --in-place, --async,
 * --vs-mpi, --json, --bound), so a nccl-tests command line either runs here with the same
 * meaning or is refused with a sentence saying why, never half-honoured.
 */
#include "harness_internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

enum flag_id {
  F_NTHREADS, F_NGPUS, F_MINBYTES, F_MAXBYTES, F_STEPBYTES, F_STEPFACTOR, F_ITERS,
  F_AGG, F_WARMUP, F_CYCLES, F_PARALLEL_INIT, F_CHECK, F_OP, F_DATATYPE, F_ROOT,
  F_BLOCKING, F_STREAM_NULL, F_TIMEOUT, F_CUDAGRAPH, F_CPUTIME, F_TIMESTAMPS, F_OUTPUT,
  F_AVERAGE, F_REGISTER, F_CTA_POLICY, F_DEVICE_IMPL, F_DEVICE_CTAS, F_MEMORY_REPORT,
  F_HELP,
  /* mlcomm's own, long names only */
  F_TRANSPORT, F_MEMORY, F_IN_PLACE, F_ASYNC, F_VS_MPI, F_JSON, F_BOUND,
};

/* One accepted flag: short_name 0 for a long-only flag; allowed describes the values
 * in error messages. An integer flag (noun set) takes lo..hi and lands in the int of
 * struct hb_args at field (-1: checked, kept nowhere). */
struct hb_flag {
  enum flag_id id;
  char short_name;
  const char *long_name;
  int takes_value;
  const char *allowed;
  const char *noun;
  long lo, hi;
  long field;
};
#define FLAG(id_, short_, long_, value_, allowed_)                              \
  {.id = id_, .short_name = short_, .long_name = long_, .takes_value = value_, \
   .allowed = allowed_}
#define INT_FLAG(id_, short_, long_, allowed_, noun_, lo_, hi_, field_)                 \
  {.id = id_, .short_name = short_, .long_name = long_, .takes_value = 1,              \
   .allowed = allowed_, .noun = noun_, .lo = lo_, .hi = hi_, .field = field_}
#define AT(member) ((long)offsetof(struct hb_args, member))

#define SIZE_TEXT "bytes as an integer with an optional K, M or G suffix (e.g. 8, 1K, 64M)"
static const struct hb_flag flags[] = {
    FLAG(F_NTHREADS, 't', "nthreads", 1, "1"),
    FLAG(F_NGPUS, 'g', "ngpus", 1, "1"),
    FLAG(F_MINBYTES, 'b', "minbytes", 1, SIZE_TEXT),
    FLAG(F_MAXBYTES, 'e', "maxbytes", 1, SIZE_TEXT),
    FLAG(F_STEPBYTES, 'i', "stepbytes", 1, SIZE_TEXT ", at least 1"),
    FLAG(F_STEPFACTOR, 'f', "stepfactor", 1, "an integer from 1 to 1073741824"),
    INT_FLAG(F_ITERS, 'n', "iters", "an integer >= 1", "iteration count", 1, 1L << 30,
             AT(iters)),
    INT_FLAG(F_AGG, 'm', "agg_iters", "an integer from 1 to 1024", "aggregation count", 1,
             HB_AGG_MAX, AT(agg)),
    INT_FLAG(F_WARMUP, 'w', "warmup_iters", "an integer >= 0", "warm-up count", 0, 1L << 30,
             AT(warmup)),
    INT_FLAG(F_CYCLES, 'N', "run_cycles", "an integer >= 1", "cycle count", 1, 1L << 20,
             AT(cycles)),
    /* with one thread per rank every rank already initialises its own communicator at
     * the same time as the others, which is what -p 1 asks for: checked, kept nowhere */
    INT_FLAG(F_PARALLEL_INIT, 'p', "parallel_init", "0 or 1", "choice", 0, 1, -1),
    INT_FLAG(F_CHECK, 'c', "check", "an integer >= 0 (checked calls per size)", "check count",
             0, 1L << 20, AT(check)),
    FLAG(F_OP, 'o', "op", 1, NULL),
    FLAG(F_DATATYPE, 'd', "datatype", 1, NULL),
    FLAG(F_ROOT, 'r', "root", 1, "a rank from 0 to nranks-1, or all (also -1)"),
    INT_FLAG(F_BLOCKING, 'z', "blocking", "0 or 1", "choice", 0, 1, AT(blocking)),
    FLAG(F_STREAM_NULL, 'y', "stream_null", 1, "1"),
    INT_FLAG(F_TIMEOUT, 'T', "timeout", "seconds, an integer from 0 (none) to 2147483",
             "timeout", 0, 2147483, AT(timeout_s)),
    FLAG(F_CUDAGRAPH, 'G', "cudagraph", 1, "0"),
    INT_FLAG(F_CPUTIME, 'C', "report_cputime", "0 or 1", "choice", 0, 1, AT(cputime)),
    FLAG(F_TIMESTAMPS, 'S', "report_timestamps", 1, "0"),
    FLAG(F_OUTPUT, 'J', "output_file", 1, "a file path"),
    INT_FLAG(F_AVERAGE, 'a', "average",
             "0 (rank 0's time), 1 (the mean over ranks), 2 (the minimum), 3 (the maximum)",
             "choice", 0, 3, AT(average)),
    FLAG(F_REGISTER, 'R', "local_register", 1, "0"),
    FLAG(F_CTA_POLICY, 'x', "cta_policy", 1, NULL),
    FLAG(F_DEVICE_IMPL, 'D', "device_implementation", 1, "0"),
    FLAG(F_DEVICE_CTAS, 'V', "device_cta_count", 1, NULL),
    FLAG(F_MEMORY_REPORT, 'M', "memory_report", 1, "0"),
    FLAG(F_HELP, 'h', "help", 0, NULL),
    FLAG(F_TRANSPORT, 0, "transport", 1, NULL),
    FLAG(F_MEMORY, 0, "memory", 1, NULL),
    FLAG(F_IN_PLACE, 0, "in-place", 0, NULL),
    FLAG(F_ASYNC, 0, "async", 0, NULL),
    FLAG(F_VS_MPI, 0, "vs-mpi", 0, NULL),
    FLAG(F_JSON, 0, "json", 1, "a file path"),
    FLAG(F_BOUND, 0, "bound", 0, NULL),
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

/* Why a nccl-tests flag cannot be honoured with the value given; NULL where it can. The
 * values nccl-tests uses by default (and mlcomm does anyway) are accepted. */
static const char *refusal(enum flag_id id, long v) {
  switch (id) {
  case F_NTHREADS:
    return v == 1 ? NULL
                  : "mlcomm runs one thread per rank (a communicator is used by one thread at "
                    "a time); start more ranks with mpirun -np instead";
  case F_NGPUS:
    return v == 1 ? NULL
                  : "mlcomm drives one GPU per rank; start one rank per GPU with mpirun -np "
                    "instead";
  case F_STREAM_NULL:
    return v == 1 ? NULL
                  : "the benchmarks order device work on CUDA's default stream, mlcomm's "
                    "default (an application picks another with mlcommCommSetStream)";
  case F_CUDAGRAPH:
    return v == 0 ? NULL
                  : "mlcomm's calls are driven by the host and complete through requests, so "
                    "they cannot be captured into a CUDA graph";
  case F_TIMESTAMPS:
    return v == 0 ? NULL : "the table has no timestamp column";
  case F_REGISTER:
    return v == 0 ? NULL
                  : "mlcomm has no buffer registration; --memory alloc gives buffers from "
                    "mlcommMemAlloc, which the shm transport uses without copying";
  case F_CTA_POLICY: return "mlcomm does not expose NCCL's CTA policy";
  case F_DEVICE_IMPL:
    return v == 0 ? NULL : "mlcomm does not expose NCCL's device API implementations";
  case F_DEVICE_CTAS: return "mlcomm does not expose NCCL's device API implementations";
  case F_MEMORY_REPORT: return v == 0 ? NULL : "mlcomm does not report its memory use";
  default: return NULL;
  }
}

/* For the flags whose short form meant something else here before, what to use now. */
static const char *migration_hint(char short_name) {
  switch (short_name) {
  case 't': return " (-t is nccl-tests' --nthreads; the transport is --transport)";
  case 'm': return " (-m is nccl-tests' --agg_iters; the buffer kind is --memory)";
  case 'a': return " (-a is nccl-tests' --average; the ...Async forms are -z 0 or --async)";
  case 'i': return " (-i is nccl-tests' --stepbytes; in place is --in-place)";
  default: return "";
  }
}

/* "a b c" from the library's names of values 0..n-1, then " all" when with_all */
static void list_names(char *out, size_t cap, const char *(*name)(int), int n, int with_all) {
  size_t len = 0;
  out[0] = '\0';
  for (int k = 0; k < n && len < cap; k++)
    len += (size_t)snprintf(out + len, cap - len, k ? " %s" : "%s", name(k));
  if (with_all && len < cap) snprintf(out + len, cap - len, " all");
}
static const char *type_name_of(int k) { return mlcommTypeName((mlcommDataType_t)k); }
static const char *op_name_of(int k) { return mlcommRedOpName((mlcommRedOp_t)k); }
static const char *transport_name_of(int k) {
  return mlcommTransportName((mlcommTransport_t)k);
}

/* A section whose sweep holds no size would print an empty table and "0 OK": refused,
 * naming the rounding that emptied it. Returns 0, or 2 after printing. */
static int check_sweeps(const struct hb_collective *coll, int nranks, int talk,
                        const struct hb_args *a) {
  for (int k = 0; k < a->ntypes; k++) {
    size_t unit = hb_sweep_unit(coll, a->types[k], nranks), size;
    struct hb_sweep w;
    hb_sweep_begin(&w, a, unit);
    if (hb_sweep_next(&w, &size)) continue;
    if (talk)
      fprintf(stderr,
              "%s: -b %zu -e %zu holds no size to measure for %s: each size is rounded down "
              "to a whole multiple of %zu bytes (%s%s, %zu B), and none in that range is "
              "above 0; raise -e to at least %zu\n",
              coll->bench, a->min_bytes, a->max_bytes, mlcommTypeName(a->types[k]), unit,
              coll->blocked ? "nranks x " : "", mlcommTypeName(a->types[k]),
              hb_type_size(a->types[k]), unit);
    return 2;
  }
  return 0;
}

/* Errors name the flag as the user spelled it and list what it accepts. */
int hb_parse_args(int argc, char **argv, const struct hb_collective *coll, int nranks,
                  int talk, struct hb_args *a) {
  *a = (struct hb_args){.min_bytes = 8, .max_bytes = 64u << 20, .factor = 2,
                        .step_bytes = 1u << 20, .types = {mlcommFloat32}, .ntypes = 1,
                        .ops = {mlcommSum}, .nops = 1, .root = 0, .iters = 20, .warmup = 5,
                        .check = 1, .agg = 1, .average = HB_AVG_MEAN, .blocking = 1,
                        .cycles = 1, .timeout_s = -1, .transport = -1,
                        .memory = HB_MEMORY_HOST};
  const char *prog = coll->bench;
  int factor_given = 0, step_given = 0;
  char names[256];
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
      for (size_t k = 0; k < N_FLAGS; k++)
        if (strlen(flags[k].long_name) == len && strncmp(flags[k].long_name, arg + 2, len) == 0)
          flag = &flags[k];
      if (flag) {
        snprintf(shown, sizeof shown, "--%s", flag->long_name);
        if (eq) {
          if (!flag->takes_value) BAD("%s takes no value (got '%s')", shown, arg);
          value = eq + 1;
        }
      }
    } else if (arg[0] == '-' && arg[1] != '\0' && arg[1] != '-') {
      for (size_t k = 0; k < N_FLAGS; k++)
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
      BAD("'%s' is not a flag; allowed: the nccl-tests flags -t -g -b -e -i -f -n -m -w -N "
          "-p -c -o -d -r -z -y -T -G -C -S -J -a -R -x -D -V -M -h (those mlcomm cannot "
          "honour are refused with a reason), and --transport --memory --in-place --async "
          "--vs-mpi --json --bound (run with -h for details)",
          arg);
    if (flag->takes_value && !value) {
      if (i + 1 >= argc)
        BAD("%s needs a value; allowed: %s%s", shown, flag->allowed ? flag->allowed : "see -h",
            migration_hint(flag->short_name));
      value = argv[++i];
    }

    long v = 0;
    if (flag->noun) {
      if (flag->id == F_CYCLES && strcmp(value, "0") == 0)
        BAD("%s 0 (run forever, in nccl-tests) is not available: a benchmark here always "
            "ends; give a cycle count >= 1",
            shown);
      if (!parse_int(value, flag->lo, flag->hi, &v))
        BAD("%s '%s' is not a valid %s; allowed: %s%s", shown, value, flag->noun,
            flag->allowed, migration_hint(flag->short_name));
      if (flag->field >= 0) *(int *)((char *)a + flag->field) = (int)v;
      continue;
    }
    switch (flag->id) {
    case F_MINBYTES:
    case F_MAXBYTES:
    case F_STEPBYTES: {
      size_t *dst = flag->id == F_MINBYTES   ? &a->min_bytes
                    : flag->id == F_MAXBYTES ? &a->max_bytes
                                             : &a->step_bytes;
      if (!parse_size(value, dst) || (flag->id == F_STEPBYTES && *dst == 0))
        BAD("%s '%s' is not a size; allowed: %s%s", shown, value, flag->allowed,
            migration_hint(flag->short_name));
      if (flag->id == F_STEPBYTES) step_given = 1;
      break;
    }
    case F_STEPFACTOR:
      if (!parse_int(value, 1, 1L << 30, &v))
        BAD("%s '%s' is not a valid factor; allowed: %s", shown, value, flag->allowed);
      a->factor = (size_t)v;
      factor_given = 1;
      break;
    case F_DATATYPE:
      if (strcmp(value, "all") == 0) {
        a->ntypes = mlcommNumTypes;
        for (int k = 0; k < mlcommNumTypes; k++) a->types[k] = (mlcommDataType_t)k;
      } else if (mlcommTypeFromName(value, &a->types[0]) == mlcommSuccess) {
        a->ntypes = 1;
      } else {
        list_names(names, sizeof names, type_name_of, mlcommNumTypes, 1);
        BAD("%s '%s' is not a type; allowed: %s, or an alias mlcommTypeFromName accepts "
            "(float16 float32 float64 bf16 ...)",
            shown, value, names);
      }
      break;
    case F_OP:
      if (strcmp(value, "all") == 0) {
        a->nops = mlcommNumOps;
        for (int k = 0; k < mlcommNumOps; k++) a->ops[k] = (mlcommRedOp_t)k;
      } else if (mlcommRedOpFromName(value, &a->ops[0]) == mlcommSuccess) {
        a->nops = 1;
      } else {
        list_names(names, sizeof names, op_name_of, mlcommNumOps, 1);
        BAD("%s '%s' is not an op; allowed: %s", shown, value, names);
      }
      break;
    case F_ROOT:
      /* checked against nranks even where -r is ignored: a root that cannot exist is a
       * mistake in the command line either way */
      if (strcmp(value, "all") == 0 || strcmp(value, "-1") == 0)
        a->root = HB_ROOT_ALL;
      else if (parse_int(value, 0, nranks - 1, &v))
        a->root = (int)v;
      else
        BAD("%s '%s' is not a valid root; allowed: 0..%d (nranks - 1), or all (also -1)",
            shown, value, nranks - 1);
      break;
    case F_NTHREADS:
    case F_NGPUS:
    case F_STREAM_NULL:
    case F_CUDAGRAPH:
    case F_TIMESTAMPS:
    case F_REGISTER:
    case F_CTA_POLICY:
    case F_DEVICE_IMPL:
    case F_DEVICE_CTAS:
    case F_MEMORY_REPORT: {
      int number = parse_int(value, -(1L << 30), 1L << 30, &v);
      if (!number && flag->allowed)
        BAD("%s '%s' is not a number; allowed: %s%s", shown, value, flag->allowed,
            migration_hint(flag->short_name));
      const char *why = refusal(flag->id, v);
      if (why && !flag->allowed)
        BAD("%s %s is not available: %s; run without %s", shown, value, why, shown);
      if (why)
        BAD("%s %s is not available: %s; allowed: %s%s", shown, value, why, flag->allowed,
            migration_hint(flag->short_name));
      break;
    }
    case F_TRANSPORT: {
      mlcommTransport_t t;
      if (mlcommTransportFromName(value, &t) != mlcommSuccess) {
        list_names(names, sizeof names, transport_name_of, mlcommNumTransports, 0);
        BAD("%s '%s' is not a transport; allowed: %s", shown, value, names);
      }
      a->transport = (int)t;
      break;
    }
    case F_MEMORY: {
      int found = hb_memory_from_name(value);
      if (found < 0 && strcmp(value, "device") == 0)
        BAD("%s 'device' is not available: this build of the benchmarks has no CUDA (meson "
            "found no toolkit, or -Dcuda=disabled); allowed: %s",
            shown, hb_memory_list());
      if (found < 0)
        BAD("%s '%s' is not a memory kind; allowed: %s", shown, value, hb_memory_list());
      a->memory = found;
      break;
    }
    case F_VS_MPI: a->vs_mpi = 1; break;
    case F_BOUND: a->bound = 1; break;
    case F_ASYNC: a->blocking = 0; break;
    case F_JSON:
    case F_OUTPUT:
      if (*value == '\0') BAD("%s needs a value; allowed: %s", shown, flag->allowed);
      a->json_path = value;
      break;
    case F_IN_PLACE:
      /* refused here rather than by the library, so that it is a flag error (exit 2)
       * before anything runs, with a reason the user can act on */
      if (!coll->in_place)
        BAD("%s is not available here: %s has no in-place form (each rank sends one "
            "buffer and receives into another); run without %s",
            shown, coll->call, shown);
      a->in_place = 1;
      break;
    case F_HELP:
      if (talk) hb_usage(stdout, coll);
      return 1;
    default: break; /* the integer flags, handled above */
    }
  }
  /* nccl-tests steps by -f whenever it is above 1 and would drop -i silently */
  if (step_given && factor_given && a->factor > 1)
    BAD("-i %zu and -f %zu both set the step between sizes; give -i alone (or with -f 1) "
        "for linear steps, or -f alone to multiply",
        a->step_bytes, a->factor);
  if (step_given && !factor_given) a->factor = 1;
  if (a->min_bytes > a->max_bytes)
    BAD("-b %zu is larger than -e %zu; the smallest size must not exceed the largest",
        a->min_bytes, a->max_bytes);
  if (a->vs_mpi && a->memory == HB_MEMORY_DEVICE)
    BAD("--vs-mpi with --memory device is not available: the plain MPI reference would "
        "hand device pointers to MPI, which only a CUDA-aware MPI accepts; run without "
        "--vs-mpi");
  if (a->max_bytes > (SIZE_MAX - 63) / (size_t)a->agg)
    BAD("-m %d with -e %zu needs more memory than the address space holds (each "
        "aggregated call has buffers of its own); lower -m or -e",
        a->agg, a->max_bytes);
#undef BAD
  return check_sweeps(coll, nranks, talk, a);
}

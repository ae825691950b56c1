/*
 * harness.c - flags, buffers, data patterns, checking, timing and output shared by the
 * mlcomm benchmarks. The output follows nccl-tests' conventions (sizes, algbw/busbw,
 * "#wrong", the two footer lines) so numbers can be read side by side with theirs.
 *
 * Per size the harness does, on every rank:
 *   1. with -c 1: fill sendbuff with hbInput(), fill recvbuff with a sentinel;
 *   2. run the collective once and agree (over MPI) on whether any rank failed: a call
 *      refused up front (unsupported transport/type, bad argument) ends the run cleanly
 *      on every rank instead of leaving some ranks blocked in the next call;
 *   3. with -c 1: count elements of recvbuff that differ from the host's expectation;
 *   4. -w warm-up calls (and as many MPI ones with --vs-mpi);
 *   5. -n timed calls, split into rounds alternating mlcomm and MPI with --vs-mpi so
 *      that both see the same machine state (caches, frequency, other load).
 * Failures after step 2 cannot be agreed on safely (peers may be blocked inside the
 * library), so they print the error and MPI_Abort.
 */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- tables */

typedef struct {
  const char *name;  /* printed name */
  const char *alias; /* also accepted by -d, or NULL */
  mlcommDataType_t type;
  size_t size;
} hbTypeInfo;

static const hbTypeInfo kTypes[] = {
    {"int8", NULL, mlcommInt8, 1},         {"uint8", NULL, mlcommUint8, 1},
    {"int32", NULL, mlcommInt32, 4},       {"uint32", NULL, mlcommUint32, 4},
    {"int64", NULL, mlcommInt64, 8},       {"uint64", NULL, mlcommUint64, 8},
    {"half", "float16", mlcommFloat16, 2}, {"float", "float32", mlcommFloat32, 4},
    {"double", "float64", mlcommFloat64, 8}, {"bfloat16", "bf16", mlcommBfloat16, 2},
};
#define HB_NTYPES (sizeof(kTypes) / sizeof(kTypes[0]))
#define HB_TYPE_LIST \
  "int8 uint8 int32 uint32 int64 uint64 half float16 float float32 double float64 bfloat16 bf16"

static const char *const kOps[] = {"sum", "prod", "max", "min", "avg"};
#define HB_OP_LIST "sum prod max min avg"

static const char *const kTransports[] = {"auto", "mpi", "shm", "nccl"};
#define HB_TRANSPORT_LIST "auto mpi shm nccl"

static const hbTypeInfo *hbType(mlcommDataType_t t) {
  for (size_t k = 0; k < HB_NTYPES; k++)
    if (kTypes[k].type == t) return &kTypes[k];
  return &kTypes[0]; /* unreachable: types come from the table */
}

static int hbIsUnsigned(mlcommDataType_t t) {
  return t == mlcommUint8 || t == mlcommUint32 || t == mlcommUint64;
}

static int hbIsFloat(mlcommDataType_t t) {
  return t == mlcommFloat16 || t == mlcommFloat32 || t == mlcommFloat64 ||
         t == mlcommBfloat16;
}

/* MPI has no 16-bit float types. Collectives that only move data (usesOp == 0) carry
 * them as MPI_UINT16_T, which moves exactly the same bytes; reductions have no honest
 * MPI equivalent and report "-". */
static MPI_Datatype hbMpiType(mlcommDataType_t t, int usesOp) {
  switch (t) {
  case mlcommInt8: return MPI_INT8_T;
  case mlcommUint8: return MPI_UINT8_T;
  case mlcommInt32: return MPI_INT32_T;
  case mlcommUint32: return MPI_UINT32_T;
  case mlcommInt64: return MPI_INT64_T;
  case mlcommUint64: return MPI_UINT64_T;
  case mlcommFloat32: return MPI_FLOAT;
  case mlcommFloat64: return MPI_DOUBLE;
  case mlcommFloat16:
  case mlcommBfloat16: return usesOp ? MPI_DATATYPE_NULL : MPI_UINT16_T;
  default: return MPI_DATATYPE_NULL;
  }
}

/* MPI has no average; the caller would have to divide, which is not MPI_Allreduce. */
static MPI_Op hbMpiOp(mlcommRedOp_t op) {
  switch (op) {
  case mlcommSum: return MPI_SUM;
  case mlcommProd: return MPI_PROD;
  case mlcommMax: return MPI_MAX;
  case mlcommMin: return MPI_MIN;
  default: return MPI_OP_NULL;
  }
}

/* ---------------------------------------------------------------- arguments */

typedef struct {
  size_t minBytes, maxBytes, factor;
  mlcommDataType_t type;
  mlcommRedOp_t op;
  int root, iters, warmup, check;
  int transport; /* -1: -t not given, the library's default / MLCOMM_TRANSPORT applies */
  int vsMpi, async;
  const char *jsonPath;
} hbArgs;

static void hbUsage(FILE *f, const hbCollective *coll) {
  fprintf(f,
          "usage: mpirun -np N %s [flags]\n"
          "  -b, --minbytes SIZE      smallest size in bytes (default 8)\n"
          "  -e, --maxbytes SIZE      largest size in bytes (default 64M)\n"
          "  -f, --stepfactor N       multiply the size by N between rows (default 2)\n"
          "                           SIZE is an integer with an optional K, M or G suffix\n"
          "                           (powers of 1024)\n"
          "  -d, --datatype TYPE      " HB_TYPE_LIST "\n"
          "                           (default float)\n"
          "  -o, --op OP              " HB_OP_LIST " (default sum)%s\n"
          "  -r, --root R             root rank, 0..nranks-1 (default 0)%s\n"
          "  -n, --iters N            timed iterations per size (default 20)\n"
          "  -w, --warmup_iters N     untimed iterations per size (default 5)\n"
          "  -c, --check 0|1          verify the results (default 1)\n"
          "  -t, --transport T        " HB_TRANSPORT_LIST " (default: the library's, or\n"
          "                           MLCOMM_TRANSPORT)\n"
          "      --vs-mpi             also time the plain MPI call on the same buffers\n"
          "      --json PATH          rank 0 writes every row to PATH as JSON\n"
          "  -a, --async              use the ...Async forms and mlcommWait\n"
          "  -h, --help               this text\n",
          coll->bench, coll->usesOp ? "" : " (ignored here)",
          coll->usesRoot ? "" : " (ignored here)");
}

/* Sizes: an integer with an optional K/M/G suffix (1024-based, as nccl-tests). */
static int hbParseSize(const char *s, size_t *out) {
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

static int hbParseInt(const char *s, long lo, long hi, long *out) {
  if (*s == '\0') return 0;
  errno = 0;
  char *end;
  long v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return 0;
  *out = v;
  return 1;
}

/* One accepted flag. Short-only or long-only flags have 0 / NULL in the other slot;
 * allowed describes the values in error messages. */
typedef struct {
  char shortName;
  const char *longName;
  int takesValue;
  const char *allowed;
} hbFlag;

#define HB_SIZE_TEXT "bytes as an integer with an optional K, M or G suffix (e.g. 8, 1K, 64M)"
static const hbFlag kFlags[] = {
    {'b', "minbytes", 1, HB_SIZE_TEXT},
    {'e', "maxbytes", 1, HB_SIZE_TEXT},
    {'f', "stepfactor", 1, "an integer from 2 to 1073741824"},
    {'d', "datatype", 1, HB_TYPE_LIST},
    {'o', "op", 1, HB_OP_LIST},
    {'r', "root", 1, "a rank from 0 to nranks-1"},
    {'n', "iters", 1, "an integer >= 1"},
    {'w', "warmup_iters", 1, "an integer >= 0"},
    {'c', "check", 1, "0 or 1"},
    {'t', "transport", 1, HB_TRANSPORT_LIST},
    {0, "vs-mpi", 0, NULL},
    {0, "json", 1, "a file path"},
    {'a', "async", 0, NULL},
    {'h', "help", 0, NULL},
};

/* Returns 0 to run, 1 after -h, 2 on a bad flag. Every rank parses the same argv and
 * reaches the same verdict, so all exit together without talking; only rank 0
 * (talk != 0) prints. */
static int hbParseArgs(int argc, char **argv, const hbCollective *coll, int nranks,
                       int talk, hbArgs *a) {
  *a = (hbArgs){.minBytes = 8, .maxBytes = 64u << 20, .factor = 2, .type = mlcommFloat32,
                .op = mlcommSum, .root = 0, .iters = 20, .warmup = 5, .check = 1,
                .transport = -1};
  const char *prog = coll->bench;
#define HB_BAD(...)                                  \
  do {                                               \
    if (talk) {                                      \
      fprintf(stderr, "%s: ", prog);                 \
      fprintf(stderr, __VA_ARGS__);                  \
      fprintf(stderr, "\n");                         \
    }                                                \
    return 2;                                        \
  } while (0)

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const hbFlag *flag = NULL;
    const char *value = NULL;
    char shown[64]; /* the flag as the user spelled it, for messages */

    if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0') {
      const char *eq = strchr(arg, '=');
      size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
      for (size_t k = 0; k < sizeof(kFlags) / sizeof(kFlags[0]); k++)
        if (kFlags[k].longName && strlen(kFlags[k].longName) == len &&
            strncmp(kFlags[k].longName, arg + 2, len) == 0)
          flag = &kFlags[k];
      if (flag) {
        snprintf(shown, sizeof shown, "--%s", flag->longName);
        if (eq) {
          if (!flag->takesValue) HB_BAD("%s takes no value (got '%s')", shown, arg);
          value = eq + 1;
        }
      }
    } else if (arg[0] == '-' && arg[1] != '\0' && arg[1] != '-') {
      for (size_t k = 0; k < sizeof(kFlags) / sizeof(kFlags[0]); k++)
        if (kFlags[k].shortName == arg[1]) flag = &kFlags[k];
      if (flag) {
        snprintf(shown, sizeof shown, "-%c", flag->shortName);
        if (arg[2] != '\0') {
          if (!flag->takesValue) HB_BAD("%s takes no value (got '%s')", shown, arg);
          value = arg + 2; /* -b8 as well as -b 8 */
        }
      }
    }
    if (!flag)
      HB_BAD("'%s' is not a flag; allowed: -b -e -f -d -o -r -n -w -c -t -a --vs-mpi "
             "--json -h (run with -h for details)",
             arg);
    if (flag->takesValue && !value) {
      if (i + 1 >= argc) HB_BAD("%s needs a value; allowed: %s", shown, flag->allowed);
      value = argv[++i];
    }

    long v;
    /* long-only flags are told apart by their first letter (v: --vs-mpi, j: --json),
     * which no short flag uses */
    switch (flag->shortName ? flag->shortName : flag->longName[0]) {
    case 'b':
    case 'e': {
      size_t *dst = flag->shortName == 'b' ? &a->minBytes : &a->maxBytes;
      if (!hbParseSize(value, dst))
        HB_BAD("%s '%s' is not a size; allowed: %s", shown, value, flag->allowed);
      break;
    }
    case 'f':
      if (!hbParseInt(value, 2, 1L << 30, &v))
        HB_BAD("%s '%s' is not a valid factor; allowed: %s", shown, value, flag->allowed);
      a->factor = (size_t)v;
      break;
    case 'd': {
      const hbTypeInfo *t = NULL;
      for (size_t k = 0; k < HB_NTYPES; k++)
        if (strcmp(value, kTypes[k].name) == 0 ||
            (kTypes[k].alias && strcmp(value, kTypes[k].alias) == 0))
          t = &kTypes[k];
      if (!t) HB_BAD("%s '%s' is not a type; allowed: " HB_TYPE_LIST, shown, value);
      a->type = t->type;
      break;
    }
    case 'o': {
      int found = -1;
      for (int k = 0; k < (int)(sizeof(kOps) / sizeof(kOps[0])); k++)
        if (strcmp(value, kOps[k]) == 0) found = k;
      if (found < 0) HB_BAD("%s '%s' is not an op; allowed: " HB_OP_LIST, shown, value);
      a->op = (mlcommRedOp_t)found;
      break;
    }
    case 'r':
      /* checked against nranks even where -r is ignored: a root that cannot exist is a
       * mistake in the command line either way */
      if (!hbParseInt(value, 0, nranks - 1, &v))
        HB_BAD("%s '%s' is not a valid root; allowed: 0..%d (nranks - 1)", shown, value,
               nranks - 1);
      a->root = (int)v;
      break;
    case 'n':
      if (!hbParseInt(value, 1, 1L << 30, &v))
        HB_BAD("%s '%s' is not a valid iteration count; allowed: %s", shown, value,
               flag->allowed);
      a->iters = (int)v;
      break;
    case 'w':
      if (!hbParseInt(value, 0, 1L << 30, &v))
        HB_BAD("%s '%s' is not a valid warm-up count; allowed: %s", shown, value, flag->allowed);
      a->warmup = (int)v;
      break;
    case 'c':
      if (!hbParseInt(value, 0, 1, &v)) HB_BAD("%s '%s' is not allowed; allowed: 0 or 1", shown, value);
      a->check = (int)v;
      break;
    case 't': {
      int found = -1;
      for (int k = 0; k < (int)(sizeof(kTransports) / sizeof(kTransports[0])); k++)
        if (strcmp(value, kTransports[k]) == 0) found = k;
      if (found < 0)
        HB_BAD("%s '%s' is not a transport; allowed: " HB_TRANSPORT_LIST, shown, value);
      a->transport = found;
      break;
    }
    case 'v': a->vsMpi = 1; break;
    case 'j':
      if (*value == '\0') HB_BAD("%s needs a value; allowed: %s", shown, flag->allowed);
      a->jsonPath = value;
      break;
    case 'a': a->async = 1; break;
    case 'h':
      if (talk) hbUsage(stdout, coll);
      return 1;
    default: break;
    }
  }
  if (a->minBytes > a->maxBytes)
    HB_BAD("-b %zu is larger than -e %zu; the smallest size must not exceed the largest",
           a->minBytes, a->maxBytes);
#undef HB_BAD
  return 0;
}

/* ---------------------------------------------------------------- data patterns */

/* A cheap scramble of the index, so that patterns do not repeat with a short period and
 * misplaced blocks (allgather, reduce_scatter) or shifted elements are caught. */
static uint64_t hbMix(size_t i) { return ((uint64_t)i * UINT64_C(0x9E3779B97F4A7C15)) >> 40; }

/* Every value is a small integer, exactly representable in every type (half and bfloat16
 * included) and whose reductions stay exact:
 *  - data movement (no op): -99..99 (0..198 unsigned), period 199 in rank and index;
 *  - sum/max/min: -2..2 (0..4 unsigned), so sums fit int8/uint8 up to 63 ranks;
 *  - prod: +-1 or +-2, with 2 possible only on ranks 0..5, so |product| <= 64;
 *  - avg: the sum pattern; for float types multiplied by nranks so that the average is an
 *    integer (and -2..2, where any rounding of sum/n or sum*(1/n) is exact), for integer
 *    types left as is and checked with truncation toward zero. */
int64_t hbInput(const hbCall *c, int r, size_t i) {
  uint64_t mix = hbMix(i);
  int uns = hbIsUnsigned(c->type);
  if (!c->coll->usesOp) {
    int64_t v = (int64_t)((mix + (uint64_t)r * 131) % 199);
    return uns ? v : v - 99;
  }
  if (c->op == mlcommProd) {
    int64_t v = (r < 6 && ((mix >> (3 * r)) & 1)) ? 2 : 1;
    if (!uns && (mix + (uint64_t)r * 3) % 5 == 1) v = -v;
    return v;
  }
  int64_t v = (int64_t)((mix + (uint64_t)r * 7) % 5);
  if (!uns) v -= 2;
  if (c->op == mlcommAvg && hbIsFloat(c->type)) v *= c->nranks;
  return v;
}

int64_t hbReduced(const hbCall *c, size_t i) {
  int64_t acc = hbInput(c, 0, i);
  for (int r = 1; r < c->nranks; r++) {
    int64_t v = hbInput(c, r, i);
    switch (c->op) {
    case mlcommProd: acc *= v; break;
    case mlcommMax: acc = v > acc ? v : acc; break;
    case mlcommMin: acc = v < acc ? v : acc; break;
    default: acc += v; break; /* sum, avg */
    }
  }
  if (c->op == mlcommAvg) acc /= c->nranks; /* C division truncates toward zero */
  return acc;
}

/* Encodes a small integer as an IEEE-style 16-bit float with mantBits mantissa bits and
 * the given exponent bias (half: 10, 15; bfloat16: 7, 127). Only integers that are
 * exactly representable are ever passed, so the mantissa needs no rounding. */
static uint16_t hbEncode16(int64_t v, int mantBits, int bias) {
  uint16_t sign = v < 0 ? 0x8000u : 0u;
  uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  if (mag == 0) return sign;
  int e = 0;
  while ((mag >> (e + 1)) != 0) e++;
  uint64_t mant = e <= mantBits ? mag << (mantBits - e) : mag >> (e - mantBits);
  return (uint16_t)(sign | (uint16_t)((e + bias) << mantBits) |
                    (uint16_t)(mant & ((1u << mantBits) - 1u)));
}

static void hbStore(mlcommDataType_t t, void *buf, size_t i, int64_t v) {
  switch (t) {
  case mlcommInt8: ((int8_t *)buf)[i] = (int8_t)v; break;
  case mlcommUint8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
  case mlcommInt32: ((int32_t *)buf)[i] = (int32_t)v; break;
  case mlcommUint32: ((uint32_t *)buf)[i] = (uint32_t)v; break;
  case mlcommInt64: ((int64_t *)buf)[i] = v; break;
  case mlcommUint64: ((uint64_t *)buf)[i] = (uint64_t)v; break;
  case mlcommFloat16: ((uint16_t *)buf)[i] = hbEncode16(v, 10, 15); break;
  case mlcommFloat32: ((float *)buf)[i] = (float)v; break;
  case mlcommFloat64: ((double *)buf)[i] = (double)v; break;
  case mlcommBfloat16: ((uint16_t *)buf)[i] = hbEncode16(v, 7, 127); break;
  default: break;
  }
}

/* Whether element i holds v. 16-bit floats are compared as bit patterns, with +0 and -0
 * both accepted for 0 (a sum of x and -x may give either). */
static int hbHolds(mlcommDataType_t t, const void *buf, size_t i, int64_t v) {
  switch (t) {
  case mlcommInt8: return ((const int8_t *)buf)[i] == (int8_t)v;
  case mlcommUint8: return ((const uint8_t *)buf)[i] == (uint8_t)v;
  case mlcommInt32: return ((const int32_t *)buf)[i] == (int32_t)v;
  case mlcommUint32: return ((const uint32_t *)buf)[i] == (uint32_t)v;
  case mlcommInt64: return ((const int64_t *)buf)[i] == v;
  case mlcommUint64: return ((const uint64_t *)buf)[i] == (uint64_t)v;
  case mlcommFloat32: return ((const float *)buf)[i] == (float)v;
  case mlcommFloat64: return ((const double *)buf)[i] == (double)v;
  case mlcommFloat16:
  case mlcommBfloat16: {
    uint16_t b = ((const uint16_t *)buf)[i];
    uint16_t want = t == mlcommFloat16 ? hbEncode16(v, 10, 15) : hbEncode16(v, 7, 127);
    return b == want || (v == 0 && (b & 0x7fffu) == 0);
  }
  default: return 0;
  }
}

/* A byte pattern no expected value can take: 0xA5.. is a huge integer or a tiny
 * non-integer float, but as int8 it is -91, inside the data-movement pattern, so the
 * 8-bit types get 127 / 255 instead. */
static void hbFillSentinel(const hbCall *c) {
  int byte = c->type == mlcommInt8 ? 0x7f : c->type == mlcommUint8 ? 0xff : 0xa5;
  memset(c->recvbuff, byte, c->recvCount * hbType(c->type)->size);
}

static void hbFillInputs(const hbCall *c) {
  for (size_t i = 0; i < c->sendCount; i++)
    hbStore(c->type, c->sendbuff, i, hbInput(c, c->rank, i));
}

static uint64_t hbCountWrong(const hbCall *c) {
  uint64_t wrong = 0;
  for (size_t i = 0; i < c->checkCount; i++)
    if (!hbHolds(c->type, c->recvbuff, i, c->coll->expected(c, i))) wrong++;
  return wrong;
}

/* ---------------------------------------------------------------- helpers for benches */

mlcommResult_t hbWait(mlcommResult_t rc, mlcommRequest_t *req) {
  return rc != mlcommSuccess ? rc : mlcommWait(req, MLCOMM_STATUS_IGNORE);
}

double hbFactorOne(int nranks) {
  (void)nranks;
  return 1.0;
}
double hbFactorAllReduce(int nranks) { return 2.0 * (nranks - 1) / nranks; }
double hbFactorGather(int nranks) { return (double)(nranks - 1) / nranks; }

/* ---------------------------------------------------------------- running */

typedef struct {
  size_t size, count;
  int root;
  double us, algbw, busbw;
  uint64_t wrong;
  int haveMpi;
  double mpiUs, mpiBusbw, ratio;
} hbRow;

static void hbPrintFailure(const hbCall *c, mlcommResult_t rc, size_t size) {
  const char *msg = mlcommGetLastError(c->comm);
  if (!msg || !*msg) msg = mlcommGetLastError(NULL);
  fprintf(stderr, "%s: rank %d: %s failed at size %zu B: %s: %s\n", c->coll->bench, c->rank,
          c->coll->call, size, mlcommGetErrorString(rc), msg ? msg : "");
  fflush(stderr);
}

/* A failure while peers may be blocked inside a collective: nothing can be agreed on any
 * more, and a benchmark must never hang, so take the whole job down. */
static void hbDie(const hbCall *c, mlcommResult_t rc, size_t size) {
  hbPrintFailure(c, rc, size);
  MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1);
}

/* Exit code for a refused call: 2 for what the user asked for but cannot have (as for
 * a bad flag), 1 for anything else. */
static int hbExitCode(mlcommResult_t rc) {
  return (rc == mlcommUnsupported || rc == mlcommInvalidArgument) ? 2 : 1;
}

static int hbAgreeMax(int v) {
  int out;
  MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

/* Adds the seconds that iters back-to-back calls took on this rank to *acc. */
static void hbTimeSide(const hbCall *c, int mpi, int iters, size_t size, double *acc) {
  MPI_Barrier(c->mpiComm); /* start together; not part of the measured time */
  double t0 = MPI_Wtime();
  for (int k = 0; k < iters; k++) {
    if (mpi) {
      c->coll->runMpi(c); /* MPI_COMM_WORLD's handler is fatal: errors abort */
    } else {
      mlcommResult_t rc = c->coll->run(c);
      if (rc != mlcommSuccess) hbDie(c, rc, size);
    }
  }
  *acc += MPI_Wtime() - t0;
}

static void hbJsonNumber(FILE *f, const char *key, double v, const char *fmt, int last) {
  fprintf(f, "\"%s\": ", key);
  if (isfinite(v))
    fprintf(f, fmt, v);
  else
    fprintf(f, "null");
  fprintf(f, last ? "" : ", ");
}

static int hbWriteJson(FILE *f, const hbCollective *coll, const hbArgs *a, const hbCall *c,
                       const char *version, const char *transport, const hbRow *rows,
                       size_t nrows, uint64_t wrong, double avgBusbw, double avgRatio,
                       const char *status) {
  const char *typeName = hbType(a->type)->name;
  const char *opName = coll->usesOp ? kOps[a->op] : "none";
  fprintf(f, "{\n  \"bench\": \"%s\",\n  \"version\": \"%s\",\n  \"nranks\": %d,\n", coll->bench,
          version, c->nranks);
  fprintf(f, "  \"transport\": \"%s\",\n  \"type\": \"%s\",\n  \"op\": \"%s\",\n", transport,
          typeName, opName);
  fprintf(f, "  \"root\": %d,\n  \"iters\": %d,\n  \"warmup\": %d,\n  \"check\": %d,\n",
          coll->usesRoot ? a->root : -1, a->iters, a->warmup, a->check);
  fprintf(f, "  \"async\": %d,\n  \"vs_mpi\": %d,\n  \"rows\": [", a->async, a->vsMpi);
  for (size_t k = 0; k < nrows; k++) {
    const hbRow *r = &rows[k];
    fprintf(f, "%s\n    {\"size\": %zu, \"count\": %zu, \"type\": \"%s\", \"redop\": \"%s\", "
               "\"root\": %d, ",
            k ? "," : "", r->size, r->count, typeName, opName, r->root);
    hbJsonNumber(f, "time_us", r->us, "%.3f", 0);
    hbJsonNumber(f, "algbw", r->algbw, "%.6f", 0);
    hbJsonNumber(f, "busbw", r->busbw, "%.6f", 0);
    if (a->check)
      fprintf(f, "\"wrong\": %llu", (unsigned long long)r->wrong);
    else
      fprintf(f, "\"wrong\": null");
    if (a->vsMpi) {
      fprintf(f, ", ");
      hbJsonNumber(f, "mpi_us", r->haveMpi ? r->mpiUs : NAN, "%.3f", 0);
      hbJsonNumber(f, "mpi_busbw", r->haveMpi ? r->mpiBusbw : NAN, "%.6f", 0);
      hbJsonNumber(f, "ratio", r->haveMpi ? r->ratio : NAN, "%.4f", 1);
    }
    fprintf(f, "}");
  }
  fprintf(f, "%s],\n  \"wrong_total\": %llu,\n  ", nrows ? "\n  " : "",
          (unsigned long long)wrong);
  hbJsonNumber(f, "avg_busbw", avgBusbw, "%.6f", 1);
  fprintf(f, ",\n  ");
  hbJsonNumber(f, "avg_ratio_1mib", a->vsMpi ? avgRatio : NAN, "%.4f", 1);
  fprintf(f, ",\n  \"status\": \"%s\"\n}\n", status);
  return ferror(f) ? -1 : 0;
}

int hbMain(int argc, char **argv, const hbCollective *coll) {
  MPI_Init(&argc, &argv);
  int rank, nranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);

  hbArgs a;
  int parsed = hbParseArgs(argc, argv, coll, nranks, rank == 0, &a);
  if (parsed != 0) {
    MPI_Finalize();
    return parsed == 1 ? 0 : 2;
  }

  /* Open the JSON file before measuring anything, so a bad path costs no run. */
  FILE *json = NULL;
  int bad = 0;
  if (rank == 0 && a.jsonPath) {
    json = fopen(a.jsonPath, "w");
    if (!json) {
      fprintf(stderr, "%s: --json '%s' cannot be opened for writing: %s\n", coll->bench,
              a.jsonPath, strerror(errno));
      bad = 1;
    }
  }
  if (hbAgreeMax(bad)) {
    MPI_Finalize();
    return 2;
  }

  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  if (a.transport >= 0) cfg.transport = a.transport;
  mlcommComm_t comm = MLCOMM_COMM_NULL;
  mlcommResult_t rc = mlcommCommInitFromMPI(&comm, MPI_COMM_WORLD, &cfg);
  if (rc != mlcommSuccess) {
    fprintf(stderr, "%s: rank %d: mlcommCommInitFromMPI failed: %s: %s\n", coll->bench, rank,
            mlcommGetErrorString(rc), mlcommGetLastError(NULL));
  }
  int code = hbAgreeMax(rc == mlcommSuccess ? 0 : hbExitCode(rc));
  if (code) {
    if (comm != MLCOMM_COMM_NULL) mlcommCommDestroy(comm);
    if (json) fclose(json);
    MPI_Finalize();
    return code;
  }

  int vcode = 0;
  char version[32] = "unknown";
  if (mlcommGetVersion(&vcode) == mlcommSuccess)
    snprintf(version, sizeof version, "%d.%d.%d", vcode / 10000, vcode / 100 % 100, vcode % 100);
  mlcommConfig_t used = cfg;
  const char *transport = "?";
  if (mlcommCommGetConfig(comm, &used) == mlcommSuccess && used.transport >= 0 &&
      used.transport < (int)(sizeof(kTransports) / sizeof(kTransports[0])))
    transport = kTransports[used.transport];

  /* Allocate once for the largest size and reuse: allocation and first-touch page faults
   * stay out of the measurements. No collective needs more than "size" bytes per
   * buffer on one rank. */
  size_t tsize = hbType(a.type)->size;
  size_t bytes = (a.maxBytes + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  void *sendbuff = aligned_alloc(64, bytes);
  void *recvbuff = aligned_alloc(64, bytes);
  if (!sendbuff || !recvbuff)
    fprintf(stderr, "%s: rank %d: cannot allocate 2 x %zu bytes; lower -e\n", coll->bench,
            rank, bytes);
  if (hbAgreeMax(!sendbuff || !recvbuff)) {
    free(sendbuff);
    free(recvbuff);
    mlcommCommDestroy(comm);
    if (json) fclose(json);
    MPI_Finalize();
    return 1;
  }
  memset(sendbuff, 0, bytes);
  memset(recvbuff, 0, bytes);

  hbCall c = {.coll = coll, .comm = comm, .mpiComm = MPI_COMM_WORLD, .rank = rank,
              .nranks = nranks, .root = a.root, .async = a.async, .type = a.type,
              .op = a.op, .sendbuff = sendbuff, .recvbuff = recvbuff};
  c.mpiType = hbMpiType(a.type, coll->usesOp);
  c.mpiOp = coll->usesOp ? hbMpiOp(a.op) : MPI_OP_NULL;
  int mpiAvail = coll->runMpi && c.mpiType != MPI_DATATYPE_NULL &&
                 (!coll->usesOp || c.mpiOp != MPI_OP_NULL);
  int vs = a.vsMpi && mpiAvail;

  const char *typeName = hbType(a.type)->name;
  const char *opName = coll->usesOp ? kOps[a.op] : "none";
  int rootShown = coll->usesRoot ? a.root : -1;
  if (rank == 0) {
    printf("# mlcomm %s bench: %s\n", version, coll->bench);
    printf("# nranks %d, transport %s, type %s, op %s, iters %d, warmup %d, check %d%s\n", nranks,
           transport, typeName, opName, a.iters, a.warmup, a.check, a.async ? ", async 1" : "");
    /* two header lines as in nccl-tests: names, then units */
    char line[256];
    int len = snprintf(line, sizeof line, "#%11s %12s %9s %6s %5s %10s %8s %8s %7s", "size",
                       "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong");
    if (a.vsMpi)
      snprintf(line + len, sizeof line - (size_t)len, " %10s %10s %7s", "mpi_us", "mpi_busbw",
               "ratio");
    printf("%s\n", line);
    len = snprintf(line, sizeof line, "#%11s %12s %9s %6s %5s %10s %8s %8s %7s", "(B)",
                   "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "");
    if (a.vsMpi)
      snprintf(line + len, sizeof line - (size_t)len, " %10s %10s %7s", "(us)", "(GB/s)", "");
    len = (int)strlen(line);
    while (len > 0 && line[len - 1] == ' ') line[--len] = '\0'; /* no trailing blanks */
    printf("%s\n", line);
    fflush(stdout);
  }

  hbRow *rows = NULL;
  size_t nrows = 0, cap = 0;
  uint64_t wrongTotal = 0;
  int exitCode = 0;
  size_t unit = tsize * (coll->blocked ? (size_t)nranks : 1);
  size_t last = 0;

  for (size_t s = a.minBytes;;) {
    size_t size = s / unit * unit; /* whole elements (and whole blocks) only */
    if (size > 0 && size != last) {
      last = size;
      c.count = size / tsize;
      coll->counts(&c);

      if (a.check) {
        hbFillInputs(&c);
        hbFillSentinel(&c);
      }
      MPI_Barrier(MPI_COMM_WORLD);
      rc = coll->run(&c);
      if (rc != mlcommSuccess) hbPrintFailure(&c, rc, size);
      code = hbAgreeMax(rc == mlcommSuccess ? 0 : hbExitCode(rc));
      if (code) {
        if (rank == 0) printf("# stopped at size %zu: %s failed (see stderr)\n", size, coll->call);
        exitCode = code;
        break;
      }
      unsigned long long wrong = a.check ? hbCountWrong(&c) : 0, wrongSum = 0;
      MPI_Allreduce(&wrong, &wrongSum, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);

      /* MPI counts are int: a row too large for them gets no MPI reference */
      int vsRow = vs && c.sendCount <= INT_MAX && c.recvCount <= INT_MAX;
      double spent[2] = {0.0, 0.0}; /* seconds: mlcomm, MPI */
      double scratch = 0.0;
      hbTimeSide(&c, 0, a.warmup, size, &scratch);
      if (vsRow) hbTimeSide(&c, 1, a.warmup, size, &scratch);
      int rounds = vsRow ? (a.iters < 5 ? a.iters : 5) : 1;
      for (int r = 0; r < rounds; r++) {
        int k = a.iters / rounds + (r < a.iters % rounds ? 1 : 0);
        hbTimeSide(&c, 0, k, size, &spent[0]);
        if (vsRow) hbTimeSide(&c, 1, k, size, &spent[1]);
      }
      /* the slowest rank's average is the collective's time */
      double avg[2] = {spent[0] / a.iters, spent[1] / a.iters}, worst[2];
      MPI_Allreduce(avg, worst, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);

      hbRow row = {.size = size, .count = c.count, .root = rootShown, .wrong = wrongSum};
      row.us = worst[0] * 1e6;
      row.algbw = (double)size / worst[0] / 1e9;
      row.busbw = row.algbw * coll->busbwFactor(nranks);
      if (vsRow) {
        row.haveMpi = 1;
        row.mpiUs = worst[1] * 1e6;
        row.mpiBusbw = (double)size / worst[1] / 1e9 * coll->busbwFactor(nranks);
        row.ratio = row.mpiUs / row.us;
      }
      wrongTotal += wrongSum;

      if (rank == 0) {
        if (nrows == cap) {
          cap = cap ? 2 * cap : 32;
          hbRow *grown = realloc(rows, cap * sizeof *rows);
          if (!grown) {
            fprintf(stderr, "%s: out of memory for the result table\n", coll->bench);
            MPI_Abort(MPI_COMM_WORLD, 1);
          }
          rows = grown;
        }
        rows[nrows++] = row;
        char wrongText[24] = "N/A";
        if (a.check) snprintf(wrongText, sizeof wrongText, "%llu", wrongSum);
        printf("%12zu %12zu %9s %6s %5d %10.2f %8.2f %8.2f %7s", size, c.count, typeName, opName,
               rootShown, row.us, row.algbw, row.busbw, wrongText);
        if (a.vsMpi) {
          if (row.haveMpi)
            printf(" %10.2f %10.2f %7.2f", row.mpiUs, row.mpiBusbw, row.ratio);
          else
            printf(" %10s %10s %7s", "-", "-", "-");
        }
        printf("\n");
        fflush(stdout);
      }
    }
    if (s == 0) { /* -b 0: multiplying would stay at 0 forever; go on from 1 byte */
      if (a.maxBytes == 0) break;
      s = 1;
      continue;
    }
    if (s > a.maxBytes / a.factor) break; /* the next size would pass -e (or overflow) */
    s *= a.factor;
  }

  double avgBusbw = 0.0, avgRatio = NAN;
  if (rank == 0) {
    double sumRatio = 0.0;
    size_t nRatio = 0;
    for (size_t k = 0; k < nrows; k++) {
      avgBusbw += rows[k].busbw;
      if (rows[k].haveMpi && rows[k].size >= ((size_t)1 << 20)) {
        sumRatio += rows[k].ratio;
        nRatio++;
      }
    }
    if (nrows) avgBusbw /= (double)nrows;
    if (nRatio) avgRatio = sumRatio / (double)nRatio;

    printf("# Out of bounds values : %llu %s\n", (unsigned long long)wrongTotal,
           wrongTotal ? "FAILED" : "OK");
    printf("# Avg bus bandwidth    : %.4f\n", avgBusbw);
    if (a.vsMpi) {
      if (nRatio)
        printf("# Avg ratio (>=1MiB)   : %.4f\n", avgRatio);
      else
        printf("# Avg ratio (>=1MiB)   : -\n");
    }
    fflush(stdout);
  }
  if (wrongTotal && !exitCode) exitCode = 1;

  if (json) {
    const char *status = exitCode == 0 ? "ok" : wrongTotal ? "wrong" : "error";
    if (hbWriteJson(json, coll, &a, &c, version, transport, rows, nrows, wrongTotal, avgBusbw,
                    avgRatio, status) != 0 ||
        fclose(json) != 0) {
      fprintf(stderr, "%s: writing --json '%s' failed: %s\n", coll->bench, a.jsonPath,
              strerror(errno));
      if (!exitCode) exitCode = 1;
    }
  }
  free(rows);

  rc = mlcommCommDestroy(comm);
  if (rc != mlcommSuccess) {
    fprintf(stderr, "%s: rank %d: mlcommCommDestroy failed: %s: %s\n", coll->bench, rank,
            mlcommGetErrorString(rc), mlcommGetLastError(NULL));
    if (!exitCode) exitCode = 1;
  }
  free(sendbuff);
  free(recvbuff);
  /* every rank leaves with the same code, so mpirun reports it whichever rank it sees */
  exitCode = hbAgreeMax(exitCode);
  MPI_Finalize();
  return exitCode;
}

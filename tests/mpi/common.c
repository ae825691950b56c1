/*
 * The multi-rank test harness: see common.h. It uses only the public API (and MPI),
 * and carries its own float16/bfloat16 conversions so references do not share code
 * with the library they check.
 */
#include "common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tc_rank = 0;
int tc_nranks = 1;
mlcommComm_t tc_comm = MLCOMM_COMM_NULL;
int tc_transport = mlcommTransportAuto;

static long long passed_count = 0;
static long long failed_count = 0;
/* Enough failures to diagnose, few enough that a broken library does not flood logs. */
enum { MAX_PRINTED_FAILURES = 60 };

/* ---------------------------------------------------------------- setup and results */

static const char *const transport_names[] = {"auto", "mpi", "shm", "nccl"};

static _Noreturn void usage_exit(const char *prog, const char *bad)
{
  if (tc_rank == 0)
    fprintf(stderr, "%s: bad argument '%s'\nusage: %s [-t auto|mpi|shm|nccl]\n", prog,
            bad ? bad : "", prog);
  MPI_Finalize();
  exit(2);
}

static int parse_transport(const char *name)
{
  for (int t = 0; t < (int)(sizeof transport_names / sizeof transport_names[0]); t++)
    if (strcmp(name, transport_names[t]) == 0) return t;
  return -1;
}

void tc_config(mlcommConfig_t *config)
{
  mlcommConfig_t init = MLCOMM_CONFIG_INITIALIZER;
  *config = init;
  config->transport = tc_transport;
}

void tc_init(int *argc, char ***argv)
{
  MPI_Init(argc, argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &tc_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &tc_nranks);
  /* Unbuffered-ish output: failures from several ranks interleave by line. */
  setvbuf(stdout, NULL, _IOLBF, 0);

  for (int i = 1; i < *argc; i++) {
    const char *arg = (*argv)[i];
    if (strcmp(arg, "-t") == 0 && i + 1 < *argc) {
      int t = parse_transport((*argv)[++i]);
      if (t < 0) usage_exit((*argv)[0], (*argv)[i]);
      tc_transport = t;
    } else if (strncmp(arg, "-t", 2) == 0 && arg[2] != '\0') {
      int t = parse_transport(arg + 2);
      if (t < 0) usage_exit((*argv)[0], arg);
      tc_transport = t;
    } else {
      usage_exit((*argv)[0], arg);
    }
  }

  mlcommConfig_t config;
  tc_config(&config);
  mlcommResult_t res = mlcommCommInitFromMPI(&tc_comm, MPI_COMM_WORLD, &config);
  /* Ranks must agree before skipping or failing, or some would wait in MPI_Finalize
   * for others that went on. */
  int local = (int)res, worst = 0;
  MPI_Allreduce(&local, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (worst == (int)mlcommSuccess) return;
  const char *why = mlcommGetLastError(NULL);
  if (res == mlcommSuccess) {
    mlcommCommDestroy(tc_comm);
    tc_comm = MLCOMM_COMM_NULL;
  }
  if (worst == (int)mlcommUnsupported) {
    char msg[512];
    snprintf(msg, sizeof msg, "transport '%s' is not available in this build: %s",
             transport_names[tc_transport], why);
    tc_skip(msg);
  }
  fprintf(stderr, "FAIL [rank %d] mlcommCommInitFromMPI(transport %s) = %s: %s\n", tc_rank,
          transport_names[tc_transport], mlcommGetErrorString(res), why);
  if (tc_rank == 0) printf("0 passed, 1 failed\n");
  MPI_Finalize();
  exit(1);
}

long long tc_passed_here(void) { return passed_count; }
long long tc_failed_here(void) { return failed_count; }

_Noreturn void tc_skip(const char *why)
{
  if (tc_rank == 0) printf("SKIPPED: %s\n", why);
  fflush(stdout);
  MPI_Finalize();
  exit(77);
}

bool tc_check(bool ok, const char *file, int line, const char *fmt, ...)
{
  if (ok) {
    passed_count++;
    return true;
  }
  failed_count++;
  if (failed_count <= MAX_PRINTED_FAILURES) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FAIL %s:%d [rank %d/%d] %s\n", file, line, tc_rank, tc_nranks, text);
    fflush(stderr);
  } else if (failed_count == MAX_PRINTED_FAILURES + 1) {
    fprintf(stderr, "FAIL [rank %d] further failures are counted but not printed\n", tc_rank);
  }
  return false;
}

bool tc_check_res(mlcommResult_t got, mlcommResult_t expected, const char *what,
                  const char *file, int line)
{
  if (got == expected) return tc_check(true, file, line, "%s", what);
  return tc_check(false, file, line, "%s returned %d (%s), expected %d (%s); last error: %s",
                  what, (int)got, mlcommGetErrorString(got), (int)expected,
                  mlcommGetErrorString(expected), mlcommGetLastError(NULL));
}

void tc_section(const char *fmt, ...)
{
  if (tc_rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  printf("# ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
}

int tc_finish(void)
{
  if (tc_comm != MLCOMM_COMM_NULL) {
    CHECK_OK(mlcommCommDestroy(tc_comm));
    tc_comm = MLCOMM_COMM_NULL;
  }
  long long local[2] = {passed_count, failed_count}, total[2] = {0, 0};
  MPI_Allreduce(local, total, 2, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  fflush(stderr);
  if (tc_rank == 0) printf("%lld passed, %lld failed\n", total[0], total[1]);
  fflush(stdout);
  MPI_Finalize();
  return total[1] == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- types */

size_t tc_type_size(mlcommDataType_t type)
{
  switch (type) {
  case mlcommInt8:
  case mlcommUint8: return 1;
  case mlcommFloat16:
  case mlcommBfloat16: return 2;
  case mlcommInt32:
  case mlcommUint32:
  case mlcommFloat32: return 4;
  case mlcommInt64:
  case mlcommUint64:
  case mlcommFloat64: return 8;
  default: return 0;
  }
}

const char *tc_type_name(mlcommDataType_t type)
{
  static const char *const names[] = {"int8",  "uint8", "int32",   "uint32",  "int64",
                                      "uint64", "half", "float32", "float64", "bfloat16"};
  return (unsigned)type < mlcommNumTypes ? names[type] : "?";
}

const char *tc_op_name(mlcommRedOp_t op)
{
  static const char *const names[] = {"sum", "prod", "max", "min", "avg"};
  return (unsigned)op < mlcommNumOps ? names[op] : "?";
}

bool tc_type_is_float(mlcommDataType_t type)
{
  return type == mlcommFloat16 || type == mlcommFloat32 || type == mlcommFloat64 ||
         type == mlcommBfloat16;
}

bool tc_type_is_signed(mlcommDataType_t type)
{
  return type == mlcommInt8 || type == mlcommInt32 || type == mlcommInt64;
}

double tc_type_eps(mlcommDataType_t type)
{
  switch (type) {
  case mlcommFloat16: return ldexp(1.0, -10);
  case mlcommBfloat16: return ldexp(1.0, -7);
  case mlcommFloat32: return ldexp(1.0, -23);
  case mlcommFloat64: return ldexp(1.0, -52);
  default: return 0.0;
  }
}

float tc_half_to_float(uint16_t h)
{
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    float v = ldexpf((float)mant, -24); /* zero or subnormal */
    return sign ? -v : v;
  }
  uint32_t bits = exp == 31 ? (sign | 0x7f800000u | (mant << 13))
                            : (sign | ((exp - 15 + 127) << 23) | (mant << 13));
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t tc_float_to_half(float f)
{
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return sign | (absx > 0x7f800000u ? 0x7e00u : 0x7c00u);
  if (absx >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520 rounds to infinity */
  if (absx < 0x38800000u) {                         /* below 2^-14: subnormal half */
    float a;
    memcpy(&a, &absx, sizeof a);
    /* Units of 2^-24; scaling by a power of two is exact, nearbyintf rounds to even. */
    return sign | (uint16_t)nearbyintf(a * 16777216.0f);
  }
  uint32_t h = ((((absx >> 23) - 127 + 15) << 10) | ((absx & 0x7fffffu) >> 13));
  uint32_t rest = absx & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
  return sign | (uint16_t)h;
}

float tc_bf16_to_float(uint16_t b)
{
  uint32_t bits = (uint32_t)b << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t tc_float_to_bf16(float f)
{
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

uint64_t tc_get_bits(mlcommDataType_t type, const void *buf, size_t i)
{
  const unsigned char *p = (const unsigned char *)buf + i * tc_type_size(type);
  switch (tc_type_size(type)) {
  case 1: return *p;
  case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
  case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
  case 8: { uint64_t v; memcpy(&v, p, 8); return v; }
  default: return 0;
  }
}

double tc_get_double(mlcommDataType_t type, const void *buf, size_t i)
{
  uint64_t bits = tc_get_bits(type, buf, i);
  switch (type) {
  case mlcommFloat16: return tc_half_to_float((uint16_t)bits);
  case mlcommBfloat16: return tc_bf16_to_float((uint16_t)bits);
  case mlcommFloat32: { uint32_t b = (uint32_t)bits; float f; memcpy(&f, &b, 4); return f; }
  case mlcommFloat64: { double d; memcpy(&d, &bits, 8); return d; }
  default: return (double)bits;
  }
}

/* ---------------------------------------------------------------- data */

uint64_t tc_mix(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t tc_seed(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
  return tc_mix(tc_mix(tc_mix(tc_mix(a) ^ b) ^ c) ^ d);
}

/* The raw bits of element idx of rank's stream, stored in the type's width. */
static uint64_t gen_bits(mlcommDataType_t type, mlcommRedOp_t op, uint64_t seed, int rank,
                         size_t idx)
{
  uint64_t r = tc_mix(tc_mix(seed ^ ((uint64_t)(rank + 1) * 0xd1b54a32d192ed03ull)) + idx);
  if (!tc_type_is_float(type)) {
    unsigned bits = (unsigned)tc_type_size(type) * 8;
    return bits == 64 ? r : (r & ((1ull << bits) - 1));
  }
  double u = (double)(r >> 11) * ldexp(1.0, -53); /* [0, 1) */
  double v;
  if (op == mlcommProd) {
    v = 0.5 + 1.5 * u; /* magnitudes in [0.5, 2): nranks of them stay normal */
    if (r & 1) v = -v;
  } else {
    v = 4.0 * u - 2.0; /* small values: float16 sums of a few ranks stay far from overflow */
  }
  switch (type) {
  case mlcommFloat16: return tc_float_to_half((float)v);
  case mlcommBfloat16: return tc_float_to_bf16((float)v);
  case mlcommFloat32: { float f = (float)v; uint32_t b; memcpy(&b, &f, 4); return b; }
  default: { uint64_t b; memcpy(&b, &v, 8); return b; }
  }
}

static void put_bits(mlcommDataType_t type, void *buf, size_t i, uint64_t bits)
{
  unsigned char *p = (unsigned char *)buf + i * tc_type_size(type);
  switch (tc_type_size(type)) {
  case 1: *p = (unsigned char)bits; break;
  case 2: { uint16_t v = (uint16_t)bits; memcpy(p, &v, 2); break; }
  case 4: { uint32_t v = (uint32_t)bits; memcpy(p, &v, 4); break; }
  case 8: memcpy(p, &bits, 8); break;
  default: break;
  }
}

void tc_fill(void *buf, mlcommDataType_t type, mlcommRedOp_t op, size_t count, uint64_t seed,
             int rank, size_t first)
{
  for (size_t i = 0; i < count; i++) put_bits(type, buf, i, gen_bits(type, op, seed, rank, first + i));
}

static int64_t sign_extend(uint64_t v, unsigned bits)
{
  if (bits == 64) return (int64_t)v;
  uint64_t m = 1ull << (bits - 1);
  v &= (1ull << bits) - 1;
  return (int64_t)((v ^ m) - m);
}

/* Reference of one integer element: arithmetic in uint64 wraps like the narrower type
 * once masked, since two's complement sum and product keep their low bits. */
static uint64_t int_reference(mlcommDataType_t type, mlcommRedOp_t op, uint64_t seed,
                              size_t idx, int nranks)
{
  unsigned bits = (unsigned)tc_type_size(type) * 8;
  uint64_t mask = bits == 64 ? ~0ull : ((1ull << bits) - 1);
  bool sgn = tc_type_is_signed(type);
  uint64_t acc = gen_bits(type, op, seed, 0, idx);
  for (int k = 1; k < nranks; k++) {
    uint64_t x = gen_bits(type, op, seed, k, idx);
    switch (op) {
    case mlcommSum:
    case mlcommAvg: acc += x; break;
    case mlcommProd: acc *= x; break;
    case mlcommMax:
      if (sgn ? sign_extend(x, bits) > sign_extend(acc, bits) : x > acc) acc = x;
      break;
    case mlcommMin:
      if (sgn ? sign_extend(x, bits) < sign_extend(acc, bits) : x < acc) acc = x;
      break;
    default: break;
    }
    acc &= mask;
  }
  if (op == mlcommAvg) {
    if (sgn)
      acc = (uint64_t)(sign_extend(acc, bits) / (int64_t)nranks); /* C truncates to zero */
    else
      acc = acc / (uint64_t)nranks;
  }
  return acc & mask;
}

bool tc_check_reduced_at(const char *file, int line, const void *got, mlcommDataType_t type,
                         mlcommRedOp_t op, size_t count, uint64_t seed, size_t first, int nranks,
                         const char *what)
{
  size_t bad = 0, first_bad = 0;
  double bad_got = 0, bad_ref = 0, bad_tol = 0;
  if (!tc_type_is_float(type)) {
    for (size_t i = 0; i < count; i++) {
      uint64_t ref = int_reference(type, op, seed, first + i, nranks);
      uint64_t g = tc_get_bits(type, got, i);
      if (g != ref) {
        if (bad++ == 0) {
          first_bad = i;
          bad_got = (double)g;
          bad_ref = (double)ref;
        }
      }
    }
  } else {
    double eps = tc_type_eps(type);
    uint64_t tmp;
    for (size_t i = 0; i < count; i++) {
      double acc = 0, sumabs = 0;
      for (int k = 0; k < nranks; k++) {
        tmp = gen_bits(type, op, seed, k, first + i);
        double x = tc_get_double(type, &tmp, 0);
        sumabs += fabs(x);
        if (k == 0) acc = x;
        else if (op == mlcommSum || op == mlcommAvg) acc += x;
        else if (op == mlcommProd) acc *= x;
        else if (op == mlcommMax) acc = x > acc ? x : acc;
        else if (op == mlcommMin) acc = x < acc ? x : acc;
      }
      double tol;
      switch (op) {
      /* Each of at most nranks roundings errs by eps/2 of a partial sum <= sumabs. */
      case mlcommSum: tol = nranks * eps * sumabs; break;
      case mlcommAvg:
        acc /= nranks;
        tol = eps * sumabs + eps * fabs(acc);
        break;
      case mlcommProd: tol = (nranks + 1) * eps * fabs(acc); break;
      default: tol = 0; /* max/min select an input: exact */
      }
      double g = tc_get_double(type, got, i);
      if (!(fabs(g - acc) <= tol)) { /* also catches NaN */
        if (bad++ == 0) {
          first_bad = i;
          bad_got = g;
          bad_ref = acc;
          bad_tol = tol;
        }
      }
    }
  }
  return tc_check(bad == 0, file, line,
               "%s: %zu of %zu elements wrong (%s %s, %d ranks); first at %zu: got %.17g, "
               "reference %.17g, tolerance %.3g",
               what, bad, count, tc_type_name(type), tc_op_name(op), nranks, first_bad,
               bad_got, bad_ref, bad_tol);
}

uint64_t tc_hash(const void *buf, size_t bytes)
{
  const unsigned char *p = buf;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < bytes; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

bool tc_same_everywhere(uint64_t value, MPI_Comm mpiComm)
{
  uint64_t lo = 0, hi = 0;
  MPI_Allreduce(&value, &lo, 1, MPI_UINT64_T, MPI_MIN, mpiComm);
  MPI_Allreduce(&value, &hi, 1, MPI_UINT64_T, MPI_MAX, mpiComm);
  return lo == hi;
}

/* ---------------------------------------------------------------- guarded buffers */

/* Layout: [64-byte header holding the size][GUARD][body][GUARD]. The body is 64-byte
 * aligned like a real allocator's would be for vector code. */
enum { GUARD = 256, HEADER = 64 };

static unsigned char guard_byte(size_t j) { return (unsigned char)(0xa5u ^ (j * 7u)); }
static unsigned char body_byte(size_t j) { return (unsigned char)(0xc3u + j * 37u + (j >> 8)); }

void *tc_galloc(size_t bytes)
{
  size_t total = HEADER + GUARD + bytes + GUARD;
  total = (total + 63) & ~(size_t)63;
  unsigned char *base = aligned_alloc(64, total);
  if (!base) {
    fprintf(stderr, "FAIL [rank %d] out of memory for %zu bytes\n", tc_rank, bytes);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  memcpy(base, &bytes, sizeof bytes);
  unsigned char *body = base + HEADER + GUARD;
  for (size_t j = 0; j < GUARD; j++) {
    body[-(ptrdiff_t)GUARD + (ptrdiff_t)j] = guard_byte(j);
    body[bytes + j] = guard_byte(j + GUARD);
  }
  tc_gfill_pattern(body);
  return body;
}

size_t tc_gsize(const void *p)
{
  size_t bytes;
  memcpy(&bytes, (const unsigned char *)p - GUARD - HEADER, sizeof bytes);
  return bytes;
}

void tc_gfree(void *p)
{
  if (p) free((unsigned char *)p - GUARD - HEADER);
}

void tc_gfill_pattern(void *p)
{
  unsigned char *body = p;
  size_t bytes = tc_gsize(p);
  for (size_t j = 0; j < bytes; j++) body[j] = body_byte(j);
}

bool tc_gpattern_intact(const void *p, size_t from, size_t to)
{
  const unsigned char *body = p;
  for (size_t j = from; j < to; j++)
    if (body[j] != body_byte(j)) return false;
  return true;
}

bool tc_gcheck_at(const char *file, int line, const void *p, const char *what)
{
  const unsigned char *body = p;
  size_t bytes = tc_gsize(p);
  size_t bad_before = 0, bad_after = 0;
  for (size_t j = 0; j < GUARD; j++) {
    if (body[-(ptrdiff_t)GUARD + (ptrdiff_t)j] != guard_byte(j)) bad_before++;
    if (body[bytes + j] != guard_byte(j + GUARD)) bad_after++;
  }
  return tc_check(bad_before == 0 && bad_after == 0, file, line,
               "%s: guard regions written (%zu bytes before, %zu bytes after a %zu-byte buffer)",
               what, bad_before, bad_after, bytes);
}

/*
 * Unit tests of the reduction kernels, the float16/bfloat16 conversions and the
 * datatype/op names. Every expectation comes from a reference written plainly here
 * (wider arithmetic, a search over the format's values), not from the code under test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/reduce.h"
#include "core/ops.h"

/* Prints the context of a failed element before failing, so one message says which
 * type, op and index went wrong. */
#define EXPECT(cond, ...)                                                              \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      print_error(__VA_ARGS__);                                                        \
      print_error("\n");                                                               \
      fail_msg("expectation failed: %s", #cond);                                       \
    }                                                                                  \
  } while (0)

static const mlcommDataType_t all_types[] = {
    mlcommInt8,    mlcommUint8,   mlcommInt32,   mlcommUint32,  mlcommInt64,
    mlcommUint64,  mlcommFloat16, mlcommFloat32, mlcommFloat64, mlcommBfloat16,
};
#define NUM_TYPES (sizeof all_types / sizeof all_types[0])

/* ---------------------------------------------------------------- helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng_next(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1du;
}

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static uint64_t bits_of_d(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static double double_of(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

static bool half_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x03ffu); }
static bool bf16_is_nan(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x007fu); }

/* ---------------------------------------------------------------- reference formats */

/* Value of a float16 encoding from the definition: (1024 + m) * 2^(e - 25), or
 * m * 2^-24 for subnormals. */
static double ref_half_value(uint16_t h) {
  int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double sign = (h & 0x8000u) ? -1.0 : 1.0;
  if (e == 31) return m ? NAN : sign * INFINITY;
  if (e == 0) return sign * ldexp(m, -24);
  return sign * ldexp(1024 + m, e - 25);
}

/* bfloat16: (128 + m) * 2^(e - 134), or m * 2^-133 for subnormals. */
static double ref_bf16_value(uint16_t b) {
  int e = (b >> 7) & 0xff, m = b & 0x7f;
  double sign = (b & 0x8000u) ? -1.0 : 1.0;
  if (e == 255) return m ? NAN : sign * INFINITY;
  if (e == 0) return sign * ldexp(m, -133);
  return sign * ldexp(128 + m, e - 134);
}

static double half_table[0x7c01];
static double bf16_table[0x7f81];

static void init_tables(void) {
  if (half_table[1] != 0.0) return;
  for (uint32_t h = 0; h < 0x7c00u; h++) half_table[h] = ref_half_value((uint16_t)h);
  half_table[0x7c00] = 65536.0; /* the next value if the exponent were unbounded */
  for (uint32_t b = 0; b < 0x7f80u; b++) bf16_table[b] = ref_bf16_value((uint16_t)b);
  bf16_table[0x7f80] = ldexp(1.0, 128);
}

/* Rounds d to the nearest encoding by searching the ascending table of the format's
 * non-negative finite values (table[inf_code] is the next value beyond the largest);
 * ties pick the even encoding, which is also the IEEE overflow-to-inf rule. */
static uint16_t ref_round(double d, const double *table, uint32_t inf_code) {
  uint16_t sign = signbit(d) ? 0x8000u : 0u;
  double a = fabs(d);
  if (a >= table[inf_code]) return (uint16_t)(sign | inf_code);
  uint32_t lo = 0, hi = inf_code; /* table[lo] <= a < table[hi] */
  while (hi - lo > 1) {
    uint32_t mid = (lo + hi) / 2;
    if (table[mid] <= a) lo = mid;
    else hi = mid;
  }
  double below = a - table[lo], above = table[hi] - a;
  uint32_t code = below < above ? lo : above < below ? hi : (lo & 1u) ? hi : lo;
  return (uint16_t)(sign | code);
}

static uint16_t ref_to_half(double d) {
  init_tables();
  return isnan(d) ? 0x7e00u : ref_round(d, half_table, 0x7c00u);
}

static uint16_t ref_to_bf16(double d) {
  init_tables();
  return isnan(d) ? 0x7fc0u : ref_round(d, bf16_table, 0x7f80u);
}

/* ---------------------------------------------------------------- names */

static void test_type_sizes_and_names(void **state) {
  (void)state;
  static const size_t sizes[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2};
  static const char *const names[] = {"int8",  "uint8", "int32",  "uint32", "int64",
                                      "uint64", "half", "float", "double", "bfloat16"};
  for (int t = 0; t < mlcommNumTypes; t++) {
    assert_int_equal(mlcomm_type_size((mlcommDataType_t)t), sizes[t]);
    assert_string_equal(mlcomm_type_name((mlcommDataType_t)t), names[t]);
    assert_int_equal(mlcomm_type_from_name(names[t]), t);
  }
  assert_int_equal(mlcomm_type_size(mlcommNumTypes), 0);
  assert_int_equal(mlcomm_type_size((mlcommDataType_t)-1), 0);
  assert_int_equal(mlcomm_type_size((mlcommDataType_t)99), 0);
  assert_string_equal(mlcomm_type_name(mlcommNumTypes), "unknown");
  assert_string_equal(mlcomm_type_name((mlcommDataType_t)-1), "unknown");

  static const char *const ops[] = {"sum", "prod", "max", "min", "avg"};
  for (int op = 0; op < mlcommNumOps; op++) {
    assert_string_equal(mlcomm_op_name((mlcommRedOp_t)op), ops[op]);
    assert_int_equal(mlcomm_op_from_name(ops[op]), op);
  }
  assert_string_equal(mlcomm_op_name(mlcommNumOps), "unknown");
  assert_string_equal(mlcomm_op_name((mlcommRedOp_t)-1), "unknown");
}

static void test_name_parsing(void **state) {
  (void)state;
  assert_int_equal(mlcomm_type_from_name("float16"), mlcommFloat16);
  assert_int_equal(mlcomm_type_from_name("fp16"), mlcommFloat16);
  assert_int_equal(mlcomm_type_from_name("float32"), mlcommFloat32);
  assert_int_equal(mlcomm_type_from_name("fp32"), mlcommFloat32);
  assert_int_equal(mlcomm_type_from_name("float64"), mlcommFloat64);
  assert_int_equal(mlcomm_type_from_name("fp64"), mlcommFloat64);
  assert_int_equal(mlcomm_type_from_name("bf16"), mlcommBfloat16);
  assert_int_equal(mlcomm_type_from_name("char"), mlcommInt8);
  assert_int_equal(mlcomm_type_from_name("int"), mlcommInt32);
  assert_int_equal(mlcomm_type_from_name("BF16"), mlcommBfloat16);
  assert_int_equal(mlcomm_type_from_name("Float"), mlcommFloat32);
  assert_int_equal(mlcomm_op_from_name("SUM"), mlcommSum);

  static const char *const bad[] = {"", "float128", "int16", "floa", "floatt", "fp8",
                                    "double ", " half", "uint", "bfloat"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    EXPECT(mlcomm_type_from_name(bad[i]) == -1, "type name '%s'", bad[i]);
  assert_int_equal(mlcomm_type_from_name(NULL), -1);
  assert_int_equal(mlcomm_op_from_name(NULL), -1);
  assert_int_equal(mlcomm_op_from_name(""), -1);
  assert_int_equal(mlcomm_op_from_name("su"), -1);
  assert_int_equal(mlcomm_op_from_name("summ"), -1);
  assert_int_equal(mlcomm_op_from_name("mean"), -1);
}

/* The public lookups are the same tables, with sentences on refusal. */
static void test_public_lookups(void **state) {
  (void)state;
  static const size_t sizes[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2};
  for (int t = 0; t < mlcommNumTypes; t++) {
    size_t size = 99;
    assert_int_equal(mlcommTypeSize((mlcommDataType_t)t, &size), mlcommSuccess);
    assert_int_equal(size, sizes[t]);
    mlcommDataType_t back = mlcommNumTypes;
    assert_int_equal(mlcommTypeFromName(mlcommTypeName((mlcommDataType_t)t), &back),
                     mlcommSuccess);
    assert_int_equal(back, t);
  }
  size_t size = 99;
  assert_int_equal(mlcommTypeSize(mlcommNumTypes, &size), mlcommInvalidArgument);
  assert_int_equal(size, 0);
  assert_non_null(strstr(mlcommGetLastError(NULL), "datatype is 10"));
  assert_int_equal(mlcommTypeSize(mlcommFloat32, NULL), mlcommInvalidArgument);
  assert_string_equal(mlcommTypeName((mlcommDataType_t)-3), "unknown");

  mlcommDataType_t t = mlcommInt64;
  assert_int_equal(mlcommTypeFromName("fp128", &t), mlcommInvalidArgument);
  assert_int_equal(t, mlcommInt64); /* untouched */
  assert_non_null(strstr(mlcommGetLastError(NULL), "'fp128'"));
  assert_non_null(strstr(mlcommGetLastError(NULL), "bfloat16"));
  assert_int_equal(mlcommTypeFromName(NULL, &t), mlcommInvalidArgument);
  assert_int_equal(mlcommTypeFromName("BF16", &t), mlcommSuccess);
  assert_int_equal(t, mlcommBfloat16);

  for (int op = 0; op < mlcommNumOps; op++) {
    mlcommRedOp_t back = mlcommNumOps;
    assert_int_equal(mlcommRedOpFromName(mlcommRedOpName((mlcommRedOp_t)op), &back),
                     mlcommSuccess);
    assert_int_equal(back, op);
  }
  mlcommRedOp_t op = mlcommMax;
  assert_int_equal(mlcommRedOpFromName("mean", &op), mlcommInvalidArgument);
  assert_int_equal(op, mlcommMax);
  assert_string_equal(mlcommRedOpName(mlcommNumOps), "unknown");

  static const char *const transports[] = {"auto", "mpi", "shm", "nccl", "hier"};
  for (int i = 0; i < mlcommNumTransports; i++) {
    assert_string_equal(mlcommTransportName((mlcommTransport_t)i), transports[i]);
    mlcommTransport_t back = mlcommNumTransports;
    assert_int_equal(mlcommTransportFromName(transports[i], &back), mlcommSuccess);
    assert_int_equal(back, i);
  }
  mlcommTransport_t tr = mlcommTransportShm;
  assert_int_equal(mlcommTransportFromName("ucx", &tr), mlcommInvalidArgument);
  assert_int_equal(tr, mlcommTransportShm);
  assert_string_equal(mlcommTransportName(mlcommNumTransports), "unknown");
}

/* ---------------------------------------------------------------- float16 */

static void test_half_to_float_all(void **state) {
  (void)state;
  for (uint32_t h = 0; h <= 0xffffu; h++) {
    float f = mlcomm_half_to_float((uint16_t)h);
    uint32_t fb = bits_of(f);
    EXPECT((fb >> 31) == (h >> 15), "sign of half 0x%04x", h);
    if (half_is_nan((uint16_t)h)) {
      /* NaN: quiet, same payload in the top mantissa bits. */
      EXPECT(isnan(f) && (fb & 0x00400000u), "half 0x%04x -> 0x%08x", h, fb);
      EXPECT(((fb >> 13) & 0x3ffu) == ((h & 0x3ffu) | 0x200u), "payload of 0x%04x", h);
    } else {
      EXPECT((double)f == ref_half_value((uint16_t)h), "half 0x%04x -> %a", h, (double)f);
    }
  }
}

static void test_float_to_half_edges(void **state) {
  (void)state;
  static const struct {
    float f;
    uint16_t h;
  } cases[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {1.0f, 0x3c00},
      {-2.0f, 0xc000},
      {0x1p-24f, 0x0001},                /* smallest subnormal */
      {-0x1p-24f, 0x8001},
      {0x1p-25f, 0x0000},                /* half of it: tie to even (zero) */
      {-0x1p-25f, 0x8000},
      {0x1.000002p-25f, 0x0001},         /* just above the tie */
      {0x1.8p-24f, 0x0002},              /* 1.5 ulp: tie to even 2 */
      {0x1.4p-23f, 0x0002},              /* 2.5 ulp: tie to even 2 */
      {0x1p-26f, 0x0000},
      {0x3ffp-24f, 0x03ff},              /* largest subnormal */
      {0x3ff.8p-24f, 0x0400},            /* tie between it and the smallest normal */
      {0x1p-14f, 0x0400},                /* smallest normal */
      {65504.0f, 0x7bff},                /* largest normal */
      {65519.996f, 0x7bff},              /* just below the overflow tie */
      {65520.0f, 0x7c00},                /* tie: rounds to even, which is inf */
      {-65520.0f, 0xfc00},
      {1e10f, 0x7c00},
      {FLT_MAX, 0x7c00},
      {INFINITY, 0x7c00},
      {-INFINITY, 0xfc00},
      {0x1.002p0f, 0x3c00},              /* 1 + 2^-11: tie to even (down) */
      {0x1.006p0f, 0x3c02},              /* 1 + 3*2^-11: tie to even (up) */
      {0x1.0020001p0f, 0x3c00},          /* below float precision: still the tie */
      {0x1.002002p0f, 0x3c01},           /* just above the tie */
      {2049.0f, 0x6800},                 /* 2048 + 1: tie, stays 2048 */
      {2051.0f, 0x6802},                 /* 2050 + 1: tie, goes to 2052 */
      {FLT_MIN, 0x0000},
      {0x1p-149f, 0x0000},               /* float subnormal */
      {1.0f / 3.0f, 0x3555},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint16_t got = mlcomm_float_to_half(cases[i].f);
    EXPECT(got == cases[i].h, "%a -> 0x%04x, want 0x%04x", (double)cases[i].f, got,
           cases[i].h);
  }
  /* NaNs of either sign and kind stay NaN, come out quiet, keep sign and top payload. */
  static const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u,
                                  0x7fa00000u, 0x7fffffffu, 0x7f802000u};
  for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
    uint16_t got = mlcomm_float_to_half(float_of(nans[i]));
    uint16_t want = (uint16_t)(((nans[i] >> 16) & 0x8000u) | 0x7e00u | ((nans[i] >> 13) & 0x3ffu));
    EXPECT(got == want, "NaN 0x%08x -> 0x%04x, want 0x%04x", nans[i], got, want);
  }
}

static void check_float_to_half(uint32_t fb) {
  float f = float_of(fb);
  uint16_t got = mlcomm_float_to_half(f);
  if (isnan(f)) {
    EXPECT(half_is_nan(got) && (got & 0x0200u) && ((got ^ (fb >> 16)) & 0x8000u) == 0,
           "NaN 0x%08x -> 0x%04x", fb, got);
    return;
  }
  uint16_t want = ref_to_half(f);
  EXPECT(got == want, "float 0x%08x (%a) -> 0x%04x, want 0x%04x", fb, (double)f, got, want);
#ifdef __FLT16_MAX__
  /* A second, independent reference where the compiler has _Float16. */
  __extension__ _Float16 h = (__extension__(_Float16) f);
  uint16_t hb;
  memcpy(&hb, &h, sizeof hb);
  EXPECT(got == hb, "float 0x%08x -> 0x%04x, _Float16 gives 0x%04x", fb, got, hb);
#endif
}

/* Every float whose bits 12 and up take any value in the float16 range, with the low
 * 12 bits at the values that matter for rounding: exactly on, just off, and halfway.
 * Ties in float16 rounding always have the low 12 bits zero, so all ties are covered. */
static void test_float_to_half_sweep(void **state) {
  (void)state;
  static const uint32_t lows[] = {0x000, 0x001, 0x7ff, 0x800, 0x801, 0xfff};
  for (uint32_t hi = 0; hi <= (0x47800000u >> 12); hi++)
    for (size_t k = 0; k < sizeof lows / sizeof lows[0]; k++) {
      uint32_t fb = (hi << 12) | lows[k];
      check_float_to_half(fb);
      check_float_to_half(fb | 0x80000000u);
    }
  for (int i = 0; i < 1000000; i++) check_float_to_half((uint32_t)rng_next());
}

static void test_half_roundtrip_all(void **state) {
  (void)state;
  for (uint32_t h = 0; h <= 0xffffu; h++) {
    uint16_t back = mlcomm_float_to_half(mlcomm_half_to_float((uint16_t)h));
    if (half_is_nan((uint16_t)h))
      EXPECT(back == (h | 0x0200u), "NaN 0x%04x came back as 0x%04x", h, back);
    else
      EXPECT(back == h, "0x%04x came back as 0x%04x", h, back);
  }
}

/* ---------------------------------------------------------------- bfloat16 */

static void test_bf16_to_float_all(void **state) {
  (void)state;
  for (uint32_t b = 0; b <= 0xffffu; b++) {
    float f = mlcomm_bf16_to_float((uint16_t)b);
    uint32_t fb = bits_of(f);
    if (bf16_is_nan((uint16_t)b))
      EXPECT(fb == ((b << 16) | 0x00400000u), "bf16 NaN 0x%04x -> 0x%08x", b, fb);
    else
      EXPECT(fb == (b << 16) && (double)f == ref_bf16_value((uint16_t)b),
             "bf16 0x%04x -> 0x%08x", b, fb);
  }
}

static void test_float_to_bf16_edges(void **state) {
  (void)state;
  static const struct {
    uint32_t f;
    uint16_t b;
  } cases[] = {
      {0x00000000u, 0x0000}, /* +0 */
      {0x80000000u, 0x8000}, /* -0 */
      {0x3f800000u, 0x3f80}, /* 1 */
      {0x3f808000u, 0x3f80}, /* 1 + 2^-8: tie to even (down) */
      {0x3f818000u, 0x3f82}, /* 1 + 3*2^-8: tie to even (up) */
      {0x3f808001u, 0x3f81}, /* just above the tie */
      {0x3f807fffu, 0x3f80}, /* just below */
      {0x43808000u, 0x4380}, /* 257: tie, stays 256 */
      {0x00000001u, 0x0000}, /* smallest float subnormal */
      {0x00008000u, 0x0000}, /* subnormal tie to even (zero) */
      {0x00018000u, 0x0002}, /* subnormal tie to even (up) */
      {0x00010000u, 0x0001}, /* smallest bf16 subnormal */
      {0x007fffffu, 0x0080}, /* largest float subnormal rounds to the smallest normal */
      {0x00800000u, 0x0080}, /* smallest normal */
      {0x7f7f0000u, 0x7f7f}, /* largest bf16 */
      {0x7f7f7fffu, 0x7f7f}, /* below the overflow tie */
      {0x7f7f8000u, 0x7f80}, /* overflow tie: rounds to even, which is inf */
      {0x7f7fffffu, 0x7f80}, /* FLT_MAX overflows */
      {0xff7fffffu, 0xff80},
      {0x7f800000u, 0x7f80}, /* inf */
      {0xff800000u, 0xff80}, /* -inf */
      {0x3eaaaaabu, 0x3eab}, /* 1/3 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint16_t got = mlcomm_float_to_bf16(float_of(cases[i].f));
    EXPECT(got == cases[i].b, "0x%08x -> 0x%04x, want 0x%04x", cases[i].f, got, cases[i].b);
  }
  /* A signaling NaN whose payload sits only in the low bits would truncate to inf
   * and round into a wrong sign or exponent; it must stay a quiet NaN. */
  static const uint32_t nans[] = {0x7f800001u, 0xff800001u, 0x7fc00000u, 0xffffffffu,
                                  0x7fffffffu, 0x7f80ffffu, 0x7fbfffffu};
  for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
    uint16_t got = mlcomm_float_to_bf16(float_of(nans[i]));
    uint16_t want = (uint16_t)((nans[i] >> 16) | 0x0040u);
    EXPECT(got == want, "NaN 0x%08x -> 0x%04x, want 0x%04x", nans[i], got, want);
  }
}

static void check_float_to_bf16(uint32_t fb) {
  float f = float_of(fb);
  uint16_t got = mlcomm_float_to_bf16(f);
  if (isnan(f)) {
    EXPECT(got == ((fb >> 16) | 0x0040u), "NaN 0x%08x -> 0x%04x", fb, got);
    return;
  }
  uint16_t want = ref_to_bf16(f);
  EXPECT(got == want, "float 0x%08x -> 0x%04x, want 0x%04x", fb, got, want);
}

static void test_float_to_bf16_sweep(void **state) {
  (void)state;
  static const uint32_t lows[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff};
  for (uint32_t hi = 0; hi <= 0xffffu; hi++)
    for (size_t k = 0; k < sizeof lows / sizeof lows[0]; k++)
      check_float_to_bf16((hi << 16) | lows[k]);
  for (int i = 0; i < 1000000; i++) check_float_to_bf16((uint32_t)rng_next());
}

static void test_bf16_roundtrip_all(void **state) {
  (void)state;
  for (uint32_t b = 0; b <= 0xffffu; b++) {
    uint16_t back = mlcomm_float_to_bf16(mlcomm_bf16_to_float((uint16_t)b));
    if (bf16_is_nan((uint16_t)b))
      EXPECT(back == (b | 0x0040u), "NaN 0x%04x came back as 0x%04x", b, back);
    else
      EXPECT(back == b, "0x%04x came back as 0x%04x", b, back);
  }
}

/* ---------------------------------------------------------------- reference reduction */

/* IEEE 754-2019 maximum/minimum on values: -1 for a NaN result, else which operand
 * (0 = x, 1 = y) is the answer; +0 counts as greater than -0. */
static int ref_pick(double x, double y, bool want_max) {
  if (isnan(x) || isnan(y)) return -1;
  if (x != y) return ((x > y) == want_max) ? 0 : 1;
  if (signbit(x) == signbit(y)) return 0;
  /* +0 vs -0: max takes the positive one, min the negative one. */
  return (signbit(x) == want_max) ? 1 : 0;
}

#define REF_INT(T, W)                                                                  \
  do {                                                                                 \
    T x, y, r;                                                                         \
    memcpy(&x, a, sizeof x);                                                           \
    memcpy(&y, b, sizeof y);                                                           \
    switch (op) {                                                                      \
    case mlcommSum: case mlcommAvg: r = (T)((W)x + (W)y); break;                       \
    case mlcommProd: r = (T)((W)x * (W)y); break;                                      \
    case mlcommMax: r = x > y ? x : y; break;                                          \
    default: r = x < y ? x : y; break;                                                 \
    }                                                                                  \
    memcpy(out, &r, sizeof r);                                                         \
  } while (0)

/* out = a (op) b for one element. Narrow integers go through int64_t, which cannot
 * overflow, and are truncated by the conversion; 64-bit ones through uint64_t, whose
 * arithmetic wraps. Floats are computed in double, where sums and products of two
 * floats (or halves) are rounded once more to float, which equals a single rounding
 * because double carries more than 2*24+2 bits. */
static void ref_combine(mlcommDataType_t type, mlcommRedOp_t op, const void *a,
                        const void *b, void *out) {
  switch (type) {
  case mlcommInt8: REF_INT(int8_t, int64_t); return;
  case mlcommUint8: REF_INT(uint8_t, int64_t); return;
  case mlcommInt32: REF_INT(int32_t, int64_t); return;
  case mlcommUint32: REF_INT(uint32_t, uint64_t); return;
  case mlcommInt64: REF_INT(int64_t, uint64_t); return;
  case mlcommUint64: REF_INT(uint64_t, uint64_t); return;
  default: break;
  }
  double x, y;
  if (type == mlcommFloat32) {
    float fx, fy;
    memcpy(&fx, a, 4);
    memcpy(&fy, b, 4);
    x = fx, y = fy;
  } else if (type == mlcommFloat64) {
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
  } else {
    uint16_t hx, hy;
    memcpy(&hx, a, 2);
    memcpy(&hy, b, 2);
    x = type == mlcommFloat16 ? ref_half_value(hx) : ref_bf16_value(hx);
    y = type == mlcommFloat16 ? ref_half_value(hy) : ref_bf16_value(hy);
  }
  double r;
  if (op == mlcommMax || op == mlcommMin) {
    /* The answer is one of the operands, bit for bit, or a NaN. */
    int pick = ref_pick(x, y, op == mlcommMax);
    if (pick >= 0) {
      memcpy(out, pick == 0 ? a : b, mlcomm_type_size(type));
      return;
    }
    r = NAN;
  } else {
    r = op == mlcommProd ? x * y : x + y;
  }
  if (type == mlcommFloat64) {
    memcpy(out, &r, 8);
  } else if (type == mlcommFloat32) {
    float f = (float)r;
    memcpy(out, &f, 4);
  } else {
    double rf = (double)(float)r; /* the kernels combine in float */
    uint16_t h = type == mlcommFloat16 ? ref_to_half(rf) : ref_to_bf16(rf);
    memcpy(out, &h, 2);
  }
}

/* Elements match when their bits are equal, except that any quiet NaN matches an
 * expected NaN (payloads are not part of the contract). */
static bool element_matches(mlcommDataType_t type, const void *want, const void *got) {
  size_t size = mlcomm_type_size(type);
  if (type == mlcommFloat32) {
    uint32_t w, g;
    memcpy(&w, want, 4);
    memcpy(&g, got, 4);
    if (isnan(float_of(w))) return isnan(float_of(g)) && (g & 0x00400000u);
  } else if (type == mlcommFloat64) {
    uint64_t w, g;
    memcpy(&w, want, 8);
    memcpy(&g, got, 8);
    if (isnan(double_of(w))) return isnan(double_of(g)) && (g & (UINT64_C(1) << 51));
  } else if (type == mlcommFloat16 || type == mlcommBfloat16) {
    uint16_t w, g;
    memcpy(&w, want, 2);
    memcpy(&g, got, 2);
    if (type == mlcommFloat16 && half_is_nan(w)) return half_is_nan(g) && (g & 0x0200u);
    if (type == mlcommBfloat16 && bf16_is_nan(w)) return bf16_is_nan(g) && (g & 0x0040u);
  }
  return memcmp(want, got, size) == 0;
}

static void format_element(mlcommDataType_t type, const void *p, char *buf, size_t len) {
  uint64_t u = 0;
  memcpy(&u, p, mlcomm_type_size(type)); /* little-endian: low bytes */
  snprintf(buf, len, "0x%0*llx", (int)(2 * mlcomm_type_size(type)), (unsigned long long)u);
}

static void expect_elements(mlcommDataType_t type, mlcommRedOp_t op, const char *what,
                            const void *want, const void *got, const void *a,
                            const void *b, size_t n) {
  size_t size = mlcomm_type_size(type);
  for (size_t i = 0; i < n; i++) {
    const char *w = (const char *)want + i * size, *g = (const char *)got + i * size;
    if (element_matches(type, w, g)) continue;
    char ws[24], gs[24], as[24] = "-", bs[24] = "-";
    format_element(type, w, ws, sizeof ws);
    format_element(type, g, gs, sizeof gs);
    if (a) format_element(type, (const char *)a + i * size, as, sizeof as);
    if (b) format_element(type, (const char *)b + i * size, bs, sizeof bs);
    fail_msg("%s %s %s, n=%zu, element %zu: %s op %s gave %s, want %s", what,
             mlcomm_type_name(type), mlcomm_op_name(op), n, i, as, bs, gs, ws);
  }
}

/* ---------------------------------------------------------------- inputs */

static float random_float(void) {
  static const uint32_t specials[] = {
      0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f7fffffu,
      0xff7fffffu, 0x00800000u, 0x00000001u, 0x807fffffu, 0x3f800000u, 0xbf800000u};
  uint64_t r = rng_next();
  if (r % 10 == 0) return float_of(specials[(r >> 8) % (sizeof specials / sizeof specials[0])]);
  /* Moderate magnitudes keep most sums and products finite and exercise rounding. */
  int e = (int)((r >> 8) % 41) - 20;
  float m = 1.0f + (float)((r >> 16) & 0x7fffff) * 0x1p-23f;
  return ldexpf((r >> 40) & 1 ? -m : m, e);
}

static double random_double(void) {
  static const uint64_t specials[] = {
      0, UINT64_C(0x8000000000000000), UINT64_C(0x7ff0000000000000),
      UINT64_C(0xfff0000000000000), UINT64_C(0x7ff8000000000000),
      UINT64_C(0x7fefffffffffffff), UINT64_C(0x0000000000000001),
      UINT64_C(0x0010000000000000)};
  uint64_t r = rng_next();
  if (r % 10 == 0) return double_of(specials[(r >> 8) % (sizeof specials / sizeof specials[0])]);
  int e = (int)((r >> 8) % 81) - 40;
  double m = 1.0 + (double)(rng_next() >> 12) * 0x1p-52;
  return ldexp((r >> 40) & 1 ? -m : m, e);
}

/* Fills a and b with n random elements. Every fourth b equals a or its negation, so
 * max/min meet equal values and signed zeros, and sums meet exact cancellation. */
static void fill_operands(mlcommDataType_t type, void *a, void *b, size_t n) {
  size_t size = mlcomm_type_size(type);
  for (size_t i = 0; i < n; i++) {
    char *pa = (char *)a + i * size, *pb = (char *)b + i * size;
    for (int k = 0; k < 2; k++) {
      char *p = k ? pb : pa;
      if (type == mlcommFloat32) {
        float f = random_float();
        memcpy(p, &f, 4);
      } else if (type == mlcommFloat64) {
        double d = random_double();
        memcpy(p, &d, 8);
      } else {
        /* Integers and 16-bit floats: every bit pattern, so all encodings occur. */
        uint64_t u = rng_next();
        memcpy(p, &u, size);
      }
    }
    if (i % 4 == 3) {
      memcpy(pb, pa, size);
      /* Flip the sign bit (the top bit of the little-endian element). */
      if (rng_next() & 1) pb[size - 1] = (char)(pb[size - 1] ^ 0x80);
    }
  }
}

/* ---------------------------------------------------------------- kernels */

static const size_t test_sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 200, 1037};

/* For each type x op: out-of-place reduce3, reduce3 with out aliasing a and with out
 * aliasing b, reduce in place, and reduce with inout == in, all against the reference.
 * Buffers have a guard element on each side that must stay untouched. */
static void test_reduce_all_types_ops(void **state) {
  (void)state;
  const size_t max_n = 1037;
  for (size_t t = 0; t < NUM_TYPES; t++) {
    mlcommDataType_t type = all_types[t];
    size_t size = mlcomm_type_size(type);
    char *a = malloc(max_n * size), *b = malloc(max_n * size), *want = malloc(max_n * size);
    char *self_want = malloc(max_n * size), *guarded = malloc((max_n + 2) * size);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(want);
    assert_non_null(self_want);
    assert_non_null(guarded);
    char *out = guarded + size;
    for (int op = 0; op < mlcommNumOps; op++) {
      for (size_t s = 0; s < sizeof test_sizes / sizeof test_sizes[0]; s++) {
        size_t n = test_sizes[s];
        fill_operands(type, a, b, n);
        for (size_t i = 0; i < n; i++) {
          ref_combine(type, (mlcommRedOp_t)op, a + i * size, b + i * size, want + i * size);
          ref_combine(type, (mlcommRedOp_t)op, a + i * size, a + i * size,
                      self_want + i * size);
        }
        memset(guarded, 0xa5, (n + 2) * size);
        mlcomm_reduce3(type, (mlcommRedOp_t)op, out, a, b, n);
        expect_elements(type, (mlcommRedOp_t)op, "reduce3", want, out, a, b, n);
        for (size_t k = 0; k < size; k++) {
          EXPECT((unsigned char)guarded[k] == 0xa5, "reduce3 wrote before out");
          EXPECT((unsigned char)out[n * size + k] == 0xa5, "reduce3 wrote past out");
        }

        memcpy(out, a, n * size);
        mlcomm_reduce3(type, (mlcommRedOp_t)op, out, out, b, n);
        expect_elements(type, (mlcommRedOp_t)op, "reduce3 out==a", want, out, a, b, n);

        memcpy(out, b, n * size);
        mlcomm_reduce3(type, (mlcommRedOp_t)op, out, a, out, n);
        expect_elements(type, (mlcommRedOp_t)op, "reduce3 out==b", want, out, a, b, n);

        memcpy(out, a, n * size);
        mlcomm_reduce(type, (mlcommRedOp_t)op, out, b, n);
        expect_elements(type, (mlcommRedOp_t)op, "reduce", want, out, a, b, n);

        memcpy(out, a, n * size);
        mlcomm_reduce(type, (mlcommRedOp_t)op, out, out, n);
        expect_elements(type, (mlcommRedOp_t)op, "reduce inout==in", self_want, out, a, a,
                        n);
      }
    }
    free(a);
    free(b);
    free(want);
    free(self_want);
    free(guarded);
  }
}

static void test_reduce_noops(void **state) {
  (void)state;
  /* n == 0 touches nothing, so NULL buffers are fine. */
  for (size_t t = 0; t < NUM_TYPES; t++)
    for (int op = 0; op < mlcommNumOps; op++) {
      mlcomm_reduce(all_types[t], (mlcommRedOp_t)op, NULL, NULL, 0);
      mlcomm_reduce3(all_types[t], (mlcommRedOp_t)op, NULL, NULL, NULL, 0);
    }
  mlcomm_avg_finish(mlcommFloat32, NULL, 0, 4);

  /* Unknown types and ops leave the buffers alone. */
  int32_t buf[4] = {1, 2, 3, 4}, in[4] = {10, 20, 30, 40};
  mlcomm_reduce((mlcommDataType_t)mlcommNumTypes, mlcommSum, buf, in, 4);
  mlcomm_reduce((mlcommDataType_t)-1, mlcommSum, buf, in, 4);
  mlcomm_reduce(mlcommInt32, (mlcommRedOp_t)mlcommNumOps, buf, in, 4);
  mlcomm_reduce(mlcommInt32, (mlcommRedOp_t)-1, buf, in, 4);
  mlcomm_reduce3((mlcommDataType_t)42, mlcommSum, buf, in, in, 4);
  mlcomm_avg_finish((mlcommDataType_t)42, buf, 4, 2);
  assert_int_equal(buf[0], 1);
  assert_int_equal(buf[1], 2);
  assert_int_equal(buf[2], 3);
  assert_int_equal(buf[3], 4);
}

static void test_integer_wraparound(void **state) {
  (void)state;
  int8_t i8[4] = {127, -128, 16, -128}, j8[4] = {1, -1, 16, -1};
  mlcomm_reduce(mlcommInt8, mlcommSum, i8, j8, 2);
  mlcomm_reduce(mlcommInt8, mlcommProd, i8 + 2, j8 + 2, 2);
  assert_int_equal(i8[0], -128);
  assert_int_equal(i8[1], 127);
  assert_int_equal(i8[2], 0);    /* 256 wraps */
  assert_int_equal(i8[3], -128); /* 128 wraps */

  uint8_t u8[2] = {255, 200}, v8[2] = {1, 2};
  mlcomm_reduce(mlcommUint8, mlcommSum, u8, v8, 1);
  mlcomm_reduce(mlcommUint8, mlcommProd, u8 + 1, v8 + 1, 1);
  assert_int_equal(u8[0], 0);
  assert_int_equal(u8[1], 144);

  int32_t i32[3] = {INT32_MAX, INT32_MIN, 65536}, j32[3] = {1, -1, 65536};
  mlcomm_reduce(mlcommInt32, mlcommSum, i32, j32, 2);
  mlcomm_reduce(mlcommInt32, mlcommProd, i32 + 2, j32 + 2, 1);
  assert_int_equal(i32[0], INT32_MIN);
  assert_int_equal(i32[1], INT32_MAX);
  assert_int_equal(i32[2], 0);

  uint32_t u32[2] = {UINT32_MAX, 0x10000u}, v32[2] = {2, 0x10001u};
  mlcomm_reduce(mlcommUint32, mlcommSum, u32, v32, 1);
  mlcomm_reduce(mlcommUint32, mlcommProd, u32 + 1, v32 + 1, 1);
  assert_int_equal(u32[0], 1);
  assert_int_equal(u32[1], 0x10000u);

  int64_t i64[3] = {INT64_MAX, INT64_MIN, INT64_MIN}, j64[3] = {1, -1, -1};
  mlcomm_reduce(mlcommInt64, mlcommSum, i64, j64, 2);
  mlcomm_reduce(mlcommInt64, mlcommProd, i64 + 2, j64 + 2, 1);
  assert_true(i64[0] == INT64_MIN);
  assert_true(i64[1] == INT64_MAX);
  assert_true(i64[2] == INT64_MIN);

  uint64_t u64[2] = {UINT64_MAX, UINT64_C(1) << 32}, v64[2] = {1, UINT64_C(1) << 32};
  mlcomm_reduce(mlcommUint64, mlcommSum, u64, v64, 1);
  mlcomm_reduce(mlcommUint64, mlcommProd, u64 + 1, v64 + 1, 1);
  assert_true(u64[0] == 0);
  assert_true(u64[1] == 0);

  /* Signedness matters for max/min even though sum/prod share kernels. */
  int8_t s[1] = {-1}, t8[1] = {1};
  uint8_t us[1] = {255}, ut[1] = {1};
  mlcomm_reduce(mlcommInt8, mlcommMax, s, t8, 1);
  mlcomm_reduce(mlcommUint8, mlcommMax, us, ut, 1);
  assert_int_equal(s[0], 1);
  assert_int_equal(us[0], 255);
  int64_t s64[1] = {-1}, t64[1] = {1};
  uint64_t us64[1] = {UINT64_MAX}, ut64[1] = {1};
  mlcomm_reduce(mlcommInt64, mlcommMin, s64, t64, 1);
  mlcomm_reduce(mlcommUint64, mlcommMin, us64, ut64, 1);
  assert_true(s64[0] == -1);
  assert_true(us64[0] == 1);
}

/* 16-bit float sums: exact result in float, rounded to nearest-even. */
static void test_half_sum_rounding(void **state) {
  (void)state;
  static const struct {
    uint16_t a, b, want;
  } half_cases[] = {
      {0x3c00, 0x1000, 0x3c00}, /* 1 + 2^-11: tie, to even (1) */
      {0x3c01, 0x1000, 0x3c02}, /* (1 + 2^-10) + 2^-11: tie, to even (up) */
      {0x3c00, 0x1001, 0x3c01}, /* just above the tie */
      {0x6800, 0x3c00, 0x6800}, /* 2048 + 1 = 2049: tie, stays 2048 */
      {0x6801, 0x3c00, 0x6802}, /* 2050 + 1 = 2051: tie, goes to 2052 */
      {0x7bff, 0x4c00, 0x7c00}, /* 65504 + 16 = 65520: ties to inf */
      {0x7bff, 0x4bff, 0x7bff}, /* 65504 + 15.99: stays finite */
      {0x0001, 0x0001, 0x0002}, /* subnormals add exactly */
      {0x03ff, 0x0001, 0x0400}, /* into the normal range */
      {0x3c00, 0xbc00, 0x0000}, /* exact cancellation gives +0 */
      {0x8000, 0x8000, 0x8000}, /* -0 + -0 */
      {0x7c00, 0xfc00, 0x7e00}, /* inf - inf is NaN */
  };
  for (size_t i = 0; i < sizeof half_cases / sizeof half_cases[0]; i++) {
    uint16_t out;
    mlcomm_reduce3(mlcommFloat16, mlcommSum, &out, &half_cases[i].a, &half_cases[i].b, 1);
    uint16_t want = half_cases[i].want;
    if (half_is_nan(want))
      EXPECT(half_is_nan(out), "half 0x%04x + 0x%04x = 0x%04x", half_cases[i].a,
             half_cases[i].b, out);
    else
      EXPECT(out == want, "half 0x%04x + 0x%04x = 0x%04x, want 0x%04x", half_cases[i].a,
             half_cases[i].b, out, want);
  }
  static const struct {
    uint16_t a, b, want;
  } bf16_cases[] = {
      {0x3f80, 0x3b80, 0x3f80}, /* 1 + 2^-8: tie, to even */
      {0x3f81, 0x3b80, 0x3f82}, /* (1 + 2^-7) + 2^-8: tie, up */
      {0x4380, 0x3f80, 0x4380}, /* 256 + 1: tie, stays 256 */
      {0x4381, 0x3f80, 0x4382}, /* 258 + 1: tie, goes to 260 */
      {0x7f7f, 0x7b00, 0x7f80}, /* (2-2^-7)*2^127 + 2^119: the overflow tie, to inf */
      {0x3f80, 0xbf80, 0x0000},
      {0x7f80, 0xff80, 0x7fc0}, /* inf - inf: the default NaN must stay NaN */
      {0x7f81, 0x3f80, 0x7fc1}, /* a signaling NaN comes out quiet, payload kept */
      {0xff81, 0x7f80, 0xffc1},
  };
  for (size_t i = 0; i < sizeof bf16_cases / sizeof bf16_cases[0]; i++) {
    uint16_t out;
    mlcomm_reduce3(mlcommBfloat16, mlcommSum, &out, &bf16_cases[i].a, &bf16_cases[i].b, 1);
    uint16_t want = bf16_cases[i].want;
    /* The default NaN's sign and payload are the hardware's choice. */
    bool any_nan = bf16_cases[i].a == 0x7f80 && bf16_cases[i].b == 0xff80;
    if (any_nan)
      EXPECT(bf16_is_nan(out) && (out & 0x0040u), "bf16 inf - inf = 0x%04x", out);
    else
      EXPECT(out == want, "bf16 0x%04x + 0x%04x = 0x%04x, want 0x%04x", bf16_cases[i].a,
             bf16_cases[i].b, out, want);
  }

  /* Long vectors, so the vector paths are checked too: the reference rounds the float
   * sum with the search-based rounding. */
  enum { N = 4099 };
  static uint16_t a[N], b[N], out[N];
  for (int fmt = 0; fmt < 2; fmt++) {
    mlcommDataType_t type = fmt ? mlcommBfloat16 : mlcommFloat16;
    for (int i = 0; i < N; i++) {
      a[i] = (uint16_t)rng_next();
      b[i] = (uint16_t)rng_next();
    }
    mlcomm_reduce3(type, mlcommSum, out, a, b, N);
    for (int i = 0; i < N; i++) {
      float fa = fmt ? mlcomm_bf16_to_float(a[i]) : mlcomm_half_to_float(a[i]);
      float fb = fmt ? mlcomm_bf16_to_float(b[i]) : mlcomm_half_to_float(b[i]);
      float sum = fa + fb;
      if (isnan(sum)) {
        EXPECT(fmt ? bf16_is_nan(out[i]) : half_is_nan(out[i]), "NaN sum at %d", i);
        continue;
      }
      uint16_t want = fmt ? ref_to_bf16(sum) : ref_to_half(sum);
      EXPECT(out[i] == want, "%s 0x%04x + 0x%04x = 0x%04x, want 0x%04x",
             mlcomm_type_name(type), a[i], b[i], out[i], want);
    }
  }
}

/* Operations that create NaN (inf - inf, 0 * inf) or meet a signaling NaN, in vectors
 * long enough for the vector paths: the result must be a quiet NaN, and the non-NaN
 * lanes (0 - inf, inf * -inf) must be -inf. Lanes cycle through three cases. */
static void test_half_nan_results(void **state) {
  (void)state;
  enum { M = 203 };
  static const struct {
    mlcommDataType_t type;
    uint16_t inf, neg_inf, snan, one, quiet;
  } fmts[] = {{mlcommFloat16, 0x7c00, 0xfc00, 0x7c01, 0x3c00, 0x0200},
              {mlcommBfloat16, 0x7f80, 0xff80, 0x7f81, 0x3f80, 0x0040}};
  for (size_t f = 0; f < 2; f++) {
    uint16_t a[M], b[M], out[M];
    for (int i = 0; i < M; i++) {
      a[i] = i % 3 == 0 ? fmts[f].inf : i % 3 == 1 ? 0x0000 : fmts[f].snan;
      b[i] = i % 3 == 2 ? fmts[f].one : fmts[f].neg_inf;
    }
    for (int op = mlcommSum; op <= mlcommProd; op++) {
      mlcomm_reduce3(fmts[f].type, (mlcommRedOp_t)op, out, a, b, M);
      for (int i = 0; i < M; i++) {
        /* sum: inf + -inf, 0 + -inf, sNaN + 1; prod: inf * -inf, 0 * -inf, sNaN * 1 */
        bool want_nan = op == mlcommSum ? i % 3 != 1 : i % 3 != 0;
        bool is_nan = fmts[f].type == mlcommFloat16 ? half_is_nan(out[i]) : bf16_is_nan(out[i]);
        if (want_nan)
          EXPECT(is_nan && (out[i] & fmts[f].quiet), "%s %s lane %d: 0x%04x, want quiet NaN",
                 mlcomm_type_name(fmts[f].type), mlcomm_op_name((mlcommRedOp_t)op), i, out[i]);
        else
          EXPECT(out[i] == fmts[f].neg_inf, "%s %s lane %d: 0x%04x, want -inf",
                 mlcomm_type_name(fmts[f].type), mlcomm_op_name((mlcommRedOp_t)op), i, out[i]);
      }
    }
  }
}

/* Every float16 and bfloat16 encoding through the kernels: x + (-0) and max/min(x, x)
 * must give x back bit for bit, and a NaN x must come back quiet with its payload.
 * This pins down the vector and scalar paths to the same conversions. */
static void test_half_kernels_all_encodings(void **state) {
  (void)state;
  static uint16_t x[65536], negzero[65536], out[65536];
  for (uint32_t i = 0; i < 65536; i++) {
    x[i] = (uint16_t)i;
    negzero[i] = 0x8000u;
  }
  static const mlcommRedOp_t ops[] = {mlcommSum, mlcommMax, mlcommMin};
  for (int fmt = 0; fmt < 2; fmt++) {
    mlcommDataType_t type = fmt ? mlcommBfloat16 : mlcommFloat16;
    uint16_t quiet = fmt ? 0x0040u : 0x0200u;
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
      mlcomm_reduce3(type, ops[k], out, x, ops[k] == mlcommSum ? negzero : x, 65536);
      for (uint32_t i = 0; i < 65536; i++) {
        bool nan = fmt ? bf16_is_nan((uint16_t)i) : half_is_nan((uint16_t)i);
        uint16_t want = nan ? (uint16_t)(i | quiet) : (uint16_t)i;
        EXPECT(out[i] == want, "%s %s of 0x%04x gave 0x%04x, want 0x%04x",
               mlcomm_type_name(type), mlcomm_op_name(ops[k]), i, out[i], want);
      }
    }
  }
}

static void test_nan_and_zero_minmax(void **state) {
  (void)state;
  const mlcommRedOp_t minmax[] = {mlcommMax, mlcommMin};
  for (int k = 0; k < 2; k++) {
    mlcommRedOp_t op = minmax[k];
    /* NaN in either position, quiet or signaling, wins. */
    float fa[4] = {NAN, 1.0f, float_of(0x7f800001u), -INFINITY};
    float fb[4] = {1.0f, NAN, 2.0f, float_of(0xffc00001u)};
    mlcomm_reduce(mlcommFloat32, op, fa, fb, 4);
    for (int i = 0; i < 4; i++)
      EXPECT(isnan(fa[i]) && (bits_of(fa[i]) & 0x00400000u), "float %s lane %d",
             mlcomm_op_name(op), i);
    double da[3] = {NAN, 1.0, double_of(UINT64_C(0x7ff0000000000001))}, db[3] = {1.0, NAN, 0.0};
    mlcomm_reduce(mlcommFloat64, op, da, db, 3);
    for (int i = 0; i < 3; i++)
      EXPECT(isnan(da[i]) && (bits_of_d(da[i]) & (UINT64_C(1) << 51)), "double %s lane %d",
             mlcomm_op_name(op), i);
    uint16_t ha[3] = {0x7e00, 0x3c00, 0x7c01}, hb[3] = {0x3c00, 0xfe00, 0xfc00};
    mlcomm_reduce(mlcommFloat16, op, ha, hb, 3);
    for (int i = 0; i < 3; i++)
      EXPECT(half_is_nan(ha[i]) && (ha[i] & 0x0200u), "half %s lane %d: 0x%04x",
             mlcomm_op_name(op), i, ha[i]);
    uint16_t ba[3] = {0x7fc0, 0x3f80, 0x7f81}, bb[3] = {0x3f80, 0xffc0, 0xff80};
    mlcomm_reduce(mlcommBfloat16, op, ba, bb, 3);
    for (int i = 0; i < 3; i++)
      EXPECT(bf16_is_nan(ba[i]) && (ba[i] & 0x0040u), "bf16 %s lane %d: 0x%04x",
             mlcomm_op_name(op), i, ba[i]);
  }

  /* +0 is greater than -0 whichever operand it is. */
  float za[2] = {0.0f, -0.0f}, zb[2] = {-0.0f, 0.0f}, zout[2];
  mlcomm_reduce3(mlcommFloat32, mlcommMax, zout, za, zb, 2);
  assert_true(!signbit(zout[0]) && !signbit(zout[1]));
  mlcomm_reduce3(mlcommFloat32, mlcommMin, zout, za, zb, 2);
  assert_true(signbit(zout[0]) && signbit(zout[1]));
  double dza[2] = {0.0, -0.0}, dzb[2] = {-0.0, 0.0}, dzout[2];
  mlcomm_reduce3(mlcommFloat64, mlcommMax, dzout, dza, dzb, 2);
  assert_true(!signbit(dzout[0]) && !signbit(dzout[1]));
  mlcomm_reduce3(mlcommFloat64, mlcommMin, dzout, dza, dzb, 2);
  assert_true(signbit(dzout[0]) && signbit(dzout[1]));
  uint16_t hza[2] = {0x0000, 0x8000}, hzb[2] = {0x8000, 0x0000}, hzout[2];
  for (int fmt = 0; fmt < 2; fmt++) {
    mlcommDataType_t type = fmt ? mlcommBfloat16 : mlcommFloat16;
    mlcomm_reduce3(type, mlcommMax, hzout, hza, hzb, 2);
    assert_int_equal(hzout[0], 0x0000);
    assert_int_equal(hzout[1], 0x0000);
    mlcomm_reduce3(type, mlcommMin, hzout, hza, hzb, 2);
    assert_int_equal(hzout[0], 0x8000);
    assert_int_equal(hzout[1], 0x8000);
  }

  /* Infinities order normally. */
  float ia[2] = {INFINITY, -INFINITY}, ib[2] = {1.0f, 1.0f};
  mlcomm_reduce(mlcommFloat32, mlcommMax, ia, ib, 2);
  assert_true(ia[0] == INFINITY && ia[1] == 1.0f);
}

/* ---------------------------------------------------------------- avg */

static void test_avg_finish_explicit(void **state) {
  (void)state;
  int32_t i32[6] = {-7, 7, -1, -8, INT32_MIN, INT32_MAX};
  mlcomm_avg_finish(mlcommInt32, i32, 6, 2);
  assert_int_equal(i32[0], -3); /* truncation toward zero, not floor */
  assert_int_equal(i32[1], 3);
  assert_int_equal(i32[2], 0);
  assert_int_equal(i32[3], -4);
  assert_int_equal(i32[4], INT32_MIN / 2);
  assert_int_equal(i32[5], INT32_MAX / 2);

  int8_t i8[4] = {-128, 127, -128, -5};
  mlcomm_avg_finish(mlcommInt8, i8, 2, 3);
  mlcomm_avg_finish(mlcommInt8, i8 + 2, 2, 200); /* more ranks than int8 can hold */
  assert_int_equal(i8[0], -42);
  assert_int_equal(i8[1], 42);
  assert_int_equal(i8[2], 0);
  assert_int_equal(i8[3], 0);

  uint8_t u8[2] = {255, 255};
  mlcomm_avg_finish(mlcommUint8, u8, 1, 2);
  mlcomm_avg_finish(mlcommUint8, u8 + 1, 1, 200);
  assert_int_equal(u8[0], 127);
  assert_int_equal(u8[1], 1);

  uint32_t u32[1] = {UINT32_MAX}; /* must not divide as a negative int */
  mlcomm_avg_finish(mlcommUint32, u32, 1, 2);
  assert_int_equal(u32[0], UINT32_MAX / 2);
  int64_t i64[2] = {INT64_MIN, -9};
  mlcomm_avg_finish(mlcommInt64, i64, 2, 4);
  assert_true(i64[0] == INT64_MIN / 4 && i64[1] == -2);
  uint64_t u64[1] = {UINT64_MAX};
  mlcomm_avg_finish(mlcommUint64, u64, 1, 3);
  assert_true(u64[0] == UINT64_MAX / 3);

  float f[3] = {1.0f, -3.0f, NAN};
  mlcomm_avg_finish(mlcommFloat32, f, 3, 3);
  assert_true(f[0] == 1.0f / 3.0f && f[1] == -1.0f && isnan(f[2]));
  double d[1] = {1.0};
  mlcomm_avg_finish(mlcommFloat64, d, 1, 3);
  assert_true(d[0] == 1.0 / 3.0);

  uint16_t h[4] = {0x3c00, 0x0001, 0x7c00, 0x7bff}; /* 1, 2^-24, inf, 65504 */
  mlcomm_avg_finish(mlcommFloat16, h, 4, 3);
  assert_int_equal(h[0], 0x3555);
  assert_int_equal(h[1], 0x0000); /* 2^-24 / 3 rounds to zero */
  assert_int_equal(h[2], 0x7c00);
  assert_int_equal(h[3], 0x7555); /* 21834.67 -> 21840 */
  uint16_t hb[2] = {0x0002, 0x0003};
  mlcomm_avg_finish(mlcommFloat16, hb, 2, 2);
  assert_int_equal(hb[0], 0x0001);
  assert_int_equal(hb[1], 0x0002); /* 1.5 ulp: tie to even */
  uint16_t bf[2] = {0x3f80, 0xc040}; /* 1, -3 */
  mlcomm_avg_finish(mlcommBfloat16, bf, 2, 3);
  assert_int_equal(bf[0], 0x3eab);
  assert_int_equal(bf[1], 0xbf80);

  /* nranks == 1 leaves everything alone. */
  int32_t one[2] = {-7, 7};
  mlcomm_avg_finish(mlcommInt32, one, 2, 1);
  assert_int_equal(one[0], -7);
  assert_int_equal(one[1], 7);
}

/* Random elements of every type against C division / division in double. */
static void test_avg_finish_random(void **state) {
  (void)state;
  enum { N = 301 };
  static const int ranks[] = {2, 3, 7, 8, 200, 1000};
  for (size_t t = 0; t < NUM_TYPES; t++) {
    mlcommDataType_t type = all_types[t];
    size_t size = mlcomm_type_size(type);
    char buf[N * 8], orig[N * 8], want[N * 8], unused[N * 8];
    for (size_t r = 0; r < sizeof ranks / sizeof ranks[0]; r++) {
      int nr = ranks[r];
      fill_operands(type, orig, unused, N);
      memcpy(buf, orig, N * size);
      mlcomm_avg_finish(type, buf, N, nr);
      for (size_t i = 0; i < N; i++) {
        const char *x = orig + i * size;
        char *w = want + i * size;
        switch (type) {
#define AVG_REF(T, W)                                                                  \
  {                                                                                    \
    T v;                                                                               \
    memcpy(&v, x, sizeof v);                                                           \
    v = (T)((W)v / (W)nr);                                                             \
    memcpy(w, &v, sizeof v);                                                           \
  }                                                                                    \
  break;
        case mlcommInt8: AVG_REF(int8_t, int64_t)
        case mlcommUint8: AVG_REF(uint8_t, int64_t)
        case mlcommInt32: AVG_REF(int32_t, int64_t)
        case mlcommUint32: AVG_REF(uint32_t, uint64_t)
        case mlcommInt64: AVG_REF(int64_t, int64_t)
        case mlcommUint64: AVG_REF(uint64_t, uint64_t)
#undef AVG_REF
        case mlcommFloat32: {
          float v;
          memcpy(&v, x, 4);
          v = (float)((double)v / nr);
          memcpy(w, &v, 4);
          break;
        }
        case mlcommFloat64: {
          double v;
          memcpy(&v, x, 8);
          v = v / nr;
          memcpy(w, &v, 8);
          break;
        }
        default: {
          uint16_t v;
          memcpy(&v, x, 2);
          bool bf = type == mlcommBfloat16;
          float q = (float)((bf ? ref_bf16_value(v) : ref_half_value(v)) / nr);
          v = bf ? ref_to_bf16(q) : ref_to_half(q);
          memcpy(w, &v, 2);
          break;
        }
        }
      }
      expect_elements(type, mlcommAvg, "avg_finish", want, buf, orig, NULL, N);
    }
  }
}

/* The collective's view: avg reduces as a sum, then divides once. */
static void test_avg_reduces_as_sum(void **state) {
  (void)state;
  int32_t acc[3] = {-5, 6, 100}, r1[3] = {-2, 1, 1}, r2[3] = {0, 0, 1};
  mlcomm_reduce(mlcommInt32, mlcommAvg, acc, r1, 3);
  mlcomm_reduce(mlcommInt32, mlcommAvg, acc, r2, 3);
  assert_int_equal(acc[0], -7);
  assert_int_equal(acc[2], 102);
  mlcomm_avg_finish(mlcommInt32, acc, 3, 3);
  assert_int_equal(acc[0], -2);
  assert_int_equal(acc[1], 2);
  assert_int_equal(acc[2], 34);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_type_sizes_and_names),
      cmocka_unit_test(test_name_parsing),
      cmocka_unit_test(test_public_lookups),
      cmocka_unit_test(test_half_to_float_all),
      cmocka_unit_test(test_float_to_half_edges),
      cmocka_unit_test(test_float_to_half_sweep),
      cmocka_unit_test(test_half_roundtrip_all),
      cmocka_unit_test(test_bf16_to_float_all),
      cmocka_unit_test(test_float_to_bf16_edges),
      cmocka_unit_test(test_float_to_bf16_sweep),
      cmocka_unit_test(test_bf16_roundtrip_all),
      cmocka_unit_test(test_reduce_all_types_ops),
      cmocka_unit_test(test_reduce_noops),
      cmocka_unit_test(test_integer_wraparound),
      cmocka_unit_test(test_half_sum_rounding),
      cmocka_unit_test(test_half_nan_results),
      cmocka_unit_test(test_half_kernels_all_encodings),
      cmocka_unit_test(test_nan_and_zero_minmax),
      cmocka_unit_test(test_avg_finish_explicit),
      cmocka_unit_test(test_avg_finish_random),
      cmocka_unit_test(test_avg_reduces_as_sum),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

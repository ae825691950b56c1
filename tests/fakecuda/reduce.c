/*
 * Element-wise reductions for the fake NCCL, done on the host after the ranks' inputs
 * have been gathered. Blocks are combined strictly in rank order so every rank computes
 * bit-identical results, run after run.
 *
 * Integer sums and products wrap (computed in the unsigned type: no undefined
 * behaviour); ncclAvg is the sum divided by the number of ranks, truncating for
 * integers. Half and bfloat16 are widened to float, combined in float, and rounded back
 * once, to nearest even.
 */
#include <stdlib.h>
#include <string.h>

#include "fakegpu.h"

size_t fg_type_size(ncclDataType_t t) {
  switch (t) {
  case ncclInt8:
  case ncclUint8:
  case ncclFloat8e4m3:
  case ncclFloat8e5m2: return 1;
  case ncclFloat16:
  case ncclBfloat16: return 2;
  case ncclInt32:
  case ncclUint32:
  case ncclFloat32: return 4;
  case ncclInt64:
  case ncclUint64:
  case ncclFloat64: return 8;
  default: return 0;
  }
}

/* The 8-bit floats move (broadcast, gather, send) but the fake does not reduce them. */
bool fg_type_reducible(ncclDataType_t t) {
  return fg_type_size(t) != 0 && t != ncclFloat8e4m3 && t != ncclFloat8e5m2;
}

static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* q = v >> s rounded to nearest, ties to even (0 < s < 32). */
static uint32_t shift_rne(uint32_t v, unsigned s) {
  uint32_t q = v >> s, rem = v & ((1u << s) - 1), half = 1u << (s - 1);
  if (rem > half || (rem == half && (q & 1))) q++;
  return q;
}

float fg_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000 | mant << 13); /* inf, nan */
  if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in float */
    float v = (float)mant / 16777216.0f;
    return sign ? -v : v;
  }
  return bits_float(sign | (exp + 112) << 23 | mant << 13);
}

uint16_t fg_float_to_half(float f) {
  uint32_t x = float_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  x &= 0x7fffffff;
  if (x > 0x7f800000) return sign | 0x7e00;  /* nan (quiet) */
  if (x >= 0x477ff000) return sign | 0x7c00; /* >= 65520 rounds to inf */
  if (x < 0x38800000) {                      /* below 2^-14: subnormal half */
    uint32_t e = x >> 23;
    if (e < 102) return sign;                      /* below 2^-25: rounds to zero */
    uint32_t m = (x & 0x7fffff) | 0x800000;        /* value = m * 2^(e-150) */
    return sign | (uint16_t)shift_rne(m, 126 - e); /* in units of 2^-24 */
  }
  /* Normal: rebias the exponent, round 13 mantissa bits away; a carry into the
   * exponent is the right answer (up to 65504 -> inf was handled above). */
  uint32_t h = ((x >> 23) - 112) << 10 | (x & 0x7fffff) >> 13;
  uint32_t rem = x & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return sign | (uint16_t)h;
}

float fg_bf16_to_float(uint16_t h) { return bits_float((uint32_t)h << 16); }

uint16_t fg_float_to_bf16(float f) {
  uint32_t x = float_bits(f);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)(x >> 16 | 0x40); /* quiet nan */
  return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* One function per C type: out[i] = in[0][i] op in[1][i] op ... in rank order. */
#define FG_REDUCE_INT(NAME, T, UT, WT)                                                             \
  static void NAME(T *out, const char *in, size_t stride, int n, size_t count, ncclRedOp_t op) {   \
    memcpy(out, in, count * sizeof(T));                                                            \
    for (int r = 1; r < n; r++) {                                                                  \
      const T *x = (const T *)(const void *)(in + (size_t)r * stride);                             \
      for (size_t i = 0; i < count; i++) {                                                         \
        switch (op) {                                                                              \
        case ncclProd: out[i] = (T)((UT)out[i] * (UT)x[i]); break;                                 \
        case ncclMax: out[i] = x[i] > out[i] ? x[i] : out[i]; break;                               \
        case ncclMin: out[i] = x[i] < out[i] ? x[i] : out[i]; break;                               \
        default: out[i] = (T)((UT)out[i] + (UT)x[i]); break; /* sum, avg */                        \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
    if (op == ncclAvg)                                                                             \
      for (size_t i = 0; i < count; i++) out[i] = (T)((WT)out[i] / (WT)n);                         \
  }

/* WT: a type wide enough to divide by the number of ranks (avg). */
FG_REDUCE_INT(reduce_i8, int8_t, uint8_t, int64_t)
FG_REDUCE_INT(reduce_u8, uint8_t, uint8_t, uint64_t)
FG_REDUCE_INT(reduce_i32, int32_t, uint32_t, int64_t)
FG_REDUCE_INT(reduce_u32, uint32_t, uint32_t, uint64_t)
FG_REDUCE_INT(reduce_i64, int64_t, uint64_t, int64_t)
FG_REDUCE_INT(reduce_u64, uint64_t, uint64_t, uint64_t)

/* Floats: combine a widened value into the accumulator. */
#define FG_COMBINE(acc, x, op)                                                                     \
  do {                                                                                             \
    switch (op) {                                                                                  \
    case ncclProd: (acc) *= (x); break;                                                            \
    case ncclMax: (acc) = (x) > (acc) ? (x) : (acc); break;                                        \
    case ncclMin: (acc) = (x) < (acc) ? (x) : (acc); break;                                        \
    default: (acc) += (x); break;                                                                  \
    }                                                                                              \
  } while (0)

#define FG_REDUCE_FLOAT(NAME, T)                                                                   \
  static void NAME(T *out, const char *in, size_t stride, int n, size_t count, ncclRedOp_t op) {   \
    memcpy(out, in, count * sizeof(T));                                                            \
    for (int r = 1; r < n; r++) {                                                                  \
      const T *x = (const T *)(const void *)(in + (size_t)r * stride);                             \
      for (size_t i = 0; i < count; i++) FG_COMBINE(out[i], x[i], op);                             \
    }                                                                                              \
    if (op == ncclAvg)                                                                             \
      for (size_t i = 0; i < count; i++) out[i] /= (T)n;                                           \
  }

FG_REDUCE_FLOAT(reduce_f32, float)
FG_REDUCE_FLOAT(reduce_f64, double)

/* 16-bit floats, element by element so that no float scratch array is needed. */
static void reduce_16(uint16_t *out, const char *in, size_t stride, int n, size_t count,
                      ncclRedOp_t op, float (*widen)(uint16_t), uint16_t (*narrow)(float)) {
  for (size_t i = 0; i < count; i++) {
    float acc = widen(((const uint16_t *)(const void *)in)[i]);
    for (int r = 1; r < n; r++) {
      float x = widen(((const uint16_t *)(const void *)(in + (size_t)r * stride))[i]);
      FG_COMBINE(acc, x, op);
    }
    if (op == ncclAvg) acc /= (float)n;
    out[i] = narrow(acc);
  }
}

void fg_reduce_blocks(void *out, const char *in, size_t stride, int nblocks, size_t count,
                      ncclDataType_t t, ncclRedOp_t op) {
  switch (t) {
  case ncclInt8: reduce_i8(out, in, stride, nblocks, count, op); break;
  case ncclUint8: reduce_u8(out, in, stride, nblocks, count, op); break;
  case ncclInt32: reduce_i32(out, in, stride, nblocks, count, op); break;
  case ncclUint32: reduce_u32(out, in, stride, nblocks, count, op); break;
  case ncclInt64: reduce_i64(out, in, stride, nblocks, count, op); break;
  case ncclUint64: reduce_u64(out, in, stride, nblocks, count, op); break;
  case ncclFloat32: reduce_f32(out, in, stride, nblocks, count, op); break;
  case ncclFloat64: reduce_f64(out, in, stride, nblocks, count, op); break;
  case ncclFloat16:
    reduce_16(out, in, stride, nblocks, count, op, fg_half_to_float, fg_float_to_half);
    break;
  case ncclBfloat16:
    reduce_16(out, in, stride, nblocks, count, op, fg_bf16_to_float, fg_float_to_bf16);
    break;
  default: abort(); /* refused at enqueue: unreachable */
  }
}

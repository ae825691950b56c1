/*
 * Inline float16/bfloat16 <-> float conversions. half.c exports them as the
 * mlcomm_* functions of reduce.h; reduce_kernels.c includes this header so the
 * conversions inline into its loops. Every case is computed unconditionally and the
 * answer picked with bit masks rather than branches or ?: chains: gcc turns those into
 * control flow, and with -ftrapping-math (the default) it will not speculate the float
 * operations back out of it, which blocks vectorisation of the reduction loops.
 */
#ifndef MLCOMM_COLLECTIVES_HALF_H
#define MLCOMM_COLLECTIVES_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static inline float f32_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* cond ? t : e for cond in {0, 1}, without control flow. */
static inline uint32_t bits_select(uint32_t cond, uint32_t t, uint32_t e) {
  uint32_t mask = 0u - cond;
  return (t & mask) | (e & ~mask);
}

/* float16 -> float is exact; only NaN changes (it is quietened). */
static inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t mag = h & 0x7fffu;
  /* Normal numbers: move the fields into place and rebias 15 -> 127. */
  uint32_t normal = (mag << 13) + ((127u - 15u) << 23);
  /* Inf and NaN keep the all-ones exponent; a NaN gets the quiet bit. */
  uint32_t special = (mag << 13) | 0x7f800000u | ((uint32_t)(mag > 0x7c00u) << 22);
  /* Zero and subnormals are mag * 2^-24: exact in float and independent of the
   * FPU's denormal modes because the result is a normal float (or zero). */
  uint32_t subnormal = f32_bits((float)(int32_t)mag * 0x1p-24f);
  uint32_t bits =
      bits_select(mag >= 0x7c00u, special, bits_select(mag >= 0x0400u, normal, subnormal));
  return f32_from_bits(sign | bits);
}

/* float -> float16, round to nearest-even, overflow to inf, NaN kept quiet. */
static inline uint16_t f32_to_f16(float f) {
  uint32_t x = f32_bits(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  /* Normal range: round away the 13 low bits to nearest-even in the integer domain;
   * a carry out of the mantissa correctly bumps the exponent. The subtraction wraps
   * for small ax, but that candidate is not selected then. */
  uint32_t normal = (ax + 0x0fffu + ((ax >> 13) & 1u) - ((127u - 15u) << 23)) >> 13;
  /* Below 2^-14 the float16 grid is fixed at 2^-24, which is exactly the float ulp in
   * [0.5, 1): adding 0.5f makes the FPU round the value onto that grid (nearest-even
   * in the default rounding mode), and the low bits are then the float16 mantissa.
   * A result of 0x400 is the smallest normal, which is also the right encoding. */
  uint32_t subnormal = f32_bits(f32_from_bits(ax) + 0.5f) - 0x3f000000u;
  /* Keep the top payload bits so distinct NaNs stay distinct where they can. */
  uint32_t nan = 0x7e00u | ((ax >> 13) & 0x03ffu);
  /* 0x477ff000 is 65520, halfway between 65504 (odd mantissa) and 2^16: ties to inf. */
  uint32_t r = bits_select(ax > 0x7f800000u, nan,
                           bits_select(ax >= 0x477ff000u, 0x7c00u,
                                       bits_select(ax >= 0x38800000u, normal, subnormal)));
  return (uint16_t)(sign | r);
}

/* bfloat16 is the top half of a float, so widening is a shift; NaN is quietened. */
static inline float bf16_to_f32(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  uint32_t is_nan = (bits & 0x7fffffffu) > 0x7f800000u;
  return f32_from_bits(bits | (is_nan << 22));
}

/* float -> bfloat16, round to nearest-even. Rounding carries into the exponent, so
 * values near FLT_MAX overflow to inf by themselves; only NaN needs its own case,
 * since rounding could carry a NaN's payload into an inf or a sign flip. */
static inline uint16_t f32_to_bf16(float f) {
  uint32_t x = f32_bits(f);
  uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  uint32_t nan = (x >> 16) | 0x0040u;
  return (uint16_t)bits_select((x & 0x7fffffffu) > 0x7f800000u, nan, rounded);
}

#endif

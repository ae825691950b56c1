/*
 * Exported float16/bfloat16 conversions. The implementation lives in half.h so the
 * reduction kernels can inline it; these are the out-of-line entry points.
 */
#include "collectives/half.h"
#include "collectives/reduce.h"

float mlcomm_half_to_float(uint16_t h) { return f16_to_f32(h); }

uint16_t mlcomm_float_to_half(float f) { return f32_to_f16(f); }

float mlcomm_bf16_to_float(uint16_t b) { return bf16_to_f32(b); }

uint16_t mlcomm_float_to_bf16(float f) { return f32_to_bf16(f); }

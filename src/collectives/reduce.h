/*
 * Reduction kernels shared by every transport: one implementation of each
 * datatype x op, so results are identical whichever transport carries the call.
 */
#ifndef MLCOMM_COLLECTIVES_REDUCE_H
#define MLCOMM_COLLECTIVES_REDUCE_H

#include <stddef.h>
#include <stdint.h>

#include "mlcomm/mlcomm.h"

/* inout[i] = inout[i] (op) in[i] for i < n. mlcommAvg reduces as a sum here; the
 * division happens once at the end (mlcomm_avg_finish). Integer sum and prod wrap
 * (two's complement); max/min of floats propagate NaN. float16/bfloat16 are widened
 * to float, combined, and rounded back to nearest-even. */
void mlcomm_reduce(mlcommDataType_t type, mlcommRedOp_t op, void *inout, const void *in,
                   size_t n);

/* out[i] = a[i] (op) b[i]; out may alias a or b. Same rules as mlcomm_reduce. */
void mlcomm_reduce3(mlcommDataType_t type, mlcommRedOp_t op, void *out, const void *a,
                    const void *b, size_t n);

/* The last step of mlcommAvg: buf[i] = buf[i] / nranks (integers truncate toward
 * zero; float16/bfloat16 divide in float and round to nearest-even). */
void mlcomm_avg_finish(mlcommDataType_t type, void *buf, size_t n, int nranks);

/* IEEE binary16 and bfloat16 conversions, round to nearest-even, NaN kept quiet. */
float mlcomm_half_to_float(uint16_t h);
uint16_t mlcomm_float_to_half(float f);
float mlcomm_bf16_to_float(uint16_t b);
uint16_t mlcomm_float_to_bf16(float f);

#endif

/*
 * patterns.c - the data: what every rank puts in its sendbuff, what every element of
 * recvbuff must hold afterwards, and the count of those that do not. Values are computed
 * as integers and stored in the benchmark's type, 16-bit floats included, so that the
 * host's expectation is exact and needs no tolerance.
 */
#include "harness_internal.h"

#include <string.h>

static int is_unsigned(mlcommDataType_t t) {
  return t == mlcommUint8 || t == mlcommUint32 || t == mlcommUint64;
}

static int is_float(mlcommDataType_t t) {
  return t == mlcommFloat16 || t == mlcommFloat32 || t == mlcommFloat64 ||
         t == mlcommBfloat16;
}

/* A cheap scramble of the index, so that patterns do not repeat with a short period and
 * misplaced blocks (allgather, reduce_scatter) or shifted elements are caught. */
static uint64_t mix_index(size_t i) { return ((uint64_t)i * UINT64_C(0x9E3779B97F4A7C15)) >> 40; }

/* Every value is a small integer, exactly representable in every type (half and bfloat16
 * included) and whose reductions stay exact:
 *  - data movement (no op): -99..99 (0..198 unsigned), period 199 in rank and index;
 *  - sum/max/min: -2..2 (0..4 unsigned), so sums fit int8/uint8 up to 63 ranks;
 *  - prod: +-1 or +-2, with 2 possible only on ranks 0..5, so |product| <= 64;
 *  - avg: the sum pattern; for float types multiplied by nranks so that the average is an
 *    integer (and -2..2, where any rounding of sum/n or sum*(1/n) is exact), for integer
 *    types left as is and checked with truncation toward zero. */
int64_t hb_input(const struct hb_call *c, int r, size_t i) {
  uint64_t mix = mix_index(i);
  int uns = is_unsigned(c->type);
  if (!c->coll->uses_op) {
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
  if (c->op == mlcommAvg && is_float(c->type)) v *= c->nranks;
  return v;
}

int64_t hb_reduced(const struct hb_call *c, size_t i) {
  int64_t acc = hb_input(c, 0, i);
  for (int r = 1; r < c->nranks; r++) {
    int64_t v = hb_input(c, r, i);
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

/* Encodes a small integer as an IEEE-style 16-bit float with mant_bits mantissa bits and
 * the given exponent bias (half: 10, 15; bfloat16: 7, 127). Only integers that are
 * exactly representable are ever passed, so the mantissa needs no rounding. */
static uint16_t encode16(int64_t v, int mant_bits, int bias) {
  uint16_t sign = v < 0 ? 0x8000u : 0u;
  uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  if (mag == 0) return sign;
  int e = 0;
  while ((mag >> (e + 1)) != 0) e++;
  uint64_t mant = e <= mant_bits ? mag << (mant_bits - e) : mag >> (e - mant_bits);
  return (uint16_t)(sign | (uint16_t)((e + bias) << mant_bits) |
                    (uint16_t)(mant & ((1u << mant_bits) - 1u)));
}

static void store(mlcommDataType_t t, void *buf, size_t i, int64_t v) {
  switch (t) {
  case mlcommInt8: ((int8_t *)buf)[i] = (int8_t)v; break;
  case mlcommUint8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
  case mlcommInt32: ((int32_t *)buf)[i] = (int32_t)v; break;
  case mlcommUint32: ((uint32_t *)buf)[i] = (uint32_t)v; break;
  case mlcommInt64: ((int64_t *)buf)[i] = v; break;
  case mlcommUint64: ((uint64_t *)buf)[i] = (uint64_t)v; break;
  case mlcommFloat16: ((uint16_t *)buf)[i] = encode16(v, 10, 15); break;
  case mlcommFloat32: ((float *)buf)[i] = (float)v; break;
  case mlcommFloat64: ((double *)buf)[i] = (double)v; break;
  case mlcommBfloat16: ((uint16_t *)buf)[i] = encode16(v, 7, 127); break;
  default: break;
  }
}

/* Whether element i holds v. 16-bit floats are compared as bit patterns, with +0 and -0
 * both accepted for 0 (a sum of x and -x may give either). */
static int holds(mlcommDataType_t t, const void *buf, size_t i, int64_t v) {
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
    uint16_t want = t == mlcommFloat16 ? encode16(v, 10, 15) : encode16(v, 7, 127);
    return b == want || (v == 0 && (b & 0x7fffu) == 0);
  }
  default: return 0;
  }
}

/* A byte pattern no expected value can take: 0xA5.. is a huge integer or a tiny
 * non-integer float, but as int8 it is -91, inside the data-movement pattern, so the
 * 8-bit types get 127 / 255 instead. */
void hb_fill_sentinel(const struct hb_call *c) {
  int byte = c->type == mlcommInt8 ? 0x7f : c->type == mlcommUint8 ? 0xff : 0xa5;
  memset(hb_host_view(c->recvbuff), byte, c->recv_count * hb_type_size(c->type));
  hb_upload(c->recvbuff, c->recv_count * hb_type_size(c->type));
}

void hb_fill_inputs(const struct hb_call *c) {
  void *send = hb_host_view(c->sendbuff);
  for (size_t i = 0; i < c->send_count; i++)
    store(c->type, send, i, hb_input(c, c->rank, i));
  hb_upload(c->sendbuff, c->send_count * hb_type_size(c->type));
}

uint64_t hb_count_wrong(const struct hb_call *c) {
  uint64_t wrong = 0;
  if (hb_download(c->recvbuff, c->check_count * hb_type_size(c->type)) != 0)
    return c->check_count ? c->check_count : 1;
  const void *recv = hb_host_view(c->recvbuff);
  for (size_t i = 0; i < c->check_count; i++)
    if (!holds(c->type, recv, i, c->coll->expected(c, i))) wrong++;
  return wrong;
}

/* In place, each result is the next call's input: a sum grows with every call (an
 * allreduce's nranks-fold, so a half passes 65504 and becomes inf within 16 calls on 2
 * ranks), a product is raised to the power nranks, and an average can decay towards
 * subnormals, which are slow on a CPU. Refilling the pattern before each timed round
 * would not bound this, since a round may hold all -n calls. Zero, or one for prod, is
 * left unchanged by its op on any number of ranks and in any in-place layout (MPI's
 * included), so every timed call sees the same ordinary values however many there are. */
void hb_fill_steady(const struct hb_call *c) {
  int64_t v = c->op == mlcommProd ? 1 : 0;
  void *send = hb_host_view(c->sendbuff);
  for (size_t i = 0; i < c->send_count; i++) store(c->type, send, i, v);
  hb_upload(c->sendbuff, c->send_count * hb_type_size(c->type));
}

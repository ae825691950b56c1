/* optim.c - AdamW. Element-wise, so any slice can be updated alone (ZeRO-1 shards)
 * and the result is the same bits whichever way the parameters are split: an
 * element's arithmetic does not depend on where its chunk starts. */
#include <math.h>

#include "gpt2.h"
#include "kernels.h"

#define ADAMW_CHUNK 16384L /* elements per task: a multiple of every vector width */

void gpt2_adamw_update(const gpt2_adamw *opt, float *params, const float *grads, float *m, float *v,
                       size_t n, long t) {
  const gpt2_kernels *kr = gpt2_kernels_get();
  const float b1c = 1.0f - powf(opt->beta1, (float)t), b2c = 1.0f - powf(opt->beta2, (float)t);
  const long total = (long)n;
#pragma omp parallel for schedule(static)
  for (long i = 0; i < total; i += ADAMW_CHUNK) {
    long k = total - i < ADAMW_CHUNK ? total - i : ADAMW_CHUNK;
    kr->adamw(params + i, grads + i, m + i, v + i, k, opt->lr, opt->beta1, opt->beta2, b1c, b2c,
              opt->eps, opt->weight_decay);
  }
}

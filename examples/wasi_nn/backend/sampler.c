/*
 * sampler.c - see sampler.h. Greedy decoding is gpt2_sample at temperature 0 (the model
 * library's own arg max), so the backend's greedy tokens are the trainer's.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "gpt2.h"

uint64_t sampler_seed(int64_t seed) {
  uint64_t x = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) ^ (uint64_t)clock() << 32;
  x += 0x9e3779b97f4a7c15ull; /* splitmix64, so seed 0 is a fine seed too */
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x ? x : 1;
}

static float coin(uint64_t *s) { /* xorshift64*, 24 bits -> [0,1) */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return (float)((*s * 0x2545f4914f6cdd1dull) >> 40) / 16777216.0f;
}

static void penalise(const settings *s, float *logits, int V, const int *recent, int n) {
  if (s->repeat_penalty == 1.0f && s->presence_penalty == 0.0f && s->frequency_penalty == 0.0f)
    return;
  int from = n > s->repeat_last_n ? n - s->repeat_last_n : 0;
  for (int i = from; i < n; i++) {
    int t = recent[i], seen = 0, count = 0;
    if (t < 0 || t >= V) continue;
    for (int j = from; j < i; j++) seen |= recent[j] == t;
    if (seen) continue; /* each distinct token once */
    for (int j = i; j < n; j++) count += recent[j] == t;
    float *l = &logits[t];
    *l = *l > 0 ? *l / s->repeat_penalty : *l * s->repeat_penalty;
    *l -= count * s->frequency_penalty + s->presence_penalty;
  }
}

static int by_val_desc(const void *a, const void *b) {
  float x = ((const sampler_cand *)a)->val, y = ((const sampler_cand *)b)->val;
  return (x < y) - (x > y);
}

int sampler_pick(const settings *s, float *logits, int V, const int *recent, int n,
                 sampler_cand *cand, uint64_t *rng) {
  penalise(s, logits, V, recent, n);
  if (s->temp <= 0.0f) return gpt2_sample(logits, V, 0.0f, 0.0f);

  /* candidates: the top_k best (kept sorted by insertion), or all */
  int nc = 0, k = s->top_k > 0 && s->top_k < V ? s->top_k : V;
  if (k < V) {
    for (int i = 0; i < V; i++) {
      if (nc == k && logits[i] <= cand[k - 1].val) continue;
      int j = nc < k ? nc++ : k - 1;
      while (j > 0 && cand[j - 1].val < logits[i]) cand[j] = cand[j - 1], j--;
      cand[j] = (sampler_cand){i, logits[i]};
    }
  } else {
    for (int i = 0; i < V; i++) cand[nc++] = (sampler_cand){i, logits[i]};
  }
  float mx = cand[0].val;
  for (int i = 1; i < nc; i++) mx = cand[i].val > mx ? cand[i].val : mx;
  double sum = 0.0;
  for (int i = 0; i < nc; i++) sum += cand[i].val = expf((cand[i].val - mx) / s->temp);
  for (int i = 0; i < nc; i++) cand[i].val = (float)(cand[i].val / sum);

  if (s->top_p < 1.0f) {
    /* The nucleus only holds tokens of probability >= (1 - top_p) / nc: all the others
     * together weigh less than 1 - top_p. Dropping them first keeps the sort short. */
    float eps = (1.0f - s->top_p) / (float)nc;
    int m = 0;
    for (int i = 0; i < nc; i++)
      if (cand[i].val >= eps) cand[m++] = cand[i];
    nc = m > 0 ? m : 1;
    qsort(cand, (size_t)nc, sizeof *cand, by_val_desc);
    double cum = 0.0;
    for (int i = 0; i < nc; i++)
      if ((cum += cand[i].val) >= s->top_p) {
        nc = i + 1;
        break;
      }
  }
  double total = 0.0;
  for (int i = 0; i < nc; i++) total += cand[i].val;
  double target = coin(rng) * total, cdf = 0.0;
  for (int i = 0; i < nc; i++)
    if (target < (cdf += cand[i].val)) return cand[i].idx;
  return cand[nc - 1].idx;
}

/* rng.h - a small deterministic generator (xorshift64*), as llm.c uses for sampling. */
#ifndef GPT2_MODEL_RNG_H
#define GPT2_MODEL_RNG_H

#include <math.h>
#include <stdint.h>

/* A state from any seed (0 would stay 0 forever, so it is mixed first). */
static inline uint64_t gpt2_rng_seed(uint64_t seed) {
  uint64_t s = seed ^ 0x9E3779B97F4A7C15ull;
  return s ? s : 0x9E3779B97F4A7C15ull;
}

static inline uint32_t gpt2_rng_u32(uint64_t *state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Uniform in [0, 1) with 24 random bits. */
static inline float gpt2_rng_f32(uint64_t *state) {
  return (float)(gpt2_rng_u32(state) >> 8) / 16777216.0f;
}

/* Standard normal (Box-Muller, one value per call). */
static inline float gpt2_rng_normal(uint64_t *state) {
  double u1 = ((double)(gpt2_rng_u32(state) >> 8) + 1.0) / 16777217.0; /* (0, 1] */
  double u2 = (double)(gpt2_rng_u32(state) >> 8) / 16777216.0;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

#endif /* GPT2_MODEL_RNG_H */

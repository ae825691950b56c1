/*
 * sampler.h - the next token from logits: penalties over recent tokens, then greedy, or
 * temperature with top-k and top-p (nucleus), as llama.cpp orders them. Deterministic
 * for a seed: the generator is the caller's 64-bit state.
 */
#ifndef WASI_NN_SAMPLER_H
#define WASI_NN_SAMPLER_H

#include <stdint.h>

#include "settings.h"

typedef struct {
  int idx;
  float val;
} sampler_cand;

/* 64-bit generator state from a seed (-1: from the clock). */
uint64_t sampler_seed(int64_t seed);

/* Picks a token from logits (V floats; modified in place by the penalties). recent holds
 * the last n tokens of the sequence. cand is scratch for V entries. */
int sampler_pick(const settings *s, float *logits, int V, const int *recent, int n,
                 sampler_cand *cand, uint64_t *rng);

#endif

/*
 * test_train_diloco_ref.c - a serial reference for DiLoCo with H=1, outer lr 1 and
 * momentum 0: R simulated ranks each take one AdamW step (own optimizer state, own
 * rows of the batch, from the shared parameters), then the shared parameters become
 * their average. That is plain parameter averaging after every step; test_train.py
 * checks that `train_gpt2 --sync diloco --inner-steps 1 --outer-lr 1
 * --outer-momentum 0` on R ranks gives the same losses.
 *
 * usage: test_train_diloco_ref SHARD R B T STEPS LR L C NH maxT V SEED
 * prints one mean train loss per step (%.9g).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataloader.h"
#include "gpt2.h"

int main(int argc, char **argv) {
  if (argc != 13) {
    fprintf(stderr, "usage: %s SHARD R B T STEPS LR L C NH maxT V SEED\n", argv[0]);
    return 2;
  }
  const char *shard = argv[1];
  int R = atoi(argv[2]), B = atoi(argv[3]), T = atoi(argv[4]), steps = atoi(argv[5]);
  float lr = strtof(argv[6], NULL);
  gpt2_config cfg = {.num_layers = atoi(argv[7]),
                     .channels = atoi(argv[8]),
                     .num_heads = atoi(argv[9]),
                     .max_seq_len = atoi(argv[10]),
                     .vocab_size = atoi(argv[11])};
  cfg.padded_vocab_size = gpt2_padded_vocab(cfg.vocab_size);
  uint64_t seed = strtoull(argv[12], NULL, 10);
  char err[512];
  gpt2_model m;
  if (gpt2_model_setup(&m, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  size_t n = m.layout.num_params;
  float *global = malloc(n * sizeof(float)), *sum = malloc(n * sizeof(float));
  float *grads = malloc(n * sizeof(float));
  float **params = calloc(R, sizeof *params), **mom1 = calloc(R, sizeof *mom1);
  float **mom2 = calloc(R, sizeof *mom2);
  gpt2_loader **loaders = calloc(R, sizeof *loaders);
  m.params = global;
  gpt2_init_params(&m, seed);
  for (int r = 0; r < R; r++) {
    params[r] = malloc(n * sizeof(float));
    mom1[r] = calloc(n, sizeof(float));
    mom2[r] = calloc(n, sizeof(float));
    if (gpt2_loader_open(&loaders[r], shard, B, T, r, R, 0, seed, err, sizeof err) != 0) {
      fprintf(stderr, "%s\n", err);
      return 1;
    }
  }
  gpt2_acts *a;
  if (gpt2_acts_create(&a, &cfg, B, T, 1, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  int *inputs = malloc((size_t)B * T * sizeof(int)), *targets = malloc((size_t)B * T * sizeof(int));
  const gpt2_adamw opt = {lr, 0.9f, 0.999f, 1e-8f, 0.0f};
  for (int step = 1; step <= steps; step++) {
    double loss = 0.0;
    memset(sum, 0, n * sizeof(float));
    for (int r = 0; r < R; r++) {
      memcpy(params[r], global, n * sizeof(float));
      m.params = params[r];
      if (gpt2_loader_next(loaders[r], inputs, targets) != 0) {
        fprintf(stderr, "%s\n", gpt2_loader_error(loaders[r]));
        return 1;
      }
      loss += gpt2_forward(&m, a, inputs, targets);
      gpt2_backward(&m, a, grads, inputs, targets, NULL);
      gpt2_adamw_update(&opt, params[r], grads, mom1[r], mom2[r], n, step);
      for (size_t i = 0; i < n; i++) sum[i] += params[r][i];
    }
    for (size_t i = 0; i < n; i++) global[i] = sum[i] / R;
    printf("%.9g\n", loss / R);
  }
  return 0;
}

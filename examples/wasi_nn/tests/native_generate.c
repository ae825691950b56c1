/*
 * native_generate.c - greedy generation with the GPT-2 model library directly (no
 * WASI-NN): the reference the end-to-end tests compare the guest with, and the native
 * side of the speed figures in docs/wasi_nn.md.
 *
 * usage: native_generate MODEL TOKENIZER PROMPT N [--profile]
 * Prints the text of N greedy tokens (fewer at end of text). With --profile, stderr gets
 * tokens/s of the generation and the time of each position.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpt2.h"
#include "tokenizer.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: native_generate MODEL TOKENIZER PROMPT N [--profile]\n");
    return 2;
  }
  int steps = atoi(argv[4]), profile = argc > 5 && !strcmp(argv[5], "--profile");
  char err[256];
  gpt2_model m;
  gpt2_config cfg;
  gpt2_tokenizer *tok;
  gpt2_encoder *enc;
  gpt2_kv *kv;
  if (gpt2_checkpoint_read_config(argv[1], &cfg, NULL, err, sizeof err) != 0 ||
      gpt2_model_setup(&m, &cfg, err, sizeof err) != 0 ||
      !(m.params = malloc(m.layout.num_params * sizeof(float))) ||
      gpt2_checkpoint_read_params(argv[1], &m, err, sizeof err) != 0 ||
      gpt2_tokenizer_load(&tok, argv[2], err, sizeof err) != 0 ||
      gpt2_encoder_new(&enc, tok, err, sizeof err) != 0 ||
      gpt2_kv_create(&kv, &cfg, cfg.max_seq_len, err, sizeof err) != 0) {
    fprintf(stderr, "native_generate: %s\n", err);
    return 1;
  }
  size_t len = strlen(argv[3]);
  int *ids = malloc((len + 1) * sizeof(int));
  int n = (int)gpt2_encoder_encode(enc, argv[3], len, ids, len);
  if (n == 0) ids[n++] = (int)gpt2_tokenizer_eot(tok);
  float *logits = malloc((size_t)cfg.vocab_size * sizeof(float));
  double t0 = now();
  for (int i = 0; i < n; i++)
    if (gpt2_forward_token(&m, kv, ids[i], logits) != 0) return fprintf(stderr, "prompt too long\n"), 1;
  double t1 = now();
  int made = 0;
  for (int s = 0; s < steps; s++) {
    int t = gpt2_sample(logits, cfg.vocab_size, 0.0f, 0.0f);
    if (t == (int)gpt2_tokenizer_eot(tok)) break;
    size_t bl;
    const char *b = gpt2_tokenizer_decode(tok, (uint32_t)t, &bl);
    fwrite(b, 1, bl, stdout);
    made++;
    if (s + 1 == steps) break;
    double a = now();
    if (gpt2_forward_token(&m, kv, t, logits) != 0) break;
    if (profile) fprintf(stderr, "position %d: %.3f ms\n", gpt2_kv_length(kv) - 1, (now() - a) * 1e3);
  }
  double t2 = now();
  printf("\n");
  if (profile)
    fprintf(stderr, "prompt %d tokens in %.2f ms; %d generated in %.2f ms: %.1f tokens/s; "
            "total %.3f ms\n", n, (t1 - t0) * 1e3, made, (t2 - t1) * 1e3, made / (t2 - t1),
            (t2 - t0) * 1e3);
  return 0;
}

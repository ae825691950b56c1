/* Shared by the tokenizer and data tests: a check macro, skip helper, and a toy byte-level
 * BPE vocabulary in GPT-2's layout that needs no downloaded files. */
#ifndef TEST_TOKENIZER_TOY_H
#define TEST_TOKENIZER_TOY_H

#include "tokenizer.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
      test_failures++;                                                           \
    }                                                                            \
  } while (0)

/* err must contain every one of the NULL-terminated fragments. */
#define CHECK_ERR(err, ...)                                                      \
  do {                                                                           \
    const char *frags_[] = {__VA_ARGS__, NULL};                                  \
    for (int k_ = 0; frags_[k_]; k_++) {                                         \
      if (strstr((err), frags_[k_]) == NULL) {                                   \
        fprintf(stderr, "%s:%d: error \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, \
                (err), frags_[k_]);                                              \
        test_failures++;                                                         \
      }                                                                          \
    }                                                                            \
  } while (0)

static inline int test_skip(const char *why) {
  printf("SKIP: %s\n", why);
  return 77; /* Meson's "skipped" exit code */
}

static inline int test_result(void) {
  if (test_failures) fprintf(stderr, "%d check(s) failed\n", test_failures);
  else printf("all checks passed\n");
  return test_failures ? 1 : 0;
}

/* Toy merges on top of the 256 byte tokens (ids 256...), then <|endoftext|>. */
static const char *const toy_merges[][2] = {
    {"h", "e"},     /* 256 he */
    {"l", "l"},     /* 257 ll */
    {"he", "ll"},   /* 258 hell */
    {"hell", "o"},  /* 259 hello */
    {" ", "w"},     /* 260 " w" */
    {"o", "r"},     /* 261 or */
    {" w", "or"},   /* 262 " wor" */
    {"l", "d"},     /* 263 ld */
    {" wor", "ld"}, /* 264 " world" */
    {"t", "'"},     /* 265 t' (never made: GPT-2's regex splits "it's" as "it" "'s") */
    {"1", "2"},     /* 266 12 */
    {"a", "1"},     /* 267 a1 (never made: letters and digits are separate pieces) */
    {"d", "l"},     /* 268 dl (loses to the lower-ranked ll in "dll") */
};
#define TOY_NMERGES (sizeof(toy_merges) / sizeof(toy_merges[0]))
#define TOY_VOCAB (256 + TOY_NMERGES + 1)
#define TOY_EOT (TOY_VOCAB - 1)

/* Byte tokens in GPT-2's order: ids 0..187 the printable bytes by code point, then the
 * others (gpt2_byte_to_unicode orders them the same way). */
static inline gpt2_tokenizer *toy_tokenizer(void) {
  static char storage[TOY_VOCAB][32];
  const char *tokens[TOY_VOCAB];
  size_t lens[TOY_VOCAB];
  uint32_t id = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (int b = 0; b < 256; b++) {
      int printable = gpt2_byte_to_unicode((uint8_t)b) == (uint32_t)b;
      if (printable != (pass == 0)) continue;
      storage[id][0] = (char)b;
      lens[id] = 1;
      id++;
    }
  }
  for (size_t m = 0; m < TOY_NMERGES; m++, id++) {
    size_t a = strlen(toy_merges[m][0]), b = strlen(toy_merges[m][1]);
    memcpy(storage[id], toy_merges[m][0], a);
    memcpy(storage[id] + a, toy_merges[m][1], b);
    lens[id] = a + b;
  }
  memcpy(storage[id], GPT2_EOT_TEXT, strlen(GPT2_EOT_TEXT));
  lens[id] = strlen(GPT2_EOT_TEXT);
  for (uint32_t i = 0; i < TOY_VOCAB; i++) tokens[i] = storage[i];
  gpt2_tokenizer *t = NULL;
  char err[256];
  if (gpt2_tokenizer_from_vocab(&t, tokens, lens, TOY_VOCAB, TOY_EOT, err, sizeof(err)) != 0) {
    fprintf(stderr, "toy vocabulary: %s\n", err);
    exit(1);
  }
  return t;
}

/* A fresh directory for one test's files. */
static inline const char *test_tmpdir(char *buf, size_t len) {
  const char *base = getenv("TMPDIR");
  snprintf(buf, len, "%s/gpt2test.XXXXXX", base && *base ? base : "/tmp");
  if (mkdtemp(buf) == NULL) {
    perror("mkdtemp");
    exit(1);
  }
  return buf;
}

static inline int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(path);
}

/* Removes a directory made by test_tmpdir, with what is in it. */
static inline void test_rmtree(const char *dir) {
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

#endif

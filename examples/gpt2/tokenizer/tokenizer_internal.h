/* Shared inside the tokenizer: error text and the BPE merge table. Not installed. */
#ifndef GPT2_TOKENIZER_INTERNAL_H
#define GPT2_TOKENIZER_INTERNAL_H

#include "tokenizer.h"

#if defined(__GNUC__)
#define GPT2_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define GPT2_PRINTF(a, b)
#endif

/* snprintf into err when err is not NULL and errlen > 0. */
void gpt2_set_err(char *err, size_t errlen, const char *fmt, ...) GPT2_PRINTF(3, 4);

/* The merge table derived from a vocabulary in GPT-2's layout (see tokenizer.h). */
typedef struct gpt2_bpe gpt2_bpe;

int gpt2_bpe_new(gpt2_bpe **out, const gpt2_tokenizer *t, char *err, size_t errlen);
void gpt2_bpe_free(gpt2_bpe *b);

uint32_t gpt2_bpe_num_merges(const gpt2_bpe *b);

/* Merge number rank (0 = applied first) joins left and right into result. */
void gpt2_bpe_merge(const gpt2_bpe *b, uint32_t rank, uint32_t *left, uint32_t *right,
                    uint32_t *result);

/* BPE of one pre-token of n >= 1 bytes: starts from one byte token per byte and applies
 * the lowest-ranked merge present, all its occurrences left to right, until none applies
 * (GPT-2's encoder.py loop). ids must hold n entries; returns the number of tokens. */
size_t gpt2_bpe_encode_piece(const gpt2_bpe *b, const unsigned char *bytes, size_t n,
                             uint32_t *ids);

#endif

/* GPT-2 encoding: PCRE2 pre-tokenisation, then BPE of each piece. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

/* GPT-2's pattern (encoder.py). Contractions are lowercase only, as in GPT-2. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct gpt2_encoder {
  gpt2_bpe *bpe;
  pcre2_code *re;
  pcre2_match_data *match;
  uint32_t *scratch; /* one piece's ids */
  size_t scratch_cap;
};

int gpt2_encoder_new(gpt2_encoder **out, const gpt2_tokenizer *t, char *err, size_t errlen) {
  *out = NULL;
  gpt2_encoder *e = calloc(1, sizeof(*e));
  if (e == NULL) {
    gpt2_set_err(err, errlen, "out of memory for an encoder");
    return -1;
  }
  if (gpt2_bpe_new(&e->bpe, t, err, errlen) != 0) goto fail;
  int code;
  PCRE2_SIZE offset;
  /* MATCH_INVALID_UTF: invalid UTF-8 in the text is skipped by the matcher instead of
   * failing the whole match; encode() turns the skipped bytes into pieces of their own. */
  e->re = pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &offset, NULL);
  if (e->re == NULL) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(code, msg, sizeof(msg));
    gpt2_set_err(err, errlen, "PCRE2 rejected GPT-2's pattern at offset %zu: %s",
                 (size_t)offset, (const char *)msg);
    goto fail;
  }
  (void)pcre2_jit_compile(e->re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
  e->match = pcre2_match_data_create_from_pattern(e->re, NULL);
  e->scratch_cap = 256;
  e->scratch = malloc(e->scratch_cap * sizeof(uint32_t));
  if (e->match == NULL || e->scratch == NULL) {
    gpt2_set_err(err, errlen, "out of memory for an encoder");
    goto fail;
  }
  *out = e;
  return 0;
fail:
  gpt2_encoder_free(e);
  return -1;
}

void gpt2_encoder_free(gpt2_encoder *e) {
  if (e == NULL) return;
  gpt2_bpe_free(e->bpe);
  pcre2_match_data_free(e->match);
  pcre2_code_free(e->re);
  free(e->scratch);
  free(e);
}

/* BPE of one piece, appended to ids[*count...] as far as cap allows. */
static int encode_piece(gpt2_encoder *e, const unsigned char *p, size_t n, int *ids,
                         size_t cap, size_t *count) {
  if (n > e->scratch_cap) {
    size_t cap2 = e->scratch_cap;
    while (cap2 < n) cap2 *= 2;
    uint32_t *grown = realloc(e->scratch, cap2 * sizeof(uint32_t));
    if (grown == NULL) return -1;
    e->scratch = grown;
    e->scratch_cap = cap2;
  }
  size_t m = gpt2_bpe_encode_piece(e->bpe, p, n, e->scratch);
  for (size_t i = 0; i < m; i++, (*count)++)
    if (*count < cap) ids[*count] = (int)e->scratch[i];
  return 0;
}

size_t gpt2_encoder_encode(gpt2_encoder *e, const char *text, size_t len, int *ids,
                           size_t cap) {
  const unsigned char *s = (const unsigned char *)text;
  size_t count = 0, pos = 0;
  while (pos < len) {
    int rc = pcre2_match(e->re, s, len, pos, 0, e->match, NULL);
    size_t start = len, end = len;
    if (rc > 0) {
      PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->match);
      start = ov[0];
      end = ov[1];
    }
    /* Bytes before the match are invalid UTF-8: a piece of their own. */
    if (start > pos && encode_piece(e, s + pos, start - pos, ids, cap, &count) != 0)
      return SIZE_MAX;
    if (end > start && encode_piece(e, s + start, end - start, ids, cap, &count) != 0)
      return SIZE_MAX;
    /* Every alternative of the pattern consumes at least one character. */
    pos = end > pos ? end : len;
  }
  return count;
}

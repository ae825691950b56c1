/* Encoding with a toy vocabulary: GPT-2's pre-tokenisation (PCRE2) and the BPE loop,
 * round trips of arbitrary bytes. Needs PCRE2, no downloaded files. */
#include "test_tokenizer_toy.h"

#ifndef GPT2_TOKENIZER_HAVE_ENCODE
int main(void) { return test_skip("built without PCRE2 (libpcre2-dev): no encode"); }
#else

static gpt2_tokenizer *tok;
static gpt2_encoder *enc;

static uint32_t byte_id(unsigned char c) {
  for (uint32_t i = 0; i < 256; i++) {
    size_t len;
    const char *s = gpt2_tokenizer_decode(tok, i, &len);
    if (len == 1 && (unsigned char)s[0] == c) return i;
  }
  return UINT32_MAX;
}

/* Encodes text and compares with the expected ids (terminated by -1). */
static int encodes_as(const char *text, const int *want) {
  int ids[256];
  size_t n = gpt2_encoder_encode(enc, text, strlen(text), ids, 256);
  size_t m = 0;
  while (want[m] >= 0) m++;
  int ok = n == m && memcmp(ids, want, n * sizeof(int)) == 0;
  if (!ok) {
    fprintf(stderr, "\"%s\" ->", text);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
  }
  return ok;
}

static int round_trips(const char *text, size_t len) {
  int *ids = malloc((len + 1) * sizeof(int));
  char *back = malloc(len + 1);
  size_t n = gpt2_encoder_encode(enc, text, len, ids, len);
  int ok = n <= len && gpt2_tokenizer_decode_all(tok, ids, n, back, len) == len &&
           memcmp(back, text, len) == 0;
  free(ids);
  free(back);
  return ok;
}

static void test_pieces(void) {
  int sp = (int)byte_id(' '), i_ = (int)byte_id('i'), t_ = (int)byte_id('t'),
      q = (int)byte_id('\''), s_ = (int)byte_id('s'), a = (int)byte_id('a'),
      one = (int)byte_id('1'), S = (int)byte_id('S'), T = (int)byte_id('T');
  CHECK(sp == 220);
  CHECK(encodes_as("hello world", (int[]){259, 264, -1}));
  CHECK(encodes_as("hello hello", (int[]){259, sp, 259, -1}));
  /* \s+(?!\S): of two spaces before a word, the first is a piece, the second joins it. */
  CHECK(encodes_as("  hello", (int[]){sp, sp, 259, -1}));
  /* Contractions are pieces of their own (so no t' merge), lowercase only. */
  CHECK(encodes_as("it's", (int[]){i_, t_, q, s_, -1}));
  CHECK(encodes_as("IT'S", (int[]){byte_id('I'), T, q, S, -1}));
  /* Letters and digits are separate pieces: 12 merges, a1 does not. */
  CHECK(encodes_as("a12", (int[]){a, 266, -1}));
  CHECK(encodes_as("a1", (int[]){a, one, -1}));
  /* The end-of-text text is ordinary text, never the EOT id. */
  int ids[64];
  size_t n = gpt2_encoder_encode(enc, GPT2_EOT_TEXT, 13, ids, 64);
  int has_eot = 0;
  for (size_t k = 0; k < n; k++) has_eot |= ids[k] == (int)TOY_EOT;
  CHECK(n > 1 && !has_eot);
  /* Empty text, and the snprintf-like cap. */
  CHECK(gpt2_encoder_encode(enc, "", 0, ids, 64) == 0);
  ids[1] = -7;
  CHECK(gpt2_encoder_encode(enc, "hello world", 11, ids, 1) == 2 && ids[0] == 259 &&
        ids[1] == -7);
}

static void test_round_trips(void) {
  CHECK(round_trips("h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac 3.14 \xf0\x9f\x98\x80!", 26));
  CHECK(round_trips("a\xff" "b\xc3", 4));   /* invalid UTF-8 */
  CHECK(round_trips("a\0b\n\n\t x", 9));     /* NUL and whitespace runs */
  /* Random byte strings, biased towards text. */
  const char alphabet[] = "ab Z9'\n\t.\xc3\xa9\xe2\x82\xac\xff\x80";
  uint64_t s = 12345;
  int all = 1;
  for (int round = 0; round < 2000; round++) {
    char buf[80];
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    size_t len = (size_t)(s >> 58);
    for (size_t k = 0; k < len; k++) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      buf[k] = (s >> 60) < 14 ? alphabet[(s >> 33) % (sizeof(alphabet) - 1)]
                              : (char)(s >> 40);
    }
    if (!round_trips(buf, len)) {
      all = 0;
      fprintf(stderr, "round trip failed for a string of %zu bytes (round %d)\n", len, round);
      break;
    }
  }
  CHECK(all);
}

int main(void) {
  char err[256];
  tok = toy_tokenizer();
  if (gpt2_encoder_new(&enc, tok, err, sizeof(err)) != 0) {
    fprintf(stderr, "encoder: %s\n", err);
    return 1;
  }
  test_pieces();
  test_round_trips();
  gpt2_encoder_free(enc);
  gpt2_tokenizer_free(tok);
  return test_result();
}
#endif

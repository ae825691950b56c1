/* gpt2_prepare: text files -> llm.c token shards (train/val) and tokenizer file.
 *
 *   gpt2_prepare --encoder encoder.json --bpe vocab.bpe --out-dir DIR [options] input.txt...
 *   gpt2_prepare --tokenizer tokenizer.bin --out-dir DIR [options] input.txt...
 *
 * Each input file (or, with --split-paragraphs, each blank-line separated paragraph) is a
 * document; every document is preceded by the end-of-text token, as llm.c's data scripts
 * do. The first --val-fraction of all tokens become DIR/val_NNNNNN.bin, the rest
 * DIR/train_NNNNNN.bin, each shard at most --shard-tokens tokens. DIR/tokenizer.bin is the
 * llm.c tokenizer file (version 2). Old train_/val_ shards in DIR are removed first, so a
 * loader pattern such as DIR/train_*.bin sees this run's shards only. */
#include "shard.h"
#include "tokenizer.h"

#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROG "gpt2_prepare"

struct options {
  const char *encoder, *bpe, *tokenizer, *out_dir;
  double val_fraction;
  long long shard_tokens;
  int split_paragraphs, quiet;
};

struct tokens {
  uint16_t *v;
  size_t n, cap;
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " (--encoder encoder.json --bpe vocab.bpe | --tokenizer tokenizer.bin)\n"
          "                    --out-dir DIR [--val-fraction F] [--shard-tokens N]\n"
          "                    [--split-paragraphs] [--quiet] INPUT...\n"
          "Tokenises the INPUT text files (- for standard input) with GPT-2's BPE into llm.c\n"
          "token shards DIR/val_000000.bin, DIR/train_000000.bin... and DIR/tokenizer.bin.\n"
          "  --val-fraction F     share of the tokens, from the start, for validation\n"
          "                       (0 <= F < 1; default 0.1)\n"
          "  --shard-tokens N     tokens per shard at most (default 100000000)\n"
          "  --split-paragraphs   a document per blank-line separated paragraph\n"
          "                       (default: a document per file)\n");
}

static char *read_all(const char *path, size_t *size) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, PROG ": %s: cannot open: %s\n", path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    char *grown = realloc(buf, cap * 2);
    if (grown == NULL) free(buf);
    buf = grown;
    cap *= 2;
  }
  int bad = buf == NULL || ferror(f);
  if (f != stdin) fclose(f);
  if (bad) {
    fprintf(stderr, PROG ": %s: cannot read%s\n", path, buf ? "" : " (out of memory)");
    free(buf);
    return NULL;
  }
  *size = n;
  return buf;
}

static int push(struct tokens *t, int id) {
  if (id < 0 || id > UINT16_MAX) {
    fprintf(stderr, PROG ": token id %d does not fit a uint16 shard\n", id);
    return -1;
  }
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 1 << 16;
    uint16_t *v = realloc(t->v, cap * sizeof(uint16_t));
    if (v == NULL) {
      fprintf(stderr, PROG ": out of memory after %zu tokens\n", t->n);
      return -1;
    }
    t->v = v;
    t->cap = cap;
  }
  t->v[t->n++] = (uint16_t)id;
  return 0;
}

/* EOT, then the document's tokens. */
static int encode_document(gpt2_encoder *e, uint32_t eot, const char *text, size_t len,
                           int *scratch, struct tokens *out) {
  if (push(out, (int)eot) != 0) return -1;
  size_t n = gpt2_encoder_encode(e, text, len, scratch, len);
  if (n == SIZE_MAX) {
    fprintf(stderr, PROG ": out of memory while encoding\n");
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if (push(out, scratch[i]) != 0) return -1;
  return 0;
}

/* Length of the paragraph at text: up to and including the blank lines that end it. */
static size_t paragraph_length(const char *text, size_t len) {
  size_t i = 0;
  while (i < len) {
    const char *nl = memchr(text + i, '\n', len - i);
    if (nl == NULL) return len;
    i = (size_t)(nl - text) + 1;
    size_t j = i, blank = 0;
    for (;;) { /* swallow the blank lines after this newline */
      size_t k = j;
      while (k < len && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r')) k++;
      if (k < len && text[k] == '\n') {
        j = k + 1;
        blank = 1;
      } else {
        break;
      }
    }
    if (blank) return j;
  }
  return len;
}

static int encode_inputs(gpt2_encoder *e, uint32_t eot, char **inputs, int ninputs,
                         int split_paragraphs, struct tokens *out, size_t *ndocs) {
  for (int f = 0; f < ninputs; f++) {
    size_t len;
    char *text = read_all(inputs[f], &len);
    if (text == NULL) return -1;
    int *scratch = malloc((len ? len : 1) * sizeof(int));
    if (scratch == NULL) {
      fprintf(stderr, PROG ": %s: out of memory\n", inputs[f]);
      free(text);
      return -1;
    }
    int rc = 0;
    if (!split_paragraphs) {
      rc = encode_document(e, eot, text, len, scratch, out);
      (*ndocs)++;
    } else {
      for (size_t pos = 0; rc == 0 && pos < len;) {
        size_t n = paragraph_length(text + pos, len - pos);
        rc = encode_document(e, eot, text + pos, n, scratch, out);
        (*ndocs)++;
        pos += n;
      }
    }
    free(scratch);
    free(text);
    if (rc != 0) return -1;
  }
  return 0;
}

static int remove_old_shards(const char *dir) {
  const char *kinds[2] = {"train", "val"};
  for (int k = 0; k < 2; k++) {
    char pattern[4096];
    snprintf(pattern, sizeof(pattern), "%s/%s_[0-9][0-9][0-9][0-9][0-9][0-9].bin", dir, kinds[k]);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0) continue;
    for (size_t i = 0; i < g.gl_pathc; i++) {
      if (remove(g.gl_pathv[i]) != 0) {
        fprintf(stderr, PROG ": %s: cannot remove the old shard: %s\n", g.gl_pathv[i],
                strerror(errno));
        globfree(&g);
        return -1;
      }
    }
    globfree(&g);
  }
  return 0;
}

static int write_split(const char *dir, const char *kind, const uint16_t *v, size_t n,
                       long long per_shard, int quiet) {
  char err[512], path[4096];
  for (size_t start = 0, i = 0; start < n; start += (size_t)per_shard, i++) {
    size_t count = n - start < (size_t)per_shard ? n - start : (size_t)per_shard;
    snprintf(path, sizeof(path), "%s/%s_%06zu.bin", dir, kind, i);
    if (gpt2_shard_write(path, v + start, count, err, sizeof(err)) != 0) {
      fprintf(stderr, PROG ": %s\n", err);
      return -1;
    }
    if (!quiet) printf("%s: %zu tokens\n", path, count);
  }
  return 0;
}

static int parse_args(int argc, char **argv, struct options *o) {
  static const struct option longopts[] = {
      {"encoder", required_argument, 0, 'e'},      {"bpe", required_argument, 0, 'b'},
      {"tokenizer", required_argument, 0, 't'},    {"out-dir", required_argument, 0, 'o'},
      {"val-fraction", required_argument, 0, 'v'}, {"shard-tokens", required_argument, 0, 's'},
      {"split-paragraphs", no_argument, 0, 'p'},   {"quiet", no_argument, 0, 'q'},
      {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
  *o = (struct options){.val_fraction = 0.1, .shard_tokens = 100000000};
  int c;
  char *end;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'e': o->encoder = optarg; break;
    case 'b': o->bpe = optarg; break;
    case 't': o->tokenizer = optarg; break;
    case 'o': o->out_dir = optarg; break;
    case 'p': o->split_paragraphs = 1; break;
    case 'q': o->quiet = 1; break;
    case 'v':
      o->val_fraction = strtod(optarg, &end);
      if (*end || end == optarg || !(o->val_fraction >= 0 && o->val_fraction < 1)) {
        fprintf(stderr, PROG ": --val-fraction %s: expected a number in [0, 1)\n", optarg);
        return -1;
      }
      break;
    case 's':
      o->shard_tokens = strtoll(optarg, &end, 10);
      if (*end || end == optarg || o->shard_tokens < 2 ||
          o->shard_tokens > GPT2_SHARD_MAX_TOKENS) {
        fprintf(stderr, PROG ": --shard-tokens %s: expected an integer in [2, %lld]\n", optarg,
                GPT2_SHARD_MAX_TOKENS);
        return -1;
      }
      break;
    case 'h': usage(stdout); exit(0);
    default: usage(stderr); return -1;
    }
  }
  const char *missing = NULL;
  if (o->out_dir == NULL) missing = "--out-dir";
  else if (o->tokenizer == NULL && (o->encoder == NULL || o->bpe == NULL))
    missing = "--tokenizer, or --encoder and --bpe";
  else if (optind >= argc) missing = "an input file";
  if (missing) {
    fprintf(stderr, PROG ": missing %s (see --help)\n", missing);
    return -1;
  }
  if (o->tokenizer && (o->encoder || o->bpe)) {
    fprintf(stderr, PROG ": give --tokenizer or --encoder/--bpe, not both\n");
    return -1;
  }
  return 0;
}

static gpt2_tokenizer *load_tokenizer(const struct options *o) {
  gpt2_tokenizer *t = NULL;
  char err[512];
  int rc;
  if (o->tokenizer) {
    rc = gpt2_tokenizer_load(&t, o->tokenizer, err, sizeof(err));
  } else {
#ifdef GPT2_TOKENIZER_HAVE_IMPORT
    rc = gpt2_tokenizer_from_openai(&t, o->encoder, o->bpe, err, sizeof(err));
#else
    snprintf(err, sizeof(err), "%s: reading encoder.json needs cJSON, which this build lacks; "
             "use --tokenizer", o->encoder);
    rc = -1;
#endif
  }
  if (rc != 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return NULL;
  }
  return t;
}

int main(int argc, char **argv) {
  struct options o;
  if (parse_args(argc, argv, &o) != 0) return 2;
  if (mkdir(o.out_dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, PROG ": %s: cannot create the output directory: %s\n", o.out_dir,
            strerror(errno));
    return 1;
  }
  gpt2_tokenizer *tok = load_tokenizer(&o);
  if (tok == NULL) return 1;
  int status = 1;
  gpt2_encoder *enc = NULL;
  struct tokens all = {0};
  size_t ndocs = 0;
  char err[512], path[4096];
  if (gpt2_encoder_new(&enc, tok, err, sizeof(err)) != 0) {
    fprintf(stderr, PROG ": %s: %s\n", o.tokenizer ? o.tokenizer : o.encoder, err);
    goto done;
  }
  if (encode_inputs(enc, gpt2_tokenizer_eot(tok), argv + optind, argc - optind,
                    o.split_paragraphs, &all, &ndocs) != 0)
    goto done;
  size_t nval = (size_t)(o.val_fraction * (double)all.n + 0.5);
  if (all.n - nval < 2) {
    fprintf(stderr, PROG ": only %zu tokens, too few for a training split\n", all.n);
    goto done;
  }
  if (remove_old_shards(o.out_dir) != 0 ||
      write_split(o.out_dir, "val", all.v, nval, o.shard_tokens, o.quiet) != 0 ||
      write_split(o.out_dir, "train", all.v + nval, all.n - nval, o.shard_tokens, o.quiet) != 0)
    goto done;
  snprintf(path, sizeof(path), "%s/tokenizer.bin", o.out_dir);
  if (gpt2_tokenizer_save(tok, path, err, sizeof(err)) != 0) {
    fprintf(stderr, PROG ": %s\n", err);
    goto done;
  }
  if (!o.quiet)
    printf("%s: vocab %u, eot %u\n%zu document(s), %zu tokens (%zu val, %zu train)\n", path,
           gpt2_tokenizer_vocab_size(tok), gpt2_tokenizer_eot(tok), ndocs, all.n, nval,
           all.n - nval);
  status = 0;
done:
  free(all.v);
  gpt2_encoder_free(enc);
  gpt2_tokenizer_free(tok);
  return status;
}

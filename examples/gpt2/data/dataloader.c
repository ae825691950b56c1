/* Data-parallel batches from llm.c token shards (the rule is in dataloader.h). */
#include "dataloader.h"
#include "data_internal.h"
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct shard_info {
  char *path;
  int64_t ntok;
  int64_t nbatches; /* floor((ntok - 1) / (nranks * B * T)) */
};

struct gpt2_loader {
  char *pattern;
  int B, T, rank, nranks, shuffle;
  uint64_t seed;
  size_t nshards;
  struct shard_info *shards;
  long total_batches;

  /* Position: the next batch is batch_order[batch] of file shard_order[shard]. */
  int64_t shard, batch, epoch;
  uint64_t rng;
  size_t *shard_order;    /* this epoch's shard order */
  int64_t order_epoch;    /* the epoch shard_order was drawn for; -1: none */
  int64_t *batch_order;   /* the current shard's batch order (shuffle only) */

  int fd;                 /* the open shard, file index fd_file */
  size_t fd_file;
  unsigned char *buf;     /* B*T + 1 little-endian uint16 */
  char err[512];
};

/* ---- shuffling: splitmix64, seeded from (seed, epoch, shard position) only ---- */

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t s = a ^ splitmix64(&b);
  return splitmix64(&s);
}

static uint64_t uniform_below(uint64_t *s, uint64_t n) {
  uint64_t threshold = (0 - n) % n; /* rejects the uneven top of the range */
  for (;;) {
    uint64_t r = splitmix64(s);
    if (r >= threshold) return r % n;
  }
}

/* The seed that orders the shards of one epoch, and the batches of one shard in it. */
static uint64_t shard_order_seed(uint64_t seed, int64_t epoch) {
  return mix(mix(seed, (uint64_t)epoch), 0x5348415244ULL);
}

static uint64_t batch_order_seed(uint64_t seed, int64_t epoch, int64_t shard) {
  uint64_t s = mix(mix(mix(seed, (uint64_t)epoch), (uint64_t)shard + 1), 0x4241544348ULL);
  return s ? s : 1; /* 0 means "not shuffled" in the state */
}

static void permute_sizes(size_t *a, size_t n, uint64_t s) {
  for (size_t i = 0; i < n; i++) a[i] = i;
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)uniform_below(&s, i);
    size_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}

static void permute_int64(int64_t *a, int64_t n, uint64_t s) {
  for (int64_t i = 0; i < n; i++) a[i] = i;
  for (int64_t i = n; i > 1; i--) {
    int64_t j = (int64_t)uniform_below(&s, (uint64_t)i);
    int64_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}

/* Draws the orders for (epoch, shard) if they are not drawn yet. */
static void enter_position(gpt2_loader *l) {
  if (!l->shuffle) {
    if (l->order_epoch < 0)
      for (size_t i = 0; i < l->nshards; i++) l->shard_order[i] = i;
    l->order_epoch = 0;
    l->rng = 0;
    return;
  }
  if (l->order_epoch != l->epoch) {
    permute_sizes(l->shard_order, l->nshards, shard_order_seed(l->seed, l->epoch));
    l->order_epoch = l->epoch;
  }
  l->rng = batch_order_seed(l->seed, l->epoch, l->shard);
  permute_int64(l->batch_order, l->shards[l->shard_order[l->shard]].nbatches, l->rng);
}

static int64_t current_nbatches(const gpt2_loader *l) {
  return l->shards[l->shard_order[l->shard]].nbatches;
}

/* ---- open / close ---- */

void gpt2_loader_close(gpt2_loader *l) {
  if (l == NULL) return;
  free(l->pattern);
  for (size_t i = 0; i < l->nshards; i++) free(l->shards[i].path);
  free(l->shards);
  free(l->shard_order);
  free(l->batch_order);
  free(l->buf);
  if (l->fd >= 0) close(l->fd);
  free(l);
}

int gpt2_loader_open(gpt2_loader **out, const char *pattern, int B, int T, int rank, int nranks,
                     int shuffle, uint64_t seed, char *err, size_t errlen) {
  *out = NULL;
  if (B <= 0 || T <= 0 || nranks <= 0 || rank < 0 || rank >= nranks ||
      (int64_t)B * T * nranks >= GPT2_SHARD_MAX_TOKENS) {
    gpt2_data_err(err, errlen, "%s: invalid loader shape B=%d T=%d rank=%d nranks=%d", pattern,
                  B, T, rank, nranks);
    return -1;
  }
  glob_t g;
  int grc = glob(pattern, 0, NULL, &g);
  if (grc != 0) {
    gpt2_data_err(err, errlen, "%s: %s", pattern,
                  grc == GLOB_NOMATCH ? "no file matches this pattern"
                                      : "cannot list the files of this pattern");
    if (grc != GLOB_NOMATCH) globfree(&g);
    return -1;
  }
  gpt2_loader *l = calloc(1, sizeof(*l));
  if (l == NULL) goto oom;
  l->fd = -1;
  if ((l->pattern = strdup(pattern)) == NULL) goto oom;
  l->B = B, l->T = T, l->rank = rank, l->nranks = nranks;
  l->shuffle = shuffle != 0;
  l->seed = seed;
  l->order_epoch = -1;
  l->shards = calloc(g.gl_pathc, sizeof(*l->shards));
  l->shard_order = calloc(g.gl_pathc, sizeof(size_t));
  l->buf = malloc(((size_t)B * T + 1) * 2);
  if (l->shards == NULL || l->shard_order == NULL || l->buf == NULL) goto oom;

  const int64_t global = (int64_t)nranks * B * T;
  int64_t max_batches = 0;
  for (size_t i = 0; i < g.gl_pathc; i++) {
    struct shard_info *s = &l->shards[l->nshards];
    if ((s->path = strdup(g.gl_pathv[i])) == NULL) goto oom;
    l->nshards++;
    if (gpt2_shard_check(s->path, &s->ntok, err, errlen) != 0) goto fail;
    if (s->ntok < global + 1) {
      gpt2_data_err(err, errlen,
                    "%s: %lld tokens, fewer than one batch needs: nranks*B*T+1 = %d*%d*%d+1 "
                    "= %lld",
                    s->path, (long long)s->ntok, nranks, B, T, (long long)global + 1);
      goto fail;
    }
    s->nbatches = (s->ntok - 1) / global;
    l->total_batches += (long)s->nbatches;
    if (s->nbatches > max_batches) max_batches = s->nbatches;
  }
  if (l->shuffle && (l->batch_order = malloc((size_t)max_batches * sizeof(int64_t))) == NULL)
    goto oom;
  globfree(&g);
  gpt2_loader_reset(l);
  *out = l;
  return 0;
oom:
  gpt2_data_err(err, errlen, "%s: out of memory", pattern);
fail:
  globfree(&g);
  gpt2_loader_close(l);
  return -1;
}

/* ---- batches ---- */

void gpt2_loader_reset(gpt2_loader *l) {
  l->shard = l->batch = l->epoch = 0;
  enter_position(l);
}

long gpt2_loader_num_batches(const gpt2_loader *l) { return l->total_batches; }

static int read_exact(gpt2_loader *l, size_t file, off_t offset, size_t bytes) {
  const char *path = l->shards[file].path;
  if (l->fd < 0 || l->fd_file != file) {
    if (l->fd >= 0) close(l->fd);
    l->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (l->fd < 0) {
      gpt2_data_err(l->err, sizeof(l->err), "%s: cannot open: %s", path, strerror(errno));
      return -1;
    }
    l->fd_file = file;
  }
  for (size_t done = 0; done < bytes;) {
    ssize_t n = pread(l->fd, l->buf + done, bytes - done, offset + (off_t)done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      gpt2_data_err(l->err, sizeof(l->err), "%s: cannot read %zu bytes at offset %lld: %s",
                    path, bytes, (long long)offset,
                    n == 0 ? "the file is shorter than when it was opened" : strerror(errno));
      return -1;
    }
    done += (size_t)n;
  }
  return 0;
}

int gpt2_loader_next(gpt2_loader *l, int *inputs, int *targets) {
  const int64_t bt = (int64_t)l->B * l->T;
  size_t file = l->shard_order[l->shard];
  int64_t idx = l->shuffle ? l->batch_order[l->batch] : l->batch;
  int64_t first = idx * l->nranks * bt + l->rank * bt; /* llm.c's rule */
  if (read_exact(l, file, GPT2_SHARD_HEADER_BYTES + 2 * first, (size_t)(bt + 1) * 2) != 0)
    return -1;
  int prev = l->buf[0] | l->buf[1] << 8;
  for (int64_t i = 0; i < bt; i++) {
    int tok = l->buf[2 * (i + 1)] | l->buf[2 * (i + 1) + 1] << 8;
    inputs[i] = prev;
    targets[i] = tok;
    prev = tok;
  }
  l->err[0] = '\0';
  /* Advance: next batch, else next shard, else next epoch. */
  if (++l->batch >= current_nbatches(l)) {
    l->batch = 0;
    if (++l->shard >= (int64_t)l->nshards) {
      l->shard = 0;
      l->epoch++;
    }
    enter_position(l);
  }
  return 0;
}

/* ---- checkpoint state ---- */

void gpt2_loader_get_state(const gpt2_loader *l, gpt2_loader_state *st) {
  st->shard = l->shard;
  st->batch = l->batch;
  st->epoch = l->epoch;
  st->rng = l->rng;
}

int gpt2_loader_set_state(gpt2_loader *l, const gpt2_loader_state *st, char *err,
                          size_t errlen) {
  const char *path = l->pattern;
  if (st->epoch < 0 || st->shard < 0 || st->shard >= (int64_t)l->nshards) {
    gpt2_data_err(err, errlen,
                  "%s: loader state (epoch %lld, shard %lld) is outside the %zu shards",
                  path, (long long)st->epoch, (long long)st->shard, l->nshards);
    return -1;
  }
  uint64_t want = l->shuffle ? batch_order_seed(l->seed, st->epoch, st->shard) : 0;
  if (st->rng != want) {
    gpt2_data_err(err, errlen,
                  "%s: loader state was saved with another shuffle setting or seed "
                  "(rng %llu, this loader's %llu)",
                  path, (unsigned long long)st->rng, (unsigned long long)want);
    return -1;
  }
  gpt2_loader_state old;
  gpt2_loader_get_state(l, &old);
  l->epoch = st->epoch;
  l->shard = st->shard;
  enter_position(l);
  if (st->batch < 0 || st->batch >= current_nbatches(l)) {
    gpt2_data_err(err, errlen,
                  "%s: loader state's batch %lld is outside this shard's %lld batches "
                  "(were B, T or the rank count changed?)",
                  l->shards[l->shard_order[l->shard]].path, (long long)st->batch,
                  (long long)current_nbatches(l));
    l->epoch = old.epoch;
    l->shard = old.shard;
    enter_position(l);
    return -1;
  }
  l->batch = st->batch;
  return 0;
}

const char *gpt2_loader_error(const gpt2_loader *l) { return l->err; }

/* The data loader: llm.c's data-parallel rule, shard moves and wrap, shuffling, resume
 * from a saved state, and errors for bad files. */
#include "dataloader.h"
#include "shard.h"
#include "test_tokenizer_toy.h"

#include <unistd.h>

enum { T = 8, B = 2, NSHARD = 3 };
/* Token j of shard s is s*20000 + j, so a token tells where it came from. */
static const int shard_ntok[NSHARD] = {1000, 700, 33}; /* 31, 21 and 1 batches of 32 */
static char dir[256], pattern[512];

static void make_shards(void) {
  char path[600], err[512];
  for (int s = 0; s < NSHARD; s++) {
    uint16_t *t = malloc((size_t)shard_ntok[s] * sizeof(uint16_t));
    for (int j = 0; j < shard_ntok[s]; j++) t[j] = (uint16_t)(s * 20000 + j);
    snprintf(path, sizeof(path), "%s/train_%06d.bin", dir, s);
    if (gpt2_shard_write(path, t, (size_t)shard_ntok[s], err, sizeof(err)) != 0) {
      fprintf(stderr, "%s\n", err);
      exit(1);
    }
    free(t);
  }
  snprintf(pattern, sizeof(pattern), "%s/train_*.bin", dir);
}

static gpt2_loader *open_loader(int b, int rank, int nranks, int shuffle, uint64_t seed) {
  gpt2_loader *l = NULL;
  char err[512];
  if (gpt2_loader_open(&l, pattern, b, T, rank, nranks, shuffle, seed, err, sizeof(err)) != 0) {
    fprintf(stderr, "open: %s\n", err);
    exit(1);
  }
  return l;
}

/* 2 ranks x B rows see exactly the rows of 1 rank x 2B rows, batch by batch. */
static void test_rank_split(int shuffle) {
  gpt2_loader *one = open_loader(2 * B, 0, 1, shuffle, 7);
  gpt2_loader *r0 = open_loader(B, 0, 2, shuffle, 7), *r1 = open_loader(B, 1, 2, shuffle, 7);
  long nb = gpt2_loader_num_batches(one);
  CHECK(nb == 31 + 21 + 1);
  CHECK(gpt2_loader_num_batches(r0) == nb && gpt2_loader_num_batches(r1) == nb);
  int in1[2 * B * T], tg1[2 * B * T], in0[B * T], tg0[B * T], inr[B * T], tgr[B * T];
  int same = 1, shifted = 1, rule = 1;
  for (long step = 0; step < 2 * nb + 5; step++) { /* two epochs and a bit */
    gpt2_loader_state st;
    gpt2_loader_get_state(one, &st);
    CHECK(gpt2_loader_next(one, in1, tg1) == 0);
    CHECK(gpt2_loader_next(r0, in0, tg0) == 0);
    CHECK(gpt2_loader_next(r1, inr, tgr) == 0);
    same &= memcmp(in1, in0, sizeof(in0)) == 0 && memcmp(in1 + B * T, inr, sizeof(inr)) == 0 &&
            memcmp(tg1, tg0, sizeof(tg0)) == 0 && memcmp(tg1 + B * T, tgr, sizeof(tgr)) == 0;
    for (int i = 0; i < 2 * B * T; i++) shifted &= tg1[i] == in1[i] + 1;
    if (!shuffle) {
      /* llm.c's offsets: batch idx of rank r starts at idx*N*B*T + r*B*T of its shard. */
      int64_t idx = st.batch;
      rule &= in0[0] == (int)((st.shard * 20000 + idx * 2 * B * T) & 0xffff);
      rule &= inr[0] == (int)((st.shard * 20000 + idx * 2 * B * T + B * T) & 0xffff);
      rule &= st.epoch == step / nb;
    }
  }
  CHECK(same);
  CHECK(shifted);
  CHECK(rule);
  gpt2_loader_close(one);
  gpt2_loader_close(r0);
  gpt2_loader_close(r1);
}

/* Without shuffle: shards in sorted order, moving on when the next batch would not fit. */
static void test_order_and_wrap(void) {
  gpt2_loader *l = open_loader(B, 0, 2, 0, 0);
  int in[B * T], tg[B * T], first[B * T];
  gpt2_loader_next(l, first, tg);
  for (int k = 1; k < 31; k++) gpt2_loader_next(l, in, tg);
  CHECK(in[0] == 30 * 32); /* the last batch of shard 0: tokens 960..976 of 1000 */
  gpt2_loader_state st;
  gpt2_loader_get_state(l, &st);
  CHECK(st.shard == 1 && st.batch == 0 && st.epoch == 0 && st.rng == 0);
  gpt2_loader_next(l, in, tg);
  CHECK(in[0] == 20000);
  for (int k = 1; k < 21; k++) gpt2_loader_next(l, in, tg);
  gpt2_loader_next(l, in, tg); /* shard 2 has one batch: 33 = 32 + 1 tokens */
  CHECK(in[0] == 40000 && tg[B * T - 1] == 40000 + 16);
  gpt2_loader_get_state(l, &st);
  CHECK(st.shard == 0 && st.batch == 0 && st.epoch == 1);
  gpt2_loader_next(l, in, tg);
  CHECK(memcmp(in, first, sizeof(in)) == 0);
  gpt2_loader_reset(l);
  gpt2_loader_get_state(l, &st);
  CHECK(st.shard == 0 && st.batch == 0 && st.epoch == 0);
  gpt2_loader_next(l, in, tg);
  CHECK(memcmp(in, first, sizeof(in)) == 0);
  gpt2_loader_close(l);
}

/* Shuffled: each epoch visits every batch once, in an order fixed by the seed. */
static void test_shuffle(void) {
  gpt2_loader *a = open_loader(B, 1, 2, 1, 42), *b = open_loader(B, 1, 2, 1, 42),
              *c = open_loader(B, 1, 2, 1, 43), *plain = open_loader(B, 1, 2, 0, 0);
  long nb = gpt2_loader_num_batches(a);
  int in[B * T], tg[B * T], inb[B * T], inc[B * T], inp[B * T];
  static int seen[3][64];
  int same_seed = 1, differs_seed = 0, differs_plain = 0, epoch_differs = 0;
  int first_epoch[64];
  for (long e = 0; e < 2; e++) {
    memset(seen, 0, sizeof(seen));
    for (long k = 0; k < nb; k++) {
      gpt2_loader_next(a, in, tg);
      gpt2_loader_next(b, inb, tg);
      gpt2_loader_next(c, inc, tg);
      gpt2_loader_next(plain, inp, tg);
      same_seed &= memcmp(in, inb, sizeof(in)) == 0;
      differs_seed |= memcmp(in, inc, sizeof(in)) != 0;
      differs_plain |= memcmp(in, inp, sizeof(in)) != 0;
      int s = in[0] / 20000, idx = (in[0] % 20000 - B * T) / (2 * B * T); /* rank 1 */
      seen[s][idx]++;
      if (e == 0) first_epoch[k] = in[0];
      else epoch_differs |= first_epoch[k] != in[0];
    }
    int once = 1;
    for (int s = 0; s < NSHARD; s++)
      for (int i = 0; i < 64; i++)
        once &= seen[s][i] == (i < (shard_ntok[s] - 1) / (2 * B * T));
    CHECK(once);
  }
  CHECK(same_seed);
  CHECK(differs_seed);
  CHECK(differs_plain);
  CHECK(epoch_differs);
  gpt2_loader_close(a);
  gpt2_loader_close(b);
  gpt2_loader_close(c);
  gpt2_loader_close(plain);
}

/* Saving the state after k batches and resuming in a new loader gives the same batches as
 * going on, at every k over two epochs (shard moves and the epoch wrap included). */
static void test_resume(int shuffle) {
  gpt2_loader *ref = open_loader(B, 1, 2, shuffle, 99);
  long nb = gpt2_loader_num_batches(ref), total = 2 * nb + 3;
  int(*all)[B * T] = malloc((size_t)total * sizeof(*all));
  gpt2_loader_state *states = malloc((size_t)total * sizeof(*states));
  int tg[B * T], in[B * T];
  for (long k = 0; k < total; k++) {
    gpt2_loader_get_state(ref, &states[k]);
    gpt2_loader_next(ref, all[k], tg);
  }
  int ok = 1;
  char err[512];
  gpt2_loader *l = open_loader(B, 1, 2, shuffle, 99);
  for (long k = 0; k < total; k += 1) {
    gpt2_loader_next(l, in, tg); /* move somewhere else first */
    if (gpt2_loader_set_state(l, &states[k], err, sizeof(err)) != 0) {
      fprintf(stderr, "set_state: %s\n", err);
      ok = 0;
      break;
    }
    for (long j = k; j < total && j < k + 3; j++) {
      gpt2_loader_next(l, in, tg);
      ok &= memcmp(in, all[j], sizeof(in)) == 0;
    }
  }
  CHECK(ok);
  gpt2_loader_close(l);
  gpt2_loader_close(ref);
  free(all);
  free(states);
}

static void test_state_errors(void) {
  gpt2_loader *l = open_loader(B, 0, 2, 1, 5), *other = open_loader(B, 0, 2, 1, 6),
              *plain = open_loader(B, 0, 2, 0, 0);
  gpt2_loader_state st, before, after;
  char err[512];
  gpt2_loader_get_state(other, &st);
  gpt2_loader_get_state(l, &before);
  CHECK(gpt2_loader_set_state(l, &st, err, sizeof(err)) == -1);
  CHECK_ERR(err, pattern, "another shuffle setting or seed");
  gpt2_loader_get_state(plain, &st);
  CHECK(gpt2_loader_set_state(l, &st, err, sizeof(err)) == -1);
  CHECK(gpt2_loader_set_state(plain, &before, err, sizeof(err)) == -1);
  st = (gpt2_loader_state){.shard = 3};
  CHECK(gpt2_loader_set_state(plain, &st, err, sizeof(err)) == -1);
  CHECK_ERR(err, pattern, "outside the 3 shards");
  st = (gpt2_loader_state){.shard = 2, .batch = 1};
  CHECK(gpt2_loader_set_state(plain, &st, err, sizeof(err)) == -1);
  CHECK_ERR(err, "train_000002.bin", "batch 1 is outside this shard's 1 batches");
  st = (gpt2_loader_state){.shard = 2, .batch = 0, .epoch = 4};
  CHECK(gpt2_loader_set_state(plain, &st, err, sizeof(err)) == 0);
  gpt2_loader_get_state(l, &after);
  CHECK(memcmp(&before, &after, sizeof(before)) == 0); /* failures leave the position */
  gpt2_loader_close(l);
  gpt2_loader_close(other);
  gpt2_loader_close(plain);
}

static void write_bytes(const char *path, const int32_t *header, size_t extra) {
  FILE *f = fopen(path, "wb");
  int32_t h[256] = {0};
  memcpy(h, header, 3 * sizeof(int32_t));
  fwrite(h, 4, 256, f);
  for (size_t i = 0; i < extra; i++) fputc(0, f);
  fclose(f);
}

static void test_open_errors(void) {
  char err[512], path[600], pat[600];
  gpt2_loader *l = NULL;
  snprintf(pat, sizeof(pat), "%s/nothing_*.bin", dir);
  CHECK(gpt2_loader_open(&l, pat, B, T, 0, 1, 0, 0, err, sizeof(err)) == -1 && l == NULL);
  CHECK_ERR(err, pat, "no file matches");
  CHECK(gpt2_loader_open(&l, pattern, B, T, 2, 2, 0, 0, err, sizeof(err)) == -1);
  CHECK_ERR(err, "invalid loader shape", "rank=2 nranks=2");
  CHECK(gpt2_loader_open(&l, pattern, 0, T, 0, 1, 0, 0, err, sizeof(err)) == -1);
  CHECK_ERR(err, "B=0");
  /* shard 2 has 33 tokens: enough for 2x2x8+1, not for 2x2x16+1 */
  CHECK(gpt2_loader_open(&l, pattern, B, 2 * T, 0, 2, 0, 0, err, sizeof(err)) == -1);
  CHECK_ERR(err, "train_000002.bin", "33 tokens", "fewer than one batch needs", "= 65");

  snprintf(pat, sizeof(pat), "%s/bad_*.bin", dir);
  snprintf(path, sizeof(path), "%s/bad_0.bin", dir);
  write_bytes(path, (int32_t[]){20240326, 1, 100}, 200); /* a model checkpoint's magic */
  CHECK(gpt2_loader_open(&l, pat, B, T, 0, 1, 0, 0, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "bad magic 20240326");
  write_bytes(path, (int32_t[]){20240520, 3, 100}, 200);
  CHECK(gpt2_loader_open(&l, pat, B, T, 0, 1, 0, 0, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "version 3");
  write_bytes(path, (int32_t[]){20240520, 1, 100}, 199);
  CHECK(gpt2_loader_open(&l, pat, B, T, 0, 1, 0, 0, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "size 1223 bytes", "expected 1224");
  remove(path);

  /* A shard cut short after opening: next() fails, names it, and does not move. */
  char copy[600];
  snprintf(copy, sizeof(copy), "%s/cut_000000.bin", dir);
  uint16_t t[200];
  for (int i = 0; i < 200; i++) t[i] = (uint16_t)i;
  gpt2_shard_write(copy, t, 200, err, sizeof(err));
  snprintf(pat, sizeof(pat), "%s/cut_*.bin", dir);
  CHECK(gpt2_loader_open(&l, pat, B, T, 0, 1, 0, 0, err, sizeof(err)) == 0);
  CHECK(truncate(copy, 1024 + 2 * 40) == 0);
  int in[B * T], tg[B * T];
  CHECK(gpt2_loader_next(l, in, tg) == 0); /* tokens 0..16 are still there */
  CHECK(gpt2_loader_next(l, in, tg) == 0); /* 16..32 */
  gpt2_loader_state st;
  gpt2_loader_get_state(l, &st);
  CHECK(gpt2_loader_next(l, in, tg) == -1);
  CHECK_ERR(gpt2_loader_error(l), copy, "shorter than when it was opened");
  gpt2_loader_state st2;
  gpt2_loader_get_state(l, &st2);
  CHECK(memcmp(&st, &st2, sizeof(st)) == 0);
  gpt2_loader_close(l);
}

int main(void) {
  test_tmpdir(dir, sizeof(dir));
  make_shards();
  test_rank_split(0);
  test_rank_split(1);
  test_order_and_wrap();
  test_shuffle();
  test_resume(0);
  test_resume(1);
  test_state_errors();
  test_open_errors();
  test_rmtree(dir);
  return test_result();
}

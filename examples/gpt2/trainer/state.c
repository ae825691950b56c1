/* state.c - checkpoint directories written atomically and read back (state.h).
 * Files are little-endian with fixed-width fields, as llm.c's are. */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OPT_MAGIC 0x504f3247u   /* "G2OP" optimizer.bin, optimizer_rankR.bin */
#define OUTER_MAGIC 0x554f3247u /* "G2OU" outer.bin */
#define INFO_MAGIC 0x52543247u  /* "G2TR" trainer.bin */
#define STATE_VERSION 1

typedef struct {
  uint32_t magic, version;
  uint64_t n;
  int64_t t;
  uint64_t reserved;
} array_header;

typedef struct {
  uint32_t magic, version;
  trainer_info info;
} info_header;

/* ---------------------------------------------------------------- agreement */

int ranks_failed(mlcommComm_t comm, int failed, int *first) {
  int rank = 0, nranks = 1;
  mlcommCommRank(comm, &rank);
  mlcommCommCount(comm, &nranks);
  int32_t v = failed ? rank : nranks;
  if (mlcommAllReduce(&v, &v, 1, mlcommInt32, mlcommMin, comm) != mlcommSuccess) {
    if (first) *first = failed ? rank : -1;
    return 1;
  }
  if (first) *first = v < nranks ? v : -1;
  return v < nranks;
}

/* ---------------------------------------------------------------- files */

/* out = dir/name; -1 when it does not fit (then nothing sensible can be opened). */
static int join(char *out, size_t len, const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  if (a + b + 2 > len) return -1;
  memcpy(out, dir, a);
  out[a] = '/';
  memcpy(out + a + 1, name, b + 1);
  return 0;
}

typedef struct {
  const void *data;
  size_t bytes;
} part;

static int write_file(const char *path, const part *parts, int nparts, char *err, size_t errlen) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
    return -1;
  }
  int ok = 1;
  for (int i = 0; i < nparts && ok; i++)
    if (parts[i].bytes && fwrite(parts[i].data, parts[i].bytes, 1, f) != 1) ok = 0;
  if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0)) ok = 0;
  int saved = errno;
  if (fclose(f) != 0 && ok) ok = 0, saved = errno;
  if (!ok) {
    snprintf(err, errlen, "writing %s failed: %s", path, strerror(saved));
    return -1;
  }
  return 0;
}

static int read_exact(const char *path, FILE *f, void *dst, size_t bytes, char *err,
                      size_t errlen) {
  if (bytes && fread(dst, bytes, 1, f) != 1) {
    snprintf(err, errlen, "%s: file is truncated", path);
    return -1;
  }
  return 0;
}

/* Removes a checkpoint directory this trainer wrote (plain files only). */
static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[4096];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (join(path, sizeof path, dir, e->d_name) == 0) unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

int state_make_dirs(const char *dir, char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(path, 0777) != 0 && errno != EEXIST) break;
    *p = '/';
  }
  if (mkdir(path, 0777) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
    return -1;
  }
  return 0;
}

static int write_array(const char *path, uint32_t magic, int64_t t, const float *a, const float *b,
                       size_t n, char *err, size_t errlen) {
  array_header h = {magic, STATE_VERSION, n, t, 0};
  part parts[3] = {{&h, sizeof h}, {a, n * sizeof(float)}, {b, b ? n * sizeof(float) : 0}};
  return write_file(path, parts, 3, err, errlen);
}

static int read_array(const char *path, uint32_t magic, int64_t *t, float *a, float *b, size_t n,
                      char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  array_header h;
  int rc = read_exact(path, f, &h, sizeof h, err, errlen);
  if (rc == 0 && (h.magic != magic || h.version != STATE_VERSION)) {
    snprintf(err, errlen, "%s: not a train_gpt2 state file of this version", path);
    rc = -1;
  }
  if (rc == 0 && h.n != n) {
    snprintf(err, errlen, "%s: holds %llu parameters but the model has %zu", path,
             (unsigned long long)h.n, n);
    rc = -1;
  }
  if (rc == 0) rc = read_exact(path, f, a, n * sizeof(float), err, errlen);
  if (rc == 0 && b) rc = read_exact(path, f, b, n * sizeof(float), err, errlen);
  if (rc == 0 && t) *t = h.t;
  fclose(f);
  return rc;
}

/* ---------------------------------------------------------------- save */

/* This rank's files into tmp; rank 0 also writes model.bin and trainer.bin. */
static int save_files(const char *tmp, const trainer_info *info, const gpt2_model *model,
                      trainer_sync *s, const gpt2_loader_state *loaders, char *err, size_t errlen) {
  char path[4096];
  if (s->mode == SYNC_DILOCO) {
    char name[64];
    snprintf(name, sizeof name, "optimizer_rank%d.bin", s->rank);
    join(path, sizeof path, tmp, name);
    if (write_array(path, OPT_MAGIC, s->t, s->m, s->v, s->n, err, errlen) != 0) return -1;
  }
  if (s->rank != 0) return 0;
  join(path, sizeof path, tmp, "model.bin");
  if (gpt2_checkpoint_write(path, model, GPT2_CHECKPOINT_FP32, err, errlen) != 0) return -1;
  if (s->mode == SYNC_DILOCO) {
    join(path, sizeof path, tmp, "outer.bin");
    if (write_array(path, OUTER_MAGIC, s->t, s->momentum, NULL, s->n, err, errlen) != 0) return -1;
  }
  info_header h = {INFO_MAGIC, STATE_VERSION, *info};
  part parts[2] = {{&h, sizeof h}, {loaders, (size_t)info->nranks * sizeof *loaders}};
  join(path, sizeof path, tmp, "trainer.bin");
  return write_file(path, parts, 2, err, errlen);
}

int state_save(const char *out_dir, const trainer_info *info, const gpt2_model *model,
               trainer_sync *s, const gpt2_loader *loader, char *err, size_t errlen) {
  char name[64], tmp[4096], final[4096], path[4096];
  snprintf(name, sizeof name, "step_%08lld", (long long)info->step);
  char tmpname[80];
  snprintf(tmpname, sizeof tmpname, "%s.tmp", name);
  if (join(final, sizeof final, out_dir, name) != 0 ||
      join(tmp, sizeof tmp, out_dir, tmpname) != 0) {
    snprintf(err, errlen, "checkpoint directory name too long: %.512s", out_dir);
    ranks_failed(s->comm, 1, NULL);
    return -1;
  }
  int failed = 0;
  err[0] = 0;

  if (s->rank == 0) {
    failed = state_make_dirs(out_dir, err, errlen) != 0;
    if (!failed) {
      remove_dir(tmp);
      if (mkdir(tmp, 0777) != 0) {
        snprintf(err, errlen, "cannot create directory %s: %s", tmp, strerror(errno));
        failed = 1;
      }
    }
  }
  if (ranks_failed(s->comm, failed, NULL)) goto out;

  /* every rank's loader position, and (zero1) the whole optimizer state, to rank 0 */
  gpt2_loader_state mine, *loaders = calloc((size_t)s->nranks, sizeof *loaders);
  float *m = NULL, *v = NULL;
  gpt2_loader_get_state(loader, &mine);
  failed = loaders == NULL;
  if (!failed && mlcommAllGather(&mine, loaders, 4, mlcommUint64, s->comm) != mlcommSuccess) {
    snprintf(err, errlen, "gathering data-loader positions failed: %s",
             mlcommGetLastError(s->comm));
    failed = 1;
  }
  if (s->mode != SYNC_DILOCO) {
    m = malloc(s->n * sizeof(float));
    v = malloc(s->n * sizeof(float));
    if (!m || !v) {
      snprintf(err, errlen, "out of memory gathering the optimizer state");
      failed = 1;
    }
    /* collective for zero1: every rank takes part even after a local failure */
    if (sync_gather_optimizer(s, m ? m : s->grads, v ? v : s->grads, failed ? path : err,
                              failed ? sizeof path : errlen) != 0)
      failed = 1;
  }
  if (!failed) failed = save_files(tmp, info, model, s, loaders, err, errlen) != 0;
  if (!failed && s->rank == 0 && s->mode != SYNC_DILOCO) {
    join(path, sizeof path, tmp, "optimizer.bin");
    failed = write_array(path, OPT_MAGIC, s->t, m, v, s->n, err, errlen) != 0;
  }
  free(loaders);
  free(m);
  free(v);
  if (ranks_failed(s->comm, failed, NULL)) goto out;

  /* publish: the directory, then the pointer to it */
  if (s->rank == 0) {
    remove_dir(final);
    if (rename(tmp, final) != 0) {
      snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
      failed = 1;
    }
    char latest[4096], latest_tmp[4096], line[80];
    join(latest, sizeof latest, out_dir, "latest");
    join(latest_tmp, sizeof latest_tmp, out_dir, "latest.tmp");
    snprintf(line, sizeof line, "%s\n", name);
    part p = {line, strlen(line)};
    if (!failed && write_file(latest_tmp, &p, 1, err, errlen) != 0) failed = 1;
    if (!failed && rename(latest_tmp, latest) != 0) {
      snprintf(err, errlen, "cannot rename %s to %s: %s", latest_tmp, latest, strerror(errno));
      failed = 1;
    }
  }
  if (!ranks_failed(s->comm, failed, NULL)) return 0;
out:
  if (failed) return -1;
  snprintf(err, errlen, "another rank failed to write checkpoint %s", final);
  return -2;
}

/* ---------------------------------------------------------------- resume */

int state_find(const char *dir, char *out, size_t outlen, char *err, size_t errlen) {
  char path[4096], line[256];
  join(path, sizeof path, dir, "latest");
  FILE *f = fopen(path, "r");
  if (f) {
    int got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    if (!got || !line[0] || strchr(line, '/')) {
      snprintf(err, errlen, "%s does not name a checkpoint directory", path);
      return -1;
    }
    if (join(out, outlen, dir, line) == 0) return 0;
    snprintf(err, errlen, "checkpoint path too long: %.512s", dir);
    return -1;
  }
  join(path, sizeof path, dir, "trainer.bin");
  if (access(path, R_OK) == 0) {
    snprintf(out, outlen, "%s", dir);
    return 0;
  }
  snprintf(err, errlen,
           "--resume %s: no checkpoint there (neither %s/latest nor %s/trainer.bin exists)", dir,
           dir, dir);
  return -1;
}

int state_read_info(const char *dir, int rank, trainer_info *info, gpt2_loader_state *loader,
                    char *err, size_t errlen) {
  char path[4096];
  join(path, sizeof path, dir, "trainer.bin");
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  info_header h;
  int rc = read_exact(path, f, &h, sizeof h, err, errlen);
  if (rc == 0 && (h.magic != INFO_MAGIC || h.version != STATE_VERSION)) {
    snprintf(err, errlen, "%s: not a train_gpt2 state file of this version", path);
    rc = -1;
  }
  if (rc == 0 && (rank >= h.info.nranks || h.info.nranks <= 0)) {
    snprintf(err, errlen, "%s: written by %d ranks, cannot resume rank %d", path, h.info.nranks,
             rank);
    rc = -1;
  }
  if (rc == 0 && fseek(f, (long)(sizeof h + (size_t)rank * sizeof *loader), SEEK_SET) != 0) rc = -1;
  if (rc == 0) rc = read_exact(path, f, loader, sizeof *loader, err, errlen);
  fclose(f);
  if (rc == 0) *info = h.info;
  return rc;
}

int state_read_optimizer(const char *dir, trainer_sync *s, char *err, size_t errlen) {
  char path[4096];
  int64_t t = 0;
  if (s->mode == SYNC_DILOCO) {
    char name[64];
    snprintf(name, sizeof name, "optimizer_rank%d.bin", s->rank);
    join(path, sizeof path, dir, name);
    if (read_array(path, OPT_MAGIC, &t, s->m, s->v, s->n, err, errlen) != 0) return -1;
    s->t = t;
    join(path, sizeof path, dir, "outer.bin");
    return read_array(path, OUTER_MAGIC, NULL, s->momentum, NULL, s->n, err, errlen);
  }
  float *m = malloc(s->n * sizeof(float)), *v = malloc(s->n * sizeof(float));
  int rc = -1;
  join(path, sizeof path, dir, "optimizer.bin");
  if (!m || !v)
    snprintf(err, errlen, "out of memory reading %s", path);
  else if (read_array(path, OPT_MAGIC, &t, m, v, s->n, err, errlen) == 0)
    rc = 0;
  if (rc == 0) sync_load_optimizer(s, m, v, t);
  free(m);
  free(v);
  return rc;
}

/* heartbeat.c - per-rank heartbeat files, and the metrics trim of a resumed run. */
#include "heartbeat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void path_of(char *buf, size_t len, const char *out_dir, int rank, const char *suffix) {
  snprintf(buf, len, "%s/heartbeat/rank_%05d%s", out_dir, rank, suffix);
}

int heartbeat_write(const char *out_dir, const heartbeat *hb, char *err, size_t errlen) {
  char dir[4200], path[4200], tmp[4200];
  snprintf(dir, sizeof dir, "%s/heartbeat", out_dir);
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
    return -1;
  }
  path_of(path, sizeof path, out_dir, hb->rank, "");
  path_of(tmp, sizeof tmp, out_dir, hb->rank, ".tmp");
  FILE *f = fopen(tmp, "w");
  if (f == NULL) {
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    return -1;
  }
  fprintf(f, "rank %d\npid %d\nhost %s\ntransport %s\nstep %ld\nsteps %ld\ntime %.3f\nrestarts %d\n",
          hb->rank, hb->pid, hb->host, hb->transport, hb->step, hb->steps, hb->time, hb->restarts);
  int bad = fclose(f) != 0;
  if (bad || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

int heartbeat_read(const char *out_dir, int rank, heartbeat *hb) {
  char path[4200], key[32], val[128];
  path_of(path, sizeof path, out_dir, rank, "");
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  memset(hb, 0, sizeof *hb);
  hb->rank = rank;
  int fields = 0;
  while (fscanf(f, "%31s %127s", key, val) == 2) {
    fields++;
    if (strcmp(key, "pid") == 0) hb->pid = atoi(val);
    else if (strcmp(key, "host") == 0) snprintf(hb->host, sizeof hb->host, "%.63s", val);
    else if (strcmp(key, "transport") == 0) snprintf(hb->transport, sizeof hb->transport, "%.15s", val);
    else if (strcmp(key, "step") == 0) hb->step = atol(val);
    else if (strcmp(key, "steps") == 0) hb->steps = atol(val);
    else if (strcmp(key, "time") == 0) hb->time = atof(val);
    else if (strcmp(key, "restarts") == 0) hb->restarts = atoi(val);
  }
  fclose(f);
  return fields >= 8 ? 0 : -1;
}

int heartbeat_restarts(void) {
  const char *s = getenv("GPT2_RESTARTS");
  return s ? atoi(s) : 0;
}

int metrics_trim(const char *path, long step, char *err, size_t errlen) {
  FILE *in = fopen(path, "r");
  if (in == NULL) return 0;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *out = fopen(tmp, "w");
  if (out == NULL) {
    fclose(in);
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    return -1;
  }
  char line[8192];
  while (fgets(line, sizeof line, in)) {
    long s = -1;
    if (line[strlen(line) - 1] != '\n') break; /* cut short by the crash */
    /* every record starts {"step": N, ...} (report.c) */
    if (sscanf(line, "{\"step\": %ld", &s) == 1 && s > step) continue;
    fputs(line, out);
  }
  fclose(in);
  if (fclose(out) != 0 || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot rewrite %s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

long metrics_last_step(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[8192];
  long last = 0, s;
  while (fgets(line, sizeof line, f))
    if (strstr(line, "\"train_loss\"") && sscanf(line, "{\"step\": %ld", &s) == 1 && s > last) last = s;
  fclose(f);
  return last;
}

/* dashboard.c - the live screen of train_gpt2 --dashboard (see dashboard.h). */
#include "dashboard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "heartbeat.h"

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Whether fd 1 of process pid is a terminal, by the name its link points to. */
static int proc_stdout_is_tty(pid_t pid) {
  char path[64], target[256];
  snprintf(path, sizeof path, "/proc/%d/fd/1", (int)pid);
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n <= 0) return 0;
  target[n] = '\0';
  return strncmp(target, "/dev/pts/", 9) == 0 || strncmp(target, "/dev/tty", 8) == 0;
}

static int stdout_is_terminal(void) {
  if (!isatty(1)) return 0;
  const char *term = getenv("TERM");
  if (term == NULL || strcmp(term, "dumb") == 0) return 0;
  /* Open MPI gives every local rank a pseudo-terminal, whatever mpirun's own stdout is;
   * mpirun (the parent, on its own node) knows the truth. */
  if (getenv("OMPI_COMM_WORLD_RANK")) return proc_stdout_is_tty(getppid());
  return 1;
}

void dashboard_open(dashboard *d, dash_mode mode, const char *out_dir, int nranks, long start_step) {
  memset(d, 0, sizeof *d);
  d->screen = mode == DASH_SCREEN || (mode == DASH_AUTO && stdout_is_terminal());
  d->out_dir = out_dir;
  d->nranks = nranks;
  d->start_step = start_step;
}

static void eta_text(char *buf, size_t len, double seconds) {
  long s = (long)(seconds + 0.5);
  if (s >= 3600) snprintf(buf, len, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
}

/* The losses as a row of eighth blocks, lowest to highest of what is shown. */
static void sparkline(const dashboard *d, char *buf, size_t len) {
  static const char *const bars[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                     "\u2585", "\u2586", "\u2587", "\u2588"};
  float lo = d->loss[0], hi = d->loss[0];
  for (int i = 1; i < d->nloss; i++) {
    if (d->loss[i] < lo) lo = d->loss[i];
    if (d->loss[i] > hi) hi = d->loss[i];
  }
  size_t k = 0;
  buf[0] = '\0';
  for (int i = 0; i < d->nloss && k + 4 < len; i++) {
    int b = hi > lo ? (int)((d->loss[i] - lo) / (hi - lo) * 7.0f + 0.5f) : 3;
    k += (size_t)snprintf(buf + k, len - k, "%s", bars[b < 0 ? 0 : b > 7 ? 7 : b]);
  }
}

static void draw_screen(const dashboard *d, const dash_step *s, double tok_s, double comm,
                        const char *eta) {
  char spark[DASH_HISTORY * 4 + 1];
  sparkline(d, spark, sizeof spark);
  double now = wall();
  time_t t = (time_t)now;
  char clock[32];
  strftime(clock, sizeof clock, "%H:%M:%S", localtime(&t));
  int restarts = heartbeat_restarts();
  printf("\033[H\033[2J");
  printf("train_gpt2 dashboard   %s   status: %s   step %ld/%ld   restarts: %d\033[K\n", clock,
         s->status, s->step, s->steps, restarts);
  printf("loss %.6f  %s\033[K\n", s->loss, spark);
  printf("tokens/s %.0f   comm %.1f%%   step %.1f ms   ETA %s\033[K\n", tok_s, 100.0 * comm,
         s->seconds * 1e3, eta);
  printf("\033[K\n%-5s %-16s %-9s %8s %14s %8s %8s\033[K\n", "rank", "host", "transport", "step",
         "heartbeat", "restarts", "pid");
  for (int r = 0; r < d->nranks; r++) {
    heartbeat hb;
    if (heartbeat_read(d->out_dir, r, &hb) != 0) {
      printf("%-5d %-16s\033[K\n", r, "(no heartbeat yet)");
      continue;
    }
    char ago[32];
    snprintf(ago, sizeof ago, "%.1f s ago", now - hb.time > 0 ? now - hb.time : 0.0);
    printf("%-5d %-16.16s %-9s %8ld %14s %8d %8d\033[K\n", r, hb.host, hb.transport, hb.step, ago,
           hb.restarts, hb.pid);
  }
  printf("\033[J");
  fflush(stdout);
}

void dashboard_step(dashboard *d, const dash_step *s) {
  if (d->nloss == DASH_HISTORY) {
    memmove(d->loss, d->loss + 1, (DASH_HISTORY - 1) * sizeof d->loss[0]);
    d->nloss--;
  }
  d->loss[d->nloss++] = s->loss;
  /* the first step of a run pays for start-up: not in the rates */
  if (s->step > d->start_step + 1) {
    d->tokens_timed += (double)s->tokens;
    d->seconds_timed += s->seconds;
  }
  double tok_s = d->seconds_timed > 0 ? d->tokens_timed / d->seconds_timed
                 : s->seconds > 0    ? s->tokens / s->seconds
                                     : 0.0;
  double per_step = tok_s > 0 ? (double)s->tokens / tok_s : s->seconds;
  double comm = s->seconds > 0 ? s->comm_seconds / s->seconds : 0.0;
  char eta[32];
  eta_text(eta, sizeof eta, per_step * (double)(s->steps - s->step));
  int last = strcmp(s->status, "running") != 0;
  if (!d->screen) {
    printf("dashboard: %s | step %ld/%ld | loss %.6f | %.0f tok/s | comm %.1f%% | eta %s | "
           "restarts %d\n",
           s->status, s->step, s->steps, s->loss, tok_s, 100.0 * comm, eta, heartbeat_restarts());
    fflush(stdout);
    return;
  }
  double now = wall();
  if (!last && now - d->last_draw < 0.1) return; /* at most ten redraws a second */
  d->last_draw = now;
  draw_screen(d, s, tok_s, comm, eta);
}

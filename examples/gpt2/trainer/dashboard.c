/* dashboard.c - the live screen of train_gpt2 --dashboard (see dashboard.h). */
#include "dashboard.h"

#include <stdarg.h>
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

static void *screen_thread(void *arg);

void dashboard_open(dashboard *d, dash_mode mode, const char *out_dir, int nranks, long start_step) {
  memset(d, 0, sizeof *d);
  d->screen = mode == DASH_SCREEN || (mode == DASH_AUTO && stdout_is_terminal());
  d->out_dir = out_dir;
  d->nranks = nranks;
  d->start_step = start_step;
  snprintf(d->status, sizeof d->status, "starting");
  if (!d->screen) return;
  pthread_mutex_init(&d->lock, NULL);
  pthread_cond_init(&d->wake, NULL);
  /* without the thread, dashboard_step draws each step itself */
  d->have_thread = pthread_create(&d->thread, NULL, screen_thread, d) == 0;
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

/* Appends to a screen buffer. */
typedef struct {
  char buf[16384];
  size_t len;
} screen;

__attribute__((format(printf, 2, 3))) static void put(screen *sc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (sc->len < sizeof sc->buf) {
    int k = vsnprintf(sc->buf + sc->len, sizeof sc->buf - sc->len, fmt, ap);
    if (k > 0) sc->len += (size_t)k;
    if (sc->len > sizeof sc->buf) sc->len = sizeof sc->buf - 1;
  }
  va_end(ap);
}

/* The whole screen in one write, so lines the trainer prints meanwhile fall between
 * screens, not inside one. Called with d->lock held. */
static void draw_screen(const dashboard *d) {
  static screen sc;
  sc.len = 0;
  char spark[DASH_HISTORY * 4 + 1], eta[32], clock[32];
  sparkline(d, spark, sizeof spark);
  eta_text(eta, sizeof eta, d->eta_seconds);
  double now = wall();
  time_t t = (time_t)now;
  strftime(clock, sizeof clock, "%H:%M:%S", localtime(&t));
  /* A rank is silent when its heartbeat is much older than a step takes; the oldest
   * one of the furthest behind is named. Rank 0, drawing this, is only waiting. */
  heartbeat hbs[64];
  int nshow = d->nranks < 64 ? d->nranks : 64, silent = -1;
  double silent_for = 0, patience = 3.0 + 10.0 * d->step_seconds;
  for (int r = 0; r < nshow; r++)
    if (heartbeat_read(d->out_dir, r, &hbs[r]) != 0) hbs[r].pid = -1;
  for (int r = 1; r < nshow && strcmp(d->status, "running") == 0; r++) {
    double age = now - hbs[r].time;
    if (hbs[r].pid < 0 || age <= patience) continue;
    if (silent < 0 || hbs[r].step < hbs[silent].step ||
        (hbs[r].step == hbs[silent].step && age > silent_for))
      silent = r, silent_for = age;
  }
  char status[96];
  if (silent >= 0)
    snprintf(status, sizeof status, "waiting: rank %d silent for %.0f s", silent, silent_for);
  else
    snprintf(status, sizeof status, "%s", d->status);
  put(&sc, "\033[H\033[2J");
  put(&sc, "train_gpt2 dashboard   %s   status: %s   step %ld/%ld   restarts: %d\033[K\n", clock,
      status, d->step, d->steps, heartbeat_restarts());
  put(&sc, "loss %.6f  %s\033[K\n", d->last_loss, spark);
  put(&sc, "tokens/s %.0f   comm %.1f%%   step %.1f ms   ETA %s\033[K\n", d->tok_s, 100.0 * d->comm,
      d->step_seconds * 1e3, eta);
  put(&sc, "\033[K\n%-5s %-16s %-9s %8s %14s %8s %8s\033[K\n", "rank", "host", "transport", "step",
      "heartbeat", "restarts", "pid");
  for (int r = 0; r < nshow; r++) {
    const heartbeat *hb = &hbs[r];
    if (hb->pid < 0) {
      put(&sc, "%-5d %-16s\033[K\n", r, "(no heartbeat yet)");
      continue;
    }
    char ago[32];
    snprintf(ago, sizeof ago, "%.1f s ago", now - hb->time > 0 ? now - hb->time : 0.0);
    put(&sc, "%-5d %-16.16s %-9s %8ld %14s %8d %8d\033[K\n", r, hb->host, hb->transport, hb->step,
        ago, hb->restarts, hb->pid);
  }
  if (d->nranks > nshow) put(&sc, "(and %d more ranks)\033[K\n", d->nranks - nshow);
  put(&sc, "\033[J");
  fwrite(sc.buf, 1, sc.len, stdout);
  fflush(stdout);
}

/* After each step (at most ten a second) and every second while nothing comes. */
static void *screen_thread(void *arg) {
  dashboard *d = arg;
  pthread_mutex_lock(&d->lock);
  double last = 0;
  while (!d->stop) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    if (!d->fresh) pthread_cond_timedwait(&d->wake, &d->lock, &until);
    if (d->stop) break;
    double now = wall();
    if (d->fresh && now - last < 0.1) { /* too soon: let the lock go a moment */
      pthread_mutex_unlock(&d->lock);
      struct timespec nap = {0, 20 * 1000 * 1000};
      nanosleep(&nap, NULL);
      pthread_mutex_lock(&d->lock);
      continue;
    }
    if (d->step > 0 || d->fresh) draw_screen(d);
    d->fresh = 0;
    last = now;
  }
  draw_screen(d); /* the last state, whatever the rate */
  pthread_mutex_unlock(&d->lock);
  return NULL;
}

void dashboard_step(dashboard *d, const dash_step *s) {
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
  if (!d->screen) {
    char eta[32];
    eta_text(eta, sizeof eta, per_step * (double)(s->steps - s->step));
    printf("dashboard: %s | step %ld/%ld | loss %.6f | %.0f tok/s | comm %.1f%% | eta %s | "
           "restarts %d\n",
           s->status, s->step, s->steps, s->loss, tok_s, 100.0 * comm, eta, heartbeat_restarts());
    fflush(stdout);
    return;
  }
  pthread_mutex_lock(&d->lock);
  if (d->nloss == DASH_HISTORY) {
    memmove(d->loss, d->loss + 1, (DASH_HISTORY - 1) * sizeof d->loss[0]);
    d->nloss--;
  }
  d->loss[d->nloss++] = s->loss;
  d->step = s->step;
  d->steps = s->steps;
  d->last_loss = s->loss;
  d->tok_s = tok_s;
  d->comm = comm;
  d->step_seconds = s->seconds;
  d->eta_seconds = per_step * (double)(s->steps - s->step);
  snprintf(d->status, sizeof d->status, "%s", s->status);
  d->fresh = 1;
  if (d->have_thread) pthread_cond_signal(&d->wake);
  else draw_screen(d);
  pthread_mutex_unlock(&d->lock);
}

void dashboard_close(dashboard *d) {
  if (!d->have_thread) return;
  pthread_mutex_lock(&d->lock);
  d->stop = 1;
  pthread_cond_signal(&d->wake);
  pthread_mutex_unlock(&d->lock);
  pthread_join(d->thread, NULL);
  d->have_thread = 0;
}

/*
 * gpt2_supervise.c - runs train_gpt2 under mpirun and restarts it from its latest
 * checkpoint when a rank dies.
 *
 *   gpt2_supervise -n 2 --max-restarts 3 -- build/examples/gpt2/train_gpt2 \
 *       --checkpoint-every 10 -o run1 [trainer options]
 *
 * When a rank dies (a signal, the OOM killer's SIGKILL, a non-zero exit), Open MPI's
 * mpirun ends the whole job; mpirun says on stderr which rank and which signal or exit
 * code. The supervisor forwards that stderr, reads the failure from it, reads the step
 * the rank had reached from its heartbeat (OUT/heartbeat, trainer/heartbeat.h), logs
 * the failure, waits a backoff (doubling from --backoff, at most 60 s) and runs the job
 * again with --resume OUT, up to --max-restarts times. The trainer takes its
 * checkpoints atomically (trainer/state.h) and, on resume, drops the metrics of steps
 * it will run again, so a run that was restarted logs each step once and ends with
 * the parameters an uninterrupted run would have. Every event also goes, as one JSON
 * line, to OUT/supervisor.jsonl. The ranks see GPT2_RESTARTS (how many restarts so
 * far), which the dashboard shows.
 *
 * Exit status: 0 when the job finished, 1 when it failed more than --max-restarts
 * times, 2 on a bad command line.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heartbeat.h"

static const char usage[] =
    "usage: gpt2_supervise [options] -- TRAIN_GPT2 [trainer options]\n"
    "  -n, --np N            ranks [2]\n"
    "      --max-restarts N  restarts before giving up [3]\n"
    "      --backoff S       seconds before the first restart, doubled each time, at most 60 [1]\n"
    "      --mpirun PATH     [mpirun]\n"
    "      --mpirun-arg ARG  one more argument for mpirun (repeatable), e.g. --oversubscribe\n"
    "The trainer needs --checkpoint-every N (N > 0); its -o/--out (default gpt2_out) holds\n"
    "the checkpoints, the heartbeats and supervisor.jsonl.\n";

#define MAX_ARGS 256

typedef struct {
  int np, max_restarts;
  double backoff;
  const char *mpirun;
  const char *mpirun_args[64];
  int nmpirun_args;
  char **trainer; /* the trainer's argv, --resume removed */
  int ntrainer;
  const char *user_resume; /* the first attempt's --resume, if any */
  const char *out_dir;
} sup_options;

/* What mpirun said about the job's end. */
typedef struct {
  int rank;      /* the rank that failed, -1 unknown */
  int signal;    /* the signal that killed it, 0 none */
  int exit_code; /* its non-zero exit status, -1 none */
  char host[64];
} failure;

static FILE *event_log;
static volatile sig_atomic_t stop_signal;
static pid_t job_pid;

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void on_signal(int sig) {
  stop_signal = sig;
  if (job_pid > 0) kill(job_pid, SIGTERM);
}

static int parse_count(const char *name, const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    fprintf(stderr, "gpt2_supervise: error: %s '%s': expected an integer in [%d, %d]\n", name, s, lo,
            hi);
    return -1;
  }
  *out = (int)v;
  return 0;
}

/* The value of a trainer option given as "--name V", "--name=V" or "-s V"; NULL if absent. */
static const char *trainer_option(char **argv, int argc, const char *name, const char *short_name) {
  const char *found = NULL;
  size_t len = strlen(name);
  for (int i = 1; i < argc; i++) {
    if ((strcmp(argv[i], name) == 0 || (short_name && strcmp(argv[i], short_name) == 0)) && i + 1 < argc)
      found = argv[++i];
    else if (strncmp(argv[i], name, len) == 0 && argv[i][len] == '=')
      found = argv[i] + len + 1;
  }
  return found;
}

static int parse(sup_options *o, int argc, char **argv) {
  *o = (sup_options){.np = 2, .max_restarts = 3, .backoff = 1.0, .mpirun = "mpirun"};
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage, stdout);
      exit(0);
    }
    if (v == NULL) {
      fprintf(stderr, "gpt2_supervise: error: %s needs a value (see --help)\n", a);
      return -1;
    }
    i++;
    if (strcmp(a, "-n") == 0 || strcmp(a, "--np") == 0) {
      if (parse_count(a, v, 1, 4096, &o->np) != 0) return -1;
    } else if (strcmp(a, "--max-restarts") == 0) {
      if (parse_count(a, v, 0, 1000, &o->max_restarts) != 0) return -1;
    } else if (strcmp(a, "--backoff") == 0) {
      char *end;
      o->backoff = strtod(v, &end);
      if (end == v || *end || !(o->backoff >= 0 && o->backoff <= 3600)) {
        fprintf(stderr, "gpt2_supervise: error: --backoff '%s': expected seconds in [0, 3600]\n", v);
        return -1;
      }
    } else if (strcmp(a, "--mpirun") == 0) {
      o->mpirun = v;
    } else if (strcmp(a, "--mpirun-arg") == 0) {
      if (o->nmpirun_args == 64) {
        fprintf(stderr, "gpt2_supervise: error: more than 64 --mpirun-arg\n");
        return -1;
      }
      o->mpirun_args[o->nmpirun_args++] = v;
    } else {
      fprintf(stderr, "gpt2_supervise: error: unknown option %s (see --help)\n", a);
      return -1;
    }
  }
  if (i + 1 >= argc) {
    fprintf(stderr, "gpt2_supervise: error: no trainer command after '--' (see --help)\n");
    return -1;
  }
  char **t = argv + i + 1;
  int nt = argc - i - 1;
  const char *every = trainer_option(t, nt, "--checkpoint-every", NULL);
  if (every == NULL || atoi(every) <= 0) {
    fprintf(stderr, "gpt2_supervise: error: the trainer needs --checkpoint-every N with N > 0, to "
                    "be restarted from a checkpoint\n");
    return -1;
  }
  o->out_dir = trainer_option(t, nt, "--out", "-o");
  if (o->out_dir == NULL) o->out_dir = "gpt2_out";
  o->user_resume = trainer_option(t, nt, "--resume", NULL);
  /* the trainer's arguments without --resume: each restart names the checkpoint itself */
  o->trainer = calloc((size_t)nt + 1, sizeof *o->trainer);
  if (o->trainer == NULL) return -1;
  for (int k = 0; k < nt; k++) {
    if (k > 0 && strcmp(t[k], "--resume") == 0 && k + 1 < nt) {
      k++;
      continue;
    }
    if (k > 0 && strncmp(t[k], "--resume=", 9) == 0) continue;
    o->trainer[o->ntrainer++] = t[k];
  }
  if (o->ntrainer + o->nmpirun_args + 8 > MAX_ARGS) {
    fprintf(stderr, "gpt2_supervise: error: too many arguments\n");
    return -1;
  }
  return 0;
}

/* The step of OUT/latest's checkpoint, or -1 when there is none. */
static long latest_step(const char *out_dir) {
  char path[4200], name[128];
  snprintf(path, sizeof path, "%s/latest", out_dir);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long step = -1;
  if (fscanf(f, "%127s", name) == 1 && sscanf(name, "step_%ld", &step) != 1) step = -1;
  fclose(f);
  return step;
}

/* One line of mpirun's stderr: what it says about the failed rank. */
static void read_failure(const char *line, failure *f) {
  int rank, sig, code;
  char host[64];
  const char *p;
  if ((p = strstr(line, "process rank ")) &&
      sscanf(p, "process rank %d with PID %*d on node %63s exited on signal %d", &rank, host, &sig) == 3) {
    f->rank = rank;
    f->signal = sig;
    snprintf(f->host, sizeof f->host, "%s", host);
  } else if ((p = strstr(line, "Process name: [[")) && (p = strstr(p, "],")) &&
             sscanf(p, "],%d]", &rank) == 1) {
    if (f->rank < 0) f->rank = rank;
  } else if ((p = strstr(line, "Exit code:")) && sscanf(p, "Exit code: %d", &code) == 1) {
    if (f->exit_code < 0) f->exit_code = code;
  }
}

/* Runs the job once; forwards mpirun's stderr to ours while reading the failure out of
 * it. Returns the wait status. */
static int run_job(const sup_options *o, int attempt, failure *f) {
  const char *argv[MAX_ARGS];
  int n = 0;
  char np[16];
  snprintf(np, sizeof np, "%d", o->np);
  argv[n++] = o->mpirun;
  argv[n++] = "-np";
  argv[n++] = np;
  for (int i = 0; i < o->nmpirun_args; i++) argv[n++] = o->mpirun_args[i];
  argv[n++] = "-x";
  argv[n++] = "GPT2_RESTARTS";
  for (int i = 0; i < o->ntrainer; i++) argv[n++] = o->trainer[i];
  if (attempt > 0 && latest_step(o->out_dir) >= 0) {
    argv[n++] = "--resume";
    argv[n++] = o->out_dir;
  } else if (attempt == 0 && o->user_resume) {
    argv[n++] = "--resume";
    argv[n++] = o->user_resume;
  }
  argv[n] = NULL;
  char restarts[16];
  snprintf(restarts, sizeof restarts, "%d", attempt);
  setenv("GPT2_RESTARTS", restarts, 1);

  *f = (failure){.rank = -1, .exit_code = -1};
  int fds[2];
  if (pipe(fds) != 0) {
    fprintf(stderr, "gpt2_supervise: error: pipe: %s\n", strerror(errno));
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "gpt2_supervise: error: fork: %s\n", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "gpt2_supervise: error: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  job_pid = pid;
  close(fds[1]);
  FILE *err = fdopen(fds[0], "r");
  char line[4096];
  while (err && fgets(line, sizeof line, err)) {
    fputs(line, stderr);
    read_failure(line, f);
  }
  if (err) fclose(err);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  job_pid = 0;
  return status;
}

/* The step the failed rank had finished (its heartbeat); unknown rank: the lowest. */
static long failed_step(const sup_options *o, int rank) {
  heartbeat hb;
  if (rank >= 0) return heartbeat_read(o->out_dir, rank, &hb) == 0 ? hb.step : -1;
  long low = -1;
  for (int r = 0; r < o->np; r++)
    if (heartbeat_read(o->out_dir, r, &hb) == 0 && (low < 0 || hb.step < low)) low = hb.step;
  return low;
}

static void log_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_event(const char *fmt, ...) {
  if (event_log == NULL) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(event_log, "{\"time\": %.3f, ", wall());
  vfprintf(event_log, fmt, ap);
  fputs("}\n", event_log);
  fflush(event_log);
  va_end(ap);
}

static void mkdirs(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      mkdir(path, 0777);
      *p = '/';
    }
  mkdir(path, 0777);
}

int main(int argc, char **argv) {
  sup_options o;
  if (parse(&o, argc, argv) != 0) return 2;
  mkdirs(o.out_dir);
  char log_path[4200];
  snprintf(log_path, sizeof log_path, "%s/supervisor.jsonl", o.out_dir);
  event_log = fopen(log_path, "a");
  if (event_log == NULL)
    fprintf(stderr, "gpt2_supervise: note: cannot write %s: %s\n", log_path, strerror(errno));
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  for (int attempt = 0;; attempt++) {
    long from = attempt > 0 ? latest_step(o.out_dir) : -1;
    log_event("\"event\": \"start\", \"attempt\": %d, \"np\": %d, \"from_step\": %ld", attempt, o.np,
              from < 0 ? 0 : from);
    failure f;
    int status = run_job(&o, attempt, &f);
    if (stop_signal) {
      fprintf(stderr, "gpt2_supervise: stopped by signal %d; the job was told to end\n", (int)stop_signal);
      log_event("\"event\": \"stopped\", \"signal\": %d", (int)stop_signal);
      return 1;
    }
    if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      fprintf(stderr, "gpt2_supervise: the job finished after %d restart(s)\n", attempt);
      log_event("\"event\": \"done\", \"restarts\": %d", attempt);
      return 0;
    }
    long step = failed_step(&o, f.rank);
    char what[160];
    if (f.signal > 0)
      snprintf(what, sizeof what, "was killed by signal %d (SIG%s)", f.signal,
               sigabbrev_np(f.signal) ? sigabbrev_np(f.signal) : "?");
    else if (f.exit_code >= 0)
      snprintf(what, sizeof what, "exited with status %d", f.exit_code);
    else if (status >= 0 && WIFEXITED(status))
      snprintf(what, sizeof what, "ended the job (mpirun exited with status %d)", WEXITSTATUS(status));
    else
      snprintf(what, sizeof what, "ended the job (mpirun was killed by signal %d)",
               status >= 0 && WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    char who[32] = "a rank";
    if (f.rank >= 0) snprintf(who, sizeof who, "rank %d", f.rank);
    fprintf(stderr, "gpt2_supervise: %s %s after step %ld (attempt %d)\n", who, what, step, attempt);
    log_event("\"event\": \"failure\", \"attempt\": %d, \"rank\": %d, \"signal\": %d, \"exit_code\": %d, "
              "\"step\": %ld, \"host\": \"%s\"",
              attempt, f.rank, f.signal, f.exit_code, step, f.host);
    if (attempt >= o.max_restarts) {
      fprintf(stderr, "gpt2_supervise: giving up after %d restart(s) (--max-restarts %d)\n", attempt,
              o.max_restarts);
      log_event("\"event\": \"gave_up\", \"restarts\": %d", attempt);
      return 1;
    }
    double wait_s = o.backoff;
    for (int k = 0; k < attempt && wait_s < 60.0; k++) wait_s *= 2;
    if (wait_s > 60.0) wait_s = 60.0;
    long ckpt = latest_step(o.out_dir);
    if (ckpt >= 0)
      fprintf(stderr, "gpt2_supervise: restart %d of %d in %.1f s, from the checkpoint of step %ld\n",
              attempt + 1, o.max_restarts, wait_s, ckpt);
    else
      fprintf(stderr, "gpt2_supervise: restart %d of %d in %.1f s, from the start (no checkpoint yet)\n",
              attempt + 1, o.max_restarts, wait_s);
    log_event("\"event\": \"restart\", \"restart\": %d, \"backoff_s\": %.3f, \"from_step\": %ld",
              attempt + 1, wait_s, ckpt < 0 ? 0 : ckpt);
    struct timespec ts = {(time_t)wait_s, (long)((wait_s - (double)(time_t)wait_s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_signal) {
    }
    if (stop_signal) return 1;
  }
}

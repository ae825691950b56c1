/*
 * train_gpt2.c - trains GPT-2 on CPU (C11 + OpenMP) across MPI ranks, using only
 * mlcomm's public API, and reads and writes llm.c's files (checkpoints, token shards,
 * tokenizer), so an llm.c user's files work unchanged.
 *
 *   mpirun -np 2 train_gpt2 -e gpt2_124M.bin -i 'data/train_??.bin' -j data/val.bin
 *
 * The pieces: model/ (forward, backward, AdamW, llm.c checkpoints), trainer/options.c
 * (command line), trainer/sync.c (allreduce, zero1, diloco), trainer/state.c
 * (checkpoint and exact resume), trainer/report.c (what is printed and logged),
 * trainer/sample.c (generated text). This file sets them up and runs the loop.
 *
 * Errors: every rank runs the same collectives whatever happens locally, and each
 * phase ends by agreeing whether any rank failed; then the lowest failing rank prints
 * its sentence and every rank exits with status 1. Nothing waits forever.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mlcomm/mlcomm.h>
#include <mpi.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dashboard.h"
#include "dataloader.h"
#include "gpt2.h"
#include "heartbeat.h"
#include "options.h"
#include "grid.h"
#include "parallel.h"
#include "report.h"
#include "sample.h"
#include "state.h"
#include "survive.h"
#include "sync.h"

#ifndef GPT2_PLOT_SCRIPT
#define GPT2_PLOT_SCRIPT "plot_loss.py"
#endif

#define ERRLEN 1024

typedef struct {
  train_options o;
  mlcommComm_t comm;
  int rank, nranks;
  gpt2_model model;
  trainer_sync sync;
  int have_sync;
  gpt2_loader *train, *val;
  gpt2_acts *acts;
  int *inputs, *targets;
  sampler smp;
  int have_sampler;
  report rep;
  long start_step;
  char ckpt[4096];
  char source[4200];
  char metrics[4096], plot[4096];
  heartbeat hb;   /* this rank's, rewritten after every step */
  dashboard dash; /* rank 0, with --dashboard */
  int survived;   /* --survive shrank the communicator: MPI_Finalize would wait forever */
  float last_loss; /* the last step's report, for a rank that takes over rank 0's */
  double last_dt, last_comm;
  long last_tokens;
  int last_outer;
  long last_step; /* the step that report is of (0: none in this run yet) */
} trainer;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *transport_name(int t) {
  return t == mlcommTransportMpi    ? "mpi"
         : t == mlcommTransportShm  ? "shm"
         : t == mlcommTransportNccl ? "nccl"
                                    : "auto";
}

/* Agrees on a phase's outcome; the lowest failing rank prints its sentence. */
static int agreed_failure(trainer *t, int failed, const char *err) {
  int first = -1, dead = -1;
  if (!ranks_failed(t->comm, failed, &first)) return 0;
  /* --survive says what happened itself, if the survivors carry on */
  if (t->o.survive && mlcommCommFailedRank(t->comm, &dead) == mlcommSuccess && dead >= 0) return 1;
  if (first == t->rank || (first < 0 && failed))
    fprintf(stderr, "train_gpt2: error (rank %d): %s\n", t->rank, err);
  return 1;
}

/* ---------------------------------------------------------------- setup */

/* Model shape and where the parameters come from. */
static int setup_model(trainer *t, trainer_info *info, gpt2_loader_state *pos, char *err) {
  train_options *o = &t->o;
  gpt2_config cfg;
  char path[4200];
  const char *from = o->load;
  if (o->resume) {
    if (state_find(o->resume, t->ckpt, sizeof t->ckpt, err, ERRLEN) != 0) return -1;
    if (state_read_info(t->ckpt, t->rank, info, pos, err, ERRLEN) != 0) return -1;
    if (info->nranks != t->nranks || info->B != o->B || info->T != o->T ||
        info->shuffle != o->shuffle || (o->shuffle && info->seed != o->seed)) {
      snprintf(err, ERRLEN,
               "--resume %.512s: it was written by %d ranks with -b %d -T %d%s; resume with the "
               "same rank count, batch shape and shuffling (now %d ranks, -b %d -T %d%s)",
               t->ckpt, info->nranks, info->B, info->T, info->shuffle ? " --shuffle" : "",
               t->nranks, o->B, o->T, o->shuffle ? " --shuffle" : "");
      return -1;
    }
    if ((info->sync == SYNC_DILOCO) != (o->sync == SYNC_DILOCO) ||
        (o->sync == SYNC_DILOCO && info->inner_steps != o->inner_steps)) {
      snprintf(err, ERRLEN,
               "--resume %.512s: it was written with --sync %s (H=%d); diloco checkpoints resume "
               "only as diloco with the same --inner-steps, and the others not as diloco",
               t->ckpt, sync_mode_name((sync_mode)info->sync), info->inner_steps);
      return -1;
    }
    snprintf(path, sizeof path, "%s/model.bin", t->ckpt);
    from = path;
  }
  if (from) {
    if (gpt2_checkpoint_read_config(from, &cfg, NULL, err, ERRLEN) != 0) return -1;
  } else {
    cfg = (gpt2_config){.max_seq_len = o->max_seq_len,
                        .vocab_size = o->vocab,
                        .padded_vocab_size = gpt2_padded_vocab(o->vocab),
                        .num_layers = o->depth,
                        .num_heads = o->heads,
                        .channels = o->channels};
  }
  char why[512];
  if (gpt2_model_setup(&t->model, &cfg, why, sizeof why) != 0) {
    snprintf(err, ERRLEN, "model shape: %s", why);
    return -1;
  }
  if (o->T > cfg.max_seq_len) {
    snprintf(err, ERRLEN,
             "-T %d is longer than the model's maximum sequence length maxT=%d%s%.512s", o->T,
             cfg.max_seq_len, from ? " in " : "", from ? from : "");
    return -1;
  }
  if (sync_init(&t->sync, o, t->comm, &t->model, err, ERRLEN) != 0) return -1;
  t->have_sync = 1;
  t->model.params = t->sync.params;
  if (from) {
    if (gpt2_checkpoint_read_params(from, &t->model, err, ERRLEN) != 0) return -1;
    snprintf(t->source, sizeof t->source, "%s%.4096s", o->resume ? "resumed from " : "", from);
  } else {
    gpt2_init_params(&t->model, o->seed);
    snprintf(t->source, sizeof t->source, "fresh GPT-2 initialisation (seed %llu)",
             (unsigned long long)o->seed);
  }
  sync_start(&t->sync);
  if (o->resume) {
    if (state_read_optimizer(t->ckpt, &t->sync, err, ERRLEN) != 0) return -1;
    t->start_step = info->step;
  }
  return 0;
}

static int setup(trainer *t, char *err) {
  train_options *o = &t->o;
  trainer_info info = {0};
  gpt2_loader_state pos = {0};
  if (setup_model(t, &info, &pos, err) != 0) return -1;
  if (gpt2_loader_open(&t->train, o->train_pattern, o->B, o->T, t->rank, t->nranks, o->shuffle,
                       o->seed, err, ERRLEN) != 0)
    return -1;
  if (o->val_pattern && gpt2_loader_open(&t->val, o->val_pattern, o->B, o->T, t->rank, t->nranks, 0,
                                         o->seed, err, ERRLEN) != 0)
    return -1;
  if (o->resume && gpt2_loader_set_state(t->train, &pos, err, ERRLEN) != 0) return -1;
  if (gpt2_acts_create(&t->acts, &t->model.config, o->B, o->T, 1, err, ERRLEN) != 0) return -1;
  t->inputs = malloc((size_t)o->B * o->T * sizeof(int));
  t->targets = malloc((size_t)o->B * o->T * sizeof(int));
  if (!t->inputs || !t->targets) {
    snprintf(err, ERRLEN, "out of memory for a batch of %d x %d tokens", o->B, o->T);
    return -1;
  }
  if (t->rank != 0) return 0;
  /* rank 0 alone prints, logs and samples */
  if (o->sample_every > 0) {
    char note[512];
    if (sampler_open(&t->smp, &t->model.config, o->tokenizer, o->tokenizer_given, o->gen_tokens,
                     1337, note, sizeof note, err, ERRLEN) != 0)
      return -1;
    t->have_sampler = 1;
    if (o->resume) t->smp.rng = info.sample_rng;
    if (note[0]) printf("note: %s\n", note);
  }
  snprintf(t->metrics, sizeof t->metrics, "%s", o->metrics ? o->metrics : "");
  if (!o->metrics) snprintf(t->metrics, sizeof t->metrics, "%s/metrics.jsonl", o->out_dir);
  snprintf(t->plot, sizeof t->plot, "%s", o->plot ? o->plot : "");
  if (!o->plot) snprintf(t->plot, sizeof t->plot, "%s/loss.png", o->out_dir);
  if ((!o->metrics || !o->plot) && state_make_dirs(o->out_dir, err, ERRLEN) != 0) return -1;
  /* steps after the checkpoint that an interrupted run had logged are run again */
  if (o->resume && metrics_trim(t->metrics, t->start_step, err, ERRLEN) != 0) return -1;
  if (o->dashboard) dashboard_open(&t->dash, (dash_mode)o->dashboard, o->out_dir, t->nranks, t->start_step);
  return report_open(&t->rep, t->metrics, o->resume != NULL, err, ERRLEN);
}

static void teardown(trainer *t) {
  if (t->o.dashboard && t->rank == 0) dashboard_close(&t->dash);
  if (t->have_sampler) sampler_close(&t->smp);
  report_close(&t->rep);
  free(t->inputs);
  free(t->targets);
  gpt2_acts_free(t->acts);
  if (t->val) gpt2_loader_close(t->val);
  if (t->train) gpt2_loader_close(t->train);
  if (t->have_sync) sync_free(&t->sync);
}

/* ---------------------------------------------------------------- the loop */

/* Reads a batch; a bad token is reported and replaced so the step can still run its
 * collectives (the step then fails on every rank). */
static int next_batch(trainer *t, gpt2_loader *l, const char *pattern, char *err) {
  if (gpt2_loader_next(l, t->inputs, t->targets) != 0) {
    snprintf(err, ERRLEN, "reading %s: %s", pattern, gpt2_loader_error(l));
    memset(t->inputs, 0, (size_t)t->o.B * t->o.T * sizeof(int));
    memset(t->targets, 0, (size_t)t->o.B * t->o.T * sizeof(int));
    return -1;
  }
  const int V = t->model.config.vocab_size, n = t->o.B * t->o.T;
  int bad = 0;
  for (int i = 0; i < n; i++) {
    int *pair[2] = {&t->inputs[i], &t->targets[i]};
    for (int k = 0; k < 2; k++) {
      if (*pair[k] >= 0 && *pair[k] < V) continue;
      if (!bad)
        snprintf(err, ERRLEN, "%s holds token %d, outside the model's vocabulary of %d", pattern,
                 *pair[k], V);
      bad = 1;
      *pair[k] = 0;
    }
  }
  return bad ? -1 : 0;
}

static int validate(trainer *t, long step, char *err) {
  int nb = (int)gpt2_loader_num_batches(t->val);
  if (nb > t->o.val_batches) nb = t->o.val_batches;
  gpt2_loader_reset(t->val);
  double sum = 0.0;
  int bad = 0;
  for (int i = 0; i < nb; i++) {
    bad |= next_batch(t, t->val, t->o.val_pattern, err) != 0;
    sum += gpt2_forward(&t->model, t->acts, t->inputs, t->targets);
  }
  float vals[2] = {nb ? (float)(sum / nb) : 0.0f, (float)bad};
  if (sync_average(&t->sync, vals, 2, err, ERRLEN) != 0) bad = 1;
  if (agreed_failure(t, bad, err)) return -1;
  if (t->rank == 0) report_val(&t->rep, step, vals[0], nb);
  return 0;
}

static int checkpoint(trainer *t, long step, char *err) {
  trainer_info info = {.step = step,
                       .nranks = t->nranks,
                       .B = t->o.B,
                       .T = t->o.T,
                       .sync = t->o.sync,
                       .inner_steps = t->o.inner_steps,
                       .shuffle = t->o.shuffle,
                       .seed = t->o.seed,
                       .sample_rng = t->have_sampler ? t->smp.rng : 0};
  /* -1: this rank failed; -2: another did (so the one that knows why speaks) */
  int rc = state_save(t->o.out_dir, &info, &t->model, &t->sync, t->train, err, ERRLEN);
  if (agreed_failure(t, rc == -1, err) || rc != 0) return -1;
  if (t->rank == 0) printf("checkpoint: %s/step_%08ld\n", t->o.out_dir, step);
  return 0;
}

/* The heartbeat is for watchers: a rank that cannot write it trains on. */
static void beat(trainer *t, long step) {
  char why[ERRLEN];
  if (t->hb.pid == 0) { /* the first beat: who this rank is */
    t->hb = (heartbeat){.rank = t->rank, .pid = (int)getpid(), .restarts = heartbeat_restarts()};
    gethostname(t->hb.host, sizeof t->hb.host - 1);
    mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
    mlcommCommGetConfig(t->comm, &cfg);
    snprintf(t->hb.transport, sizeof t->hb.transport, "%s", transport_name(cfg.transport));
  }
  t->hb.step = step;
  t->hb.steps = t->o.steps;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  t->hb.time = ts.tv_sec + ts.tv_nsec * 1e-9;
  if (heartbeat_write(t->o.out_dir, &t->hb, why, sizeof why) != 0 && step == t->start_step)
    fprintf(stderr, "train_gpt2: note (rank %d): no heartbeat: %s\n", t->rank, why);
}

/* --survive: the new rank 0 after rank 0 died logs from here on; the record of the
 * last step every survivor finished (the one before the failure's, or the failure's own
 * when rank 0 died after reporting it, in a checkpoint or a validation) is written
 * again if rank 0 died before writing it. */
static void take_over_reporting(trainer *t) {
  long done = t->last_step > t->start_step ? t->last_step : t->start_step;
  const train_options *o = &t->o;
  char why[ERRLEN];
  snprintf(t->metrics, sizeof t->metrics, "%s", o->metrics ? o->metrics : "");
  if (!o->metrics) snprintf(t->metrics, sizeof t->metrics, "%s/metrics.jsonl", o->out_dir);
  snprintf(t->plot, sizeof t->plot, "none");
  if (metrics_trim(t->metrics, done, why, sizeof why) != 0 ||
      report_open(&t->rep, t->metrics, 1, why, sizeof why) != 0)
    fprintf(stderr, "train_gpt2: note: taking over the metrics: %s\n", why);
  if (done > t->start_step && metrics_last_step(t->metrics) < done)
    report_step(&t->rep, done, o->steps, t->last_loss, t->last_dt, t->last_comm,
                t->last_tokens, t->last_outer);
  if (o->dashboard) dashboard_open(&t->dash, (dash_mode)o->dashboard, o->out_dir, t->nranks, done);
}

/* --survive: a rank died in this step's collectives; the others shrink and go on. */
static int survived(trainer *t, long step, char *err) {
  if (!t->o.survive) return 0;
  survive_info info;
  char why[ERRLEN] = "";
  if (!survive_shrink(&t->comm, &t->sync, &info, why, sizeof why)) {
    if (why[0]) fprintf(stderr, "train_gpt2: error (rank %d): %s\n", t->rank, why);
    if (why[0]) snprintf(err, ERRLEN, "%s", why);
    return 0;
  }
  t->survived = 1;
  t->rank = t->hb.rank = t->sync.rank;
  t->nranks = t->sync.nranks;
  if (t->rank == 0 && info.old_rank != 0) take_over_reporting(t);
  if (t->rank == 0) {
    printf("survive: rank %d died in step %ld; continuing on %d ranks without a restart\n",
           info.dead, step, t->nranks);
    fflush(stdout);
  }
  return 1;
}

static int train(trainer *t, char *err) {
  const train_options *o = &t->o;
  const long steps = o->steps;
  const gpt2_adamw opt = {o->lr, o->beta1, o->beta2, o->eps, o->weight_decay};
  gpt2_grad_hook hook = sync_grad_hook(&t->sync);

  beat(t, t->start_step);
  if (t->start_step == 0 && t->val && o->val_every > 0 && validate(t, 0, err) != 0) return -1;
  for (long step = t->start_step + 1; step <= steps; step++) {
    double t0 = now();
    long tokens = (long)o->B * o->T * t->nranks;
    sync_begin_step(&t->sync);
    int bad = next_batch(t, t->train, o->train_pattern, err) != 0, outer = 0;
    float loss = gpt2_forward(&t->model, t->acts, t->inputs, t->targets);
    gpt2_backward(&t->model, t->acts, t->sync.grads, t->inputs, t->targets, &hook);
    /* collectives run on every rank even after a local failure, or the others would wait */
    int rc = sync_step(&t->sync, &opt, step, &outer, bad ? NULL : err, bad ? 0 : ERRLEN);
    if (rc != 0 && outer && survived(t, step, err)) /* only diloco's outer step talks */
      rc = sync_outer_step(&t->sync, bad ? NULL : err, bad ? 0 : ERRLEN);
    if (rc != 0) bad = 1;
    if (o->sync == SYNC_DILOCO && step == steps && !outer) {
      /* the run ends between outer steps: bring the ranks together once more */
      rc = sync_outer_step(&t->sync, bad ? NULL : err, bad ? 0 : ERRLEN);
      if (rc != 0 && survived(t, step, err)) rc = sync_outer_step(&t->sync, bad ? NULL : err, bad ? 0 : ERRLEN);
      if (rc != 0) bad = 1;
      outer = 1;
    }
    float vals[2] = {loss, (float)bad};
    rc = sync_average(&t->sync, vals, 2, bad ? NULL : err, bad ? 0 : ERRLEN);
    if (rc != 0 && survived(t, step, err)) {
      vals[0] = loss, vals[1] = (float)bad;
      tokens = (long)o->B * o->T * t->nranks;
      rc = sync_average(&t->sync, vals, 2, bad ? NULL : err, bad ? 0 : ERRLEN);
    }
    if (rc != 0) bad = 1;
    if (vals[1] != 0.0f || bad) {
      if (agreed_failure(t, bad, err)) return -1;
    }
    double dt = now() - t0;
    if (t->rank == 0)
      report_step(&t->rep, step, steps, vals[0], dt, t->sync.comm_seconds, tokens, outer);
    t->last_loss = vals[0], t->last_dt = dt, t->last_comm = t->sync.comm_seconds;
    t->last_tokens = tokens, t->last_outer = outer, t->last_step = step;
    beat(t, step);
    if (t->rank == 0 && o->dashboard)
      dashboard_step(&t->dash, &(dash_step){step, steps, vals[0], dt, t->sync.comm_seconds, tokens,
                                            step == steps ? "done" : "running"});

    /* (--survive: a phase that failed with a dead rank runs again on the survivors) */
    if (t->val && o->val_every > 0 && (step % o->val_every == 0 || step == steps) &&
        validate(t, step, err) != 0 && !(survived(t, step, err) && validate(t, step, err) == 0))
      return -1;
    if (t->have_sampler && step % o->sample_every == 0) {
      const char *text;
      size_t len;
      if (sampler_run(&t->smp, &t->model, &text, &len) == 0)
        report_sample(&t->rep, step, text, len);
    }
    if (o->checkpoint_every > 0 && (step % o->checkpoint_every == 0 || step == steps) &&
        checkpoint(t, step, err) != 0 && !(survived(t, step, err) && checkpoint(t, step, err) == 0))
      return -1;
  }
  if (o->save) {
    int failed = t->rank == 0 &&
                 gpt2_checkpoint_write(o->save, &t->model, GPT2_CHECKPOINT_FP32, err, ERRLEN) != 0;
    if (agreed_failure(t, failed, err)) return -1;
    if (t->rank == 0) printf("model: %s (llm.c version 3)\n", o->save);
  }
  if (t->rank == 0) report_done(&t->rep, steps);
  return 0;
}

/* ---------------------------------------------------------------- main */

/* The loss curve, drawn by plot_loss.py once MPI is finalised (forking under MPI is
 * not safe with every transport). Failure to plot is a note, not an error. */
static void plot(const char *metrics, const char *png) {
  const char *script = getenv("GPT2_PLOT_SCRIPT") ? getenv("GPT2_PLOT_SCRIPT") : GPT2_PLOT_SCRIPT;
  const char *python = getenv("GPT2_PYTHON");
  if (!python) python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  pid_t pid = fork();
  if (pid == 0) {
    execlp(python, python, script, metrics, png, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fprintf(stderr, "note: the loss plot was not drawn (%s %s %s %s failed)\n", python, script,
            metrics, png);
  else
    printf("loss curve: %s\n", png);
}

int main(int argc, char **argv) {
  int provided, world_rank = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  static trainer t;
  char err[ERRLEN] = "";
  int rc = options_parse(&t.o, argc, argv, world_rank, err, sizeof err);
  if (rc != 0) {
    /* every rank parsed the same arguments and reached the same verdict */
    if (rc < 0 && world_rank == 0) fprintf(stderr, "train_gpt2: error: %s\n", err);
    MPI_Finalize();
    return rc < 0 ? 2 : 0;
  }
  mlcommConfig_t config = MLCOMM_CONFIG_INITIALIZER;
  config.transport = t.o.transport;
  mlcommResult_t r = mlcommCommInitFromMPI(&t.comm, MPI_COMM_WORLD, &config);
  if (r != mlcommSuccess) {
    if (world_rank == 0)
      fprintf(stderr, "train_gpt2: error: cannot create the mlcomm communicator (-t %s): %s\n",
              transport_name(t.o.transport), mlcommGetLastError(NULL));
    MPI_Finalize();
    return 1;
  }
  mlcommCommRank(t.comm, &t.rank);
  mlcommCommCount(t.comm, &t.nranks);
  if (grid_wanted(&t.o)) { /* tensor, pipeline and data parallelism: trainer/parallel.c */
    mlcommConfig_t in_force = MLCOMM_CONFIG_INITIALIZER;
    mlcommCommGetConfig(t.comm, &in_force);
    rc = parallel_run(&t.o, t.comm, transport_name(in_force.transport));
    mlcommCommDestroy(t.comm);
    MPI_Finalize();
    if (rc == 0 && t.rank == 0 && (!t.o.plot || strcmp(t.o.plot, "none") != 0)) {
      snprintf(t.metrics, sizeof t.metrics, "%s", t.o.metrics ? t.o.metrics : "");
      if (!t.o.metrics) snprintf(t.metrics, sizeof t.metrics, "%s/metrics.jsonl", t.o.out_dir);
      snprintf(t.plot, sizeof t.plot, "%s", t.o.plot ? t.o.plot : "");
      if (!t.o.plot) snprintf(t.plot, sizeof t.plot, "%s/loss.png", t.o.out_dir);
      plot(t.metrics, t.plot);
    }
    return rc;
  }

  int failed = agreed_failure(&t, setup(&t, err) != 0, err);
  if (!failed) {
    if (t.rank == 0) {
      mlcommConfig_t in_force = MLCOMM_CONFIG_INITIALIZER;
      mlcommCommGetConfig(t.comm, &in_force);
      run_summary s = {
          .o = &t.o,
          .cfg = &t.model.config,
          .num_params = t.model.layout.num_params,
          .nranks = t.nranks,
#ifdef _OPENMP
          .threads = omp_get_max_threads(),
#else
          .threads = 1,
#endif
          .transport = transport_name(in_force.transport),
          .model_source = t.source,
          .train_batches = gpt2_loader_num_batches(t.train),
          .val_batches = t.val ? gpt2_loader_num_batches(t.val) : 0,
          .start_step = t.start_step,
      };
      report_summary(&s);
    }
    failed = train(&t, err) != 0;
  }
  int rank = t.rank, draw = !failed && rank == 0 && strcmp(t.plot, "none") != 0 && t.rep.metrics;
  teardown(&t);
  mlcommCommDestroy(t.comm);
  if (t.survived) { /* MPI_Finalize would wait for the rank that died */
    fflush(stdout);
    fflush(stderr);
    _exit(failed ? 1 : 0);
  }
  MPI_Finalize();
  if (draw) plot(t.metrics, t.plot);
  return failed ? 1 : 0;
}

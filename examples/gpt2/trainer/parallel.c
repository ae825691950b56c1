/* parallel.c - the model-parallel trainer's setup, steps and final save (parallel.h). */
#include "parallel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dataloader.h"
#include "dp.h"
#include "gpt2.h"
#include "grid.h"
#include "parallel_state.h"
#include "pp.h"
#include "report.h"
#include "sample.h"
#include "state.h"
#include "tp.h"

#define ERRLEN 1024

typedef struct {
  const train_options *o;
  grid g;
  stage s;
  dp_sync dp;
  gpt2_config cfg;
  gpt2_loader *train, *val;
  int *inputs, *targets; /* (B,T) */
  report rep;
  sampler smp;
  int have_sampler;
  long start_step;
  uint64_t sample_rng; /* resumed */
  double step_bytes[TRAFFIC_GROUPS]; /* the last step's */
  double comm_total, time_total;     /* steps after the first */
  char source[4200];
} run;

/* Agrees on a phase's outcome; the lowest failing rank prints its sentence. */
static int agreed_failure(run *r, int failed, const char *err) {
  int first = -1;
  if (!ranks_failed(r->g.world, failed, &first)) return 0;
  if (first == r->g.rank || (first < 0 && failed))
    fprintf(stderr, "train_gpt2: error (rank %d): %s\n", r->g.rank, err);
  return 1;
}

/* The whole model's starting parameters (fresh or from -e), and this rank's part. */
static int load_part(run *r, char *err) {
  gpt2_model full;
  char why[512];
  if (gpt2_model_setup(&full, &r->cfg, why, sizeof why) != 0) {
    snprintf(err, ERRLEN, "model shape: %s", why);
    return -1;
  }
  full.params = malloc(full.layout.num_params * sizeof(float));
  if (!full.params) {
    snprintf(err, ERRLEN, "out of memory for the whole model (%zu parameters)",
             full.layout.num_params);
    return -1;
  }
  int rc = 0;
  if (r->o->load) {
    rc = gpt2_checkpoint_read_params(r->o->load, &full, err, ERRLEN);
    snprintf(r->source, sizeof r->source, "%.4096s", r->o->load);
  } else {
    gpt2_init_params(&full, r->o->seed);
    snprintf(r->source, sizeof r->source, "fresh GPT-2 initialisation (seed %llu)",
             (unsigned long long)r->o->seed);
  }
  if (rc == 0) stage_take(&r->s, &full, full.params, r->s.params);
  free(full.params);
  return rc;
}

static int setup(run *r, int *layout_bad, char *err) {
  const train_options *o = r->o;
  int nranks;
  mlcommCommCount(r->g.world, &nranks);
  char dir[4096], from[4200];
  if (o->resume) {
    if (state_find(o->resume, dir, sizeof dir, err, ERRLEN) != 0) return -1;
    snprintf(from, sizeof from, "%s/model.bin", dir);
    snprintf(r->source, sizeof r->source, "resumed from %.4096s", dir);
  }
  if (o->load || o->resume) {
    if (gpt2_checkpoint_read_config(o->resume ? from : o->load, &r->cfg, NULL, err, ERRLEN) != 0)
      return -1;
  } else {
    r->cfg = (gpt2_config){.max_seq_len = o->max_seq_len, .vocab_size = o->vocab,
                           .padded_vocab_size = gpt2_padded_vocab(o->vocab),
                           .num_layers = o->depth, .num_heads = o->heads,
                           .channels = o->channels};
    char why[512];
    if (gpt2_config_check(&r->cfg, why, sizeof why) != 0) {
      snprintf(err, ERRLEN, "model shape: %s", why);
      return -1;
    }
  }
  if (o->T > r->cfg.max_seq_len) {
    snprintf(err, ERRLEN, "-T %d is longer than the model's maximum sequence length maxT=%d",
             o->T, r->cfg.max_seq_len);
    return -1;
  }
  int dp;
  if (grid_check(o, &r->cfg, nranks, &dp, err, ERRLEN) != 0) return *layout_bad = 1, -1;
  return 0;
}

static int setup_parts(run *r, char *err) {
  const train_options *o = r->o;
  grid *g = &r->g;
  const int M = o->micro_batches;
  if (stage_init(&r->s, &r->cfg, g, o->B / M, o->T, pp_slots(g->pp, g->pp_rank, M), err,
                 ERRLEN) != 0)
    return -1;
  if (dp_init(&r->dp, &r->s, o->sync, err, ERRLEN) != 0) return -1;
  gpt2_loader_state pos;
  if (o->resume) {
    const size_t n = r->s.part.layout.num_params;
    float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    int rc = m && v ? pstate_load(o, &r->s, m, v, &r->start_step, &r->sample_rng, &pos,
                                          err, ERRLEN) : -1;
    if (!m || !v) snprintf(err, ERRLEN, "out of memory for the optimizer state");
    if (rc == 0) dp_set_moments(&r->dp, m, v);
    free(m);
    free(v);
    if (rc != 0) return -1;
  } else if (load_part(r, err) != 0) {
    return -1;
  }
  /* each replica reads as data-parallel rank dp_rank of the plain trainer */
  if (gpt2_loader_open(&r->train, o->train_pattern, o->B, o->T, g->dp_rank, g->dp, o->shuffle,
                       o->seed, err, ERRLEN) != 0)
    return -1;
  if (o->resume && gpt2_loader_set_state(r->train, &pos, err, ERRLEN) != 0) return -1;
  if (o->val_pattern && gpt2_loader_open(&r->val, o->val_pattern, o->B, o->T, g->dp_rank, g->dp, 0,
                                         o->seed, err, ERRLEN) != 0)
    return -1;
  r->inputs = malloc((size_t)o->B * o->T * sizeof(int));
  r->targets = malloc((size_t)o->B * o->T * sizeof(int));
  if (!r->inputs || !r->targets) {
    snprintf(err, ERRLEN, "out of memory for a batch of %d x %d tokens", o->B, o->T);
    return -1;
  }
  if (g->rank != 0) return 0;
  if (o->sample_every > 0) {
    char note[512];
    if (sampler_open(&r->smp, &r->cfg, o->tokenizer, o->tokenizer_given, o->gen_tokens, 1337,
                     note, sizeof note, err, ERRLEN) != 0)
      return -1;
    r->have_sampler = 1;
    if (o->resume) r->smp.rng = r->sample_rng;
    if (note[0]) printf("note: %s\n", note);
  }
  char metrics[4096];
  snprintf(metrics, sizeof metrics, "%s", o->metrics ? o->metrics : "");
  if (!o->metrics) {
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", o->out_dir);
    if (state_make_dirs(o->out_dir, err, ERRLEN) != 0) return -1;
  }
  return report_open(&r->rep, metrics, o->resume != NULL, err, ERRLEN);
}

static int next_batch(run *r, gpt2_loader *l, const char *pattern, char *err) {
  const train_options *o = r->o;
  if (gpt2_loader_next(l, r->inputs, r->targets) != 0) {
    snprintf(err, ERRLEN, "reading %s: %s", pattern, gpt2_loader_error(l));
    memset(r->inputs, 0, (size_t)o->B * o->T * sizeof(int));
    memset(r->targets, 0, (size_t)o->B * o->T * sizeof(int));
    return -1;
  }
  const int V = r->cfg.vocab_size, n = o->B * o->T;
  int bad = 0;
  for (int i = 0; i < 2 * n; i++) {
    int *t = i < n ? &r->inputs[i] : &r->targets[i - n];
    if (*t >= 0 && *t < V) continue;
    if (!bad) snprintf(err, ERRLEN, "%s holds token %d, outside the model's vocabulary of %d",
                       pattern, *t, V);
    bad = 1, *t = 0;
  }
  return bad;
}

/* The replica's mean loss, known on every rank: the last stage's tensor rank 0 of each
 * replica contributes, and a failure flag rides along. */
static int world_loss(run *r, double loss_sum, int bad, float *loss) {
  const grid *g = &r->g;
  const double tokens = (double)r->o->B * r->o->T;
  float v[2] = {r->s.last && g->tp_rank == 0 ? (float)(loss_sum / tokens / g->dp) : 0.0f,
                (float)bad};
  *loss = 0.0f;
  if (mlcommAllReduce(v, v, 2, mlcommFloat32, mlcommSum, g->world) != mlcommSuccess) return 1;
  *loss = v[0];
  return v[1] != 0.0f;
}

static int validate(run *r, long step, char *err) {
  const train_options *o = r->o;
  int nb = (int)gpt2_loader_num_batches(r->val);
  if (nb > o->val_batches) nb = o->val_batches;
  gpt2_loader_reset(r->val);
  double sum = 0.0;
  int bad = 0;
  for (int i = 0; i < nb; i++) {
    bad |= next_batch(r, r->val, o->val_pattern, err) != 0;
    sum += pp_forward(&r->s, o->micro_batches, r->inputs, r->targets);
  }
  if (r->s.failed != mlcommSuccess && !bad) {
    snprintf(err, ERRLEN, "validation: %s", mlcommGetErrorString(r->s.failed));
    bad = 1;
  }
  float loss = 0.0f;
  if (world_loss(r, nb ? sum / nb : 0.0, bad, &loss) && agreed_failure(r, bad, err)) return -1;
  if (r->g.rank == 0) report_val(&r->rep, step, loss, nb);
  return 0;
}

/* The whole model on rank 0 (full->params on every rank, freed by the caller): each
 * tensor from its one owner, summed with zeros from everyone else (exact). Collective;
 * fails on every rank when one does. */
static int gather_model(run *r, gpt2_model *full, char *err) {
  char why[512];
  gpt2_model_setup(full, &r->cfg, why, sizeof why);
  const size_t n = full->layout.num_params;
  full->params = calloc(n, sizeof(float));
  int failed = full->params == NULL;
  if (failed)
    snprintf(err, ERRLEN, "out of memory for the whole model (%zu parameters)", n);
  else
    stage_give(&r->s, r->s.params, full, full->params);
  if (!ranks_failed(r->g.world, failed, NULL) &&
      mlcommReduce(full->params, full->params, n, mlcommFloat32, mlcommSum, 0, r->g.world) !=
          mlcommSuccess) {
    snprintf(err, ERRLEN, "gathering the model: %s", mlcommGetLastError(r->g.world));
    failed = 1;
  }
  return agreed_failure(r, failed, err) ? -1 : 0;
}

/* --save: the whole model as an llm.c file. */
static int save(run *r, char *err) {
  gpt2_model full;
  int failed = gather_model(r, &full, err) != 0;
  if (!failed) {
    int bad = r->g.rank == 0 &&
              gpt2_checkpoint_write(r->o->save, &full, GPT2_CHECKPOINT_FP32, err, ERRLEN) != 0;
    failed = agreed_failure(r, bad, err);
  }
  free(full.params);
  if (!failed && r->g.rank == 0) printf("model: %s (llm.c version 3)\n", r->o->save);
  return failed ? -1 : 0;
}

/* Text from the whole model, on rank 0 (the plain trainer's sampler). */
static int sample(run *r, long step, char *err) {
  gpt2_model full;
  int failed = gather_model(r, &full, err) != 0;
  if (!failed && r->g.rank == 0) {
    const char *text;
    size_t len;
    if (sampler_run(&r->smp, &full, &text, &len) == 0) report_sample(&r->rep, step, text, len);
  }
  free(full.params);
  return failed ? -1 : 0;
}

/* The moments come from the replicas first (zero1 holds shards). */
static int checkpoint(run *r, long step, char *err) {
  const size_t n = r->s.part.layout.num_params;
  float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
  int failed = !m || !v;
  if (failed) snprintf(err, ERRLEN, "out of memory for the optimizer state");
  if (!ranks_failed(r->g.world, failed, NULL)) {
    mlcommResult_t rc = dp_get_moments(&r->dp, m, v);
    failed = rc != mlcommSuccess;
    if (failed) snprintf(err, ERRLEN, "gathering the optimizer state: %s", mlcommGetErrorString(rc));
  }
  int rc = -2;
  if (!ranks_failed(r->g.world, failed, NULL))
    rc = pstate_save(r->o, step, &r->s, m, v, r->have_sampler ? r->smp.rng : 0, r->train, err,
                     ERRLEN);
  else if (failed)
    rc = -1;
  free(m);
  free(v);
  return rc;
}

static int train(run *r, char *err) {
  const train_options *o = r->o;
  grid *g = &r->g;
  stage *s = &r->s;
  const gpt2_adamw opt = {o->lr, o->beta1, o->beta2, o->eps, o->weight_decay};
  const long tokens = (long)o->B * o->T * g->dp;
  if (r->start_step == 0 && r->val && o->val_every > 0 && validate(r, 0, err) != 0) return -1;
  for (long step = r->start_step + 1; step <= o->steps; step++) {
    double t0 = grid_now();
    memset(g->bytes, 0, sizeof g->bytes);
    g->comm_seconds = 0.0;
    int bad = next_batch(r, r->train, o->train_pattern, err);
    memset(s->grads, 0, s->part.layout.num_params * sizeof(float));
    double loss_sum = pp_train(s, o->micro_batches, r->inputs, r->targets,
                               1.0f / ((float)o->B * o->T));
    mlcommResult_t rc = dp_step(&r->dp, &opt, step);
    if (rc == mlcommSuccess) rc = s->failed;
    if (rc != mlcommSuccess && !bad) {
      snprintf(err, ERRLEN, "step %ld: %s: %s", step, mlcommGetErrorString(rc),
               mlcommGetLastError(NULL));
      bad = 1;
    }
    float loss;
    double c0 = grid_now();
    int any = world_loss(r, loss_sum, bad, &loss);
    g->comm_seconds += grid_now() - c0;
    if (any && agreed_failure(r, bad, err)) return -1;
    double dt = grid_now() - t0;
    memcpy(r->step_bytes, g->bytes, sizeof g->bytes);
    if (step > r->start_step + 1) r->comm_total += g->comm_seconds, r->time_total += dt;
    if (g->rank == 0) report_step(&r->rep, step, o->steps, loss, dt, g->comm_seconds, tokens, 0);
    if (r->val && o->val_every > 0 && (step % o->val_every == 0 || step == o->steps) &&
        validate(r, step, err) != 0)
      return -1;
    if (o->sample_every > 0 && step % o->sample_every == 0 && sample(r, step, err) != 0)
      return -1;
    if (o->checkpoint_every > 0 && (step % o->checkpoint_every == 0 || step == o->steps)) {
      int rc = checkpoint(r, step, err);
      if (agreed_failure(r, rc == -1, err) || rc != 0) return -1;
      if (g->rank == 0) printf("checkpoint: %s/step_%08ld\n", o->out_dir, step);
    }
  }
  return 0;
}

/* Every rank's bytes per group in the last step, and its share of time in mlcomm, into
 * OUT/comm_bytes.json (rank 0), for the figures and the test that checks them. */
static int write_traffic(run *r, char *err) {
  grid *g = &r->g;
  double mine[TRAFFIC_GROUPS + 1], *all = malloc((size_t)g->nranks * sizeof mine);
  if (!all) return snprintf(err, ERRLEN, "out of memory"), -1;
  memcpy(mine, r->step_bytes, sizeof r->step_bytes);
  mine[TRAFFIC_GROUPS] = r->time_total > 0 ? r->comm_total / r->time_total : 0.0;
  int failed = mlcommAllGather(mine, all, TRAFFIC_GROUPS + 1, mlcommFloat64, g->world) !=
               mlcommSuccess;
  if (!failed && g->rank == 0) {
    char path[4200];
    snprintf(path, sizeof path, "%s/comm_bytes.json", r->o->out_dir);
    FILE *f = state_make_dirs(r->o->out_dir, err, ERRLEN) == 0 ? fopen(path, "w") : NULL;
    if (!f) {
      snprintf(err, ERRLEN, "cannot write %.900s", path);
      failed = 1;
    } else {
      fprintf(f, "{\"tp\": %d, \"pp\": %d, \"dp\": %d, \"micro_batches\": %d, \"ranks\": [",
              g->tp, g->pp, g->dp, r->o->micro_batches);
      for (int i = 0; i < g->nranks; i++) {
        const double *x = all + (size_t)i * (TRAFFIC_GROUPS + 1);
        fprintf(f, "%s\n {\"tp\": %.0f, \"pp\": %.0f, \"emb\": %.0f, \"dp\": %.0f, "
                "\"comm_frac\": %.4f}", i ? "," : "", x[0], x[1], x[2], x[3], x[4]);
      }
      fprintf(f, "]}\n");
      fclose(f);
    }
  }
  free(all);
  return failed ? -1 : 0;
}

static void summary(run *r, const char *transport) {
  const train_options *o = r->o;
  const grid *g = &r->g;
  const gpt2_config *c = &r->cfg;
  gpt2_layout lo;
  gpt2_layout_init(&lo, c);
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  printf("+------------------------------------------------------------------\n");
  printf("| train_gpt2: GPT-2 on CPU, tensor x pipeline x data parallel through mlcomm\n");
  printf("| model      L=%d NH=%d C=%d maxT=%d V=%d (padded %d), %.2fM parameters\n",
         c->num_layers, c->num_heads, c->channels, c->max_seq_len, c->vocab_size,
         c->padded_vocab_size, lo.num_params / 1e6);
  printf("| from       %s\n", r->source);
  printf("| ranks      %d = tensor %d x pipeline %d x data %d, %d OpenMP thread%s, transport %s\n",
         g->nranks, g->tp, g->pp, g->dp, threads, threads == 1 ? "" : "s", transport);
  printf("| batch      B=%d x T=%d per replica in %d micro-batch%s (1F1B) = %ld tokens per step\n",
         o->B, o->T, o->micro_batches, o->micro_batches == 1 ? "" : "es",
         (long)o->B * o->T * g->dp);
  printf("| replicas   --sync %s over each data-parallel group of %d\n", sync_mode_name(o->sync),
         g->dp);
  printf("| AdamW      lr %g, betas %g %g, eps %g, weight decay %g\n", o->lr, o->beta1, o->beta2,
         o->eps, o->weight_decay);
  printf("| steps      %ld (starting after step %ld)\n", o->steps, r->start_step);
  printf("+------------------------------------------------------------------\n");
  fflush(stdout);
}

int parallel_run(const train_options *o, mlcommComm_t world, const char *transport) {
  static run r;
  memset(&r, 0, sizeof r);
  r.o = o;
  r.g.world = world;
  mlcommCommRank(world, &r.g.rank);
  char err[ERRLEN] = "";
  int layout_bad = 0;
  int failed = setup(&r, &layout_bad, err) != 0, first = -1;
  if (ranks_failed(world, failed, &first)) { /* a bad layout is a bad command line: 2 */
    if ((first == r.g.rank || (first < 0 && failed)) && layout_bad)
      fprintf(stderr, "train_gpt2: error: %s\n", err);
    else if (first == r.g.rank || (first < 0 && failed))
      fprintf(stderr, "train_gpt2: error (rank %d): %s\n", r.g.rank, err);
    return layout_bad ? 2 : 1;
  }
  int dp, nranks;
  mlcommCommCount(world, &nranks);
  grid_check(o, &r.cfg, nranks, &dp, err, ERRLEN);
  failed = grid_split(&r.g, world, o->tensor_parallel, o->pipeline_parallel, dp, err, ERRLEN) != 0;
  if (!failed) failed = setup_parts(&r, err) != 0;
  failed = agreed_failure(&r, failed, err);
  if (!failed) {
    if (r.g.rank == 0) summary(&r, transport);
    failed = train(&r, err) != 0;
  }
  if (!failed) failed = agreed_failure(&r, write_traffic(&r, err) != 0, err);
  if (!failed && o->save) failed = save(&r, err) != 0;
  if (!failed && r.g.rank == 0) report_done(&r.rep, o->steps);
  if (r.have_sampler) sampler_close(&r.smp);
  report_close(&r.rep);
  free(r.inputs);
  free(r.targets);
  if (r.val) gpt2_loader_close(r.val);
  if (r.train) gpt2_loader_close(r.train);
  dp_free(&r.dp);
  stage_free(&r.s);
  grid_free(&r.g);
  return failed ? 1 : 0;
}

/* report.c - console lines and the metrics JSONL file (report.h). Losses are written
 * with 9 significant digits, enough to give back the exact float. */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* JSON has no NaN or infinity: a diverged loss is written as null. */
static void json_float(FILE *f, float x) {
  if (isfinite(x))
    fprintf(f, "%.9g", x);
  else
    fputs("null", f);
}

int report_open(report *r, const char *metrics_path, int append, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  if (!metrics_path) return 0;
  r->metrics = fopen(metrics_path, append ? "a" : "w");
  if (!r->metrics) {
    snprintf(err, errlen, "cannot open metrics file %s: %s", metrics_path, strerror(errno));
    return -1;
  }
  return 0;
}

void report_close(report *r) {
  if (r->metrics) fclose(r->metrics);
  r->metrics = NULL;
}

void report_summary(const run_summary *s) {
  const train_options *o = s->o;
  const gpt2_config *c = s->cfg;
  long tokens = (long)o->B * o->T * s->nranks;
  printf("+------------------------------------------------------------------\n");
  printf("| train_gpt2: GPT-2 on CPU, data parallel through mlcomm\n");
  printf("| model      L=%d NH=%d C=%d maxT=%d V=%d (padded %d), %.2fM parameters\n", c->num_layers,
         c->num_heads, c->channels, c->max_seq_len, c->vocab_size, c->padded_vocab_size,
         s->num_params / 1e6);
  printf("| from       %s\n", s->model_source);
  printf("| ranks      %d x %d OpenMP thread%s, transport %s, sync %s", s->nranks, s->threads,
         s->threads == 1 ? "" : "s", s->transport, sync_mode_name(o->sync));
  if (o->sync == SYNC_DILOCO)
    printf(" (H=%d, outer lr %g, momentum %g)", o->inner_steps, o->outer_lr, o->outer_momentum);
  printf("\n");
  printf("| batch      B=%d x T=%d per rank = %ld tokens per step\n", o->B, o->T, tokens);
  printf("| AdamW      lr %g, betas %g %g, eps %g, weight decay %g\n", o->lr, o->beta1, o->beta2,
         o->eps, o->weight_decay);
  printf("| train      %s: %ld batches per epoch%s\n", o->train_pattern, s->train_batches,
         o->shuffle ? ", shuffled" : "");
  if (o->val_pattern)
    printf("| val        %s: %ld batches, %d per evaluation\n", o->val_pattern, s->val_batches,
           o->val_batches);
  printf("| steps      %ld (starting after step %ld)\n", o->steps, s->start_step);
  printf("+------------------------------------------------------------------\n");
  fflush(stdout);
}

static void format_eta(char *buf, size_t len, double seconds) {
  long s = (long)(seconds + 0.5);
  if (s >= 3600)
    snprintf(buf, len, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else
    snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
}

void report_step(report *r, long step, long steps, float loss, double seconds, double comm_seconds,
                 long tokens, int outer) {
  /* the first step of a run pays for page faults and thread start-up: not in the ETA */
  if (r->total_tokens > 0) {
    r->steps_timed++;
    r->seconds_timed += seconds;
  }
  r->total_seconds += seconds;
  r->total_tokens += tokens;
  double per_step = r->steps_timed ? r->seconds_timed / r->steps_timed : seconds;
  char eta[32];
  format_eta(eta, sizeof eta, per_step * (double)(steps - step));
  double comm = seconds > 0 ? comm_seconds / seconds : 0.0;
  printf("step %5ld/%ld | train loss %.6f | %8.1f ms | %7.0f tok/s | comm %5.1f%% | eta %s%s\n",
         step, steps, loss, seconds * 1e3, tokens / seconds, 100.0 * comm, eta,
         outer ? " | outer step" : "");
  fflush(stdout);
  if (r->metrics) {
    fprintf(r->metrics, "{\"step\": %ld, \"train_loss\": ", step);
    json_float(r->metrics, loss);
    fprintf(r->metrics, ", \"ms\": %.3f, \"tok_per_s\": %.1f, \"comm_frac\": %.4f}\n",
            seconds * 1e3, tokens / seconds, comm);
    fflush(r->metrics);
  }
}

void report_val(report *r, long step, float loss, int batches) {
  printf("val loss %.6f (step %ld, %d batches)\n", loss, step, batches);
  fflush(stdout);
  if (r->metrics) {
    fprintf(r->metrics, "{\"step\": %ld, \"val_loss\": ", step);
    json_float(r->metrics, loss);
    fputs("}\n", r->metrics);
    fflush(r->metrics);
  }
}

void report_sample(report *r, long step, const char *text, size_t len) {
  (void)r;
  printf("generated (step %ld):\n---\n", step);
  fwrite(text, 1, len, stdout);
  printf("\n---\n");
  fflush(stdout);
}

void report_done(report *r, long steps) {
  if (r->total_tokens == 0) return;
  printf("done: %ld steps, %.1f s training, %.0f tok/s on average\n", steps, r->total_seconds,
         r->total_tokens / r->total_seconds);
  fflush(stdout);
}

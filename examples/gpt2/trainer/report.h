/* report.h - what a person sees: the startup summary, one line per step, val losses,
 * samples, and the metrics JSONL file. Rank 0 calls these. */
#ifndef GPT2_TRAINER_REPORT_H
#define GPT2_TRAINER_REPORT_H

#include <stdio.h>

#include "gpt2.h"
#include "options.h"

typedef struct {
  FILE *metrics; /* NULL: none */
  long steps_timed;
  double seconds_timed; /* steps after the first of this run, for the ETA */
  double total_seconds;
  long total_tokens;
} report;

/* Opens the metrics file (appending when resuming). */
int report_open(report *r, const char *metrics_path, int append, char *err, size_t errlen);
void report_close(report *r);

typedef struct {
  const train_options *o;
  const gpt2_config *cfg;
  size_t num_params;
  int nranks, threads;
  const char *transport;    /* the transport in force */
  const char *model_source; /* "fresh (seed 1337)", a checkpoint path, "resumed from ..." */
  long train_batches, val_batches;
  long start_step;
} run_summary;

void report_summary(const run_summary *s);

/* One training step: prints the line and appends the JSONL record. */
void report_step(report *r, long step, long steps, float loss, double seconds, double comm_seconds,
                 long tokens, int outer);
void report_val(report *r, long step, float loss, int batches);
void report_sample(report *r, long step, const char *text, size_t len);
void report_done(report *r, long steps);

#endif /* GPT2_TRAINER_REPORT_H */

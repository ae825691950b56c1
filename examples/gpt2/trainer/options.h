/* options.h - train_gpt2's command line. */
#ifndef GPT2_TRAINER_OPTIONS_H
#define GPT2_TRAINER_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SYNC_ALLREDUCE = 0, SYNC_ZERO1 = 1, SYNC_DILOCO = 2 } sync_mode;

typedef struct {
  /* data */
  const char *train_pattern, *val_pattern; /* val NULL: no validation */
  int B, T;
  int shuffle;
  uint64_t seed;
  /* model: a checkpoint, or a fresh one of this shape */
  const char *load;
  int depth, channels, heads, max_seq_len, vocab;
  int shape_given; /* any of --depth/--channels/--heads/--seq-len/--vocab */
  /* optimisation */
  long steps;
  float lr, beta1, beta2, eps, weight_decay;
  sync_mode sync;
  int inner_steps;
  float outer_lr, outer_momentum;
  int transport; /* mlcommTransport_t */
  /* model parallelism (trainer/parallel.c): ranks = tensor x pipeline x data */
  int tensor_parallel, pipeline_parallel;
  int data_parallel; /* 0: the ranks left over */
  int micro_batches; /* -b's rows split into this many, 1F1B through the pipeline */
  /* reporting */
  int val_every, val_batches;
  int sample_every, gen_tokens;
  const char *tokenizer;
  int tokenizer_given;
  const char *out_dir, *metrics, *plot;
  const char *save; /* final parameters as an llm.c model file, or NULL */
  /* checkpoints */
  int checkpoint_every;
  const char *resume;
  int dashboard; /* dash_mode (dashboard.h): 0 off */
  int survive;   /* diloco: carry on without a rank that died (survive.h) */
} train_options;

/* Parses argv into *o (defaults first). Returns 0 to run, 1 when --help was printed
 * (on rank 0), -1 on a bad option with a sentence in err. */
int options_parse(train_options *o, int argc, char **argv, int rank, char *err, size_t errlen);

const char *sync_mode_name(sync_mode s);

#endif /* GPT2_TRAINER_OPTIONS_H */

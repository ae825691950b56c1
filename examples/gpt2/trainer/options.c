/* options.c - train_gpt2's command line: defaults, parsing, checks, --help. */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlcomm/mlcomm.h>

static const char usage[] =
    "usage: train_gpt2 [options]   (run under mpirun for data parallelism)\n"
    "\n"
    "data (llm.c token shards; glob patterns)\n"
    "  -i, --train PATTERN     train shards [the Jargon File from prepare_data.sh:\n"
    "                          ~/.cache/mlcomm/gpt2/jargon/train_*.bin]\n"
    "  -j, --val PATTERN       val shards, or 'none' "
    "[~/.cache/mlcomm/gpt2/jargon/val_*.bin]\n"
    "  -b, --batch B           rows per rank per step [4]\n"
    "  -T, --seq T             tokens per row [64]\n"
    "      --shuffle           shuffle shards and batches (same order on every rank)\n"
    "      --seed S            seed of the shuffle and of a fresh model [1337]\n"
    "model\n"
    "  -e, --load FILE         start from an llm.c checkpoint (version 3 fp32 or 5 bf16)\n"
    "      --depth L --channels C --heads NH --seq-len maxT --vocab V\n"
    "                          without --load: a fresh GPT-2 of this shape [4 128 4 1024 50257]\n"
    "optimisation (AdamW)\n"
    "  -n, --steps N           training steps [40]\n"
    "  -l, --lr LR             learning rate [1e-4]\n"
    "      --beta1 --beta2 --eps --weight-decay   [0.9 0.999 1e-8 0]\n"
    "parallelism (mlcomm)\n"
    "      --sync MODE         allreduce | zero1 | diloco [allreduce]\n"
    "      --inner-steps H     diloco: local steps between outer steps [50]\n"
    "      --outer-lr LR       diloco: outer (Nesterov) learning rate [0.7]\n"
    "      --outer-momentum M  diloco: outer momentum [0.9]\n"
    "  -t, --transport T       auto | mpi | shm [auto]\n"
    "      --tensor-parallel N    split heads, MLP and vocabulary over N ranks [1]\n"
    "      --pipeline-parallel N  split the layers into N stages [1]\n"
    "      --data-parallel N      model replicas; N x tensor x pipeline = ranks [the rest]\n"
    "      --micro-batches M      -b's rows in M micro-batches through the pipeline [1]\n"
    "reporting\n"
    "      --val-every N       val loss every N steps, 0 = never [10]\n"
    "      --val-batches N     batches per val pass [5]\n"
    "      --sample-every N    generate text every N steps, 0 = never [20]\n"
    "      --gen-tokens N      tokens per sample [64]\n"
    "      --tokenizer FILE    llm.c tokenizer for samples [~/.cache/mlcomm/gpt2/jargon/tokenizer.bin]\n"
    "  -o, --out DIR           checkpoints, metrics and plot go here [gpt2_out]\n"
    "      --metrics FILE      metrics JSONL [DIR/metrics.jsonl]\n"
    "      --plot FILE         loss curve PNG at the end, or 'none' [DIR/loss.png]\n"
    "      --save FILE         write the final model as an llm.c checkpoint (version 3)\n"
    "checkpoints\n"
    "      --checkpoint-every N  write DIR/step_NNNNNNNN every N steps and at the end, 0 = never "
    "[0]\n"
    "      --resume DIR        continue from a checkpoint (DIR/latest, or a step_ directory)\n"
    "live view\n"
    "      --dashboard[=MODE]  rank 0 redraws one screen per step: auto | screen | plain [auto:\n"
    "                          a screen when stdout is a terminal, else one line per step]\n"
    "      --survive           diloco: when a rank dies, the others shrink the communicator\n"
    "                          and go on (one node; mpirun --enable-recovery)\n";

enum {
  OPT_SHUFFLE = 1000,
  OPT_SEED,
  OPT_DEPTH,
  OPT_CHANNELS,
  OPT_HEADS,
  OPT_SEQ_LEN,
  OPT_VOCAB,
  OPT_BETA1,
  OPT_BETA2,
  OPT_EPS,
  OPT_WD,
  OPT_SYNC,
  OPT_INNER,
  OPT_OUTER_LR,
  OPT_OUTER_MOMENTUM,
  OPT_VAL_EVERY,
  OPT_VAL_BATCHES,
  OPT_SAMPLE_EVERY,
  OPT_GEN_TOKENS,
  OPT_DASHBOARD,
  OPT_SURVIVE,
  OPT_TOKENIZER,
  OPT_METRICS,
  OPT_PLOT,
  OPT_CKPT_EVERY,
  OPT_RESUME,
  OPT_SAVE,
  OPT_TP,
  OPT_PP,
  OPT_DP,
  OPT_MICRO,
};

static const struct option long_options[] = {
    {"train", required_argument, 0, 'i'},
    {"val", required_argument, 0, 'j'},
    {"batch", required_argument, 0, 'b'},
    {"seq", required_argument, 0, 'T'},
    {"shuffle", no_argument, 0, OPT_SHUFFLE},
    {"seed", required_argument, 0, OPT_SEED},
    {"load", required_argument, 0, 'e'},
    {"depth", required_argument, 0, OPT_DEPTH},
    {"channels", required_argument, 0, OPT_CHANNELS},
    {"heads", required_argument, 0, OPT_HEADS},
    {"seq-len", required_argument, 0, OPT_SEQ_LEN},
    {"vocab", required_argument, 0, OPT_VOCAB},
    {"steps", required_argument, 0, 'n'},
    {"lr", required_argument, 0, 'l'},
    {"beta1", required_argument, 0, OPT_BETA1},
    {"beta2", required_argument, 0, OPT_BETA2},
    {"eps", required_argument, 0, OPT_EPS},
    {"weight-decay", required_argument, 0, OPT_WD},
    {"sync", required_argument, 0, OPT_SYNC},
    {"inner-steps", required_argument, 0, OPT_INNER},
    {"outer-lr", required_argument, 0, OPT_OUTER_LR},
    {"outer-momentum", required_argument, 0, OPT_OUTER_MOMENTUM},
    {"transport", required_argument, 0, 't'},
    {"val-every", required_argument, 0, OPT_VAL_EVERY},
    {"val-batches", required_argument, 0, OPT_VAL_BATCHES},
    {"sample-every", required_argument, 0, OPT_SAMPLE_EVERY},
    {"gen-tokens", required_argument, 0, OPT_GEN_TOKENS},
    {"dashboard", optional_argument, 0, OPT_DASHBOARD},
    {"survive", no_argument, 0, OPT_SURVIVE},
    {"tokenizer", required_argument, 0, OPT_TOKENIZER},
    {"out", required_argument, 0, 'o'},
    {"metrics", required_argument, 0, OPT_METRICS},
    {"plot", required_argument, 0, OPT_PLOT},
    {"checkpoint-every", required_argument, 0, OPT_CKPT_EVERY},
    {"resume", required_argument, 0, OPT_RESUME},
    {"save", required_argument, 0, OPT_SAVE},
    {"tensor-parallel", required_argument, 0, OPT_TP},
    {"pipeline-parallel", required_argument, 0, OPT_PP},
    {"data-parallel", required_argument, 0, OPT_DP},
    {"micro-batches", required_argument, 0, OPT_MICRO},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

const char *sync_mode_name(sync_mode s) {
  return s == SYNC_ZERO1 ? "zero1" : s == SYNC_DILOCO ? "diloco" : "allreduce";
}

/* An integer in [lo, hi], or -1 with err naming the option. */
static int parse_long(const char *name, const char *s, long lo, long hi, long *out, char *err,
                      size_t errlen) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    snprintf(err, errlen, "%s '%s': expected an integer in [%ld, %ld]", name, s, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_int(const char *name, const char *s, long lo, long hi, int *out, char *err,
                     size_t errlen) {
  long v;
  if (parse_long(name, s, lo, hi, &v, err, errlen) != 0) return -1;
  *out = (int)v;
  return 0;
}

static int parse_float(const char *name, const char *s, float lo, float hi, float *out, char *err,
                       size_t errlen) {
  char *end;
  errno = 0;
  float v = strtof(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) {
    snprintf(err, errlen, "%s '%s': expected a number in [%g, %g]", name, s, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

/* The embedded default dataset, where examples/gpt2/prepare_data.sh puts it:
 * ${GPT2_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlcomm/gpt2}/jargon/NAME. */
static const char *default_data(char *buf, size_t len, const char *name) {
  const char *cache = getenv("GPT2_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  if (cache && *cache) snprintf(buf, len, "%s/jargon/%s", cache, name);
  else if (xdg && *xdg) snprintf(buf, len, "%s/mlcomm/gpt2/jargon/%s", xdg, name);
  else snprintf(buf, len, "%s/.cache/mlcomm/gpt2/jargon/%s", home ? home : ".", name);
  return buf;
}

int options_parse(train_options *o, int argc, char **argv, int rank, char *err, size_t errlen) {
  static char train_default[4096], val_default[4096], tok_default[4096];
  *o = (train_options){
      .train_pattern = default_data(train_default, sizeof train_default, "train_*.bin"),
      .val_pattern = default_data(val_default, sizeof val_default, "val_*.bin"),
      .B = 4,
      .T = 64,
      .seed = 1337,
      .depth = 4,
      .channels = 128,
      .heads = 4,
      .max_seq_len = 1024,
      .vocab = 50257,
      .steps = 40,
      .lr = 1e-4f,
      .beta1 = 0.9f,
      .beta2 = 0.999f,
      .eps = 1e-8f,
      .weight_decay = 0.0f,
      .sync = SYNC_ALLREDUCE,
      .inner_steps = 50,
      .outer_lr = 0.7f,
      .outer_momentum = 0.9f,
      .transport = mlcommTransportAuto,
      .val_every = 10,
      .val_batches = 5,
      .sample_every = 20,
      .gen_tokens = 64,
      .tokenizer = default_data(tok_default, sizeof tok_default, "tokenizer.bin"),
      .out_dir = "gpt2_out",
      .tensor_parallel = 1,
      .pipeline_parallel = 1,
      .micro_batches = 1,
  };
  optind = 1;
  opterr = 0;
  const int big = INT_MAX / 2;
  int c, rc = 0;
  long seed = 0;
  while (rc == 0 &&
         (c = getopt_long(argc, argv, ":i:j:b:T:e:n:l:t:o:h", long_options, NULL)) != -1) {
    const char *a = optarg;
    switch (c) {
      case 'i':
        o->train_pattern = a;
        break;
      case 'j':
        o->val_pattern = strcmp(a, "none") == 0 ? NULL : a;
        break;
      case 'b':
        rc = parse_int("-b (batch)", a, 1, big, &o->B, err, errlen);
        break;
      case 'T':
        rc = parse_int("-T (sequence length)", a, 1, big, &o->T, err, errlen);
        break;
      case OPT_SHUFFLE:
        o->shuffle = 1;
        break;
      case OPT_SEED:
        rc = parse_long("--seed", a, 0, LONG_MAX, &seed, err, errlen);
        o->seed = (uint64_t)seed;
        break;
      case 'e':
        o->load = a;
        break;
      case OPT_DEPTH:
        rc = parse_int("--depth", a, 1, big, &o->depth, err, errlen), o->shape_given = 1;
        break;
      case OPT_CHANNELS:
        rc = parse_int("--channels", a, 1, big, &o->channels, err, errlen), o->shape_given = 1;
        break;
      case OPT_HEADS:
        rc = parse_int("--heads", a, 1, big, &o->heads, err, errlen), o->shape_given = 1;
        break;
      case OPT_SEQ_LEN:
        rc = parse_int("--seq-len", a, 1, big, &o->max_seq_len, err, errlen), o->shape_given = 1;
        break;
      case OPT_VOCAB:
        rc = parse_int("--vocab", a, 2, 65536, &o->vocab, err, errlen), o->shape_given = 1;
        break;
      case 'n':
        rc = parse_long("--steps", a, 0, LONG_MAX / 2, &o->steps, err, errlen);
        break;
      case 'l':
        rc = parse_float("--lr", a, 0.0f, 1e3f, &o->lr, err, errlen);
        break;
      case OPT_BETA1:
        rc = parse_float("--beta1", a, 0.0f, 0.999999f, &o->beta1, err, errlen);
        break;
      case OPT_BETA2:
        rc = parse_float("--beta2", a, 0.0f, 0.999999f, &o->beta2, err, errlen);
        break;
      case OPT_EPS:
        rc = parse_float("--eps", a, 0.0f, 1.0f, &o->eps, err, errlen);
        break;
      case OPT_WD:
        rc = parse_float("--weight-decay", a, 0.0f, 1e3f, &o->weight_decay, err, errlen);
        break;
      case OPT_SYNC:
        if (strcmp(a, "allreduce") == 0)
          o->sync = SYNC_ALLREDUCE;
        else if (strcmp(a, "zero1") == 0)
          o->sync = SYNC_ZERO1;
        else if (strcmp(a, "diloco") == 0)
          o->sync = SYNC_DILOCO;
        else
          snprintf(err, errlen, "--sync '%s': expected allreduce, zero1 or diloco", a), rc = -1;
        break;
      case OPT_INNER:
        rc = parse_int("--inner-steps", a, 1, big, &o->inner_steps, err, errlen);
        break;
      case OPT_OUTER_LR:
        rc = parse_float("--outer-lr", a, 0.0f, 1e3f, &o->outer_lr, err, errlen);
        break;
      case OPT_OUTER_MOMENTUM:
        rc = parse_float("--outer-momentum", a, 0.0f, 0.999999f, &o->outer_momentum, err, errlen);
        break;
      case 't':
        if (strcmp(a, "auto") == 0)
          o->transport = mlcommTransportAuto;
        else if (strcmp(a, "mpi") == 0)
          o->transport = mlcommTransportMpi;
        else if (strcmp(a, "shm") == 0)
          o->transport = mlcommTransportShm;
        else
          snprintf(err, errlen, "-t '%s': expected auto, mpi or shm", a), rc = -1;
        break;
      case OPT_VAL_EVERY:
        rc = parse_int("--val-every", a, 0, big, &o->val_every, err, errlen);
        break;
      case OPT_VAL_BATCHES:
        rc = parse_int("--val-batches", a, 1, big, &o->val_batches, err, errlen);
        break;
      case OPT_SAMPLE_EVERY:
        rc = parse_int("--sample-every", a, 0, big, &o->sample_every, err, errlen);
        break;
      case OPT_GEN_TOKENS:
        rc = parse_int("--gen-tokens", a, 1, big, &o->gen_tokens, err, errlen);
        break;
      case OPT_DASHBOARD: /* dash_mode: 1 auto, 2 screen, 3 plain */
        if (a == NULL || strcmp(a, "auto") == 0) o->dashboard = 1;
        else if (strcmp(a, "screen") == 0) o->dashboard = 2;
        else if (strcmp(a, "plain") == 0) o->dashboard = 3;
        else snprintf(err, errlen, "--dashboard=%s: expected auto, screen or plain", a), rc = -1;
        break;
      case OPT_SURVIVE:
        o->survive = 1;
        break;
      case OPT_TOKENIZER:
        o->tokenizer = a, o->tokenizer_given = 1;
        break;
      case 'o':
        o->out_dir = a;
        break;
      case OPT_METRICS:
        o->metrics = a;
        break;
      case OPT_PLOT:
        o->plot = a;
        break;
      case OPT_CKPT_EVERY:
        rc = parse_int("--checkpoint-every", a, 0, big, &o->checkpoint_every, err, errlen);
        break;
      case OPT_RESUME:
        o->resume = a;
        break;
      case OPT_SAVE:
        o->save = a;
        break;
      case OPT_TP:
        rc = parse_int("--tensor-parallel", a, 1, 4096, &o->tensor_parallel, err, errlen);
        break;
      case OPT_PP:
        rc = parse_int("--pipeline-parallel", a, 1, 4096, &o->pipeline_parallel, err, errlen);
        break;
      case OPT_DP:
        rc = parse_int("--data-parallel", a, 1, 1 << 20, &o->data_parallel, err, errlen);
        break;
      case OPT_MICRO:
        rc = parse_int("--micro-batches", a, 1, big, &o->micro_batches, err, errlen);
        break;
      case 'h':
        if (rank == 0) fputs(usage, stdout);
        return 1;
      case ':':
        snprintf(err, errlen, "option %s needs a value (see --help)", argv[optind - 1]);
        return -1;
      default:
        snprintf(err, errlen, "unknown option %s (see --help)", argv[optind - 1]);
        return -1;
    }
  }
  if (rc != 0) return -1;
  if (optind < argc) {
    snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
    return -1;
  }
  if (o->load && o->shape_given) {
    snprintf(err, errlen,
             "--load %s takes the shape from the checkpoint; drop --depth/--channels/--heads/"
             "--seq-len/--vocab",
             o->load);
    return -1;
  }
  if (o->survive && o->sync != SYNC_DILOCO) {
    snprintf(err, errlen,
             "--survive needs --sync diloco: with %s every step needs every rank's gradient, so "
             "a dead rank is survived by restarting from a checkpoint (gpt2_supervise)",
             sync_mode_name(o->sync));
    return -1;
  }
  if (o->sync == SYNC_DILOCO && o->checkpoint_every % o->inner_steps != 0) {
    snprintf(err, errlen,
             "--checkpoint-every %d must be a multiple of --inner-steps %d with --sync diloco "
             "(checkpoints are taken right after an outer step)",
             o->checkpoint_every, o->inner_steps);
    return -1;
  }
  return 0;
}

/*
 * gpt2.h - a GPT-2 model in plain C (fp32, OpenMP), after llm.c.
 *
 * Three parts, usable apart:
 *  - the model itself: shape (gpt2_config), where each tensor lives in one flat
 *    parameter buffer (gpt2_layout), llm.c checkpoint reading and writing, GPT-2's
 *    initialisation;
 *  - inference: a whole-sequence forward pass (gpt2_forward), and a single-position
 *    forward with a key/value cache for generation (gpt2_forward_token), which also
 *    runs one rank's shard of a tensor-parallel model (gpt2_tp);
 *  - training: the backward pass (gpt2_backward, which reports each layer's gradient
 *    as soon as it is final so the caller can start communicating it) and AdamW.
 *
 * The flat buffer is layer-major: [wte | wpe | layer 0 | ... | layer L-1 | lnfw lnfb],
 * each layer [ln1w ln1b qkvw qkvb attprojw attprojb ln2w ln2b fcw fcb fcprojw fcprojb].
 * One layer's parameters (and gradients) are therefore one contiguous range, which is
 * what a per-layer all-reduce needs. llm.c files store tensors stacked over layers
 * instead; the checkpoint functions convert.
 *
 * Functions that can fail return 0 on success and -1 on failure, with a sentence
 * naming the file or argument in err (errlen bytes, always terminated).
 * Results do not depend on the number of OpenMP threads: every output element is
 * computed by one thread, in a fixed order.
 */
#ifndef GPT2_MODEL_GPT2_H
#define GPT2_MODEL_GPT2_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPT2_CHECKPOINT_MAGIC 20240326
#define GPT2_CHECKPOINT_FP32 3 /* llm.c checkpoint version: fp32 parameters */
#define GPT2_CHECKPOINT_BF16 5 /* llm.c checkpoint version: bf16 parameters */
#define GPT2_VOCAB_PAD 128     /* the padded vocabulary is a multiple of this */

typedef struct {
  int max_seq_len;       /* maxT: positions in wpe */
  int vocab_size;        /* V: real tokens */
  int padded_vocab_size; /* Vp: rows of wte, V rounded up to GPT2_VOCAB_PAD */
  int num_layers;        /* L */
  int num_heads;         /* NH; C % NH == 0 */
  int channels;          /* C */
} gpt2_config;

/* Offsets (in floats) into the flat parameter buffer; gradients use the same. */
typedef struct {
  size_t wte, wpe, layers, lnfw, lnfb; /* wte (Vp,C) wpe (maxT,C) ... lnfw (C) lnfb (C) */
  size_t layer_size;                   /* floats in one layer: 12C^2 + 13C */
  /* offsets inside a layer */
  size_t ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb;
  size_t num_params; /* total floats */
} gpt2_layout;

/* Pointers to one layer's tensors inside a flat buffer (parameters or gradients). */
typedef struct {
  float *ln1w, *ln1b;         /* (C) (C) */
  float *qkvw, *qkvb;         /* (3C,C) (3C) */
  float *attprojw, *attprojb; /* (C,C) (C) */
  float *ln2w, *ln2b;         /* (C) (C) */
  float *fcw, *fcb;           /* (4C,C) (4C) */
  float *fcprojw, *fcprojb;   /* (C,4C) (C) */
} gpt2_layer;

typedef struct gpt2_tp gpt2_tp; /* tensor parallelism, below */

typedef struct {
  gpt2_config config;
  gpt2_layout layout;
  float *params; /* layout.num_params floats; owned by whoever set it */
  const gpt2_tp *tp; /* NULL: the whole model; else one rank's part of it */
} gpt2_model;

/* ---------------------------------------------------------------- shape */

/* V rounded up to GPT2_VOCAB_PAD. */
int gpt2_padded_vocab(int vocab_size);

/* Checks that every field is positive, C % NH == 0, Vp >= V and that the parameter
 * count fits in memory sizes. */
int gpt2_config_check(const gpt2_config *cfg, char *err, size_t errlen);

void gpt2_layout_init(gpt2_layout *lo, const gpt2_config *cfg);

/* Layer l's tensors inside base (params or grads, layout lo). */
gpt2_layer gpt2_layer_at(const gpt2_layout *lo, float *base, int l);

/* Sets m->config and m->layout (the whole model: m->tp NULL); m->params is left NULL
 * for the caller to provide. */
int gpt2_model_setup(gpt2_model *m, const gpt2_config *cfg, char *err, size_t errlen);

/* GPT-2's initialisation: embeddings and linear weights N(0, 0.02), the residual
 * projections (attprojw, fcprojw) N(0, 0.02/sqrt(2L)), biases 0, layernorm weights 1,
 * padded wte rows 0. Deterministic for a seed. */
void gpt2_init_params(const gpt2_model *m, uint64_t seed);

/* ---------------------------------------------------------------- llm.c checkpoints */

/* Reads and checks the 1024-byte header of path: magic, version 3 or 5, a sane shape,
 * and that the file size matches. *version may be NULL. */
int gpt2_checkpoint_read_config(const char *path, gpt2_config *cfg, int *version, char *err,
                                size_t errlen);

/* Reads path's parameters into m->params (m set up with the shape the header holds;
 * bf16 files are widened exactly). */
int gpt2_checkpoint_read_params(const char *path, const gpt2_model *m, char *err, size_t errlen);

/* Writes m's parameters to path in llm.c's format (version GPT2_CHECKPOINT_FP32 or
 * GPT2_CHECKPOINT_BF16, the latter rounded to nearest even). Written to path.tmp,
 * flushed to disk, then renamed over path, so a reader never sees half a file. */
int gpt2_checkpoint_write(const char *path, const gpt2_model *m, int version, char *err,
                          size_t errlen);

/* ---------------------------------------------------------------- forward (inference) */

/* Activations of a (B,T) batch. With training set, also what backward needs. */
typedef struct gpt2_acts gpt2_acts;

int gpt2_acts_create(gpt2_acts **out, const gpt2_config *cfg, int B, int T, int training, char *err,
                     size_t errlen);
void gpt2_acts_free(gpt2_acts *a);

/* Runs inputs (B,T) token ids (each < V) through the model. With targets (B,T), returns
 * the mean cross-entropy loss and gpt2_losses() holds the (B,T) losses; the output head
 * then runs fused with the loss and no probabilities are kept. Without targets, returns 0
 * and gpt2_probs() holds the (B,T,Vp) next-token probabilities (padded columns 0; the
 * buffer is allocated on first use, NAN is returned if that fails). */
float gpt2_forward(const gpt2_model *m, gpt2_acts *a, const int *inputs, const int *targets);
const float *gpt2_probs(const gpt2_acts *a); /* NULL unless the last forward had no targets */
const float *gpt2_losses(const gpt2_acts *a);

/* Generation with a key/value cache: feed tokens one at a time; each call appends one
 * position and writes the next-token logits (V floats, padding excluded). */
typedef struct gpt2_kv gpt2_kv;
int gpt2_kv_create(gpt2_kv **out, const gpt2_config *cfg, int max_len, char *err, size_t errlen);
void gpt2_kv_reset(gpt2_kv *kv); /* forget every position */
int gpt2_kv_length(const gpt2_kv *kv);
/* Keeps the first len positions (a shared prefix a new prompt can reuse); no-op when
 * len is not below the current length. */
void gpt2_kv_truncate(gpt2_kv *kv, int len);
void gpt2_kv_free(gpt2_kv *kv);
/* Returns -1 (and writes nothing) when the cache is full, token is out of range or the
 * cache was made for another shard; -1 too when a shard's callback fails. */
int gpt2_forward_token(const gpt2_model *m, gpt2_kv *kv, int token, float *logits);

/* ---------------------------------------------------------------- tensor parallelism */

/* One rank's part of a model split over nranks ranks for generation (Megatron-style).
 * Rank r holds the q, k, v rows of its attention heads with the matching columns of
 * attprojw, its share of the MLP's hidden units (rows of fcw, columns of fcprojw), and
 * its block of wte's rows (the tied embedding and output head); layer norms, wpe and
 * the two output projections' biases are held by every rank. gpt2_forward_token on a
 * shard computes this rank's share and combines the shares through the callbacks, which
 * the caller implements over its communication library:
 *  - reduce, 2L + 1 times a token: the embedding (the rank owning the token's row
 *    supplies it, the others zeros, so the sum is exact), then in every block the partial
 *    sums of attprojw and of fcprojw, whose bias is added once after;
 *  - gather, once a token: the logits, vocab_stride of them from each rank.
 * Both are collective: every rank feeds the same tokens in the same order. */
struct gpt2_tp {
  int rank, nranks;
  int head_lo, heads;       /* attention heads [head_lo, head_lo + heads) of NH */
  int hidden_lo, hidden;    /* MLP hidden units [hidden_lo, hidden_lo + hidden) of 4C */
  int vocab_lo, vocab_rows; /* real wte rows [vocab_lo, vocab_lo + vocab_rows) of V */
  int vocab_stride;         /* wte rows every rank stores, the last zero padded:
                               ceil(V / nranks); vocab_lo = rank * vocab_stride */
  /* buf (n floats) <- the sum of every rank's buf. Returns 0, or -1 on failure. */
  int (*reduce)(void *ctx, float *buf, int n);
  /* all (nranks * n) <- each rank's n floats, in rank order; this rank's are already at
   * part = all + rank * n (an in-place all-gather). Returns 0, or -1 on failure. */
  int (*gather)(void *ctx, const float *part, float *all, int n);
  void *ctx;
};

/* Fills tp's ranges for rank of nranks and clears its callbacks (the caller sets them).
 * NH and 4C must divide by nranks. */
int gpt2_tp_init(gpt2_tp *tp, const gpt2_config *cfg, int rank, int nranks, char *err,
                 size_t errlen);
/* Checks that tp is what gpt2_tp_init makes for its rank and that both callbacks
 * are set. */
int gpt2_tp_check(const gpt2_tp *tp, const gpt2_config *cfg, char *err, size_t errlen);

/* As gpt2_model_setup, for rank tp->rank's part (m->tp = tp, which must outlive m).
 * m->layout places the same tensors in the same order at the shard's sizes, with
 * a = heads * C / NH: qkvw (3a,C) its q, k, v rows; qkvb (3a); attprojw (C,a);
 * fcw (hidden,C); fcb (hidden); fcprojw (C,hidden); wte (vocab_stride,C); the rest as
 * the whole model's. The caller provides m->params (layout.num_params floats) and fills
 * it with gpt2_tp_fill_params. Only the cache and gpt2_forward_token take a shard: gpt2_forward
 * returns NAN, gpt2_backward and the checkpoint functions -1, gpt2_init_params does
 * nothing. */
int gpt2_model_setup_tp(gpt2_model *m, const gpt2_config *cfg, const gpt2_tp *tp, char *err,
                        size_t errlen);
/* m->params (a shard's) <- the rows and columns its tp names of full's parameters (the
 * whole model, same shape); wte's padding rows 0. */
int gpt2_tp_fill_params(const gpt2_model *m, const gpt2_model *full, char *err, size_t errlen);
/* A cache for tp's model: it keeps only this rank's heads' keys and values. tp NULL is
 * gpt2_kv_create. */
int gpt2_kv_create_tp(gpt2_kv **out, const gpt2_config *cfg, const gpt2_tp *tp, int max_len,
                      char *err, size_t errlen);

/* Samples from softmax(logits / temperature) over n entries with coin in [0,1);
 * temperature <= 0 picks the arg max. */
int gpt2_sample(const float *logits, int n, float temperature, float coin);

/* ---------------------------------------------------------------- backward (training) */

/* Called on the calling thread (outside parallel regions) each time
 * grads[offset, offset+count) is final for this step: first the final layernorm,
 * then layers L-1 down to 0, then the embeddings (wte, wpe). Between calls the model
 * computes; a caller can start an asynchronous reduction of the range and poll the
 * ones in flight.
 *
 * embeddings (optional) splits the embeddings' gradient, so that the biggest tensor
 * need not wait for the end: wte's range is then reported right after the output
 * head and holds the head's share only; wpe's range is zeroed and not reported; and
 * last, embeddings() receives the gradient at the encoder's output, dx0 (B,T,C), with
 * the (B,T) inputs. The caller adds it (gpt2_encoder_backward in layers.h) once it
 * has reduced wte: a data-parallel caller gathers every rank's (tiny) dx0 and inputs
 * and adds them all, instead of reducing wte after the encoder. */
typedef struct {
  void (*ready)(void *ctx, size_t offset, size_t count);
  void (*embeddings)(void *ctx, const float *dx0, const int *inputs, int B, int T);
  void *ctx;
} gpt2_grad_hook;

/* After gpt2_forward with targets on acts created for training: writes the gradient of
 * the mean loss into grads (layout.num_params floats; previous contents are
 * overwritten). hook may be NULL. Returns -1 (touching nothing) on acts made without
 * training, or on a shard. */
int gpt2_backward(const gpt2_model *m, gpt2_acts *a, float *grads, const int *inputs,
                  const int *targets, const gpt2_grad_hook *hook);

/* ---------------------------------------------------------------- optimizer */

typedef struct {
  float lr, beta1, beta2, eps, weight_decay;
} gpt2_adamw;

/* One AdamW step (llm.c's CPU form: decoupled weight decay on every parameter) on n
 * parameters; t is the 1-based step count for bias correction. Any contiguous slice of
 * params/grads/m/v may be updated on its own (ZeRO-1 shards). */
void gpt2_adamw_update(const gpt2_adamw *opt, float *params, const float *grads, float *m, float *v,
                       size_t n, long t);

#ifdef __cplusplus
}
#endif

#endif /* GPT2_MODEL_GPT2_H */

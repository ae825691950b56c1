/*
 * layers.h - GPT-2's layers, each forward next to its backward (llm.c's shape).
 *
 * Shapes in comments: B batch, T time, C channels, NH heads, OC output channels,
 * N = B*T rows, V vocabulary, Vp padded vocabulary. Backward functions say whether
 * they overwrite (=) or accumulate (+=) each output. Parameter gradients always
 * accumulate; the model zeroes them. Every function is OpenMP-parallel and its result
 * does not depend on the thread count.
 */
#ifndef GPT2_MODEL_LAYERS_H
#define GPT2_MODEL_LAYERS_H

#include <stddef.h>

/* out (B,T,C) = wte[inp] + wpe[t]; inp (B,T) token ids */
void gpt2_encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B,
                          int T, int C);
/* dwte (Vp,C) +=, dwpe (maxT,C) += from dout (B,T,C) */
void gpt2_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B,
                           int T, int C);

/* out (N,C) = (inp - mean) * rstd * weight + bias; mean, rstd (N) kept for backward */
void gpt2_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int N, int C);
/* dinp (N,C) +=, dweight (C) +=, dbias (C) += */
void gpt2_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, int N, int C);

/* out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC); bias may be NULL */
void gpt2_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC);
/* dinp (N,C) = dout @ weight; dweight (OC,C) += dout^T @ inp; dbias (OC) += sum over rows
 * (dbias may be NULL) */
void gpt2_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC);

/* Single-threaded c (M,N) (= or +=) a (M,K) @ b (K,N), with a[i][k] = a[i*ars + k*acs],
 * b row k at b + k*brs (N contiguous floats), c row i at c + i*crs. */
void gpt2_gemm(int M, int N, int K, const float *a, long ars, long acs, const float *b, long brs,
               float *c, long crs, int accumulate);

/* Causal self-attention. qkv (B,T,3C) holds q, k, v; out (B,T,C); att (B,NH,T,T) the
 * softmaxed scores (zero above the diagonal), kept for backward. */
void gpt2_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
/* dqkv (B,T,3C) = from dout (B,T,C) */
void gpt2_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                             int B, int T, int C, int NH);

/* GELU, tanh approximation, on n elements; backward: dinp = gelu'(inp) * dout */
void gpt2_gelu_forward(float *out, const float *inp, long n);

/* ---- one position at a time (generation with a key/value cache) */
/* out (OC) = weight (OC,C) @ x (C) + bias (bias may be NULL); rows split over threads. */
void gpt2_matvec(float *out, const float *x, const float *weight, const float *bias, int C,
                 int OC);
/* Causal attention of the query at position pos over cached keys/values 0..pos, for nh
 * heads of size hs. q: (nh*hs); kc, vc: (pos+1, stride) with head h at column h*hs;
 * y: (nh*hs) out; scores: pos+1 floats of scratch. */
void gpt2_attention_token(float *y, const float *q, const float *kc, const float *vc, int pos,
                          int nh, int hs, int stride, float *scores);
void gpt2_gelu_backward(float *dinp, const float *inp, const float *dout, long n);

/* out (n) = a + b */
void gpt2_residual_forward(float *out, const float *a, const float *b, long n);

/* In place: logits (N,Vp) -> probs (softmax over the first V columns, padding 0).
 * losses (N) = -log probs[target] when targets, else untouched. */
void gpt2_softmax_crossentropy_forward(float *losses, float *logits, const int *targets, int N,
                                       int V, int Vp);
/* In place: probs (N,Vp) -> dlogits = (probs - onehot(target)) * dloss, where dloss is
 * the gradient of the loss with respect to each row's loss (1/N for a mean). */
void gpt2_crossentropy_softmax_backward(float *probs, const int *targets, float dloss, int N, int V,
                                        int Vp);

/* The tied output head fused with softmax and cross-entropy (classifier.c): logits =
 * x (N,C) @ wte (Vp,C)^T over the first V columns.
 * forward:  losses (N) = lse - logits[target]; lse (N) = log-sum-exp of each row.
 *           logits (N*Vp floats, in classifier.c's own block order) receives the logits
 *           for backward; NULL when no backward follows.
 * backward: dlogits = (softmax - onehot(target)) * dloss, in place in logits;
 *           dx (N,C) = dlogits @ wte; dwte (Vp,C) = dlogits^T @ x (overwritten, padded
 *           rows 0). scratch holds gpt2_classifier_scratch(N, C) floats. */
size_t gpt2_classifier_scratch(int N, int C);
void gpt2_classifier_forward(float *losses, float *lse, float *logits, float *scratch,
                             const float *x, const float *wte, const int *targets, int N, int C,
                             int V);
void gpt2_classifier_backward(float *dx, float *dwte, float *logits, float *scratch, const float *x,
                              const float *wte, const float *lse, const int *targets, float dloss,
                              int N, int C, int V, int Vp);

#endif /* GPT2_MODEL_LAYERS_H */

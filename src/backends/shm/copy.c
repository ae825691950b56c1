/*
 * Moving bytes: plain copies for data that is read again soon (slices in flight stay in
 * cache), streaming stores for results written once to large user buffers (they would
 * only evict the slices), and the n-way reduction in a fixed order.
 */
#include <string.h>

#include "backends/shm/shm.h"
#include "collectives/reduce.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

void shm_copy(void *dst, const void *src, size_t bytes, bool nt) {
#if defined(__x86_64__)
  if (nt && bytes >= 256) {
    char *d = dst;
    const char *s = src;
    size_t head = (16 - ((uintptr_t)d & 15)) & 15;
    memcpy(d, s, head);
    d += head, s += head, bytes -= head;
    size_t body = bytes & ~(size_t)63;
    for (size_t i = 0; i < body; i += 64) {
      __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
      __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
      __m128i c = _mm_loadu_si128((const __m128i *)(s + i + 32));
      __m128i e = _mm_loadu_si128((const __m128i *)(s + i + 48));
      _mm_stream_si128((__m128i *)(d + i), a);
      _mm_stream_si128((__m128i *)(d + i + 16), b);
      _mm_stream_si128((__m128i *)(d + i + 32), c);
      _mm_stream_si128((__m128i *)(d + i + 48), e);
    }
    memcpy(d + body, s + body, bytes - body);
    return;
  }
#endif
  (void)nt;
  memcpy(dst, src, bytes);
}

void shm_copy_fence(void) {
#if defined(__x86_64__)
  _mm_sfence(); /* streaming stores are weakly ordered: publish them before a flag */
#endif
}

void shm_reduce_n(const struct mlcomm_op *op, void *dst, const void *const *srcs, int n,
                  size_t count) {
  if (n == 1) {
    if (dst != srcs[0]) memmove(dst, srcs[0], count * mlcomm_type_size(op->dtype));
    return;
  }
  mlcomm_reduce3(op->dtype, op->redop, dst, srcs[0], srcs[1], count);
  for (int j = 2; j < n; j++) mlcomm_reduce(op->dtype, op->redop, dst, srcs[j], count);
}

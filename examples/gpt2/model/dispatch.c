/* dispatch.c - picks the kernels.c build the CPU can run (kernels.h). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static int supported(const gpt2_kernels *k) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (k == &gpt2_kernels_avx512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
  if (k == &gpt2_kernels_avx2)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  if (k != &gpt2_kernels_generic) return 0;
#endif
  return 1;
}

int gpt2_kernels_available(const gpt2_kernels **list, int max) {
  static const gpt2_kernels *const all[] = {
#if defined(__x86_64__) || defined(__i386__)
      &gpt2_kernels_avx512, &gpt2_kernels_avx2,
#endif
      &gpt2_kernels_generic};
  int n = 0;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (supported(all[i]) && n < max) list[n++] = all[i];
  return n;
}

/* Chosen on first use; any thread may be first, and all would choose the same. */
static _Atomic(const gpt2_kernels *) current;

const gpt2_kernels *gpt2_kernels_get(void) {
  const gpt2_kernels *k = atomic_load_explicit(&current, memory_order_acquire);
  if (k) return k;
  const gpt2_kernels *list[3];
  int n = gpt2_kernels_available(list, 3);
  k = list[0];
  const char *want = getenv("GPT2_KERNELS");
  for (int i = 0; want && i < n; i++)
    if (strcmp(list[i]->name, want) == 0) k = list[i];
  atomic_store_explicit(&current, k, memory_order_release);
  return k;
}

void gpt2_kernels_use(const gpt2_kernels *k) {
  atomic_store_explicit(&current, k, memory_order_release);
}

/* Software prefetch for the streaming loops at the avx512 levels, shared by
 * the kernels and by the harness's same-traffic limit loops (which must
 * stream at least as well as the kernels they bound).  One core reaches
 * memory only as fast as it keeps misses in flight, and a loop with real
 * arithmetic issues its next loads late; the distances were measured
 * (results/kernels/README.md, "Why the code chooses what it does").
 * Prefetches never fault: reading past a buffer's end only wastes a line.
 * Distances are in elements of the loop's index. */
#ifndef AMO_KERNELS_PREFETCH_H
#define AMO_KERNELS_PREFETCH_H

#include <xmmintrin.h>

#define KN_PREFETCH_F32 512
#define KN_PREFETCH_BF16 1024

static inline __attribute__((always_inline)) void kn_prefetch(const void *p)
{
    _mm_prefetch((const char *)p, _MM_HINT_T0);
}

#endif

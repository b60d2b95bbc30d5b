/* Software prefetch for the streaming loops at the avx512 levels, shared by
 * the kernels and by the harness's same-traffic limit loops (which must
 * stream at least as well as the kernels they bound).
 *
 * Why: one core here (Sapphire Rapids VM, 2.1 GHz) reaches memory only as
 * fast as it keeps misses in flight.  A kernel with real arithmetic fills
 * its out-of-order window with that arithmetic and issues the next loads
 * late; the hardware prefetchers alone left the fp32 AMO loop at ~1.4
 * Gparam/s on 2 threads and the bf16-state loop at 0.6 of its limit at 64M
 * parameters.  Prefetching a fixed distance ahead, once per 64-byte line of
 * every stream, measured (64M parameters, best of the distances tried):
 *   fp32 state  (KN_PREFETCH_F32):  0 -> 512 elements: 1.40 -> 1.67-1.92
 *               Gparam/s on 2 threads (1024: no better);
 *   bf16 state  (KN_PREFETCH_BF16): 256 / 512 / 1024 / 2048 elements:
 *               0.81 / 0.89 / 0.97 / 0.91 of the limit, 1 thread (0: 0.62).
 * Prefetches never fault, so reading past the end of a buffer only wastes
 * a line.  Distances are in elements of the loop's index. */
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

/* bf16 moments: the scalar conversions and the stochastic-rounding stream,
 * the specification every level's bf16-state kernel follows (tested against
 * them in tests/test_kernels.c). */
#ifndef AMO_KERNELS_BF16_H
#define AMO_KERNELS_BF16_H

#include <stdint.h>

#include "common/api.h"

/* bf16 moment storage.  Moments are read as bf16, updated in fp32 and
 * rounded back to bf16; theta and g stay fp32 (20 bytes/param of traffic
 * instead of 28).  Rounding to nearest freezes v when gamma is close to 1
 * (each step moves v by about 1 - gamma, under half a bf16 spacing), so the
 * default is stochastic rounding: the 16 bits dropped are compared with 16
 * random bits drawn from a counter-based hash of (seed, step, element
 * index).  The index is index0 + i, so a run is reproducible and does not
 * depend on how the tensor is split across threads. */
typedef struct KnBf16Round {
    uint64_t seed;     /* per run                                        */
    uint64_t step;     /* per step: a fresh stream each step             */
    uint64_t index0;   /* global index of element 0 of this call        */
    int nearest;       /* 1: round to nearest even instead (see above)   */
} KnBf16Round;

/* Scalar bf16 conversions, the specification the SIMD kernels follow.
 * bf16 -> fp32 is exact.  fp32 -> bf16 rounds to nearest even (ties to even),
 * or stochastically with the 16 random bits r (the value rounds away from
 * zero with probability (dropped bits) / 65536).  In both, as the
 * AVX512_BF16 instruction VCVTNEPS2BF16 does: denormal inputs become zero of
 * the same sign; NaN stays NaN (made quiet, sign and top payload bits kept);
 * Inf stays Inf; values that round past the largest bf16 become Inf. */
AMO_API float kn_bf16_to_f32(uint16_t h);
AMO_API uint16_t kn_f32_to_bf16_rne(float f);
AMO_API uint16_t kn_f32_to_bf16_sr(float f, uint32_t r);

/* The counter-based generator behind stochastic rounding: 32 random bits for
 * element index i under the per-step key from kn_bf16_key() (a hash of seed
 * and step).  The low 16 bits round m, the high 16 bits round v.  Only the
 * low 32 bits of i are used: the stream repeats every 2^32 elements. */
AMO_API uint32_t kn_bf16_key(const KnBf16Round *r);
AMO_API uint32_t kn_bf16_random(uint32_t key, uint64_t i);

/* The stochastic-rounding hash (lowbias32 by C. Wellons, a 32-bit
 * bijection with low bias), written once here for the C levels; the SIMD
 * levels compute it on their lanes. */
static inline uint32_t kn_hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

#endif

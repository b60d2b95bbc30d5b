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
 * random bits drawn from a counter-based generator of (seed, step, element
 * index), below.  The index is index0 + i, so a run is reproducible and
 * does not depend on how the tensor is split across threads or calls. */
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

/* The stream of random bits behind stochastic rounding, a function of
 * (seed, step, element index) alone (results/kernels/README.md, "The
 * stochastic-rounding stream", has the reasons and the measurements):
 *
 *   key     K0, K1, K2: 128 bits each, the splitmix64 values 1..6 (common/rng.h,
 *           amo_rng_at) of the seed mix64(seed * 0x9e3779b97f4a7c15 + step
 *           + 0x632be59bd9b4e019), as little-endian 32-bit words
 *   block   x = low 32 bits of the index; b = x & ~3, w = x & 3: elements
 *           4k .. 4k+3 share one 128-bit block
 *   input   X = (b + K0[0], b + 1 + K0[1], b + 2 + K0[2], b + 3 + K0[3]),
 *           four 32-bit words, each mod 2^32
 *   output  Y = AESENC(AESENC(X, K1), K2): two AES encryption rounds
 *           (FIPS-197 section 5.1: SubBytes, ShiftRows, MixColumns, then the
 *           round key XORed in; x86 AESENC, aarch64 AESMC(AESE(s, 0)) ^ k)
 *   bits    word w of Y: its low 16 bits round m, its high 16 bits round v.
 *
 * Two rounds spread every input byte over the whole block: the four words
 * of a block are a bijection of their indices for each key, so each
 * element's 32 bits are uniform over steps (rounding is unbiased) and the
 * steps are independent.  The x86 levels compute it with one VAESENC per 4
 * elements and round, the aarch64 level with AESE/AESMC, and every level
 * falls back on the table-driven rounds of bf16.c (same bits) where the CPU
 * has no AES instructions.  The stream repeats every 2^32 elements. */
typedef struct KnBf16Key {
    uint32_t k0[4];        /* added to the block's four indices           */
    uint32_t k1[4], k2[4]; /* the two round keys                          */
} KnBf16Key;

AMO_API KnBf16Key kn_bf16_key(const KnBf16Round *r);

/* The 32 random bits of element index i under key. */
AMO_API uint32_t kn_bf16_random(const KnBf16Key *key, uint64_t i);

/* The four words of the block of elements b .. b+3 (b = low 32 bits of an
 * index, a multiple of 4): the portable generator, one call per block. */
AMO_API void kn_bf16_random_block(const KnBf16Key *key, uint32_t b, uint32_t out[4]);

#endif

/* AVX-512 pieces shared by update_avx512.c and update_avx512bf16.c: the AMO
 * arithmetic on 16 lanes, the bf16 load and the rounding stream.  Included
 * only by files built with the avx512 flags. */
#ifndef AMO_KERNELS_AMO_AVX512_H
#define AMO_KERNELS_AMO_AVX512_H

#ifndef __AVX512F__
#error "kernels/amo_avx512.h is for files built with the avx512 flags"
#endif
#if !defined(__AES__) || !defined(__VAES__)
#error "kernels/meson.build must build the avx512 files with -maes -mvaes (used only where detected)"
#endif

#include <immintrin.h>
#include <math.h>

#include "kernels/update_dsp.h"

#define KN_INLINE static inline __attribute__((always_inline))

/* The per-call scalars of KnAmoArgs, broadcast once. */
typedef struct AmoVec {
    __m512 lr, beta, omb, gamma, omg, eps, vs, gsc, l2, decay, lo, hi;
} AmoVec;

KN_INLINE AmoVec amo_vec_init(const KnAmoArgs *a)
{
    return (AmoVec){
        .lr = _mm512_set1_ps(a->lr),
        .beta = _mm512_set1_ps(a->beta),
        .omb = _mm512_set1_ps(1.0f - a->beta),
        .gamma = _mm512_set1_ps(a->gamma),
        .omg = _mm512_set1_ps(1.0f - a->gamma),
        .eps = _mm512_set1_ps(a->eps),
        .vs = _mm512_set1_ps(a->v_scale),
        .gsc = _mm512_set1_ps(a->grad_scale),
        .l2 = _mm512_set1_ps(a->l2),
        .decay = _mm512_set1_ps(a->decay),
        .lo = _mm512_set1_ps(a->lo),
        .hi = _mm512_set1_ps(a->hi),
    };
}

/* lr*m / (sqrt(v) * v_scale + eps) without VSQRTPS and VDIVPS, whose
 * throughput bounds the update in L2: sqrt(v) = v * rsqrt(v) and 1/den, each
 * from the 14-bit estimate plus one Newton step, within the tests' 8 x 2^-24
 * (results/kernels/README.md has the error and the speed).  Special lanes
 * without branches: v = 0, +Inf or NaN keeps sqrt(v) = v; den = 0, Inf, NaN
 * or denormal skips the Newton step (so 1/Inf stays 0). */
KN_INLINE __m512 amo_quotient(__m512 num, __m512 vn, const struct AmoVec *k)
{
    /* fpclass bits: 0x01 QNaN, 0x02 +0, 0x04 -0, 0x08 +Inf, 0x10 -Inf,
     * 0x20 denormal, 0x40 negative, 0x80 SNaN */
    const __mmask16 v_ok = ~_mm512_fpclass_ps_mask(vn, 0x8f);
    __m512 r = _mm512_rsqrt14_ps(vn);
    r = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), r),
                      _mm512_fnmadd_ps(_mm512_mul_ps(vn, r), r, _mm512_set1_ps(3.0f)));
    const __m512 sq = _mm512_mask_mul_ps(vn, v_ok, vn, r);
    const __m512 den = _mm512_fmadd_ps(sq, k->vs, k->eps);
    const __mmask16 d_ok = ~_mm512_fpclass_ps_mask(den, 0xbf);
    const __m512 y = _mm512_rcp14_ps(den);
    const __m512 e = _mm512_fnmadd_ps(den, y, _mm512_set1_ps(1.0f));
    return _mm512_mul_ps(num, _mm512_mask3_fmadd_ps(y, e, y, d_ok));
}

/* The reference's amo_elem on 16 lanes, in two halves so that the
 * bf16-state kernel can put its own quotient between them; FMA where the
 * reference has a multiply followed by an add.  amo_vec_moments updates *m
 * and *v; amo_vec_theta returns the new theta from the step q.  bounded = 0
 * when the bounds are -Inf and +Inf: the clamp is then the identity (NaN
 * included, the bound being the first operand) and two uops per 16 lanes
 * are skipped, which the bf16-state kernel feels at 64M parameters. */
KN_INLINE void amo_vec_moments(__m512 th, __m512 *m, __m512 *v, __m512 g, const AmoVec *k)
{
    const __m512 gs = _mm512_fmadd_ps(k->gsc, g, _mm512_mul_ps(k->l2, th));
    *m = _mm512_fmadd_ps(k->beta, *m, _mm512_mul_ps(k->omb, gs));
    *v = _mm512_fmadd_ps(k->gamma, *v, _mm512_mul_ps(k->omg, _mm512_mul_ps(gs, gs)));
}

KN_INLINE __m512 amo_vec_theta(__m512 th, __m512 q, const AmoVec *k, int bounded)
{
    const __m512 t = _mm512_sub_ps(_mm512_fnmadd_ps(k->decay, th, th), q);
    return bounded ? _mm512_min_ps(k->hi, _mm512_max_ps(k->lo, t)) : t;
}

KN_INLINE __m512 amo_vec_step(__m512 th, __m512 *m, __m512 *v, __m512 g, const AmoVec *k,
                              int bounded)
{
    amo_vec_moments(th, m, v, g, k);
    return amo_vec_theta(th, amo_quotient(_mm512_mul_ps(k->lr, *m), *v, k), k, bounded);
}

/* Whether the update must clamp theta (see amo_vec_theta). */
static inline int amo_bounded(const KnAmoArgs *a)
{
    return !(a->lo == -INFINITY && a->hi == INFINITY);
}

/* 16 bf16 -> 16 fp32 (exact: the bf16 bits become the top half). */
KN_INLINE __m512 bf16_load(__mmask16 k, const uint16_t *p)
{
    const __m256i h = _mm256_maskz_loadu_epi16(k, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The rounding stream's key (bf16.h): K0 for each 128-bit lane, so that a
 * counter of element indices plus k0 is the AES input of four blocks, and
 * the two round keys. */
typedef struct SrKey { __m512i k0, k1, k2; } SrKey;

KN_INLINE SrKey sr_key(const KnBf16Key *k)
{
    return (SrKey){ _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)k->k0)),
                    _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)k->k1)),
                    _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)k->k2)) };
}

/* kn_bf16_random() of 16 consecutive elements, the first a multiple of 4:
 * ctr holds their low 32 index bits plus k0.  Two VAESENC (four blocks
 * each) where the CPU has VAES; else eight AESENC on the 128-bit lanes. */
KN_INLINE __m512i sr_random(__m512i ctr, const SrKey *k, int vaes)
{
    if (vaes)
        return _mm512_aesenc_epi128(_mm512_aesenc_epi128(ctr, k->k1), k->k2);
    const __m128i k1 = _mm512_castsi512_si128(k->k1), k2 = _mm512_castsi512_si128(k->k2);
    __m128i b[4];
    b[0] = _mm512_castsi512_si128(ctr);
    b[1] = _mm512_extracti32x4_epi32(ctr, 1);
    b[2] = _mm512_extracti32x4_epi32(ctr, 2);
    b[3] = _mm512_extracti32x4_epi32(ctr, 3);
    for (int j = 0; j < 4; j++)
        b[j] = _mm_aesenc_si128(_mm_aesenc_si128(b[j], k1), k2);
    __m512i r = _mm512_castsi128_si512(b[0]);
    r = _mm512_inserti32x4(r, b[1], 1);
    r = _mm512_inserti32x4(r, b[2], 2);
    return _mm512_inserti32x4(r, b[3], 3);
}

KN_INLINE __m512i iota16(void)
{
    return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

/* Lanes that round specially (see update.h), each class in one VFPCLASSPS:
 * NaN (0x01 quiet | 0x80 signalling), and zero or denormal (0x02 +0 |
 * 0x04 -0 | 0x20 denormal). */
KN_INLINE __mmask16 bf16_nan(__m512 x) { return _mm512_fpclass_ps_mask(x, 0x81); }
KN_INLINE __mmask16 bf16_tiny(__m512 x) { return _mm512_fpclass_ps_mask(x, 0x26); }

#endif

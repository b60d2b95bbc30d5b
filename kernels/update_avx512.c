/* AVX-512 (F, BW, DQ, VL) update kernels.  Tails run the same arithmetic
 * under a lane mask, so each element gets the same instructions wherever it
 * falls and a tensor can be split across threads at any boundary. */
#ifndef __AVX512F__
#error "kernels/meson.build must build this file with the avx512 flags"
#endif
#if !defined(__AVX512BW__) || !defined(__AVX512DQ__) || !defined(__AVX512VL__)
#error "kernels/meson.build must build this file with -mavx512bw -mavx512dq -mavx512vl"
#endif

#include "kernels/amo_avx512.h"
#include "kernels/cpu.h"
#include "kernels/prefetch.h"

static inline __mmask16 tail16(size_t r) { return (__mmask16)((1u << r) - 1u); }

/* ---- AMO / Adam, fp32 state: 28 bytes per element ------------------------ */

KN_INLINE void amo_block(float *theta, float *m, float *v, const float *g, __mmask16 k,
                         const AmoVec *c, int bounded)
{
    __m512 mm = _mm512_maskz_loadu_ps(k, m), vv = _mm512_maskz_loadu_ps(k, v);
    const __m512 t = amo_vec_step(_mm512_maskz_loadu_ps(k, theta), &mm, &vv,
                                  _mm512_maskz_loadu_ps(k, g), c, bounded);
    _mm512_mask_storeu_ps(theta, k, t);
    _mm512_mask_storeu_ps(m, k, mm);
    _mm512_mask_storeu_ps(v, k, vv);
}

KN_INLINE void amo_loop(float *theta, float *m, float *v, const float *g, size_t n,
                        const AmoVec *c, int bounded)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        kn_prefetch(theta + i + KN_PREFETCH_F32);
        kn_prefetch(m + i + KN_PREFETCH_F32);
        kn_prefetch(v + i + KN_PREFETCH_F32);
        kn_prefetch(g + i + KN_PREFETCH_F32);
        amo_block(theta + i, m + i, v + i, g + i, 0xffff, c, bounded);
    }
    if (i < n)
        amo_block(theta + i, m + i, v + i, g + i, tail16(n - i), c, bounded);
}

static void amo_avx512(float *theta, float *m, float *v, const float *g, size_t n,
                       const KnAmoArgs *a)
{
    const AmoVec c = amo_vec_init(a);
    if (amo_bounded(a))
        amo_loop(theta, m, v, g, n, &c, 1);
    else
        amo_loop(theta, m, v, g, n, &c, 0);
}

/* ---- AMO / Adam, bf16 state: 20 bytes per element --------------------------
 * Rounding by integer arithmetic on the fp32 bits, exactly as
 * kn_f32_to_bf16_rne / _sr (bf16.c); the avx512bf16 level replaces this
 * slot with the VCVTNEPS2BF16 version. */

KN_INLINE __m256i bf16_round(__m512 x, __m512i r16, int nearest)
{
    const __m512i u = _mm512_castps_si512(x);
    __m512i add = r16;
    if (nearest)
        add = _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                               _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)));
    __m512i h = _mm512_srli_epi32(_mm512_add_epi32(u, add), 16);
    const __m512i top = _mm512_srli_epi32(u, 16);
    h = _mm512_mask_and_epi32(h, bf16_tiny(x), top, _mm512_set1_epi32(0x8000));
    h = _mm512_mask_or_epi32(h, bf16_nan(x), top, _mm512_set1_epi32(0x0040));
    return _mm512_cvtepi32_epi16(h);
}

KN_INLINE void amo_bf16_block(float *theta, uint16_t *m, uint16_t *v, const float *g,
                              __mmask16 k, const AmoVec *c, __m512i ctr, const SrKey *key,
                              int nearest, int vaes, int bounded)
{
    __m512 mm = bf16_load(k, m), vv = bf16_load(k, v);
    const __m512 t = amo_vec_step(_mm512_maskz_loadu_ps(k, theta), &mm, &vv,
                                  _mm512_maskz_loadu_ps(k, g), c, bounded);
    __m512i rm = _mm512_setzero_si512(), rv = rm;
    if (!nearest) {
        const __m512i r = sr_random(ctr, key, vaes);
        rm = _mm512_and_si512(r, _mm512_set1_epi32(0xffff));
        rv = _mm512_srli_epi32(r, 16);
    }
    _mm512_mask_storeu_ps(theta, k, t);
    _mm256_mask_storeu_epi16(m, k, bf16_round(mm, rm, nearest));
    _mm256_mask_storeu_epi16(v, k, bf16_round(vv, rv, nearest));
}

/* index0 is a multiple of 4 unless rounding to nearest (kn_bf16_head). */
KN_INLINE void amo_bf16_loop(float *theta, uint16_t *m, uint16_t *v, const float *g,
                             size_t n, const KnAmoArgs *a, const KnBf16Key *key,
                             uint64_t index0, int nearest, int vaes, int bounded)
{
    const AmoVec c = amo_vec_init(a);
    const SrKey sk = sr_key(key);
    const __m512i step = _mm512_set1_epi32(16);
    __m512i ctr = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)index0),
                                   _mm512_add_epi32(iota16(), sk.k0));
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        kn_prefetch(theta + i + KN_PREFETCH_BF16);
        kn_prefetch(g + i + KN_PREFETCH_BF16);
        kn_prefetch(m + i + KN_PREFETCH_BF16); /* half a line each: every other one repeats */
        kn_prefetch(v + i + KN_PREFETCH_BF16);
        amo_bf16_block(theta + i, m + i, v + i, g + i, 0xffff, &c, ctr, &sk, nearest, vaes,
                       bounded);
        ctr = _mm512_add_epi32(ctr, step);
    }
    if (i < n)
        amo_bf16_block(theta + i, m + i, v + i, g + i, tail16(n - i), &c, ctr, &sk, nearest,
                       vaes, bounded);
}

/* The slot's body: the head (kn_bf16_head, through self), then the rest,
 * aligned, in the instance for the flags. */
static void amo_bf16_avx512_impl(KnAmoBf16Fn *self, int vaes, float *theta, uint16_t *m,
                                 uint16_t *v, const float *g, size_t n, const KnAmoArgs *a,
                                 const KnBf16Key *key, uint64_t index0, int nearest)
{
    const size_t h = kn_bf16_head(self, theta, m, v, g, n, a, key, index0, nearest);
    theta += h, m += h, v += h, g += h, n -= h, index0 += h;
    const int bounded = amo_bounded(a);
    if (nearest)
        bounded ? amo_bf16_loop(theta, m, v, g, n, a, key, index0, 1, 0, 1)
                : amo_bf16_loop(theta, m, v, g, n, a, key, index0, 1, 0, 0);
    else if (vaes)
        bounded ? amo_bf16_loop(theta, m, v, g, n, a, key, index0, 0, 1, 1)
                : amo_bf16_loop(theta, m, v, g, n, a, key, index0, 0, 1, 0);
    else
        bounded ? amo_bf16_loop(theta, m, v, g, n, a, key, index0, 0, 0, 1)
                : amo_bf16_loop(theta, m, v, g, n, a, key, index0, 0, 0, 0);
}

/* The slot with VAES and the one without (AESENC on 128-bit lanes). */
static void amo_bf16_avx512_vaes(float *theta, uint16_t *m, uint16_t *v, const float *g,
                                 size_t n, const KnAmoArgs *a, const KnBf16Key *key,
                                 uint64_t index0, int nearest)
{
    amo_bf16_avx512_impl(amo_bf16_avx512_vaes, 1, theta, m, v, g, n, a, key, index0, nearest);
}

static void amo_bf16_avx512_aes(float *theta, uint16_t *m, uint16_t *v, const float *g,
                                size_t n, const KnAmoArgs *a, const KnBf16Key *key,
                                uint64_t index0, int nearest)
{
    amo_bf16_avx512_impl(amo_bf16_avx512_aes, 0, theta, m, v, g, n, a, key, index0, nearest);
}

/* ---- SGD with momentum --------------------------------------------------- */

typedef struct SgdVec { __m512 lr, mu, omd, gsc, l2, decay, lo, hi; } SgdVec;

KN_INLINE void sgd_block(float *theta, float *buf, const float *g, __mmask16 k,
                         const SgdVec *c, int mom, int first, int nesterov)
{
    const __m512 th = _mm512_maskz_loadu_ps(k, theta);
    const __m512 gs = _mm512_fmadd_ps(c->gsc, _mm512_maskz_loadu_ps(k, g), _mm512_mul_ps(c->l2, th));
    __m512 d = gs;
    if (mom) {
        const __m512 b = first ? gs
                               : _mm512_fmadd_ps(c->mu, _mm512_maskz_loadu_ps(k, buf),
                                                 _mm512_mul_ps(c->omd, gs));
        _mm512_mask_storeu_ps(buf, k, b);
        d = nesterov ? _mm512_fmadd_ps(c->mu, b, gs) : b;
    }
    __m512 t = _mm512_fnmadd_ps(c->decay, th, th);
    t = _mm512_fnmadd_ps(c->lr, d, t);
    _mm512_mask_storeu_ps(theta, k, _mm512_min_ps(c->hi, _mm512_max_ps(c->lo, t)));
}

KN_INLINE void sgd_loop(float *theta, float *buf, const float *g, size_t n, const SgdVec *c,
                        int mom, int first, int nesterov)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        kn_prefetch(theta + i + KN_PREFETCH_F32);
        kn_prefetch(g + i + KN_PREFETCH_F32);
        if (mom && !first)
            kn_prefetch(buf + i + KN_PREFETCH_F32);
        sgd_block(theta + i, mom ? buf + i : NULL, g + i, 0xffff, c, mom, first, nesterov);
    }
    if (i < n)
        sgd_block(theta + i, mom ? buf + i : NULL, g + i, tail16(n - i), c, mom, first, nesterov);
}

static void sgd_avx512(float *theta, float *buf, const float *g, size_t n, const KnSgdArgs *a)
{
    const SgdVec c = {
        _mm512_set1_ps(a->lr), _mm512_set1_ps(a->momentum), _mm512_set1_ps(1.0f - a->dampening),
        _mm512_set1_ps(a->grad_scale), _mm512_set1_ps(a->l2), _mm512_set1_ps(a->decay),
        _mm512_set1_ps(a->lo), _mm512_set1_ps(a->hi),
    };
    const int nest = a->nesterov != 0;
    if (a->momentum == 0.0f)
        sgd_loop(theta, buf, g, n, &c, 0, 0, 0);
    else if (a->first)
        nest ? sgd_loop(theta, buf, g, n, &c, 1, 1, 1) : sgd_loop(theta, buf, g, n, &c, 1, 1, 0);
    else
        nest ? sgd_loop(theta, buf, g, n, &c, 1, 0, 1) : sgd_loop(theta, buf, g, n, &c, 1, 0, 0);
}

/* ---- RMSprop --------------------------------------------------------------- */

typedef struct RmsVec { __m512 lr, alpha, oma, eps, mu, gsc, l2, decay, lo, hi; } RmsVec;

KN_INLINE void rms_block(float *theta, float *v, float *buf, const float *g, __mmask16 k,
                         const RmsVec *c, int mom)
{
    const __m512 th = _mm512_maskz_loadu_ps(k, theta);
    const __m512 gs = _mm512_fmadd_ps(c->gsc, _mm512_maskz_loadu_ps(k, g), _mm512_mul_ps(c->l2, th));
    const __m512 vn = _mm512_fmadd_ps(c->alpha, _mm512_maskz_loadu_ps(k, v),
                                      _mm512_mul_ps(c->oma, _mm512_mul_ps(gs, gs)));
    _mm512_mask_storeu_ps(v, k, vn);
    __m512 d = _mm512_div_ps(gs, _mm512_add_ps(_mm512_sqrt_ps(vn), c->eps));
    if (mom) {
        d = _mm512_fmadd_ps(c->mu, _mm512_maskz_loadu_ps(k, buf), d);
        _mm512_mask_storeu_ps(buf, k, d);
    }
    __m512 t = _mm512_fnmadd_ps(c->decay, th, th);
    t = _mm512_fnmadd_ps(c->lr, d, t);
    _mm512_mask_storeu_ps(theta, k, _mm512_min_ps(c->hi, _mm512_max_ps(c->lo, t)));
}

KN_INLINE void rms_loop(float *theta, float *v, float *buf, const float *g, size_t n,
                        const RmsVec *c, int mom)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        kn_prefetch(theta + i + KN_PREFETCH_F32);
        kn_prefetch(v + i + KN_PREFETCH_F32);
        kn_prefetch(g + i + KN_PREFETCH_F32);
        if (mom)
            kn_prefetch(buf + i + KN_PREFETCH_F32);
        rms_block(theta + i, v + i, mom ? buf + i : NULL, g + i, 0xffff, c, mom);
    }
    if (i < n)
        rms_block(theta + i, v + i, mom ? buf + i : NULL, g + i, tail16(n - i), c, mom);
}

static void rmsprop_avx512(float *theta, float *v, float *buf, const float *g, size_t n,
                           const KnRmspropArgs *a)
{
    const RmsVec c = {
        _mm512_set1_ps(a->lr), _mm512_set1_ps(a->alpha), _mm512_set1_ps(1.0f - a->alpha),
        _mm512_set1_ps(a->eps), _mm512_set1_ps(a->momentum), _mm512_set1_ps(a->grad_scale),
        _mm512_set1_ps(a->l2), _mm512_set1_ps(a->decay), _mm512_set1_ps(a->lo),
        _mm512_set1_ps(a->hi),
    };
    if (a->momentum > 0.0f)
        rms_loop(theta, v, buf, g, n, &c, 1);
    else
        rms_loop(theta, v, NULL, g, n, &c, 0);
}

/* ---- sum of squares ---------------------------------------------------------
 * 32 lanes as four vectors of 8 doubles: acc[j] holds lanes 8j .. 8j+7. */

KN_INLINE void sumsq_block(__m512d acc[4], const float *x, __mmask32 k)
{
    const __m512 a = _mm512_maskz_loadu_ps((__mmask16)k, x);
    const __m512 b = _mm512_maskz_loadu_ps((__mmask16)(k >> 16), x + 16);
    const __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(a));
    const __m512d d1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    const __m512d d2 = _mm512_cvtps_pd(_mm512_castps512_ps256(b));
    const __m512d d3 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b), 1)));
    acc[0] = _mm512_fmadd_pd(d0, d0, acc[0]); /* the product is exact */
    acc[1] = _mm512_fmadd_pd(d1, d1, acc[1]);
    acc[2] = _mm512_fmadd_pd(d2, d2, acc[2]);
    acc[3] = _mm512_fmadd_pd(d3, d3, acc[3]);
}

static double sumsq_avx512(const float *x, size_t n)
{
    __m512d acc[4] = { _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(),
                       _mm512_setzero_pd() };
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        sumsq_block(acc, x + i, 0xffffffffu);
    if (i < n)
        sumsq_block(acc, x + i, (__mmask32)((1ull << (n - i)) - 1));
    double lane[KN_SUMSQ_LANES];
    for (int j = 0; j < 4; j++)
        _mm512_storeu_pd(lane + 8 * j, acc[j]);
    return kn_sumsq_lanes(lane);
}

void kn_update_dsp_init_avx512(KnUpdateDSP *dsp, unsigned flags)
{
    dsp->amo = amo_avx512;
    dsp->sgd = sgd_avx512;
    dsp->rmsprop = rmsprop_avx512;
    dsp->sumsq = sumsq_avx512;
    for (int k = 0; k < KN_K_COUNT; k++)
        if (k != KN_K_AMO_BF16)
            dsp->level[k] = "avx512";
    if (!(flags & KN_CPU_AES))
        return; /* the rounding stream needs AES rounds */
    dsp->amo_bf16 = (flags & KN_CPU_VAES) ? amo_bf16_avx512_vaes : amo_bf16_avx512_aes;
    dsp->level[KN_K_AMO_BF16] = "avx512";
}

/* AVX2 + FMA versions of the update kernels (slots: update_dsp.h).
 *
 * Each kernel has one vector body for 8 elements.  The last n % 8 elements
 * (n % 32 for sumsq) go through that same body on a zero-padded stack copy,
 * so an element gets the same instructions wherever a chunk boundary falls
 * and results are bitwise independent of the thread split.
 *
 * The arithmetic follows update_ref.c line by line; the one liberty is that
 * a product feeding a sum is fused into an FMA (one rounding instead of
 * two).  Every such pair is an explicit FMA here, so the result does not
 * depend on the compiler's contraction setting.  With the usual arguments
 * (grad_scale 1 or l2 0, decay 0) the fused gradient and decay lines round
 * exactly as the reference does. */
#ifndef __AVX2__
#error "kernels/meson.build must build this file with the avx2 flags"
#endif
#ifndef __FMA__
#error "kernels/meson.build must build this file with the fma flag"
#endif
#ifndef __AES__
#error "kernels/meson.build must build this file with -maes (used only where detected)"
#endif

#include <immintrin.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/update_dsp.h"

/* The loop variants (sgd's momentum/first/nesterov, bf16's rounding) are
 * specialised by inlining a body with constant flags, so no per-element
 * branch is left in any loop. */
#define KN_AVX2_INLINE static inline __attribute__((always_inline))

/* min(max(x, lo), hi) with the bound as first operand: maxps/minps return
 * the second operand on NaN, so NaN stays NaN as in the reference clampf. */
KN_AVX2_INLINE __m256 clamp8(__m256 x, __m256 lo, __m256 hi)
{
    return _mm256_min_ps(hi, _mm256_max_ps(lo, x));
}

/* ---- AMO (fp32 and bf16 moments) ---------------------------------------- */

typedef struct AmoVec {
    __m256 gsc, l2, beta, omb, gamma, omg, vsc, eps, decay, lr, lo, hi;
} AmoVec;

static AmoVec amo_vec(const KnAmoArgs *a)
{
    return (AmoVec){
        .gsc = _mm256_set1_ps(a->grad_scale), .l2 = _mm256_set1_ps(a->l2),
        .beta = _mm256_set1_ps(a->beta), .omb = _mm256_set1_ps(1.0f - a->beta),
        .gamma = _mm256_set1_ps(a->gamma), .omg = _mm256_set1_ps(1.0f - a->gamma),
        .vsc = _mm256_set1_ps(a->v_scale), .eps = _mm256_set1_ps(a->eps),
        .decay = _mm256_set1_ps(a->decay), .lr = _mm256_set1_ps(a->lr),
        .lo = _mm256_set1_ps(a->lo), .hi = _mm256_set1_ps(a->hi),
    };
}

/* amo_elem() of update_ref.c on 8 lanes: returns theta, updates *m, *v. */
KN_AVX2_INLINE __m256 amo_body(__m256 th, __m256 *m, __m256 *v, __m256 g, const AmoVec *c)
{
    const __m256 gs = _mm256_fmadd_ps(c->gsc, g, _mm256_mul_ps(c->l2, th));
    const __m256 mn = _mm256_fmadd_ps(c->beta, *m, _mm256_mul_ps(c->omb, gs));
    const __m256 vn = _mm256_fmadd_ps(c->gamma, *v,
                                      _mm256_mul_ps(c->omg, _mm256_mul_ps(gs, gs)));
    const __m256 den = _mm256_fmadd_ps(_mm256_sqrt_ps(vn), c->vsc, c->eps);
    __m256 t = _mm256_fnmadd_ps(c->decay, th, th);
    t = _mm256_sub_ps(t, _mm256_div_ps(_mm256_mul_ps(c->lr, mn), den));
    *m = mn;
    *v = vn;
    return clamp8(t, c->lo, c->hi);
}

KN_AVX2_INLINE void amo_block(float *theta, float *m, float *v, const float *g,
                              const AmoVec *c)
{
    __m256 mv = _mm256_loadu_ps(m), vv = _mm256_loadu_ps(v);
    const __m256 t = amo_body(_mm256_loadu_ps(theta), &mv, &vv, _mm256_loadu_ps(g), c);
    _mm256_storeu_ps(m, mv);
    _mm256_storeu_ps(v, vv);
    _mm256_storeu_ps(theta, t);
}

static void amo_avx2(float *theta, float *m, float *v, const float *g, size_t n,
                     const KnAmoArgs *a)
{
    const AmoVec c = amo_vec(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        amo_block(theta + i, m + i, v + i, g + i, &c);
    if (i < n) {
        float tb[8] = { 0 }, mb[8] = { 0 }, vb[8] = { 0 }, gb[8] = { 0 };
        const size_t bytes = (n - i) * sizeof(float);
        memcpy(tb, theta + i, bytes);
        memcpy(mb, m + i, bytes);
        memcpy(vb, v + i, bytes);
        memcpy(gb, g + i, bytes);
        amo_block(tb, mb, vb, gb, &c);
        memcpy(theta + i, tb, bytes);
        memcpy(m + i, mb, bytes);
        memcpy(v + i, vb, bytes);
    }
}

/* bf16 -> fp32 is exact: the 16 bits become the top half of the float. */
KN_AVX2_INLINE __m256 bf16_load8(const uint16_t *p)
{
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* kn_f32_to_bf16_rne (nearest) or kn_f32_to_bf16_sr (r: 16 random bits per
 * lane) on 8 lanes; each result in the low half of its 32-bit lane. */
KN_AVX2_INLINE __m256i bf16_round8(__m256 f, __m256i r, int nearest)
{
    const __m256i u = _mm256_castps_si256(f);
    const __m256i top = _mm256_srli_epi32(u, 16);
    const __m256i inc = nearest
        ? _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                           _mm256_and_si256(top, _mm256_set1_epi32(1)))
        : r;
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, inc), 16);
    /* the special cases of bf16_special() in bf16.c */
    const __m256i is_nan = _mm256_cmpgt_epi32(
        _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    const __m256i is_tiny = _mm256_cmpeq_epi32(
        _mm256_and_si256(u, _mm256_set1_epi32(0x7f800000)), _mm256_setzero_si256());
    const __m256i qnan = _mm256_or_si256(top, _mm256_set1_epi32(0x0040));
    const __m256i zero = _mm256_and_si256(top, _mm256_set1_epi32(0x8000));
    const __m256i res = _mm256_blendv_epi8(rounded, zero, is_tiny);
    return _mm256_blendv_epi8(res, qnan, is_nan);
}

/* The rounding stream's key (bf16.h): K0 twice, one per block of 4 lanes. */
typedef struct SrKey8 { __m256i k0; __m128i k1, k2; } SrKey8;

static SrKey8 sr_key8(const KnBf16Key *k)
{
    const __m128i k0 = _mm_loadu_si128((const __m128i *)(const void *)k->k0);
    return (SrKey8){ _mm256_set_m128i(k0, k0),
                     _mm_loadu_si128((const __m128i *)(const void *)k->k1),
                     _mm_loadu_si128((const __m128i *)(const void *)k->k2) };
}

/* kn_bf16_random() of 8 consecutive elements from idx, a multiple of 4:
 * two blocks, two AESENC each. */
KN_AVX2_INLINE __m256i sr_random8(uint32_t idx, const SrKey8 *k)
{
    const __m256i ctr = _mm256_add_epi32(_mm256_add_epi32(_mm256_set1_epi32((int)idx), k->k0),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m128i lo = _mm_aesenc_si128(_mm_aesenc_si128(_mm256_castsi256_si128(ctr), k->k1),
                                        k->k2);
    const __m128i hi = _mm_aesenc_si128(_mm_aesenc_si128(_mm256_extracti128_si256(ctr, 1),
                                                         k->k1), k->k2);
    return _mm256_set_m128i(hi, lo);
}

/* idx: low 32 bits of the global index of element 0 of the block, a
 * multiple of 4 unless rounding to nearest (kn_bf16_head). */
KN_AVX2_INLINE void amo_bf16_block(float *theta, uint16_t *m, uint16_t *v, const float *g,
                                   const AmoVec *c, const SrKey8 *key, uint32_t idx,
                                   int nearest)
{
    __m256 mv = bf16_load8(m), vv = bf16_load8(v);
    const __m256 t = amo_body(_mm256_loadu_ps(theta), &mv, &vv, _mm256_loadu_ps(g), c);
    __m256i rm = _mm256_setzero_si256(), rv = _mm256_setzero_si256();
    if (!nearest) {
        /* kn_bf16_random(key, index0 + i): low 16 bits for m, high for v */
        const __m256i r = sr_random8(idx, key);
        rm = _mm256_and_si256(r, _mm256_set1_epi32(0xffff));
        rv = _mm256_srli_epi32(r, 16);
    }
    const __m256i hm = bf16_round8(mv, rm, nearest), hv = bf16_round8(vv, rv, nearest);
    /* All lanes are <= 0xffff, so packus does not saturate.  Per 128-bit
     * lane it gives m0-3 v0-3 | m4-7 v4-7; the permute puts m0-7 | v0-7. */
    const __m256i mv16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(hm, hv),
                                                  _MM_SHUFFLE(3, 1, 2, 0));
    _mm_storeu_si128((__m128i *)m, _mm256_castsi256_si128(mv16));
    _mm_storeu_si128((__m128i *)v, _mm256_extracti128_si256(mv16, 1));
    _mm256_storeu_ps(theta, t);
}

KN_AVX2_INLINE void amo_bf16_run(float *theta, uint16_t *m, uint16_t *v, const float *g,
                                 size_t n, const AmoVec *c, const SrKey8 *key,
                                 uint64_t index0, int nearest)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        amo_bf16_block(theta + i, m + i, v + i, g + i, c, key, (uint32_t)(index0 + i),
                       nearest);
    if (i < n) {
        float tb[8] = { 0 }, gb[8] = { 0 };
        uint16_t mb[8] = { 0 }, vb[8] = { 0 };
        const size_t k = n - i;
        memcpy(tb, theta + i, k * sizeof(float));
        memcpy(gb, g + i, k * sizeof(float));
        memcpy(mb, m + i, k * sizeof(uint16_t));
        memcpy(vb, v + i, k * sizeof(uint16_t));
        amo_bf16_block(tb, mb, vb, gb, c, key, (uint32_t)(index0 + i), nearest);
        memcpy(theta + i, tb, k * sizeof(float));
        memcpy(m + i, mb, k * sizeof(uint16_t));
        memcpy(v + i, vb, k * sizeof(uint16_t));
    }
}

static void amo_bf16_avx2(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                          const KnAmoArgs *a, const KnBf16Key *key, uint64_t index0,
                          int nearest)
{
    const size_t h = kn_bf16_head(amo_bf16_avx2, theta, m, v, g, n, a, key, index0, nearest);
    const AmoVec c = amo_vec(a);
    const SrKey8 k = sr_key8(key);
    if (nearest)
        amo_bf16_run(theta + h, m + h, v + h, g + h, n - h, &c, &k, index0 + h, 1);
    else
        amo_bf16_run(theta + h, m + h, v + h, g + h, n - h, &c, &k, index0 + h, 0);
}

/* ---- SGD with momentum ---------------------------------------------------- */

typedef struct SgdVec {
    __m256 gsc, l2, mom, omd, decay, lr, lo, hi;
} SgdVec;

/* sgd_c() on 8 lanes; buf is not touched unless has_mom. */
KN_AVX2_INLINE void sgd_block(float *theta, float *buf, const float *g, const SgdVec *c,
                              int has_mom, int first, int nesterov)
{
    const __m256 th = _mm256_loadu_ps(theta);
    const __m256 gs = _mm256_fmadd_ps(c->gsc, _mm256_loadu_ps(g), _mm256_mul_ps(c->l2, th));
    __m256 d = gs;
    if (has_mom) {
        const __m256 b = first ? gs
                               : _mm256_fmadd_ps(c->mom, _mm256_loadu_ps(buf),
                                                 _mm256_mul_ps(c->omd, gs));
        _mm256_storeu_ps(buf, b);
        d = nesterov ? _mm256_fmadd_ps(c->mom, b, gs) : b;
    }
    __m256 t = _mm256_fnmadd_ps(c->decay, th, th);
    t = _mm256_fnmadd_ps(c->lr, d, t);
    _mm256_storeu_ps(theta, clamp8(t, c->lo, c->hi));
}

KN_AVX2_INLINE void sgd_run(float *theta, float *buf, const float *g, size_t n,
                            const SgdVec *c, int has_mom, int first, int nesterov)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        sgd_block(theta + i, has_mom ? buf + i : NULL, g + i, c, has_mom, first, nesterov);
    if (i < n) {
        float tb[8] = { 0 }, bb[8] = { 0 }, gb[8] = { 0 };
        const size_t bytes = (n - i) * sizeof(float);
        memcpy(tb, theta + i, bytes);
        memcpy(gb, g + i, bytes);
        if (has_mom)
            memcpy(bb, buf + i, bytes);
        sgd_block(tb, bb, gb, c, has_mom, first, nesterov);
        memcpy(theta + i, tb, bytes);
        if (has_mom)
            memcpy(buf + i, bb, bytes);
    }
}

static void sgd_avx2(float *theta, float *buf, const float *g, size_t n, const KnSgdArgs *a)
{
    const SgdVec c = {
        .gsc = _mm256_set1_ps(a->grad_scale), .l2 = _mm256_set1_ps(a->l2),
        .mom = _mm256_set1_ps(a->momentum), .omd = _mm256_set1_ps(1.0f - a->dampening),
        .decay = _mm256_set1_ps(a->decay), .lr = _mm256_set1_ps(a->lr),
        .lo = _mm256_set1_ps(a->lo), .hi = _mm256_set1_ps(a->hi),
    };
    if (a->momentum == 0.0f)
        sgd_run(theta, NULL, g, n, &c, 0, 0, 0);
    else if (a->first && a->nesterov)
        sgd_run(theta, buf, g, n, &c, 1, 1, 1);
    else if (a->first)
        sgd_run(theta, buf, g, n, &c, 1, 1, 0);
    else if (a->nesterov)
        sgd_run(theta, buf, g, n, &c, 1, 0, 1);
    else
        sgd_run(theta, buf, g, n, &c, 1, 0, 0);
}

/* ---- RMSprop ---------------------------------------------------------------- */

typedef struct RmspropVec {
    __m256 gsc, l2, alpha, oma, eps, mom, decay, lr, lo, hi;
} RmspropVec;

/* rmsprop_c() on 8 lanes; buf is not touched unless has_mom. */
KN_AVX2_INLINE void rmsprop_block(float *theta, float *v, float *buf, const float *g,
                                  const RmspropVec *c, int has_mom)
{
    const __m256 th = _mm256_loadu_ps(theta);
    const __m256 gs = _mm256_fmadd_ps(c->gsc, _mm256_loadu_ps(g), _mm256_mul_ps(c->l2, th));
    const __m256 vn = _mm256_fmadd_ps(c->alpha, _mm256_loadu_ps(v),
                                      _mm256_mul_ps(c->oma, _mm256_mul_ps(gs, gs)));
    const __m256 den = _mm256_add_ps(_mm256_sqrt_ps(vn), c->eps);
    _mm256_storeu_ps(v, vn);
    __m256 d = _mm256_div_ps(gs, den);
    if (has_mom) {
        d = _mm256_fmadd_ps(c->mom, _mm256_loadu_ps(buf), d);
        _mm256_storeu_ps(buf, d);
    }
    __m256 t = _mm256_fnmadd_ps(c->decay, th, th);
    t = _mm256_fnmadd_ps(c->lr, d, t);
    _mm256_storeu_ps(theta, clamp8(t, c->lo, c->hi));
}

KN_AVX2_INLINE void rmsprop_run(float *theta, float *v, float *buf, const float *g, size_t n,
                                const RmspropVec *c, int has_mom)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        rmsprop_block(theta + i, v + i, has_mom ? buf + i : NULL, g + i, c, has_mom);
    if (i < n) {
        float tb[8] = { 0 }, vb[8] = { 0 }, bb[8] = { 0 }, gb[8] = { 0 };
        const size_t bytes = (n - i) * sizeof(float);
        memcpy(tb, theta + i, bytes);
        memcpy(vb, v + i, bytes);
        memcpy(gb, g + i, bytes);
        if (has_mom)
            memcpy(bb, buf + i, bytes);
        rmsprop_block(tb, vb, bb, gb, c, has_mom);
        memcpy(theta + i, tb, bytes);
        memcpy(v + i, vb, bytes);
        if (has_mom)
            memcpy(buf + i, bb, bytes);
    }
}

static void rmsprop_avx2(float *theta, float *v, float *buf, const float *g, size_t n,
                         const KnRmspropArgs *a)
{
    const RmspropVec c = {
        .gsc = _mm256_set1_ps(a->grad_scale), .l2 = _mm256_set1_ps(a->l2),
        .alpha = _mm256_set1_ps(a->alpha), .oma = _mm256_set1_ps(1.0f - a->alpha),
        .eps = _mm256_set1_ps(a->eps), .mom = _mm256_set1_ps(a->momentum),
        .decay = _mm256_set1_ps(a->decay), .lr = _mm256_set1_ps(a->lr),
        .lo = _mm256_set1_ps(a->lo), .hi = _mm256_set1_ps(a->hi),
    };
    if (a->momentum > 0.0f)
        rmsprop_run(theta, v, buf, g, n, &c, 1);
    else
        rmsprop_run(theta, v, NULL, g, n, &c, 0);
}

/* ---- sum of squares ----------------------------------------------------------- */

/* 32 floats into the 32 fp64 lanes: acc[k] holds lanes 4k..4k+3.  The
 * product of two floats is exact in fp64, so the FMA rounds exactly as the
 * reference's separate add does. */
KN_AVX2_INLINE void sumsq_block(const float *x, __m256d acc[8])
{
    for (int k = 0; k < 4; k++) {
        const __m256 f = _mm256_loadu_ps(x + 8 * k);
        const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(f));
        const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
        acc[2 * k] = _mm256_fmadd_pd(lo, lo, acc[2 * k]);
        acc[2 * k + 1] = _mm256_fmadd_pd(hi, hi, acc[2 * k + 1]);
    }
}

static double sumsq_avx2(const float *x, size_t n)
{
    __m256d acc[8];
    for (int k = 0; k < 8; k++)
        acc[k] = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + KN_SUMSQ_LANES <= n; i += KN_SUMSQ_LANES)
        sumsq_block(x + i, acc);
    if (i < n) {
        /* the padding adds +0.0 to lanes that are >= +0.0 or NaN: exact */
        float xb[KN_SUMSQ_LANES] = { 0 };
        memcpy(xb, x + i, (n - i) * sizeof(float));
        sumsq_block(xb, acc);
    }
    double lane[KN_SUMSQ_LANES];
    for (int k = 0; k < 8; k++)
        _mm256_storeu_pd(lane + 4 * k, acc[k]);
    return kn_sumsq_lanes(lane);
}

void kn_update_dsp_init_avx2(KnUpdateDSP *dsp, unsigned flags)
{
    dsp->amo = amo_avx2;
    dsp->sgd = sgd_avx2;
    dsp->rmsprop = rmsprop_avx2;
    dsp->sumsq = sumsq_avx2;
    dsp->level[KN_K_AMO] = "avx2";
    dsp->level[KN_K_SGD] = "avx2";
    dsp->level[KN_K_RMSPROP] = "avx2";
    dsp->level[KN_K_SUMSQ] = "avx2";
    if (!(flags & KN_CPU_AES))
        return; /* the rounding stream needs AES rounds */
    dsp->amo_bf16 = amo_bf16_avx2;
    dsp->level[KN_K_AMO_BF16] = "avx2";
}

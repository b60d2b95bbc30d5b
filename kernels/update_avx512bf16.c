/* AVX512_BF16 level: the bf16-state AMO/Adam update with VCVTNEPS2BF16,
 * which rounds 16 fp32 values to bf16 in one instruction.  The instruction
 * rounds to nearest even, treats denormal inputs as zero and quiets NaNs:
 * exactly kn_f32_to_bf16_rne (bf16.h).  Stochastic rounding adds the
 * random bits to the fp32 bits and clears the dropped half first, so the
 * instruction's own rounding is exact and only packs; NaN and tiny lanes are
 * passed through untouched so it handles them as in the nearest case.  The
 * other slots stay at the avx512 level.
 *
 * Cost.  Where the data sit in cache every vector instruction counts: the
 * step to bf16 precision (bf16_quotient) and the stream as two VAESENC per
 * 16 lanes (bf16.h) keep the arithmetic short.  From memory, where an
 * optimizer's update reads its tensors, the traffic pattern counts instead:
 * the loop goes 16 elements at a time, m and v as 256-bit halves, with
 * software prefetch KN_PREFETCH_BF16 elements ahead (kernels/prefetch.h);
 * that streams faster than 32 at a time with 512-bit m and v, and costs a
 * few instructions per 16 lanes in cache (results/kernels/README.md,
 * sessions 6 and 9). */
#ifndef __AVX512BF16__
#error "kernels/meson.build must build this file with the avx512bf16 flags"
#endif

#include <math.h>

#include "kernels/amo_avx512.h"
#include "kernels/cpu.h"
#include "kernels/prefetch.h"

/* lr * m / (sqrt(v) * v_scale + eps) to KN_BF16_STEP_RTOL (update.h) from
 * three 14-bit estimates: sqrt(v) = 1 / rsqrt(v) (VRCP14PS of VRSQRT14PS,
 * which also gets the special lanes right: v = +-0, +Inf and NaN give
 * sqrt(v) = v), then the reciprocal of the denominator, with lr folded into
 * it (lv = v_scale / lr, le = eps / lr); 1/den of 0, Inf, NaN is Inf, 0,
 * NaN, as the exact division would give. */
KN_INLINE __m512 bf16_quotient(__m512 mn, __m512 vn, __m512 lv, __m512 le)
{
    const __m512 sq = _mm512_rcp14_ps(_mm512_rsqrt14_ps(vn));
    return _mm512_mul_ps(mn, _mm512_rcp14_ps(_mm512_fmadd_ps(sq, lv, le)));
}

/* amo_vec_step with bf16_quotient.  When lr cannot be folded (lr = 0, or
 * v_scale / lr or eps / lr not a normal float: see amo_bf16_run), lv and le
 * are v_scale and eps and the numerator takes lr. */
KN_INLINE __m512 bf16_step(__m512 th, __m512 *m, __m512 *v, __m512 g, const AmoVec *k,
                           __m512 lv, __m512 le, int folded, int bounded)
{
    amo_vec_moments(th, m, v, g, k);
    return amo_vec_theta(th, bf16_quotient(folded ? *m : _mm512_mul_ps(k->lr, *m), *v, lv, le),
                         k, bounded);
}

KN_INLINE __m512 sr_prepare(__m512 x, __m512i r16)
{
    const __m512i u = _mm512_castps_si512(x);
    /* NaN and zero/denormal lanes go to the instruction untouched (adding
     * r to +-0 would be harmless, but it is the same class test) */
    const __mmask16 keep = _mm512_fpclass_ps_mask(x, 0xa7);
    const __m512i y = _mm512_and_si512(_mm512_add_epi32(u, r16), _mm512_set1_epi32((int)0xffff0000u));
    return _mm512_castsi512_ps(_mm512_mask_mov_epi32(y, keep, u));
}

typedef struct Bf16Vec {
    AmoVec c;
    __m512 lv, le; /* the denominator's scales: see bf16_step */
    SrKey key;
} Bf16Vec;

/* 16 elements under mask k (all of them but in the tail), m and v as
 * 256-bit halves: VCVTNEPS2BF16 packs one vector; ctr: the stream's counter
 * of the first (amo_avx512.h, sr_random). */
KN_INLINE void block16(float *theta, uint16_t *m, uint16_t *v, const float *g, __mmask16 k,
                       const Bf16Vec *b, __m512i ctr, int nearest, int vaes, int folded,
                       int bounded)
{
    __m512 mm = bf16_load(k, m), vv = bf16_load(k, v);
    const __m512 t = bf16_step(_mm512_maskz_loadu_ps(k, theta), &mm, &vv,
                               _mm512_maskz_loadu_ps(k, g), &b->c, b->lv, b->le, folded,
                               bounded);
    _mm512_mask_storeu_ps(theta, k, t);
    if (!nearest) {
        const __m512i r = sr_random(ctr, &b->key, vaes);
        mm = sr_prepare(mm, _mm512_and_si512(r, _mm512_set1_epi32(0xffff)));
        vv = sr_prepare(vv, _mm512_srli_epi32(r, 16));
    }
    _mm256_mask_storeu_epi16(m, k, (__m256i)_mm512_cvtneps_pbh(mm));
    _mm256_mask_storeu_epi16(v, k, (__m256i)_mm512_cvtneps_pbh(vv));
}

/* index0 is a multiple of 4 unless rounding to nearest (kn_bf16_head). */
KN_INLINE void loop(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                    const Bf16Vec *b, uint64_t index0, int nearest, int vaes, int folded,
                    int bounded)
{
    __m512i ctr = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)index0),
                                   _mm512_add_epi32(iota16(), b->key.k0));
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        kn_prefetch(theta + i + KN_PREFETCH_BF16);
        kn_prefetch(g + i + KN_PREFETCH_BF16);
        kn_prefetch(m + i + KN_PREFETCH_BF16);
        kn_prefetch(v + i + KN_PREFETCH_BF16);
        block16(theta + i, m + i, v + i, g + i, 0xffff, b, ctr, nearest, vaes, folded,
                bounded);
        ctr = _mm512_add_epi32(ctr, _mm512_set1_epi32(16));
    }
    if (i < n)
        block16(theta + i, m + i, v + i, g + i, (__mmask16)((1u << (n - i)) - 1), b, ctr,
                nearest, vaes, folded, bounded);
}

/* The slot's body: the head (kn_bf16_head, through self), then the rest,
 * aligned, in the instance for the flags. */
static void amo_bf16_run(KnAmoBf16Fn *self, int vaes, float *theta, uint16_t *m, uint16_t *v,
                         const float *g, size_t n, const KnAmoArgs *a, const KnBf16Key *key,
                         uint64_t index0, int nearest)
{
    const size_t h = kn_bf16_head(self, theta, m, v, g, n, a, key, index0, nearest);
    theta += h, m += h, v += h, g += h, n -= h, index0 += h;
    Bf16Vec b = { .c = amo_vec_init(a), .lv = _mm512_set1_ps(a->v_scale),
                  .le = _mm512_set1_ps(a->eps), .key = sr_key(key) };
    int folded = 0;
    /* lr into the denominator, when both quotients are normal floats (so
     * no lane sees 0 * Inf there): one multiply fewer per 16 lanes */
    const double lv = (double)a->v_scale / a->lr, le = (double)a->eps / a->lr;
    if (a->lr != 0.0f && isnormal((float)lv) && ((float)le == 0.0f || isnormal((float)le))) {
        b.lv = _mm512_set1_ps((float)lv);
        b.le = _mm512_set1_ps((float)le);
        folded = 1;
    }
    /* the unfolded case is rare (lr = 0 or extreme eps / lr): it always
     * clamps; every flag is a constant in each instance */
    const int bounded = amo_bounded(a);
    if (nearest) {
        if (!folded)
            loop(theta, m, v, g, n, &b, index0, 1, 0, 0, 1);
        else if (bounded)
            loop(theta, m, v, g, n, &b, index0, 1, 0, 1, 1);
        else
            loop(theta, m, v, g, n, &b, index0, 1, 0, 1, 0);
    } else if (vaes) {
        if (!folded)
            loop(theta, m, v, g, n, &b, index0, 0, 1, 0, 1);
        else if (bounded)
            loop(theta, m, v, g, n, &b, index0, 0, 1, 1, 1);
        else
            loop(theta, m, v, g, n, &b, index0, 0, 1, 1, 0);
    } else {
        if (!folded)
            loop(theta, m, v, g, n, &b, index0, 0, 0, 0, 1);
        else if (bounded)
            loop(theta, m, v, g, n, &b, index0, 0, 0, 1, 1);
        else
            loop(theta, m, v, g, n, &b, index0, 0, 0, 1, 0);
    }
}

/* The slot with VAES and the one without (AESENC on 128-bit lanes: Cooper
 * Lake has AVX512_BF16 but not VAES). */
static void amo_bf16_vaes(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                          const KnAmoArgs *a, const KnBf16Key *key, uint64_t index0,
                          int nearest)
{
    amo_bf16_run(amo_bf16_vaes, 1, theta, m, v, g, n, a, key, index0, nearest);
}

static void amo_bf16_aes(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                         const KnAmoArgs *a, const KnBf16Key *key, uint64_t index0,
                         int nearest)
{
    amo_bf16_run(amo_bf16_aes, 0, theta, m, v, g, n, a, key, index0, nearest);
}

void kn_update_dsp_init_avx512bf16(KnUpdateDSP *dsp, unsigned flags)
{
    if (!(flags & KN_CPU_AES))
        return; /* the rounding stream needs AES rounds */
    dsp->amo_bf16 = (flags & KN_CPU_VAES) ? amo_bf16_vaes : amo_bf16_aes;
    dsp->level[KN_K_AMO_BF16] = "avx512bf16";
}

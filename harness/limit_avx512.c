/* AVX-512 limit loops: 16-lane loads and stores, masked tails, and the same
 * software prefetch as the avx512 kernels they bound (kernels/prefetch.h):
 * without it a kernel could beat its own "limit". */
#ifndef __AVX512F__
#error "harness/meson.build must build this file with the avx512 flags"
#endif
#if !defined(__AVX512BW__) || !defined(__AVX512VL__) || !defined(__AVX512DQ__)
#error "harness/meson.build must build this file with -mavx512bw -mavx512vl -mavx512dq"
#endif

#include <immintrin.h>

#include "harness/limit.h"
#include "kernels/prefetch.h"

static inline __mmask16 tail16(size_t r) { return (__mmask16)((1u << r) - 1u); }

/* The late form (limit.h) on 16 lanes; tails are masked, so late too. */
HX_LIMIT_INLINE __m512 keep16(__m512 y, __m512 vs, int late)
{
    if (late) {
        const __m512 one = _mm512_add_ps(vs, _mm512_set1_ps(1.0f));
        const __m512 nz = _mm512_xor_ps(vs, _mm512_set1_ps(-0.0f)); /* -s: -0 */
        for (int j = 0; j < HX_LIMIT_LATE_DEPTH; j++)
            y = _mm512_fmadd_ps(y, one, nz);
    }
    return y;
}

HX_LIMIT_INLINE void f3_block(float *a, float *b, float *c, const float *g, __mmask16 k,
                              __m512 vs, int late)
{
    const __m512 x = _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(k, g));
    _mm512_mask_storeu_ps(a, k, keep16(_mm512_add_ps(_mm512_maskz_loadu_ps(k, a), x), vs, late));
    _mm512_mask_storeu_ps(b, k, keep16(_mm512_add_ps(_mm512_maskz_loadu_ps(k, b), x), vs, late));
    _mm512_mask_storeu_ps(c, k, keep16(_mm512_add_ps(_mm512_maskz_loadu_ps(k, c), x), vs, late));
}

HX_LIMIT_INLINE void f3_body(float *a, float *b, float *c, const float *g, size_t n, float s,
                             int late)
{
    const __m512 vs = _mm512_set1_ps(s);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        kn_prefetch(a + i + KN_PREFETCH_F32);
        kn_prefetch(b + i + KN_PREFETCH_F32);
        kn_prefetch(c + i + KN_PREFETCH_F32);
        kn_prefetch(g + i + KN_PREFETCH_F32);
        f3_block(a + i, b + i, c + i, g + i, 0xffff, vs, late);
    }
    if (i < n)
        f3_block(a + i, b + i, c + i, g + i, tail16(n - i), vs, late);
}

HX_LIMIT_INLINE void f2_block(float *a, float *b, const float *g, __mmask16 k, __m512 vs,
                              int late)
{
    const __m512 x = _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(k, g));
    _mm512_mask_storeu_ps(a, k, keep16(_mm512_add_ps(_mm512_maskz_loadu_ps(k, a), x), vs, late));
    _mm512_mask_storeu_ps(b, k, keep16(_mm512_add_ps(_mm512_maskz_loadu_ps(k, b), x), vs, late));
}

HX_LIMIT_INLINE void f2_body(float *a, float *b, const float *g, size_t n, float s, int late)
{
    const __m512 vs = _mm512_set1_ps(s);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        kn_prefetch(a + i + KN_PREFETCH_F32);
        kn_prefetch(b + i + KN_PREFETCH_F32);
        kn_prefetch(g + i + KN_PREFETCH_F32);
        f2_block(a + i, b + i, g + i, 0xffff, vs, late);
    }
    if (i < n)
        f2_block(a + i, b + i, g + i, tail16(n - i), vs, late);
}

/* 16 bf16 through the late form as floats (a shift each way) */
HX_LIMIT_INLINE __m256i keep16_bf16(__m256i h, __m512 vs, __m256i vk, int late)
{
    if (late) {
        const __m512 y = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        const __m512i z = _mm512_srli_epi32(_mm512_castps_si512(keep16(y, vs, 1)), 16);
        h = _mm512_cvtepi32_epi16(z);
    }
    return _mm256_xor_si256(h, vk);
}

HX_LIMIT_INLINE void f1h2_block(float *a, uint16_t *b, uint16_t *c, const float *g,
                                __mmask16 k, __m512 vs, __m256i vk, int late)
{
    const __m512 x = _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(k, g));
    _mm512_mask_storeu_ps(a, k, keep16(_mm512_add_ps(_mm512_maskz_loadu_ps(k, a), x), vs, late));
    _mm256_mask_storeu_epi16(b, k, keep16_bf16(_mm256_maskz_loadu_epi16(k, b), vs, vk, late));
    _mm256_mask_storeu_epi16(c, k, keep16_bf16(_mm256_maskz_loadu_epi16(k, c), vs, vk, late));
}

HX_LIMIT_INLINE void f1h2_body(float *a, uint16_t *b, uint16_t *c, const float *g, size_t n,
                               float s, uint16_t k, int late)
{
    const __m512 vs = _mm512_set1_ps(s);
    const __m256i vk = _mm256_set1_epi16((short)k);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        kn_prefetch(a + i + KN_PREFETCH_BF16);
        kn_prefetch(g + i + KN_PREFETCH_BF16);
        kn_prefetch(b + i + KN_PREFETCH_BF16);
        kn_prefetch(c + i + KN_PREFETCH_BF16);
        f1h2_block(a + i, b + i, c + i, g + i, 0xffff, vs, vk, late);
    }
    if (i < n)
        f1h2_block(a + i, b + i, c + i, g + i, tail16(n - i), vs, vk, late);
}

HX_LIMIT_FORMS(avx512)

static double r1_avx512(const float *x, size_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
        const __m512 c = _mm512_loadu_ps(x + i + 32), d = _mm512_loadu_ps(x + i + 48);
        s0 = _mm512_fmadd_ps(a, a, s0);
        s1 = _mm512_fmadd_ps(b, b, s1);
        s2 = _mm512_fmadd_ps(c, c, s2);
        s3 = _mm512_fmadd_ps(d, d, s3);
    }
    for (; i < n; i += 16) {
        const __m512 a = _mm512_maskz_loadu_ps(n - i >= 16 ? 0xffff : tail16(n - i), x + i);
        s0 = _mm512_fmadd_ps(a, a, s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* 12 independent FMA chains: enough in flight for two FMA units of
 * latency 4 (8 needed); their sum is returned so none is dropped. */
static double fma_avx512(long iters, float *sink)
{
    __m512 acc[12];
    for (int j = 0; j < 12; j++)
        acc[j] = _mm512_set1_ps(1.0f + 0.001f * (float)j);
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < 12; j++)
            acc[j] = _mm512_fmadd_ps(acc[j], a, b);
    float out[16], t = 0;
    for (int j = 0; j < 12; j++) {
        _mm512_storeu_ps(out, acc[j]);
        for (int l = 0; l < 16; l++)
            t += out[l];
    }
    *sink = t;
    return (double)iters * 12 * 16 * 2;
}

void hx_limit_init_avx512(HxLimitDSP *d)
{
    d->f3 = f3_avx512;
    d->f2 = f2_avx512;
    d->f1h2 = f1h2_avx512;
    d->r1 = r1_avx512;
    d->fma = fma_avx512;
    d->level = "avx512";
}

/* AVX2 limit loops: 8-lane loads and stores, scalar tails. */
#ifndef __AVX2__
#error "harness/meson.build must build this file with the avx2 flags"
#endif

#include <immintrin.h>

#include "harness/limit.h"

/* The late form (limit.h) on 8 lanes; the scalar tails use hx_limit_keep. */
HX_LIMIT_INLINE __m256 keep8(__m256 y, __m256 vs, int late)
{
    if (late) {
        const __m256 one = _mm256_add_ps(vs, _mm256_set1_ps(1.0f));
        const __m256 nz = _mm256_xor_ps(vs, _mm256_set1_ps(-0.0f)); /* -s: -0 */
        for (int j = 0; j < HX_LIMIT_LATE_DEPTH; j++)
            y = _mm256_fmadd_ps(y, one, nz);
    }
    return y;
}

/* 8 bf16 through the late form as floats (a shift each way) */
HX_LIMIT_INLINE __m128i keep8_bf16(__m128i h, __m256 vs, __m128i vk, int late)
{
    if (late) {
        const __m256 y = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        const __m256i z = _mm256_srli_epi32(_mm256_castps_si256(keep8(y, vs, 1)), 16);
        h = _mm_packus_epi32(_mm256_castsi256_si128(z), _mm256_extracti128_si256(z, 1));
    }
    return _mm_xor_si128(h, vk);
}

HX_LIMIT_INLINE void f3_body(float *a, float *b, float *c, const float *g, size_t n, float s,
                             int late)
{
    const __m256 vs = _mm256_set1_ps(s);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_mul_ps(vs, _mm256_loadu_ps(g + i));
        _mm256_storeu_ps(a + i, keep8(_mm256_add_ps(_mm256_loadu_ps(a + i), x), vs, late));
        _mm256_storeu_ps(b + i, keep8(_mm256_add_ps(_mm256_loadu_ps(b + i), x), vs, late));
        _mm256_storeu_ps(c + i, keep8(_mm256_add_ps(_mm256_loadu_ps(c + i), x), vs, late));
    }
    for (; i < n; i++) {
        const float x = s * g[i];
        a[i] = hx_limit_keep(a[i] + x, s, late);
        b[i] = hx_limit_keep(b[i] + x, s, late);
        c[i] = hx_limit_keep(c[i] + x, s, late);
    }
}

HX_LIMIT_INLINE void f2_body(float *a, float *b, const float *g, size_t n, float s, int late)
{
    const __m256 vs = _mm256_set1_ps(s);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_mul_ps(vs, _mm256_loadu_ps(g + i));
        _mm256_storeu_ps(a + i, keep8(_mm256_add_ps(_mm256_loadu_ps(a + i), x), vs, late));
        _mm256_storeu_ps(b + i, keep8(_mm256_add_ps(_mm256_loadu_ps(b + i), x), vs, late));
    }
    for (; i < n; i++) {
        const float x = s * g[i];
        a[i] = hx_limit_keep(a[i] + x, s, late);
        b[i] = hx_limit_keep(b[i] + x, s, late);
    }
}

HX_LIMIT_INLINE void f1h2_body(float *a, uint16_t *b, uint16_t *c, const float *g, size_t n,
                               float s, uint16_t k, int late)
{
    const __m256 vs = _mm256_set1_ps(s);
    const __m128i vk = _mm_set1_epi16((short)k);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_mul_ps(vs, _mm256_loadu_ps(g + i));
        _mm256_storeu_ps(a + i, keep8(_mm256_add_ps(_mm256_loadu_ps(a + i), x), vs, late));
        __m128i *pb = (__m128i *)(void *)(b + i), *pc = (__m128i *)(void *)(c + i);
        _mm_storeu_si128(pb, keep8_bf16(_mm_loadu_si128(pb), vs, vk, late));
        _mm_storeu_si128(pc, keep8_bf16(_mm_loadu_si128(pc), vs, vk, late));
    }
    for (; i < n; i++) {
        a[i] = hx_limit_keep(a[i] + s * g[i], s, late);
        b[i] = hx_limit_keep_bf16(b[i], s, k, late);
        c[i] = hx_limit_keep_bf16(c[i], s, k, late);
    }
}

HX_LIMIT_FORMS(avx2)

static double r1_avx2(const float *x, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        const __m256 c = _mm256_loadu_ps(x + i + 16), d = _mm256_loadu_ps(x + i + 24);
        s0 = _mm256_fmadd_ps(a, a, s0);
        s1 = _mm256_fmadd_ps(b, b, s1);
        s2 = _mm256_fmadd_ps(c, c, s2);
        s3 = _mm256_fmadd_ps(d, d, s3);
    }
    float lane[8];
    _mm256_storeu_ps(lane, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    double t = 0.0;
    for (int j = 0; j < 8; j++)
        t += lane[j];
    for (; i < n; i++)
        t += (double)x[i] * x[i];
    return t;
}

/* 12 independent FMA chains: enough in flight for two FMA units of
 * latency 4 (8 needed); their sum is returned so none is dropped. */
static double fma_avx2(long iters, float *sink)
{
    __m256 acc[12];
    for (int j = 0; j < 12; j++)
        acc[j] = _mm256_set1_ps(1.0f + 0.001f * (float)j);
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < 12; j++)
            acc[j] = _mm256_fmadd_ps(acc[j], a, b);
    float out[8], t = 0;
    for (int j = 0; j < 12; j++) {
        _mm256_storeu_ps(out, acc[j]);
        for (int l = 0; l < 8; l++)
            t += out[l];
    }
    *sink = t;
    return (double)iters * 12 * 8 * 2;
}

void hx_limit_init_avx2(HxLimitDSP *d)
{
    d->f3 = f3_avx2;
    d->f2 = f2_avx2;
    d->f1h2 = f1h2_avx2;
    d->r1 = r1_avx2;
    d->fma = fma_avx2;
    d->level = "avx2";
}

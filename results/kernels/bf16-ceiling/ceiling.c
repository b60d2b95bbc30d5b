/* Session 9's experiment for issue 20, not part of the build: how much
 * faster can any loop we have move the bf16 state's traffic (20 bytes per
 * parameter: theta and g fp32, m and v bf16) than the fp32 state's (28)?
 *
 * Two families of rows, timed side by side in one process, interleaved:
 *   28 bytes: the library's fp32-state AMO (lib_fp32) and same-traffic
 *             loops (lim28_kK: theta += g through K dependent FMAs, m and v
 *             loaded and stored back unchanged, prefetched as the kernel;
 *             lim28_aK: m and v through the K FMAs too);
 *   20 bytes: the library's bf16-state AMO with stochastic rounding
 *             (lib_bf16) and rounding to nearest (lib_rne), a copy of its
 *             loop (copy_sr), the same-traffic loops lim20_kK, lim20_mix
 *             (theta and g prefetched 512 elements ahead, m and v 1024: the
 *             same bytes ahead in each stream) and lim20_il (m and v
 *             interleaved by 32-element blocks: three streams, not four),
 *             lim20_2pos (two places at once) and lim20_aK (every stored
 *             vector through K FMAs, m and v as raw bits).
 * The _aK rows were added after the ruled sittings (s9/), for the post hoc
 * one (s9-posthoc/); copy16 (the update 16 lanes at a time, m and v as
 * 256-bit halves) and lim20_w16 (amo-bench's late limit loop) after that,
 * with lib_adam and lib_adam_bf16 (the library's Adam, fp32 and bf16 state,
 * kn_adam_args at step 1000), for the 16-lane kernel's sittings
 * (s9-16lane/).
 * Every row runs on buffers on 4 KiB pages and on huge pages.  Each round
 * runs every row (best of 3 calls), starting at a different row each round;
 * per round and page size, best20 is the fastest 20-byte row, best28 the
 * fastest 28-byte row.  The interval printed for a median is the
 * distribution-free 95% one from order statistics (binomial, p = 1/2).
 * More rows on the 20-byte side can only raise best20.
 *     ceiling N ROUNDS THREADS        (run.sh builds and runs it) */
#define _GNU_SOURCE
#include <math.h>
#include <omp.h>
#include <sys/mman.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kernels/amo_avx512.h"
#include "kernels/bf16.h"
#include "kernels/update.h"



typedef struct {
    AmoVec c;
    __m512 lv, le;
    SrKey key;
} B;

/* the library's avx512bf16 loop at the defaults (stochastic rounding, VAES,
 * lr folded into the denominator, no bounds), 32 elements a block */
KN_INLINE void blk(float *th, uint16_t *m, uint16_t *v, const float *g, const B *b, __m512i ctr)
{
    __m512 mm[2], vv[2];
    for (int h = 0; h < 2; h++) {
        mm[h] = bf16_load(0xffff, m + 16 * h);
        vv[h] = bf16_load(0xffff, v + 16 * h);
        const __m512 t = _mm512_loadu_ps(th + 16 * h);
        amo_vec_moments(t, &mm[h], &vv[h], _mm512_loadu_ps(g + 16 * h), &b->c);
        const __m512 sq = _mm512_rcp14_ps(_mm512_rsqrt14_ps(vv[h]));
        const __m512 q = _mm512_mul_ps(mm[h], _mm512_rcp14_ps(_mm512_fmadd_ps(sq, b->lv, b->le)));
        _mm512_storeu_ps(th + 16 * h, amo_vec_theta(t, q, &b->c, 0));
        const __m512i r = sr_random(_mm512_add_epi32(ctr, _mm512_set1_epi32(16 * h)), &b->key, 1);
        for (int s = 0; s < 2; s++) {
            __m512 *x = s ? &vv[h] : &mm[h];
            const __m512i u = _mm512_castps_si512(*x);
            const __m512i r16 = s ? _mm512_srli_epi32(r, 16) : _mm512_and_si512(r, _mm512_set1_epi32(0xffff));
            const __mmask16 keep = _mm512_fpclass_ps_mask(*x, 0xa7);
            const __m512i y = _mm512_and_si512(_mm512_add_epi32(u, r16), _mm512_set1_epi32((int)0xffff0000u));
            *x = _mm512_castsi512_ps(_mm512_mask_mov_epi32(y, keep, u));
        }
    }
    _mm512_storeu_si512(m, (__m512i)_mm512_cvtne2ps_pbh(mm[1], mm[0]));
    _mm512_storeu_si512(v, (__m512i)_mm512_cvtne2ps_pbh(vv[1], vv[0]));
}
static void copy_sr(float *th, uint16_t *m, uint16_t *v, const float *g, size_t n, const B *b, size_t i0)
{
    __m512i ctr = _mm512_add_epi32(_mm512_set1_epi32((int)i0), _mm512_add_epi32(iota16(), b->key.k0));
    for (size_t i = 0; i + 32 <= n; i += 32) {
        _mm_prefetch((const char *)(th + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(th + i + 1040), _MM_HINT_T0);
        _mm_prefetch((const char *)(g + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(g + i + 1040), _MM_HINT_T0);
        _mm_prefetch((const char *)(m + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(v + i + 1024), _MM_HINT_T0);
        blk(th + i, m + i, v + i, g + i, b, ctr);
        ctr = _mm512_add_epi32(ctr, _mm512_set1_epi32(32));
    }
}

/* the same update 16 lanes at a time: m and v as 256-bit halves
 * (VCVTNEPS2BF16), four prefetches per 16 elements */
static void copy16(float *th, uint16_t *m, uint16_t *v, const float *g, size_t n, const B *b, size_t i0)
{
    __m512i ctr = _mm512_add_epi32(_mm512_set1_epi32((int)i0), _mm512_add_epi32(iota16(), b->key.k0));
    for (size_t i = 0; i + 16 <= n; i += 16) {
        _mm_prefetch((const char *)(th + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(g + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(m + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(v + i + 1024), _MM_HINT_T0);
        __m512 mm = bf16_load(0xffff, m + i), vv = bf16_load(0xffff, v + i);
        const __m512 t = _mm512_loadu_ps(th + i);
        amo_vec_moments(t, &mm, &vv, _mm512_loadu_ps(g + i), &b->c);
        const __m512 sq = _mm512_rcp14_ps(_mm512_rsqrt14_ps(vv));
        const __m512 q = _mm512_mul_ps(mm, _mm512_rcp14_ps(_mm512_fmadd_ps(sq, b->lv, b->le)));
        _mm512_storeu_ps(th + i, amo_vec_theta(t, q, &b->c, 0));
        const __m512i r = sr_random(ctr, &b->key, 1);
        for (int s = 0; s < 2; s++) {
            __m512 *x = s ? &vv : &mm;
            const __m512i u = _mm512_castps_si512(*x);
            const __m512i r16 = s ? _mm512_srli_epi32(r, 16) : _mm512_and_si512(r, _mm512_set1_epi32(0xffff));
            const __mmask16 keep = _mm512_fpclass_ps_mask(*x, 0xa7);
            const __m512i y = _mm512_and_si512(_mm512_add_epi32(u, r16), _mm512_set1_epi32((int)0xffff0000u));
            *x = _mm512_castsi512_ps(_mm512_mask_mov_epi32(y, keep, u));
        }
        _mm256_storeu_si256((__m256i *)(void *)(m + i), (__m256i)_mm512_cvtneps_pbh(mm));
        _mm256_storeu_si256((__m256i *)(void *)(v + i), (__m256i)_mm512_cvtneps_pbh(vv));
        ctr = _mm512_add_epi32(ctr, _mm512_set1_epi32(16));
    }
}

static volatile int opaque_zero;
KN_INLINE __m512 chain(__m512 x, int k)
{
    for (int j = 0; j < k; j++)
        x = _mm512_fmadd_ps(x, _mm512_set1_ps(1.0f), _mm512_set1_ps(0.0f));
    return x;
}
/* 20 bytes: dtg, dmv prefetch distances (elements) of theta and g and of m
 * and v; il: m is the interleaved array (v unused) */
KN_INLINE void lim20(float *th, uint16_t *m, uint16_t *v, const float *g, size_t n, int k,
                     int dtg, int dmv, int il)
{
    const __m512i z = _mm512_set1_epi32(opaque_zero);
    for (size_t i = 0; i + 32 <= n; i += 32) {
        uint16_t *mp = il ? m + 2 * i : m + i, *vp = il ? m + 2 * i + 32 : v + i;
        _mm_prefetch((const char *)(th + i + dtg), _MM_HINT_T0);
        _mm_prefetch((const char *)(th + i + dtg + 16), _MM_HINT_T0);
        _mm_prefetch((const char *)(g + i + dtg), _MM_HINT_T0);
        _mm_prefetch((const char *)(g + i + dtg + 16), _MM_HINT_T0);
        _mm_prefetch((const char *)(mp + (il ? 2 : 1) * dmv), _MM_HINT_T0);
        _mm_prefetch((const char *)(vp + (il ? 2 : 1) * dmv), _MM_HINT_T0);
        _mm512_storeu_ps(th + i, chain(_mm512_add_ps(_mm512_loadu_ps(th + i), _mm512_loadu_ps(g + i)), k));
        _mm512_storeu_ps(th + i + 16, chain(_mm512_add_ps(_mm512_loadu_ps(th + i + 16), _mm512_loadu_ps(g + i + 16)), k));
        _mm512_storeu_si512(mp, _mm512_xor_si512(_mm512_loadu_si512(mp), z));
        _mm512_storeu_si512(vp, _mm512_xor_si512(_mm512_loadu_si512(vp), z));
    }
}
/* 20 bytes at two places at once: 32 elements of the first half, then 32
 * of the second (eight streams, each at half the rate) */
static void lim20_2pos(float *th, uint16_t *m, uint16_t *v, const float *g, size_t n)
{
    const size_t half = n / 2 & ~(size_t)31;
    const __m512i z = _mm512_set1_epi32(opaque_zero);
    for (size_t i = 0; i + 32 <= half; i += 32)
        for (size_t j = i; j < n; j += half) {
            _mm_prefetch((const char *)(th + j + 1024), _MM_HINT_T0);
            _mm_prefetch((const char *)(th + j + 1040), _MM_HINT_T0);
            _mm_prefetch((const char *)(g + j + 1024), _MM_HINT_T0);
            _mm_prefetch((const char *)(g + j + 1040), _MM_HINT_T0);
            _mm_prefetch((const char *)(m + j + 1024), _MM_HINT_T0);
            _mm_prefetch((const char *)(v + j + 1024), _MM_HINT_T0);
            _mm512_storeu_ps(th + j, _mm512_add_ps(_mm512_loadu_ps(th + j), _mm512_loadu_ps(g + j)));
            _mm512_storeu_ps(th + j + 16, _mm512_add_ps(_mm512_loadu_ps(th + j + 16), _mm512_loadu_ps(g + j + 16)));
            _mm512_storeu_si512(m + j, _mm512_xor_si512(_mm512_loadu_si512(m + j), z));
            _mm512_storeu_si512(v + j, _mm512_xor_si512(_mm512_loadu_si512(v + j), z));
            if (j + half >= n || j >= half)
                break;
        }
}
/* every stored vector through k dependent FMAs (m and v as raw bits) */
static void lim20_all(float *th, uint16_t *m, uint16_t *v, const float *g, size_t n, int k)
{
    for (size_t i = 0; i + 32 <= n; i += 32) {
        _mm_prefetch((const char *)(th + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(th + i + 1040), _MM_HINT_T0);
        _mm_prefetch((const char *)(g + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(g + i + 1040), _MM_HINT_T0);
        _mm_prefetch((const char *)(m + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(v + i + 1024), _MM_HINT_T0);
        _mm512_storeu_ps(th + i, chain(_mm512_add_ps(_mm512_loadu_ps(th + i), _mm512_loadu_ps(g + i)), k));
        _mm512_storeu_ps(th + i + 16, chain(_mm512_add_ps(_mm512_loadu_ps(th + i + 16), _mm512_loadu_ps(g + i + 16)), k));
        _mm512_storeu_ps((float *)(m + i), chain(_mm512_loadu_ps((float *)(m + i)), k));
        _mm512_storeu_ps((float *)(v + i), chain(_mm512_loadu_ps((float *)(v + i)), k));
    }
}
static void lim28_all(float *th, float *m, float *v, const float *g, size_t n, int k)
{
    for (size_t i = 0; i + 16 <= n; i += 16) {
        _mm_prefetch((const char *)(th + i + 512), _MM_HINT_T0);
        _mm_prefetch((const char *)(g + i + 512), _MM_HINT_T0);
        _mm_prefetch((const char *)(m + i + 512), _MM_HINT_T0);
        _mm_prefetch((const char *)(v + i + 512), _MM_HINT_T0);
        _mm512_storeu_ps(th + i, chain(_mm512_add_ps(_mm512_loadu_ps(th + i), _mm512_loadu_ps(g + i)), k));
        _mm512_storeu_ps(m + i, chain(_mm512_loadu_ps(m + i), k));
        _mm512_storeu_ps(v + i, chain(_mm512_loadu_ps(v + i), k));
    }
}
/* amo-bench's late limit loop for this traffic (harness/limit_avx512.c):
 * 16 elements, every stored vector through 8 FMAs y * 1 + 0, m and v
 * widened to fp32 for them and narrowed back */
KN_INLINE __m512 keep8(__m512 y)
{
    const __m512 one = _mm512_set1_ps(1.0f + (float)opaque_zero), zero = _mm512_set1_ps((float)opaque_zero);
    for (int j = 0; j < 8; j++)
        y = _mm512_fmadd_ps(y, one, zero);
    return y;
}
KN_INLINE __m256i keep8h(__m256i h)
{
    const __m512 y = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(keep8(y)), 16));
}
static void lim20_w16(float *th, uint16_t *m, uint16_t *v, const float *g, size_t n)
{
    for (size_t i = 0; i + 16 <= n; i += 16) {
        _mm_prefetch((const char *)(th + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(g + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(m + i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(v + i + 1024), _MM_HINT_T0);
        _mm512_storeu_ps(th + i, keep8(_mm512_add_ps(_mm512_loadu_ps(th + i), _mm512_mul_ps(_mm512_set1_ps((float)opaque_zero), _mm512_loadu_ps(g + i)))));
        _mm256_storeu_si256((__m256i *)(void *)(m + i), keep8h(_mm256_loadu_si256((const __m256i *)(const void *)(m + i))));
        _mm256_storeu_si256((__m256i *)(void *)(v + i), keep8h(_mm256_loadu_si256((const __m256i *)(const void *)(v + i))));
    }
}
KN_INLINE void lim28(float *th, float *m, float *v, const float *g, size_t n, int k)
{
    const __m512 z = _mm512_setzero_ps();
    for (size_t i = 0; i + 16 <= n; i += 16) {
        _mm_prefetch((const char *)(th + i + 512), _MM_HINT_T0);
        _mm_prefetch((const char *)(g + i + 512), _MM_HINT_T0);
        _mm_prefetch((const char *)(m + i + 512), _MM_HINT_T0);
        _mm_prefetch((const char *)(v + i + 512), _MM_HINT_T0);
        _mm512_storeu_ps(th + i, chain(_mm512_add_ps(_mm512_loadu_ps(th + i), _mm512_loadu_ps(g + i)), k));
        _mm512_storeu_ps(m + i, _mm512_add_ps(_mm512_loadu_ps(m + i), z));
        _mm512_storeu_ps(v + i, _mm512_add_ps(_mm512_loadu_ps(v + i), z));
    }
}

enum { L28_FP32, L28_ADAM, L28_K0, L28_K4, L28_K8, L28_A8, L28_A16, L20_BF16, L20_RNE, L20_COPY, L20_K0, L20_K4, L20_K8,
       L20_MIX, L20_IL, L20_ADAM, L20_2POS, L20_A8, L20_A16, L20_COPY16, L20_W16, NROW, FIRST20 = L20_BF16 };
static const char *const names[NROW] = { "lib_fp32", "lib_adam", "lim28_k0", "lim28_k4", "lim28_k8", "lim28_a8", "lim28_a16",
                                         "lib_bf16", "lib_rne", "copy_sr", "lim20_k0",
                                         "lim20_k4", "lim20_k8", "lim20_mix", "lim20_il", "lib_adam_bf16", "lim20_2pos", "lim20_a8", "lim20_a16", "copy16", "lim20_w16" };
typedef struct {
    size_t n;
    int threads;
    float *th, *g, *m32, *v32;
    uint16_t *m, *v, *mv;
    KnAmoArgs a, adam; /* adam: kn_adam_args at step 1000, as amo-bench kernels */
    KnBf16Round sr, rne;
    B b;
} Ctx;

/* the non-library rows split n into one 32-aligned chunk per thread */
static void run_row(const Ctx *c, int row)
{
    if (row == L28_FP32) {
        kn_amo_update(c->th, c->m32, c->v32, c->g, c->n, &c->a, c->threads);
        return;
    }
    if (row == L28_ADAM) {
        kn_amo_update(c->th, c->m32, c->v32, c->g, c->n, &c->adam, c->threads);
        return;
    }
    if (row == L20_ADAM) {
        kn_amo_update_bf16(c->th, c->m, c->v, c->g, c->n, &c->adam, &c->sr, c->threads);
        return;
    }
    if (row == L20_BF16 || row == L20_RNE) {
        kn_amo_update_bf16(c->th, c->m, c->v, c->g, c->n, &c->a, row == L20_BF16 ? &c->sr : &c->rne,
                           c->threads);
        return;
    }
#pragma omp parallel num_threads(c->threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const size_t len = (c->n / nt + 31) & ~(size_t)31, o = (size_t)t * len;
        const size_t cnt = o >= c->n ? 0 : (c->n - o < len ? c->n - o : len);
        float *th = c->th + o;
        const float *g = c->g + o;
        switch (row) {
        case L28_K0: lim28(th, c->m32 + o, c->v32 + o, g, cnt, 0); break;
        case L28_K4: lim28(th, c->m32 + o, c->v32 + o, g, cnt, 4); break;
        case L28_K8: lim28(th, c->m32 + o, c->v32 + o, g, cnt, 8); break;
        case L20_COPY: copy_sr(th, c->m + o, c->v + o, g, cnt, &c->b, o); break;
        case L20_K0: lim20(th, c->m + o, c->v + o, g, cnt, 0, 1024, 1024, 0); break;
        case L20_K4: lim20(th, c->m + o, c->v + o, g, cnt, 4, 1024, 1024, 0); break;
        case L20_K8: lim20(th, c->m + o, c->v + o, g, cnt, 8, 1024, 1024, 0); break;
        case L20_MIX: lim20(th, c->m + o, c->v + o, g, cnt, 8, 512, 1024, 0); break;
        case L20_IL: lim20(th, c->mv + 2 * o, NULL, g, cnt, 8, 1024, 1024, 1); break;
        case L28_A8: lim28_all(th, c->m32 + o, c->v32 + o, g, cnt, 8); break;
        case L28_A16: lim28_all(th, c->m32 + o, c->v32 + o, g, cnt, 16); break;
        case L20_A8: lim20_all(th, c->m + o, c->v + o, g, cnt, 8); break;
        case L20_A16: lim20_all(th, c->m + o, c->v + o, g, cnt, 16); break;
        case L20_COPY16: copy16(th, c->m + o, c->v + o, g, cnt, &c->b, o); break;
        case L20_W16: lim20_w16(th, c->m + o, c->v + o, g, cnt); break;
        case L20_2POS: lim20_2pos(th, c->m + o, c->v + o, g, cnt); break;
        }
    }
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
static int cmpd(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
/* the median of x[0..n) and its distribution-free 95% interval: the j-th
 * smallest and j-th largest, j the largest with P(Bin(n, 1/2) < j) <= 0.025 */
static void median_ci(const double *x, int n, double *med, double *lo, double *hi)
{
    double s[1024];
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmpd);
    *med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    double cdf = 0.0, pk = pow(0.5, n); /* P(X = 0) */
    int j = 0;
    for (int k = 0; k < n; k++) {
        if (cdf + pk > 0.025)
            break;
        cdf += pk;
        j = k + 1; /* P(X < j) = cdf <= 0.025 */
        pk *= (double)(n - k) / (k + 1);
    }
    if (j < 1) { /* too few rounds for a 95% interval */
        *lo = NAN, *hi = NAN;
        return;
    }
    *lo = s[j - 1], *hi = s[n - j];
}

/* bytes of fresh anonymous memory at a 2 MiB boundary, advised onto 4 KiB
 * pages (MADV_NOHUGEPAGE) or transparent huge pages (MADV_HUGEPAGE) before
 * anything touches it */
static void *pages(size_t bytes, int huge)
{
    const size_t al = (size_t)1 << 21;
    char *p = mmap(NULL, bytes + al, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    p = (char *)(((uintptr_t)p + al - 1) & ~(uintptr_t)(al - 1));
    return madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) ? NULL : p;
}

static int ctx_init(Ctx *c, size_t n, int threads, int huge)
{
    *c = (Ctx){ .n = n, .threads = threads };
    c->th = pages(n * 4, huge), c->g = pages(n * 4, huge);
    c->m32 = pages(n * 4, huge), c->v32 = pages(n * 4, huge);
    c->m = pages(n * 2, huge), c->v = pages(n * 2, huge), c->mv = pages(n * 4, huge);
    if (!c->th || !c->g || !c->m32 || !c->v32 || !c->m || !c->v || !c->mv)
        return -1;
    /* first touch on the threads that will use each part */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) {
        c->th[i] = 0.01f * (float)(i % 97), c->g[i] = 1e-3f * (float)((int)(i % 13) - 6);
        c->m32[i] = 0.0f, c->v32[i] = 1e-6f, c->m[i] = 0, c->v[i] = 0x3580;
        c->mv[2 * i] = 0, c->mv[2 * i + 1] = 0x3580;
    }
    c->a = kn_amo_args_default();
    c->adam = kn_adam_args(1e-3f, 0.9f, 0.999f, 1e-8f, 1000);
    c->sr = (KnBf16Round){ 1, 1, 0, 0 }, c->rne = (KnBf16Round){ 1, 1, 0, 1 };
    const KnBf16Key key = kn_bf16_key(&c->sr);
    c->b = (B){ .c = amo_vec_init(&c->a), .lv = _mm512_set1_ps(c->a.v_scale / c->a.lr),
                .le = _mm512_set1_ps(c->a.eps / c->a.lr), .key = sr_key(&key) };
    return 0;
}

/* the process's memory on huge pages, from /proc/self/smaps_rollup */
static long huge_kib(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static void report(const char *what, const double *x, int rounds)
{
    double md, lo, hi;
    median_ci(x, rounds, &md, &lo, &hi);
    printf("%-34s median %.3f [%.3f, %.3f]\n", what, md, lo, hi);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ceiling N ROUNDS THREADS\n");
        return 2;
    }
    const size_t n = strtoull(argv[1], 0, 0);
    const int rounds = atoi(argv[2]), threads = atoi(argv[3]);
    if (n < 32 || n % 32 || rounds < 1 || rounds > 1024 || threads < 1) {
        fprintf(stderr, "ceiling: N must be a positive multiple of 32, ROUNDS 1..1024, THREADS >= 1\n");
        return 2;
    }
    Ctx c[2];
    for (int h = 0; h < 2; h++)
        if (ctx_init(&c[h], n, threads, h)) {
            perror("ceiling: buffers");
            return 1;
        }
    printf("on huge pages after the first touch: %ld MiB of %zu MiB advised\n", huge_kib() / 1024,
           (n * 24) >> 20);
    enum { NR = 2 * NROW };
    double *ts = calloc((size_t)NR * rounds, sizeof *ts);
    double *q[2][4]; /* per page size: lib ratio, best20 / lib_fp32, best20 / best28, Adam's */
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            q[h][k] = calloc((size_t)rounds, sizeof(double));
    for (int rd = 0; rd < rounds; rd++) {
        for (int j = 0; j < NR; j++) {
            const int r = (rd + j) % NR, h = r / NROW, row = r % NROW;
            double b = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                const double t0 = now();
                run_row(&c[h], row);
                const double t = now() - t0;
                b = t < b ? t : b;
            }
            ts[r * rounds + rd] = (double)n / b * 1e-9;
        }
        for (int h = 0; h < 2; h++) {
            const double *x = ts + (size_t)h * NROW * rounds;
            double b20 = 0, b28 = 0;
            for (int row = 0; row < NROW; row++) {
                double *bb = row >= FIRST20 ? &b20 : &b28;
                *bb = x[row * rounds + rd] > *bb ? x[row * rounds + rd] : *bb;
            }
            const double f32 = x[L28_FP32 * rounds + rd];
            q[h][0][rd] = x[L20_BF16 * rounds + rd] / f32;
            q[h][1][rd] = b20 / f32;
            q[h][2][rd] = b20 / b28;
            q[h][3][rd] = x[L20_ADAM * rounds + rd] / x[L28_ADAM * rounds + rd];
        }
    }
    printf("%d thread(s), N %zu, %d rounds; Gparam/s per row, median [95%% interval] min max\n",
           threads, n, rounds);
    for (int r = 0; r < NR; r++) {
        const int h = r / NROW, row = r % NROW;
        double md, lo, hi, s[1024];
        median_ci(ts + r * rounds, rounds, &md, &lo, &hi);
        memcpy(s, ts + r * rounds, (size_t)rounds * sizeof *s);
        qsort(s, (size_t)rounds, sizeof *s, cmpd);
        printf("%-10s %s %s %6.3f [%6.3f, %6.3f] %6.3f %6.3f\n", names[row], h ? "2M" : "4K",
               row >= FIRST20 ? "20B" : "28B", md, lo, hi, s[0], s[rounds - 1]);
    }
    for (int h = 0; h < 2; h++) {
        const char *p = h ? "huge pages" : "4 KiB pages";
        char w[64];
        snprintf(w, sizeof w, "%s: lib_bf16 / lib_fp32", p), report(w, q[h][0], rounds);
        snprintf(w, sizeof w, "%s: best20 / lib_fp32", p), report(w, q[h][1], rounds);
        snprintf(w, sizeof w, "%s: best20 / best28", p), report(w, q[h][2], rounds);
        snprintf(w, sizeof w, "%s: lib_adam_bf16 / lib_adam", p), report(w, q[h][3], rounds);
    }
    printf("on huge pages at the end: %ld MiB\n", huge_kib() / 1024);
    return 0;
}

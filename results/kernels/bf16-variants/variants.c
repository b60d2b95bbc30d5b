/* A record of session 8's experiment for issue 20, not part of the build:
 * copies of the bf16-state AMO loop (kernels/update_avx512bf16.c at the
 * defaults: stochastic rounding, VAES, lr folded, no bounds) with other
 * software prefetch (hint, distance, streams), non-temporal stores or two
 * blocks per iteration, and same-traffic loops without arithmetic (lim20:
 * the bf16 state's 20 bytes per parameter, lim28: the fp32 state's 28, in
 * place, with and without the kernels' prefetch), timed against the
 * library's own fp32- and bf16-state kernels (lib_*, one thread) in one
 * process, interleaved (lim*_kK: K dependent FMAs on each theta vector
 * between its load and its store; lim20_mix: theta and g prefetched 512 elements
 * ahead, m and v 1024, the same bytes ahead in each stream): per round each row's best of 3 calls, then the
 * median over rounds.  Build and run (results/kernels/bf16-variants/run.sh):
 *     variants N ROUNDS [OFFSET]   (OFFSET: stream k starts k * OFFSET bytes
 *                                   past a page boundary) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kernels/amo_avx512.h"
#include "kernels/update.h"
#include "kernels/bf16.h"

KN_INLINE __m512 q16(__m512 mn, __m512 vn, __m512 lv, __m512 le)
{
    const __m512 sq = _mm512_rcp14_ps(_mm512_rsqrt14_ps(vn));
    return _mm512_mul_ps(mn, _mm512_rcp14_ps(_mm512_fmadd_ps(sq, lv, le)));
}
KN_INLINE __m512 srp(__m512 x, __m512i r16)
{
    const __m512i u = _mm512_castps_si512(x);
    const __mmask16 keep = _mm512_fpclass_ps_mask(x, 0xa7);
    const __m512i y = _mm512_and_si512(_mm512_add_epi32(u, r16), _mm512_set1_epi32((int)0xffff0000u));
    return _mm512_castsi512_ps(_mm512_mask_mov_epi32(y, keep, u));
}
typedef struct { AmoVec c; __m512 lv, le; SrKey key; } B;

/* prefetch pf: 0 none, 1 T0 (the kernel's), 2 PREFETCHW on theta/m/v and T0
 * on g, 3 T0 on m and v only, 4 T1 on all, 5 PREFETCHW on all; dist in
 * elements; nt: non-temporal stores */
KN_INLINE void body1(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t i, const B *b,
                    int pf, int dist, int nt, __m512i ctr)
{
    {
        if (pf == 1 || pf == 4) {
            if (pf == 1) {
                _mm_prefetch((const char *)(theta + i + dist), _MM_HINT_T0);
                _mm_prefetch((const char *)(theta + i + dist + 16), _MM_HINT_T0);
                _mm_prefetch((const char *)(g + i + dist), _MM_HINT_T0);
                _mm_prefetch((const char *)(g + i + dist + 16), _MM_HINT_T0);
                _mm_prefetch((const char *)(m + i + dist), _MM_HINT_T0);
                _mm_prefetch((const char *)(v + i + dist), _MM_HINT_T0);
            } else {
                _mm_prefetch((const char *)(theta + i + dist), _MM_HINT_T1);
                _mm_prefetch((const char *)(theta + i + dist + 16), _MM_HINT_T1);
                _mm_prefetch((const char *)(g + i + dist), _MM_HINT_T1);
                _mm_prefetch((const char *)(g + i + dist + 16), _MM_HINT_T1);
                _mm_prefetch((const char *)(m + i + dist), _MM_HINT_T1);
                _mm_prefetch((const char *)(v + i + dist), _MM_HINT_T1);
            }
        } else if (pf == 2) {
            __builtin_prefetch(theta + i + dist, 1, 3);
            __builtin_prefetch(theta + i + dist + 16, 1, 3);
            _mm_prefetch((const char *)(g + i + dist), _MM_HINT_T0);
            _mm_prefetch((const char *)(g + i + dist + 16), _MM_HINT_T0);
            __builtin_prefetch(m + i + dist, 1, 3);
            __builtin_prefetch(v + i + dist, 1, 3);
        } else if (pf == 3) {
            _mm_prefetch((const char *)(m + i + dist), _MM_HINT_T0);
            _mm_prefetch((const char *)(v + i + dist), _MM_HINT_T0);
        } else if (pf == 5) { /* W on all */
            __builtin_prefetch(theta + i + dist, 1, 3);
            __builtin_prefetch(theta + i + dist + 16, 1, 3);
            __builtin_prefetch(g + i + dist, 1, 3);
            __builtin_prefetch(g + i + dist + 16, 1, 3);
            __builtin_prefetch(m + i + dist, 1, 3);
            __builtin_prefetch(v + i + dist, 1, 3);
        }
        __m512 mm[2], vv[2];
        for (int h = 0; h < 2; h++) {
            mm[h] = bf16_load(0xffff, m + i + 16 * h);
            vv[h] = bf16_load(0xffff, v + i + 16 * h);
            __m512 th = _mm512_loadu_ps(theta + i + 16 * h);
            amo_vec_moments(th, &mm[h], &vv[h], _mm512_loadu_ps(g + i + 16 * h), &b->c);
            __m512 t = amo_vec_theta(th, q16(mm[h], vv[h], b->lv, b->le), &b->c, 0);
            if (nt)
                _mm512_stream_ps(theta + i + 16 * h, t);
            else
                _mm512_storeu_ps(theta + i + 16 * h, t);
            const __m512i r = sr_random(_mm512_add_epi32(ctr, _mm512_set1_epi32(16 * h)), &b->key, 1);
            mm[h] = srp(mm[h], _mm512_and_si512(r, _mm512_set1_epi32(0xffff)));
            vv[h] = srp(vv[h], _mm512_srli_epi32(r, 16));
        }
        if (nt) {
            _mm512_stream_si512((void *)(m + i), (__m512i)_mm512_cvtne2ps_pbh(mm[1], mm[0]));
            _mm512_stream_si512((void *)(v + i), (__m512i)_mm512_cvtne2ps_pbh(vv[1], vv[0]));
        } else {
            _mm512_storeu_si512(m + i, (__m512i)_mm512_cvtne2ps_pbh(mm[1], mm[0]));
            _mm512_storeu_si512(v + i, (__m512i)_mm512_cvtne2ps_pbh(vv[1], vv[0]));
        }
    }
}
KN_INLINE void body(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n, const B *b,
                    int pf, int dist, int nt)
{
    __m512i ctr = _mm512_add_epi32(iota16(), b->key.k0);
    for (size_t i = 0; i + 32 <= n; i += 32) {
        body1(theta, m, v, g, i, b, pf, dist, nt, ctr);
        ctr = _mm512_add_epi32(ctr, _mm512_set1_epi32(32));
    }
}
KN_INLINE void body2(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n, const B *b,
                    int pf, int dist, int nt)
{
    __m512i ctr = _mm512_add_epi32(iota16(), b->key.k0);
    for (size_t i = 0; i + 64 <= n; i += 64) {
        body1(theta, m, v, g, i, b, pf, dist, nt, ctr);
        body1(theta, m, v, g, i + 32, b, pf, dist, nt, _mm512_add_epi32(ctr, _mm512_set1_epi32(32)));
        ctr = _mm512_add_epi32(ctr, _mm512_set1_epi32(64));
    }
}
static void v_u2_1024(float *t, uint16_t *m, uint16_t *v, const float *g, size_t n, const B *b) { body2(t, m, v, g, n, b, 1, 1024, 0); }
static void v_u2_2048(float *t, uint16_t *m, uint16_t *v, const float *g, size_t n, const B *b) { body2(t, m, v, g, n, b, 1, 2048, 0); }
#define V(name, pf, dist, nt) \
    static void name(float *t, uint16_t *m, uint16_t *v, const float *g, size_t n, const B *b) \
    { body(t, m, v, g, n, b, pf, dist, nt); }
V(v_t0_1024, 1, 1024, 0)
V(v_none, 0, 0, 0)
V(v_w_1024, 2, 1024, 0)
V(v_mv_1024, 3, 1024, 0)
V(v_t1_1024, 4, 1024, 0)
V(v_wall_1024, 5, 1024, 0)
V(v_t0_2048, 1, 2048, 0)
V(v_w_2048, 2, 2048, 0)
V(v_t0_512, 1, 512, 0)
V(v_w_512, 2, 512, 0)
V(v_nt_t0_1024, 1, 1024, 1)
V(v_nt_none, 0, 0, 1)
V(v_nt_t0_2048, 1, 2048, 1)

/* The pure streams: theta += g, then k dependent FMAs on theta (x * 1 + 0);
 * m and v are loaded and stored back unchanged (+0.0 in fp32, XOR with a
 * zero the compiler cannot see in bf16), so every row leaves valid state for
 * the next.  Prefetch as the kernels do (T0, each line once); dtg and dmv:
 * the distances of theta and g and of m and v, 0 for none. */
static volatile int opaque_zero;

KN_INLINE __m512 chain(__m512 x, int k)
{
    for (int j = 0; j < k; j++)
        x = _mm512_fmadd_ps(x, _mm512_set1_ps(1.0f), _mm512_set1_ps(0.0f));
    return x;
}
KN_INLINE void lim20(float *th, uint16_t *m, uint16_t *v, const float *g, size_t n, int k,
                     int dtg, int dmv)
{
    const __m512i z = _mm512_set1_epi32(opaque_zero);
    for (size_t i = 0; i + 32 <= n; i += 32) {
        if (dtg) {
            _mm_prefetch((const char *)(th + i + dtg), _MM_HINT_T0);
            _mm_prefetch((const char *)(th + i + dtg + 16), _MM_HINT_T0);
            _mm_prefetch((const char *)(g + i + dtg), _MM_HINT_T0);
            _mm_prefetch((const char *)(g + i + dtg + 16), _MM_HINT_T0);
            _mm_prefetch((const char *)(m + i + dmv), _MM_HINT_T0);
            _mm_prefetch((const char *)(v + i + dmv), _MM_HINT_T0);
        }
        _mm512_storeu_ps(th + i, chain(_mm512_add_ps(_mm512_loadu_ps(th + i), _mm512_loadu_ps(g + i)), k));
        _mm512_storeu_ps(th + i + 16, chain(_mm512_add_ps(_mm512_loadu_ps(th + i + 16), _mm512_loadu_ps(g + i + 16)), k));
        _mm512_storeu_si512(m + i, _mm512_xor_si512(_mm512_loadu_si512(m + i), z));
        _mm512_storeu_si512(v + i, _mm512_xor_si512(_mm512_loadu_si512(v + i), z));
    }
}
KN_INLINE void lim28(float *th, float *m, float *v, const float *g, size_t n, int k, int d)
{
    const __m512 z = _mm512_setzero_ps();
    for (size_t i = 0; i + 16 <= n; i += 16) {
        if (d) {
            _mm_prefetch((const char *)(th + i + d), _MM_HINT_T0);
            _mm_prefetch((const char *)(g + i + d), _MM_HINT_T0);
            _mm_prefetch((const char *)(m + i + d), _MM_HINT_T0);
            _mm_prefetch((const char *)(v + i + d), _MM_HINT_T0);
        }
        _mm512_storeu_ps(th + i, chain(_mm512_add_ps(_mm512_loadu_ps(th + i), _mm512_loadu_ps(g + i)), k));
        _mm512_storeu_ps(m + i, _mm512_add_ps(_mm512_loadu_ps(m + i), z));
        _mm512_storeu_ps(v + i, _mm512_add_ps(_mm512_loadu_ps(v + i), z));
    }
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], 0, 0) : (64u << 20);
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    size_t off = argc > 3 ? strtoull(argv[3], 0, 0) : 0; /* bytes, stream k offset by k * off */
    char *p0 = aligned_alloc(4096, n * 4 + 8 * off), *p1 = aligned_alloc(4096, n * 4 + 8 * off), *p2 = aligned_alloc(4096, n * 4 + 8 * off), *p3 = aligned_alloc(4096, n * 4 + 8 * off);
    char *p4 = aligned_alloc(4096, n * 2 + 8 * off), *p5 = aligned_alloc(4096, n * 2 + 8 * off);
    float *th = (float *)p0, *g = (float *)(p1 + off), *m32 = (float *)(p2 + 2 * off), *v32 = (float *)(p3 + 3 * off);
    uint16_t *m = (uint16_t *)(p4 + 2 * off), *v = (uint16_t *)(p5 + 3 * off);
    for (size_t i = 0; i < n; i++) { th[i] = 0.01f * (i % 97); g[i] = 1e-3f * ((i % 13) - 6); m32[i] = 0; v32[i] = 1e-6f; m[i] = 0; v[i] = 0x3580; }
    KnAmoArgs a = kn_amo_args_default();
    KnBf16Round r = { 1, 1, 0, 0 };
    KnBf16Round rn = { 1, 1, 0, 1 };
    KnBf16Key key = kn_bf16_key(&r);
    B b = { .c = amo_vec_init(&a), .lv = _mm512_set1_ps(1.0f / a.lr), .le = _mm512_set1_ps(a.eps / a.lr), .key = sr_key(&key) };
    enum { NV = 27 };
    const char *names[NV] = { "lib_fp32", "lib_bf16", "t0_1024", "none", "w_1024", "mv_1024", "t1_1024", "wall_1024", "t0_2048", "w_2048", "t0_512", "w_512", "lim20_pf", "lim20", "lim28_pf", "lim28", "nt_t0_1024", "nt_none", "nt_t0_2048", "u2_1024", "u2_2048", "lib_rne",
                              "lim28_k4", "lim28_k8", "lim20_k4", "lim20_k8", "lim20_mix" };
    void (*fn[NV])(float *, uint16_t *, uint16_t *, const float *, size_t, const B *) = { 0, 0, v_t0_1024, v_none, v_w_1024, v_mv_1024, v_t1_1024, v_wall_1024, v_t0_2048, v_w_2048, v_t0_512, v_w_512, 0, 0, 0, 0, v_nt_t0_1024, v_nt_none, v_nt_t0_2048, v_u2_1024, v_u2_2048, 0, 0, 0, 0, 0, 0 };
    double *ts = calloc((size_t)NV * rounds, sizeof *ts);
    for (int rd = 0; rd < rounds; rd++)
        for (int k = 0; k < NV; k++) {
            double best = 1e9;
            for (int rep = 0; rep < 3; rep++) {
                double t0 = now();
                if (k == 0) kn_amo_update(th, m32, v32, g, n, &a, 1);
                else if (k == 1) kn_amo_update_bf16(th, m, v, g, n, &a, &r, 1);
                else if (k == 21) kn_amo_update_bf16(th, m, v, g, n, &a, &rn, 1);
                else if (k == 22 || k == 23) lim28(th, m32, v32, g, n, k == 22 ? 4 : 8, 512);
                else if (k == 24 || k == 25) lim20(th, m, v, g, n, k == 24 ? 4 : 8, 1024, 1024);
                else if (k == 26) lim20(th, m, v, g, n, 0, 512, 1024);
                else if (k >= 12 && k < 16) {
                    if (k < 14) lim20(th, m, v, g, n, 0, k == 12 ? 1024 : 0, k == 12 ? 1024 : 0);
                    else lim28(th, m32, v32, g, n, 0, k == 14 ? 512 : 0);
                } else fn[k](th, m, v, g, n, &b);
                double t = now() - t0;
                if (t < best) best = t;
            }
            ts[k * rounds + rd] = n / best * 1e-9;
        }
    for (int k = 0; k < NV; k++) {
        double *x = ts + k * rounds, sorted[64];
        int nr = rounds < 64 ? rounds : 64;
        memcpy(sorted, x, (size_t)nr * sizeof *x);
        qsort(sorted, (size_t)nr, sizeof *sorted, cmpd);
        printf("%-10s median %.3f Gparam/s  (min %.3f max %.3f)  rounds:", names[k], sorted[nr / 2],
               sorted[0], sorted[nr - 1]);
        for (int j = 0; j < nr; j++)
            printf(" %.3f", x[j]);
        printf("\n");
    }
    return 0;
}

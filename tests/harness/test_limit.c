/* harness/limit.c: the limit loops leave the kernels' state as it was
 * (limit.h), in both forms, at every level this CPU has, at lengths that
 * reach the vector tails and on one and two threads, with zeros, denormals,
 * infinities and quiet NaNs among the values; the oracle is a copy of the
 * arrays taken before.  With s != 0, each form's arithmetic (the late
 * form's depth) against fp64.  And the sum of squares against fp64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "harness/limit.h"
#include "kernels/cpu.h"

static const char *const levels[][2] = { { "scalar", "c-baseline" }, { "avx2", "avx2" },
                                          { "avx512", "avx512" } };
static const size_t lengths[] = { 1, 15, 16, 17, 33, 100, 1031, 70001 };

static float value(uint64_t seed, size_t i) /* nonzero, both signs, |x| in [1e-4, 2) */
{
    const uint64_t r = amo_rng_at(seed, i);
    const float mag = 1e-4f + (float)(r >> 41) * (2.0f / 8388608.0f);
    return (r & 1) ? -mag : mag;
}

static uint16_t bf16_bits(uint64_t seed, size_t i) /* a nonzero bf16 of value() */
{
    const float x = value(seed, i);
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (uint16_t)(u >> 16);
}

/* Every 7th value special, and every one of the last 16 (the tails): fp32
 * +0, a denormal, +-Inf, a quiet NaN (not -0: the plain form's + 0 * g may
 * make it +0, limit.h); bf16 the same and -0, which both forms keep. */
static float value_f32(uint64_t seed, size_t i, size_t n)
{
    static const uint32_t special[] = { 0x00000000u, 0x00000003u, 0x7f800000u, 0xff800000u,
                                        0x7fc00001u };
    if (i % 7 != 3 && i + 16 < n)
        return value(seed, i);
    float x;
    memcpy(&x, &special[(i / 7 + n - i) % 5], sizeof x);
    return x;
}

static uint16_t value_bf16(uint64_t seed, size_t i, size_t n)
{
    static const uint16_t special[] = { 0x0000, 0x8000, 0x0001, 0x7f80, 0xff80, 0x7fc1 };
    if (i % 7 != 3 && i + 16 < n)
        return bf16_bits(seed, i);
    return special[(i / 7 + n - i) % 6];
}

static int run_level(const char *level, const char *limit_level)
{
    if (kn_cpu_set_arch(level) != AMO_OK) {
        print_message("skipped %s: not on this CPU\n", level);
        return 0;
    }
    assert_string_equal(hx_limit_level(), limit_level);
    int runs = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
        const size_t n = lengths[li];
        float *f[3], *f0[3], *g = malloc(n * sizeof *g);
        uint16_t *h[2], *h0[2];
        assert_non_null(g);
        for (int a = 0; a < 3; a++) {
            f[a] = malloc(n * sizeof **f);
            f0[a] = malloc(n * sizeof **f0);
            assert_true(f[a] && f0[a]);
        }
        for (int a = 0; a < 2; a++) {
            h[a] = malloc(n * sizeof **h);
            h0[a] = malloc(n * sizeof **h0);
            assert_true(h[a] && h0[a]);
        }
        for (size_t i = 0; i < n; i++) {
            g[i] = value(9, i);
            for (int a = 0; a < 3; a++)
                f0[a][i] = value_f32(1 + (uint64_t)a, i, n);
            for (int a = 0; a < 2; a++)
                h0[a][i] = value_bf16(5 + (uint64_t)a, i, n);
        }
        for (int kind = HX_LIMIT_F3; kind <= HX_LIMIT_F1H2; kind++)
            for (int late = 0; late < 2; late++)
                for (int threads = 1; threads <= 2; threads++) {
                    for (int a = 0; a < 3; a++)
                        memcpy(f[a], f0[a], n * sizeof **f);
                    for (int a = 0; a < 2; a++)
                        memcpy(h[a], h0[a], n * sizeof **h);
                    hx_limit_run((HxLimitKind)kind, f, h, g, n, threads, late);
                    for (int a = 0; a < 3; a++)
                        if (memcmp(f[a], f0[a], n * sizeof **f))
                            fail_msg("%s: kind %d late %d n %zu threads %d changed fp32 array %d",
                                     level, kind, late, n, threads, a);
                    for (int a = 0; a < 2; a++)
                        if (memcmp(h[a], h0[a], n * sizeof **h))
                            fail_msg("%s: kind %d late %d n %zu threads %d changed bf16 array %d",
                                     level, kind, late, n, threads, a);
                    runs++;
                }
        /* HX_LIMIT_R1 returns the sum of squares of f[0] (finite values) */
        double want = 0.0;
        for (size_t i = 0; i < n; i++) {
            f[0][i] = value(4, i);
            want += (double)f[0][i] * f[0][i];
        }
        float *r1[3] = { f[0], NULL, NULL };
        for (int threads = 1; threads <= 2; threads++) {
            const double got = hx_limit_run(HX_LIMIT_R1, r1, h, g, n, threads, 1);
            if (fabs(got - want) > 1e-5 * want)
                fail_msg("%s: sum of squares n %zu threads %d: %.9g, fp64 %.9g", level, n,
                         threads, got, want);
        }
        for (int a = 0; a < 3; a++)
            free(f[a]), free(f0[a]);
        for (int a = 0; a < 2; a++)
            free(h[a]), free(h0[a]);
        free(g);
    }
    return runs;
}

/* With s != 0 (hx_limit_set_s) each form's arithmetic shows: the plain form
 * stores y = x + s * g, the late form HX_LIMIT_LATE_DEPTH steps of
 * y * (1 + s) - s on it (bf16: widened, stepped, truncated back).  The
 * oracle steps in fp64; with s = 1/8 a step moves y by (y - 1) / 8, beyond
 * the tolerance (fused or not, and bf16's truncation) for all but values
 * within about 2e-4 (fp32) or 2^-4 (relative, bf16) of 1, so a late form
 * one step short, or none, fails at nearly every element. */
static double late_oracle(double y, double s, int late)
{
    if (late)
        for (int j = 0; j < HX_LIMIT_LATE_DEPTH; j++)
            y = y * (1.0 + s) - s;
    return y;
}

static float bf16_f32(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static int run_level_depth(const char *level, const char *limit_level)
{
    if (kn_cpu_set_arch(level) != AMO_OK) {
        print_message("skipped %s: not on this CPU\n", level);
        return 0;
    }
    assert_string_equal(hx_limit_level(), limit_level);
    const float s = 0.125f;
    const size_t n = 1031; /* full vectors and a tail, at every level */
    float *f[3], *g = malloc(n * sizeof *g);
    uint16_t *h[2];
    assert_non_null(g);
    for (int a = 0; a < 3; a++)
        assert_non_null(f[a] = malloc(n * sizeof **f));
    for (int a = 0; a < 2; a++)
        assert_non_null(h[a] = malloc(n * sizeof **h));
    int runs = 0;
    hx_limit_set_s(s);
    for (int kind = HX_LIMIT_F3; kind <= HX_LIMIT_F1H2; kind++)
        for (int late = 0; late < 2; late++) {
            const int nf = kind == HX_LIMIT_F3 ? 3 : kind == HX_LIMIT_F2 ? 2 : 1;
            for (size_t i = 0; i < n; i++) {
                g[i] = value(9, i);
                for (int a = 0; a < 3; a++)
                    f[a][i] = value(1 + (uint64_t)a, i);
                for (int a = 0; a < 2; a++)
                    h[a][i] = bf16_bits(5 + (uint64_t)a, i);
            }
            float *f0[3];
            uint16_t *h0[2];
            for (int a = 0; a < 3; a++) {
                assert_non_null(f0[a] = malloc(n * sizeof **f0));
                memcpy(f0[a], f[a], n * sizeof **f);
            }
            for (int a = 0; a < 2; a++) {
                assert_non_null(h0[a] = malloc(n * sizeof **h0));
                memcpy(h0[a], h[a], n * sizeof **h);
            }
            hx_limit_run((HxLimitKind)kind, f, h, g, n, 1, late);
            for (int a = 0; a < nf; a++)
                for (size_t i = 0; i < n; i++) {
                    /* s * g is exact (s a power of two); the add rounds to fp32 */
                    const float x = f0[a][i] + s * g[i];
                    const double want = late_oracle(x, s, late);
                    if (fabs(f[a][i] - want) > 1e-5 * (fabs(want) + 1.0))
                        fail_msg("%s: s %g kind %d late %d fp32 array %d [%zu]: %.9g, want %.9g",
                                 level, s, kind, late, a, i, f[a][i], want);
                }
            for (int a = 0; kind == HX_LIMIT_F1H2 && a < 2; a++)
                for (size_t i = 0; i < n; i++) {
                    const double want = late_oracle(bf16_f32(h0[a][i]), s, late);
                    /* truncation to bf16: within 2^-7 of the value, below it in size */
                    if (fabs(bf16_f32(h[a][i]) - want) > 0x1.01p-7 * fabs(want) + 1e-30)
                        fail_msg("%s: s %g late %d bf16 array %d [%zu]: %.9g, want %.9g", level,
                                 s, late, a, i, bf16_f32(h[a][i]), want);
                }
            for (int a = 0; a < 3; a++)
                free(f0[a]);
            for (int a = 0; a < 2; a++)
                free(h0[a]);
            runs++;
        }
    for (int a = 0; a < 3; a++)
        free(f[a]);
    for (int a = 0; a < 2; a++)
        free(h[a]);
    free(g);
    return runs;
}

static void limits_late_depth(void **state)
{
    (void)state;
    int runs = 0;
    for (size_t l = 0; l < sizeof levels / sizeof *levels; l++)
        runs += run_level_depth(levels[l][0], levels[l][1]);
    assert_true(runs > 0);
    assert_int_equal(kn_cpu_set_arch("auto"), AMO_OK);
}

/* s back to 0 and the level to auto, also after a failed check */
static int reset(void **state)
{
    (void)state;
    hx_limit_set_s(0.0f);
    return kn_cpu_set_arch("auto") == AMO_OK ? 0 : -1;
}

static void limits_keep_state(void **state)
{
    (void)state;
    int runs = 0;
    for (size_t l = 0; l < sizeof levels / sizeof *levels; l++)
        runs += run_level(levels[l][0], levels[l][1]);
    assert_true(runs > 0); /* the scalar level always runs */
    assert_int_equal(kn_cpu_set_arch("auto"), AMO_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(limits_keep_state, reset),
        cmocka_unit_test_teardown(limits_late_depth, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

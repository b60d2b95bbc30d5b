/* The limit loops in plain C (the scalar level; the compiler vectorises
 * them at the architecture's baseline), the per-level table, and the
 * threading.  Built without ISA flags, like kernels/cpu.c. */
#include "harness/limit.h"
#include "harness/timer.h"
#include "kernels/cpu.h"
#include "kernels/update.h"

#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#error "harness/limit.c must be built without ISA flags: it runs before dispatch"
#endif

/* Opaque zeros, read at run time so the adds and XORs cannot be folded;
 * g_zero_f is the loops' s, which a test may set (hx_limit_set_s). */
static volatile float g_zero_f = 0.0f;
static volatile uint16_t g_zero_h = 0;

void hx_limit_set_s(float s)
{
    g_zero_f = s;
}

HX_LIMIT_INLINE void f3_body(float *a, float *b, float *c, const float *g, size_t n, float s,
                             int late)
{
    for (size_t i = 0; i < n; i++) {
        const float x = s * g[i];
        a[i] = hx_limit_keep(a[i] + x, s, late);
        b[i] = hx_limit_keep(b[i] + x, s, late);
        c[i] = hx_limit_keep(c[i] + x, s, late);
    }
}

HX_LIMIT_INLINE void f2_body(float *a, float *b, const float *g, size_t n, float s, int late)
{
    for (size_t i = 0; i < n; i++) {
        const float x = s * g[i];
        a[i] = hx_limit_keep(a[i] + x, s, late);
        b[i] = hx_limit_keep(b[i] + x, s, late);
    }
}

HX_LIMIT_INLINE void f1h2_body(float *a, uint16_t *b, uint16_t *c, const float *g, size_t n,
                               float s, uint16_t k, int late)
{
    for (size_t i = 0; i < n; i++) {
        a[i] = hx_limit_keep(a[i] + s * g[i], s, late);
        b[i] = hx_limit_keep_bf16(b[i], s, k, late);
        c[i] = hx_limit_keep_bf16(c[i], s, k, late);
    }
}

HX_LIMIT_FORMS(c)

/* 16 independent sums, so the compiler may vectorise without reassociating. */
static double r1_c(const float *x, size_t n)
{
    float acc[16] = { 0 };
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            acc[j] += x[i + j] * x[i + j];
    for (; i < n; i++)
        acc[0] += x[i] * x[i];
    double t = 0.0;
    for (int j = 0; j < 16; j++)
        t += acc[j];
    return t;
}

/* Baseline: 12 chains of 4 lanes (the compiler keeps them in SSE/ASIMD
 * registers; without -mfma it is a multiply and an add on x86-64). */
static double fma_c(long iters, float *sink)
{
    float acc[12][4];
    for (int j = 0; j < 12; j++)
        for (int l = 0; l < 4; l++)
            acc[j][l] = 1.0f + 0.001f * (float)(j + l);
    const float a = 0.999999f, b = 1e-7f;
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < 12; j++)
            for (int l = 0; l < 4; l++)
                acc[j][l] = acc[j][l] * a + b;
    float t = 0;
    for (int j = 0; j < 12; j++)
        for (int l = 0; l < 4; l++)
            t += acc[j][l];
    *sink = t;
    return (double)iters * 12 * 4 * 2;
}

static HxLimitDSP g_dsp;
static unsigned g_dsp_flags = ~0u;

static const HxLimitDSP *limit_dsp(void)
{
    const unsigned flags = kn_cpu_flags();
    if (flags == g_dsp_flags)
        return &g_dsp;
    /* The C loops are vectorised by the compiler for the baseline (SSE2 on
     * x86-64, ASIMD on aarch64, so they are also the neon level's). */
    HxLimitDSP d = { f3_c, f2_c, f1h2_c, r1_c, fma_c, "c-baseline" };
#if defined(__x86_64__)
    if (flags & KN_CPU_AVX2) {
        hx_limit_init_avx2(&d);
        if (flags & KN_CPU_AVX512)
            hx_limit_init_avx512(&d);
    }
#endif
    g_dsp = d;
    g_dsp_flags = flags;
    return &g_dsp;
}

double hx_fma_peak_gflops(int nthreads)
{
    const HxLimitDSP *d = limit_dsp();
    const int nt = nthreads < 1 ? 1 : nthreads;
    long iters = 1 << 16;
    double best = 0.0;
    for (int rep = 0; rep < 8; rep++) {
        double flops = 0.0;
        const double t0 = hx_now();
#pragma omp parallel num_threads(nt) reduction(+ : flops)
        {
            float sink;
            flops += d->fma(iters, &sink);
            if (sink == 1234.5f) /* never: keeps the chains live */
                flops += 1.0;
        }
        const double dt = hx_now() - t0;
        if (dt < 0.02) { /* too short to time: grow, and do not count it */
            iters *= 4;
            rep--;
            continue;
        }
        if (flops / dt > best)
            best = flops / dt;
    }
    return best * 1e-9;
}

const char *hx_limit_level(void)
{
    return limit_dsp()->level;
}

int hx_limit_bytes(HxLimitKind k)
{
    static const int bytes[HX_LIMIT_COUNT] = { 28, 20, 20, 4 };
    return (unsigned)k < HX_LIMIT_COUNT ? bytes[k] : 0;
}

/* The splits of kernels/update.c.  Updates (chunk_len, FOR_CHUNKS):
 * nthreads contiguous chunks starting on multiples of 64 elements, one per
 * OpenMP thread.  Sum of squares (kn_sumsq): KN_SUMSQ_CHUNK-element chunks,
 * on the calling thread if there is only one, else a static schedule. */
#define HX_CHUNK_ALIGN 64

static size_t chunk_len(size_t n, int nthreads)
{
    const size_t per = (n + (size_t)nthreads - 1) / (size_t)nthreads;
    return (per + HX_CHUNK_ALIGN - 1) / HX_CHUNK_ALIGN * HX_CHUNK_ALIGN;
}

static double r1_run(const HxLimitDSP *d, const float *x, size_t n, int nthreads)
{
    const long nc = (long)((n + KN_SUMSQ_CHUNK - 1) / KN_SUMSQ_CHUNK);
    double t = 0.0;
    /* Serial without entering OpenMP at all, as kn_sumsq: even an if(0)
     * parallel region costs about a microsecond, a lot at L1 sizes. */
    if (nthreads <= 1 || nc == 1) {
        for (long c = 0; c < nc; c++) {
            const size_t off = (size_t)c * KN_SUMSQ_CHUNK;
            t += d->r1(x + off, n - off < KN_SUMSQ_CHUNK ? n - off : KN_SUMSQ_CHUNK);
        }
        return t;
    }
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(+ : t)
    for (long c = 0; c < nc; c++) {
        const size_t off = (size_t)c * KN_SUMSQ_CHUNK;
        t += d->r1(x + off, n - off < KN_SUMSQ_CHUNK ? n - off : KN_SUMSQ_CHUNK);
    }
    return t;
}

double hx_limit_run(HxLimitKind k, float *const f[3], uint16_t *const h[2], const float *g,
                    size_t n, int nthreads, int late)
{
    if (n == 0)
        return 0.0;
    const HxLimitDSP *d = limit_dsp();
    const int nt = nthreads < 1 ? 1 : nthreads;
    if (k == HX_LIMIT_R1)
        return r1_run(d, f[0], n, nt);
    const size_t len = chunk_len(n, nt);
    const long nc = (long)((n + len - 1) / len);
    const float s = g_zero_f;
    const uint16_t z = g_zero_h;
#pragma omp parallel for num_threads(nt) schedule(static) if (nc > 1)
    for (long c = 0; c < nc; c++) {
        const size_t off = (size_t)c * len;
        const size_t cnt = n - off < len ? n - off : len;
        switch (k) {
        case HX_LIMIT_F3:
            d->f3(f[0] + off, f[1] + off, f[2] + off, g + off, cnt, s, late);
            break;
        case HX_LIMIT_F2:
            d->f2(f[0] + off, f[1] + off, g + off, cnt, s, late);
            break;
        case HX_LIMIT_F1H2:
            d->f1h2(f[0] + off, h[0] + off, h[1] + off, g + off, cnt, s, z, late);
            break;
        default:
            break;
        }
    }
    return 0.0;
}

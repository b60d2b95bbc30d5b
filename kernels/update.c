/* Public entry points of the update kernels: argument checks, the choice of
 * kernel table, and the split of one tensor across OpenMP threads. */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "kernels/cpu.h"
#include "kernels/update_dsp.h"

/* ---- the kernel table ------------------------------------------------- */

static KnUpdateDSP g_dsp;
static _Atomic unsigned g_dsp_flags = ~0u;
static pthread_mutex_t g_dsp_lock = PTHREAD_MUTEX_INITIALIZER;

const KnUpdateDSP *kn_update_dsp(void)
{
    if (kn_cpu_init_from_env() != AMO_OK)
        return NULL;
    const unsigned flags = kn_cpu_flags();
    if (atomic_load_explicit(&g_dsp_flags, memory_order_acquire) == flags)
        return &g_dsp;
    /* The first use from several threads at once (opt_step's parallel
     * regions): one builds the table, and publishes it after it is whole.
     * Changing the mask while kernels run is not supported (cpu.h). */
    pthread_mutex_lock(&g_dsp_lock);
    if (atomic_load_explicit(&g_dsp_flags, memory_order_relaxed) == flags) {
        pthread_mutex_unlock(&g_dsp_lock);
        return &g_dsp;
    }
    KnUpdateDSP d;
    kn_update_dsp_init_c(&d);
#if defined(__x86_64__)
    if (flags & KN_CPU_AVX2) {
        kn_update_dsp_init_avx2(&d, flags);
        if (flags & KN_CPU_AVX512) {
            kn_update_dsp_init_avx512(&d, flags);
            if (flags & KN_CPU_AVX512BF16)
                kn_update_dsp_init_avx512bf16(&d, flags);
        }
    }
#elif defined(__aarch64__)
    if (flags & KN_CPU_NEON)
        kn_update_dsp_init_neon(&d, flags);
#endif
    g_dsp = d;
    atomic_store_explicit(&g_dsp_flags, flags, memory_order_release);
    pthread_mutex_unlock(&g_dsp_lock);
    return &g_dsp;
}

static const char *const kernel_names[KN_K_COUNT] = {
    "amo", "amo_bf16", "sgd", "rmsprop", "sumsq",
};

const char *kn_kernel_name(KnKernel k)
{
    return (unsigned)k < KN_K_COUNT ? kernel_names[k] : "?";
}

const char *kn_kernel_level(KnKernel k)
{
    const KnUpdateDSP *d = kn_update_dsp();
    if (!d || (unsigned)k >= KN_K_COUNT)
        return NULL;
    return d->level[k];
}

/* ---- argument checks ---------------------------------------------------- */

typedef struct Span { const void *p; size_t bytes; } Span;

/* Any two non-NULL spans sharing a byte is an error. */
static int overlaps(const Span *s, int count)
{
    for (int i = 0; i < count; i++)
        for (int j = i + 1; j < count; j++) {
            if (!s[i].p || !s[j].p)
                continue;
            const uintptr_t a = (uintptr_t)s[i].p, b = (uintptr_t)s[j].p;
            if (a < b + s[j].bytes && b < a + s[i].bytes)
                return 1;
        }
    return 0;
}

static int finite_all(const float *x, int count)
{
    for (int i = 0; i < count; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static int bounds_ok(float lo, float hi)
{
    return !isnan(lo) && !isnan(hi) && lo <= hi && lo != INFINITY && hi != -INFINITY;
}

static AmoStatus check_amo(const KnAmoArgs *a)
{
    if (!a)
        return AMO_EINVAL;
    const float s[] = { a->lr, a->beta, a->gamma, a->eps, a->v_scale,
                        a->grad_scale, a->l2, a->decay };
    /* a denormal eps: see KnAmoArgs */
    return finite_all(s, 8) && a->eps >= FLT_MIN && bounds_ok(a->lo, a->hi) ? AMO_OK
                                                                            : AMO_EINVAL;
}

static AmoStatus check_sgd(const KnSgdArgs *a)
{
    if (!a)
        return AMO_EINVAL;
    const float s[] = { a->lr, a->momentum, a->dampening, a->grad_scale, a->l2, a->decay };
    return finite_all(s, 6) && bounds_ok(a->lo, a->hi) ? AMO_OK : AMO_EINVAL;
}

static AmoStatus check_rmsprop(const KnRmspropArgs *a)
{
    if (!a)
        return AMO_EINVAL;
    const float s[] = { a->lr, a->alpha, a->eps, a->momentum, a->grad_scale, a->l2, a->decay };
    return finite_all(s, 7) && a->eps >= FLT_MIN && bounds_ok(a->lo, a->hi) ? AMO_OK
                                                                            : AMO_EINVAL;
}

/* ---- threading ---------------------------------------------------------- */

/* Chunks start on multiples of this many elements: a whole number of cache
 * lines for fp32 and bf16 buffers and of every kernel's unroll block. */
#define KN_CHUNK_ALIGN 64

static size_t chunk_len(size_t n, int nthreads)
{
    const size_t per = (n + (size_t)nthreads - 1) / (size_t)nthreads;
    return (per + KN_CHUNK_ALIGN - 1) / KN_CHUNK_ALIGN * KN_CHUNK_ALIGN;
}

/* One thread or one chunk runs on the caller's thread: entering an OpenMP
 * region costs about 300 ns, a sizeable part of a small tensor's update. */
#define FOR_CHUNKS(n, nthreads, BODY)                                           \
    do {                                                                        \
        const int nt_ = (nthreads) < 1 ? 1 : (nthreads);                        \
        const size_t len_ = chunk_len((n), nt_);                                \
        const long nc_ = (long)(((n) + len_ - 1) / len_);                       \
        if (nc_ == 1) {                                                         \
            const size_t off = 0, cnt = (n);                                    \
            BODY;                                                               \
            break;                                                              \
        }                                                                       \
        _Pragma("omp parallel for num_threads(nt_) schedule(static)")           \
        for (long c_ = 0; c_ < nc_; c_++) {                                     \
            const size_t off = (size_t)c_ * len_;                               \
            const size_t cnt = (n) - off < len_ ? (n) - off : len_;             \
            BODY;                                                               \
        }                                                                       \
    } while (0)

/* ---- entry points ------------------------------------------------------- */

AmoStatus kn_amo_update(float *theta, float *m, float *v, const float *g, size_t n,
                       const KnAmoArgs *a, int nthreads)
{
    if (n == 0)
        return AMO_OK;
    if (!theta || !m || !v || !g)
        return AMO_EINVAL;
    AmoStatus st = check_amo(a);
    if (st != AMO_OK)
        return st;
    const size_t b = n * sizeof(float);
    const Span s[] = { { theta, b }, { m, b }, { v, b }, { g, b } };
    if (overlaps(s, 4))
        return AMO_EOVERLAP;
    const KnUpdateDSP *d = kn_update_dsp();
    if (!d)
        return kn_cpu_init_from_env(); /* the bad AMO_ARCH's status */
    FOR_CHUNKS(n, nthreads, d->amo(theta + off, m + off, v + off, g + off, cnt, a));
    return AMO_OK;
}

AmoStatus kn_amo_update_bf16(float *theta, uint16_t *m, uint16_t *v, const float *g,
                            size_t n, const KnAmoArgs *a, const KnBf16Round *r,
                            int nthreads)
{
    if (n == 0)
        return AMO_OK;
    if (!theta || !m || !v || !g || !r)
        return AMO_EINVAL;
    AmoStatus st = check_amo(a);
    if (st != AMO_OK)
        return st;
    const size_t b = n * sizeof(float), h = n * sizeof(uint16_t);
    const Span s[] = { { theta, b }, { m, h }, { v, h }, { g, b } };
    if (overlaps(s, 4))
        return AMO_EOVERLAP;
    const KnUpdateDSP *d = kn_update_dsp();
    if (!d)
        return kn_cpu_init_from_env(); /* the bad AMO_ARCH's status */
    const KnBf16Key key = kn_bf16_key(r);
    const uint64_t i0 = r->index0;
    const int nearest = r->nearest != 0;
    FOR_CHUNKS(n, nthreads, d->amo_bf16(theta + off, m + off, v + off, g + off, cnt, a,
                                        &key, i0 + off, nearest));
    return AMO_OK;
}

AmoStatus kn_sgd_update(float *theta, float *buf, const float *g, size_t n,
                       const KnSgdArgs *a, int nthreads)
{
    if (n == 0)
        return AMO_OK;
    AmoStatus st = check_sgd(a);
    if (st != AMO_OK)
        return st;
    if (!theta || !g || (a->momentum != 0.0f && !buf))
        return AMO_EINVAL;
    const size_t b = n * sizeof(float);
    const Span s[] = { { theta, b }, { g, b }, { a->momentum != 0.0f ? buf : NULL, b } };
    if (overlaps(s, 3))
        return AMO_EOVERLAP;
    const KnUpdateDSP *d = kn_update_dsp();
    if (!d)
        return kn_cpu_init_from_env(); /* the bad AMO_ARCH's status */
    float *bb = a->momentum != 0.0f ? buf : NULL;
    FOR_CHUNKS(n, nthreads, d->sgd(theta + off, bb ? bb + off : NULL, g + off, cnt, a));
    return AMO_OK;
}

AmoStatus kn_rmsprop_update(float *theta, float *v, float *buf, const float *g, size_t n,
                           const KnRmspropArgs *a, int nthreads)
{
    if (n == 0)
        return AMO_OK;
    AmoStatus st = check_rmsprop(a);
    if (st != AMO_OK)
        return st;
    const int mom = a->momentum > 0.0f;
    if (!theta || !v || !g || (mom && !buf))
        return AMO_EINVAL;
    const size_t b = n * sizeof(float);
    const Span s[] = { { theta, b }, { v, b }, { g, b }, { mom ? buf : NULL, b } };
    if (overlaps(s, 4))
        return AMO_EOVERLAP;
    const KnUpdateDSP *d = kn_update_dsp();
    if (!d)
        return kn_cpu_init_from_env(); /* the bad AMO_ARCH's status */
    float *bb = mom ? buf : NULL;
    FOR_CHUNKS(n, nthreads, d->rmsprop(theta + off, v + off, bb ? bb + off : NULL, g + off,
                                       cnt, a));
    return AMO_OK;
}

AmoStatus kn_sumsq(const float *x, size_t n, int nthreads, double *out)
{
    if (!out)
        return AMO_EINVAL;
    *out = 0.0;
    if (n == 0)
        return AMO_OK;
    if (!x)
        return AMO_EINVAL;
    const KnUpdateDSP *d = kn_update_dsp();
    if (!d)
        return kn_cpu_init_from_env(); /* the bad AMO_ARCH's status */
    const size_t nc = (n + KN_SUMSQ_CHUNK - 1) / KN_SUMSQ_CHUNK;
    double total = 0.0;
    if (nthreads <= 1 || nc == 1) {
        for (size_t c = 0; c < nc; c++) {
            const size_t off = c * KN_SUMSQ_CHUNK;
            total += d->sumsq(x + off, n - off < KN_SUMSQ_CHUNK ? n - off : KN_SUMSQ_CHUNK);
        }
    } else {
        /* The same chunk sums, computed in parallel, then added in order. */
        double stackbuf[256];
        double *part = nc <= 256 ? stackbuf : malloc(nc * sizeof(double));
        if (!part)
            return AMO_ENOMEM;
#pragma omp parallel for num_threads(nthreads) schedule(static)
        for (long c = 0; c < (long)nc; c++) {
            const size_t off = (size_t)c * KN_SUMSQ_CHUNK;
            part[c] = d->sumsq(x + off, n - off < KN_SUMSQ_CHUNK ? n - off : KN_SUMSQ_CHUNK);
        }
        for (size_t c = 0; c < nc; c++)
            total += part[c];
        if (part != stackbuf)
            free(part);
    }
    *out = total;
    return isfinite(total) ? AMO_OK : AMO_ENONFINITE;
}

/* ---- defaults ------------------------------------------------------------ */

KnAmoArgs kn_amo_args_default(void)
{
    return (KnAmoArgs){ .lr = 1e-3f, .beta = 0.9f, .gamma = 0.999f, .eps = 1e-8f,
                        .v_scale = 1.0f, .grad_scale = 1.0f, .l2 = 0.0f, .decay = 0.0f,
                        .lo = -INFINITY, .hi = INFINITY };
}

KnAmoArgs kn_adam_args(float lr, float beta1, float beta2, float eps, uint64_t t)
{
    KnAmoArgs a = kn_amo_args_default();
    const double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    a.lr = (float)(lr / bc1);
    a.v_scale = (float)(1.0 / sqrt(bc2));
    a.beta = beta1;
    a.gamma = beta2;
    a.eps = eps;
    return a;
}

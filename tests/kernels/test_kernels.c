/* Tests of the update kernels (kernels/update.h), in the manner of dav1d's
 * checkasm: every kernel at every ISA level this CPU has, against an fp64
 * oracle written here from the formulas in update.h (not from
 * update_ref.c), with sizes 0..67 that reach every vector tail, larger odd
 * sizes up to 1000003, misaligned pointers, a dozen consecutive steps and
 * awkward values (signed zeros, denormals, 1e18, 1e-18).  Also: bitwise
 * independence of the thread count and of alignment, the bf16 conversions
 * bit by bit, the stochastic-rounding stream (its bits at every level, its
 * AES round against FIPS-197, its statistics), bf16 moments on a noisy
 * quadratic and under a steady gradient, the argument checks and the CPU
 * level controls.
 *
 * Formulas: AMO paper, section 3, Algorithm 1; PyTorch's documentation of
 * torch.optim.Adam, torch.optim.SGD and torch.optim.RMSprop
 * (https://pytorch.org/docs/stable/generated/torch.optim.<Name>.html). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"
#include "common/rng.h"
#include "kernels/update.h"
#include "kernels/update_dsp.h" /* kn_aes_enc_round */

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The one large size per kernel and level: odd, so no vector width divides
 * it, and large enough that every thread count splits it. */
#define LARGE_N 1000003

/* Thread counts whose results must be bitwise those of one thread. */
static const int thread_counts[] = { 2, 3, 7 };

/* ---- a tiny seeded RNG (splitmix64) -------------------------------------- */

/* the project's one RNG (common/rng.h): the test draws its data from it */
typedef AmoRng Rng;

static uint64_t rng_u64(Rng *r) { return amo_rng_u64(r); }

static uint32_t rng_u32(Rng *r) { return (uint32_t)(rng_u64(r) >> 32); }

/* Uniform in [0, 1). */
static double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1p-53; }

/* Mean 0, variance 1, bell-shaped within +-3.46: the sum of four 16-bit
 * uniforms from one draw (Irwin-Hall).  Test data needs no exact tails, and
 * this is many times cheaper than Box-Muller, which matters under qemu. */
static double rng_normal(Rng *r)
{
    const uint64_t u = rng_u64(r);
    const double sum = (double)((u & 0xffff) + ((u >> 16) & 0xffff) + ((u >> 32) & 0xffff)
                                + (u >> 48));
    return (sum + 2.0) / 65536.0 * 1.7320508075688772 - 2.0 * 1.7320508075688772;
}

/* ---- buffers ---------------------------------------------------------------- */

/* A buffer whose data starts `off` elements past a 64-byte boundary, so a
 * kernel sees the alignments it would not choose. */
typedef struct Buf { void *base; void *p; } Buf;

static void *buf_alloc(Buf *b, size_t n, size_t elem, size_t off)
{
    const size_t bytes = ((n + off) * elem + 63) / 64 * 64 + 64;
    b->base = aligned_alloc(64, bytes);
    assert_non_null(b->base);
    b->p = (char *)b->base + off * elem;
    return b->p;
}

static float *buf_f32(Buf *b, size_t n, size_t off) { return buf_alloc(b, n, sizeof(float), off); }

static void buf_free(Buf *b)
{
    free(b->base);
    b->base = b->p = NULL;
}

/* The state buffers of one kernel (theta first, then moments; fp32 or
 * bf16), so that runs with other thread counts can be compared whole. */
#define STATE_MAX 3
typedef struct State {
    int count;
    size_t elem[STATE_MAX];
    Buf buf[STATE_MAX];
    void *p[STATE_MAX];
} State;

static const size_t ELEM_BF16 = sizeof(uint16_t);

/* misaligned: buffer k starts k + 1 elements past a 64-byte boundary (every
 * pointer misaligned, and misaligned differently from the others);
 * otherwise every buffer is 64-byte aligned. */
static void state_alloc(State *s, int count, const size_t elem[], size_t n, int misaligned)
{
    s->count = count;
    for (int k = 0; k < count; k++) {
        s->elem[k] = elem[k];
        s->p[k] = buf_alloc(&s->buf[k], n, elem[k], misaligned ? (size_t)k + 1 : 0);
    }
}

static void state_free(State *s)
{
    for (int k = 0; k < s->count; k++)
        buf_free(&s->buf[k]);
}

/* ---- fp32 and bf16 bits -------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* bf16 is the top half of an fp32. */
static float bf16_value(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

/* The rules update.h states for both roundings, after VCVTNEPS2BF16: NaN
 * stays NaN, made quiet, sign and top payload kept; zeros and denormals
 * become zero of the same sign.  Returns 1 when u is such a value. */
static int bf16_special_ref(uint32_t u, uint16_t *h)
{
    const uint32_t mag = u & 0x7fffffffu;
    if (mag > 0x7f800000u) {
        *h = (uint16_t)((u >> 16) | 0x0040u);
        return 1;
    }
    if (mag < 0x00800000u) {
        *h = (uint16_t)((u >> 31) << 15);
        return 1;
    }
    return 0;
}

/* fp32 -> bf16, round to nearest even: keep the top half, then step one
 * bf16 ulp away from zero if the dropped half is over a half, or exactly a
 * half and the kept part is odd.  The step carries into the exponent, so
 * the largest finite values round to Inf. */
static uint16_t bf16_rne_ref(float f)
{
    const uint32_t u = f32_bits(f);
    uint16_t h;
    if (bf16_special_ref(u, &h))
        return h;
    uint32_t hi = u >> 16;
    const uint32_t lo = u & 0xffffu;
    if (lo > 0x8000u || (lo == 0x8000u && (hi & 1u)))
        hi++;
    return (uint16_t)hi;
}

/* fp32 -> bf16, stochastic: step away from zero when the dropped half plus
 * the 16 random bits r16 carries, i.e. with probability dropped / 65536. */
static uint16_t bf16_sr_ref(float f, uint32_t r16)
{
    const uint32_t u = f32_bits(f);
    uint16_t h;
    if (bf16_special_ref(u, &h))
        return h;
    uint32_t hi = u >> 16;
    if ((u & 0xffffu) + r16 >= 0x10000u)
        hi++;
    return (uint16_t)hi;
}

/* The fp32 values next to a double: largest <= x and smallest >= x. */
static float f32_down(double x)
{
    float f = (float)x;
    if ((double)f > x)
        f = nextafterf(f, -INFINITY);
    return f;
}

static float f32_up(double x)
{
    float f = (float)x;
    if ((double)f < x)
        f = nextafterf(f, INFINITY);
    return f;
}

/* ---- the error bound and the oracles ------------------------------------- *
 *
 * Each oracle starts from the kernel's own fp32 state before the step (so
 * errors never accumulate over steps), evaluates every line of the formula
 * in double, and returns with each output x a bound e on |kernel - x|:
 *
 *     e(line) = K * 2^-24 * (sum of |terms| of the line)  +  K * 2^-150
 *               + (the error of the line's inputs, propagated)
 *
 * with K = 8.  An fp32 operation rounds with relative error <= 2^-24, or
 * absolute <= 2^-150 when its result is denormal; a line is two or three
 * operations, and K leaves room for another order, FMA contraction, and a
 * sqrt or a division within 2 ulp.  The propagation is first order for sums
 * and products and an interval for the quotient  lr * m / (v_scale * sqrt(v)
 * + eps) (over m +- e(m) and v +- e(v)), whose own rounding (lr, v_scale,
 * sqrt, two products, a sum and a division) gets 2K, plus K * 2^-150 / den
 * should lr * m underflow before the division.  Clamping to [lo, hi] cannot
 * increase the error.  All tests use eps >= 1e-8, so the absolute error in
 * a denormal v moves the denominator by under 1e-13 relative.  The real
 * kernels use about a quarter of this bound (the log prints the worst
 * ratio per kernel and level). */

#define K_ULP 8.0

typedef struct Out { double x, e; } Out; /* oracle value, allowed |kernel - x| */

static double rounding(double sum_abs) { return K_ULP * 0x1p-24 * sum_abs + K_ULP * 0x1p-150; }

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* max |q - (num +- e) / d| over d in [den_lo, den_hi], den_lo > 0: the
 * quotient is monotone in each argument, so the corners bound it. */
static double quotient_dev(double num, double e, double den_lo, double den_hi, double q)
{
    const double rlo = 1.0 / den_lo, rhi = 1.0 / den_hi; /* exact enough: ~2^-53 */
    const double c[4] = { (num - e) * rlo, (num - e) * rhi, (num + e) * rlo, (num + e) * rhi };
    double d = 0.0;
    for (int k = 0; k < 4; k++)
        d = fmax(d, fabs(c[k] - q));
    return d;
}

/* g = grad_scale * g + l2 * theta, the first line of every kernel. */
static Out grad_oracle(double grad_scale, double l2, double theta, double g)
{
    return (Out){ grad_scale * g + l2 * theta,
                  rounding(fabs(grad_scale * g) + fabs(l2 * theta)) };
}

/* s = alpha * s + (1 - alpha) * g^2 for the second moment (AMO's gamma,
 * RMSprop's alpha); both terms are >= 0. */
static Out second_moment_oracle(double alpha, double s, Out g)
{
    const double oma = 1.0 - alpha;
    return (Out){ alpha * s + oma * g.x * g.x,
                  rounding(fabs(alpha * s) + fabs(oma) * g.x * g.x)
                      + fabs(oma) * (2.0 * fabs(g.x) * g.e + g.e * g.e) };
}

/* lr * num / (v_scale * sqrt(v) + eps), with the error of num and v. */
static Out scaled_quotient_oracle(double lr, Out num, double v_scale, Out v, double eps)
{
    const double den = v_scale * sqrt(v.x) + eps;
    const double den_lo = v_scale * sqrt(fmax(v.x - v.e, 0.0)) + eps;
    const double den_hi = v_scale * sqrt(v.x + v.e) + eps;
    const double q = num.x / den;
    /* lr * num may be a denormal before the division: its absolute error
     * is then divided by den */
    return (Out){ lr * q, fabs(lr) * quotient_dev(num.x, num.e, den_lo, den_hi, q)
                              + 2.0 * rounding(fabs(lr * q)) + K_ULP * 0x1p-150 / den_lo };
}

/* theta = clamp(theta - decay * theta - d, lo, hi), d = lr * direction. */
static Out theta_oracle(double theta, double decay, Out d, double lo, double hi)
{
    const double t = theta - decay * theta - d.x;
    return (Out){ clampd(t, lo, hi),
                  rounding(fabs(theta) + fabs(decay * theta) + fabs(d.x)) + d.e };
}

/* AMO's parameters in double.  For AMO they are KnAmoArgs' own; for Adam
 * they come from torch.optim.Adam's bias corrections, computed here. */
typedef struct AmoRef {
    double lr, beta, gamma, eps, v_scale, grad_scale, l2, decay, lo, hi;
} AmoRef;

static AmoRef amo_ref_from_args(const KnAmoArgs *a)
{
    return (AmoRef){ a->lr, a->beta, a->gamma, a->eps, a->v_scale,
                     a->grad_scale, a->l2, a->decay, a->lo, a->hi };
}

/* torch.optim.Adam at step t: step_size = lr / (1 - beta1^t) and
 * denom = sqrt(v) / sqrt(1 - beta2^t) + eps. */
static AmoRef adam_ref(double lr, double beta1, double beta2, double eps, uint64_t t)
{
    const double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    return (AmoRef){ lr / bc1, beta1, beta2, eps, 1.0 / sqrt(bc2), 1.0, 0.0, 0.0,
                     -INFINITY, INFINITY };
}

/* AMO (paper section 3, Algorithm 1) for one element:
 *     g = grad_scale g + l2 theta;  m = beta m + (1-beta) g;
 *     v = gamma v + (1-gamma) g^2;
 *     theta = clamp(theta - decay theta - lr m / (v_scale sqrt(v) + eps)).
 * step_rtol: the relative error the kernel may add to the step (0 for the
 * fp32 kernels; KN_BF16_STEP_RTOL for bf16 moments). */
static void amo_oracle(const AmoRef *a, double theta, double m, double v, double g,
                       double step_rtol, Out *theta1, Out *m1, Out *v1)
{
    const Out gs = grad_oracle(a->grad_scale, a->l2, theta, g);
    const double omb = 1.0 - a->beta;
    *m1 = (Out){ a->beta * m + omb * gs.x,
                 rounding(fabs(a->beta * m) + fabs(omb * gs.x)) + fabs(omb) * gs.e };
    *v1 = second_moment_oracle(a->gamma, v, gs);
    Out step = scaled_quotient_oracle(a->lr, *m1, a->v_scale, *v1, a->eps);
    step.e += step_rtol * fabs(step.x);
    *theta1 = theta_oracle(theta, a->decay, step, a->lo, a->hi);
}

/* torch.optim.SGD for one element:
 *     g = grad_scale g + l2 theta
 *     b = first ? g : momentum b + (1 - dampening) g
 *     d = nesterov ? g + momentum b : b          (d = g when momentum == 0)
 *     theta = clamp(theta - decay theta - lr d). */
static void sgd_oracle(const KnSgdArgs *a, double theta, double b, double g, Out *theta1,
                       Out *b1)
{
    const Out gs = grad_oracle(a->grad_scale, a->l2, theta, g);
    const double mom = a->momentum, omd = 1.0 - (double)a->dampening;
    Out d = gs;
    *b1 = (Out){ b, 0.0 };
    if (mom != 0.0) {
        *b1 = a->first ? gs
                       : (Out){ mom * b + omd * gs.x,
                                rounding(fabs(mom * b) + fabs(omd * gs.x)) + fabs(omd) * gs.e };
        d = a->nesterov ? (Out){ gs.x + mom * b1->x,
                                 rounding(fabs(gs.x) + fabs(mom * b1->x)) + gs.e
                                     + fabs(mom) * b1->e }
                        : *b1;
    }
    const Out step = { a->lr * d.x, rounding(fabs(a->lr * d.x)) + fabs(a->lr) * d.e };
    *theta1 = theta_oracle(theta, a->decay, step, a->lo, a->hi);
}

/* torch.optim.RMSprop (not centered) for one element:
 *     g = grad_scale g + l2 theta;  v = alpha v + (1 - alpha) g^2
 *     momentum > 0: b = momentum b + g / (sqrt(v) + eps); d = b
 *     otherwise:    d = g / (sqrt(v) + eps)
 *     theta = clamp(theta - decay theta - lr d). */
static void rmsprop_oracle(const KnRmspropArgs *a, double theta, double v, double b,
                           double g, Out *theta1, Out *v1, Out *b1)
{
    const Out gs = grad_oracle(a->grad_scale, a->l2, theta, g);
    *v1 = second_moment_oracle(a->alpha, v, gs);
    Out d = scaled_quotient_oracle(1.0, gs, 1.0, *v1, a->eps);
    *b1 = (Out){ b, 0.0 };
    if (a->momentum > 0.0f) {
        *b1 = (Out){ a->momentum * b + d.x,
                     rounding(fabs(a->momentum * b) + fabs(d.x)) + d.e };
        d = *b1;
    }
    const Out step = { a->lr * d.x, rounding(fabs(a->lr * d.x)) + fabs(a->lr) * d.e };
    *theta1 = theta_oracle(theta, a->decay, step, a->lo, a->hi);
}

/* Sum of squares, Neumaier-compensated in double: the products of floats
 * are exact in double, so this is within a few 2^-53 of the true sum,
 * whatever the order the kernel uses. */
static double sumsq_oracle(const float *x, size_t n)
{
    double s = 0.0, c = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)x[i] * x[i], t = s + d;
        c += fabs(s) >= fabs(d) ? (s - t) + d : (d - t) + s;
        s = t;
    }
    return s + c;
}

/* ---- checking ---------------------------------------------------------------- */

/* What is being checked, for the failure messages, and the largest
 * |kernel - oracle| / bound seen since the last report. */
static struct {
    const char *level, *kernel;
    size_t n;
    int step;
    double worst;
} ctx;

static void check_near(const char *what, size_t i, double got, Out want)
{
    const double d = fabs(got - want.x);
    if (d <= want.e) { /* false for NaN */
        if (d > ctx.worst * want.e)
            ctx.worst = d / want.e;
        return;
    }
    print_error("level %s, %s, n %zu, step %d: %s[%zu] = %.9g, oracle %.9g, "
                "|diff| %.3g > bound %.3g\n", ctx.level, ctx.kernel, ctx.n, ctx.step, what,
                i, got, want.x, fabs(got - want.x), want.e);
    fail();
}

static void check_bounds(size_t i, float theta, float lo, float hi)
{
    if (theta >= lo && theta <= hi)
        return;
    print_error("level %s, %s, n %zu, step %d: theta[%zu] = %.9g outside [%g, %g]\n",
                ctx.level, ctx.kernel, ctx.n, ctx.step, i, theta, lo, hi);
    fail();
}

/* A stored bf16 moment s is right when it is a rounding of some fp32 value
 * within want.e of the oracle: for nearest, between the roundings of the
 * interval's ends (rounding is monotone); for stochastic rounding, between
 * the lowest and highest of the two neighbours of the ends. */
static void check_bf16_moment(const char *what, size_t i, uint16_t s, Out want, int nearest)
{
    const float fl = f32_down(want.x - want.e), fh = f32_up(want.x + want.e);
    double lo, hi;
    if (nearest) {
        lo = bf16_value(bf16_rne_ref(fl));
        hi = bf16_value(bf16_rne_ref(fh));
    } else {
        lo = fmin(bf16_value(bf16_sr_ref(fl, 0)), bf16_value(bf16_sr_ref(fl, 0xffff)));
        hi = fmax(bf16_value(bf16_sr_ref(fh, 0)), bf16_value(bf16_sr_ref(fh, 0xffff)));
    }
    const double got = bf16_value(s);
    if (got >= lo && got <= hi)
        return;
    print_error("level %s, %s, n %zu, step %d: %s[%zu] = bf16 %#06x (%.9g), oracle %.9g +- "
                "%.3g allows [%.9g, %.9g]\n", ctx.level, ctx.kernel, ctx.n, ctx.step, what, i,
                (unsigned)s, got, want.x, want.e, lo, hi);
    fail();
}

static void check_same_bytes(const char *what, const void *a, const void *b, size_t elem,
                             size_t n, const char *why)
{
    if (n == 0 || memcmp(a, b, elem * n) == 0)
        return;
    size_t i = 0;
    while (memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) == 0)
        i++;
    print_error("level %s, %s, n %zu: %s[%zu] differs %s\n", ctx.level, ctx.kernel, ctx.n,
                what, i, why);
    fail();
}

static void check_same_state(const State *a, const State *b, size_t n, const char *why)
{
    static const char *const names[STATE_MAX] = { "theta", "state 1", "state 2" };
    for (int k = 0; k < a->count; k++)
        check_same_bytes(names[k], a->p[k], b->p[k], a->elem[k], n, why);
}

/* ---- ISA levels ------------------------------------------------------------ */

/* name: for the messages; level: kn_cpu_level_name() of the mask.  The
 * "bf16" rows differ from the row after them only in the AES flags, which
 * only the bf16-state slot uses: FOR_EACH_BF16_LEVEL runs them too. */
typedef struct Level { unsigned mask; const char *name, *level; int bf16; } Level;

#define X_AES (KN_CPU_AVX2 | KN_CPU_AES)
#define X_512 (X_AES | KN_CPU_AVX512)

/* The cumulative flag sets, lowest first; a test runs each one this CPU has. */
static const Level all_levels[] = {
    { 0, "scalar", "scalar", 0 },
    { KN_CPU_AVX2, "avx2 without AES", "avx2", 1 },
    { X_AES, "avx2", "avx2", 0 },
    { X_512, "avx512 without VAES", "avx512", 1 },
    { X_512 | KN_CPU_VAES, "avx512", "avx512", 0 },
    { X_512 | KN_CPU_AVX512BF16, "avx512bf16 without VAES", "avx512bf16", 1 },
    { X_512 | KN_CPU_VAES | KN_CPU_AVX512BF16, "avx512bf16", "avx512bf16", 0 },
    { KN_CPU_NEON, "neon without AES", "neon", 1 },
    { KN_CPU_NEON | KN_CPU_AES, "neon", "neon", 0 },
};

/* The level after prev (NULL: the first) that this CPU has, with the mask
 * set to it; NULL, with the mask back on "auto", after the last.  A CPU
 * without the AES flags runs the rows without them as its main levels. */
static const Level *next_level(const Level *prev, int bf16)
{
    const Level *end = all_levels + ARRAY_LEN(all_levels);
    for (const Level *l = prev ? prev + 1 : all_levels; l < end; l++) {
        if (l->mask & ~kn_cpu_detected())
            continue;
        const int has_next = l + 1 < end && l[1].bf16 == 0 && !(l[1].mask & ~kn_cpu_detected())
                             && !strcmp(l[1].level, l->level);
        if (l->bf16 && !bf16 && has_next)
            continue;
        assert_int_equal(kn_cpu_set_mask(l->mask), AMO_OK);
        assert_int_equal(kn_cpu_flags(), l->mask);
        ctx.level = l->name;
        return l;
    }
    assert_int_equal(kn_cpu_set_arch("auto"), AMO_OK);
    return NULL;
}

#define FOR_EACH_LEVEL(lv) for (const Level *lv = next_level(NULL, 0); lv; lv = next_level(lv, 0))
#define FOR_EACH_BF16_LEVEL(lv) \
    for (const Level *lv = next_level(NULL, 1); lv; lv = next_level(lv, 1))

/* The level each kernel slot should report: the level's own, except that
 * AVX512_BF16 only has a kernel for bf16 moments, and that on x86 that
 * kernel needs AES-NI (without it the slot stays scalar). */
static const char *expected_slot_level(const Level *lv, KnKernel k)
{
    if (k == KN_K_AMO_BF16 && (lv->mask & KN_CPU_AVX2) && !(lv->mask & KN_CPU_AES))
        return "scalar";
    if (lv->mask & KN_CPU_AVX512BF16)
        return k == KN_K_AMO_BF16 ? "avx512bf16" : "avx512";
    return lv->level;
}

static void print_level_ok(const Level *lv, const char *what, KnKernel k)
{
    const char *slot = kn_kernel_level(k);
    char worst[64] = "";
    if (ctx.worst > 0.0)
        snprintf(worst, sizeof worst, "; worst error %.3f of the bound", ctx.worst);
    print_message("level %s: %s ok (kernel %s ran at level %s%s)\n", lv->name, what,
                  kn_kernel_name(k), slot ? slot : "?", worst);
    ctx.worst = 0.0;
}

/* ---- inputs ---------------------------------------------------------------- */

/* Values every kernel must treat like any other: signed zeros, denormals,
 * and gradients far above and below the usual range. */
static float awkward(Rng *r)
{
    static const float v[] = { 0.0f, -0.0f, 1e-40f, -1e-40f, 1e18f, -1e18f, 1e-18f, -1e-18f };
    return v[rng_u32(r) % ARRAY_LEN(v)];
}

/* Gradients: normals, one in eight replaced by an awkward value. */
static void fill_grad(Rng *r, float *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = rng_u32(r) % 8 == 0 ? awkward(r) : (float)rng_normal(r);
}

/* The gradient of step s of the run seeded with seed: a function of
 * (seed, s) only, so a rerun with another thread count sees the same. */
static void fill_grad_step(uint64_t seed, int s, float *g, size_t n)
{
    Rng r = { seed ^ (0xd1342543de82ef95ull * (uint64_t)(s + 1)) };
    fill_grad(&r, g, n);
}

/* theta at scales 1 down to 1e-4, and zeros: at small scales a step of
 * about lr is not lost in theta's rounding, so the oracle sees it. */
static void fill_theta(Rng *r, float *t, size_t n)
{
    static const double scale[] = { 1.0, 1e-1, 1e-2, 1e-3, 1e-4 };
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = rng_u32(r);
        t[i] = u % 16 == 0 ? 0.0f : (float)(rng_normal(r) * scale[(u >> 8) % 5]);
    }
}

static void fill_first_moment(Rng *r, float *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        m[i] = rng_u32(r) % 8 == 0 ? 0.0f : (float)(0.1 * rng_normal(r));
}

/* Second moments are >= 0: zeros, a denormal, and squares of normals. */
static void fill_second_moment(Rng *r, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = rng_u32(r) % 8;
        const double z = rng_normal(r);
        v[i] = u == 0 ? 0.0f : u == 1 ? 1e-40f : (float)(0.01 * z * z);
    }
}

/* bf16 moments: the same values rounded, plus bf16 denormals (which the
 * kernels read exactly, as every bf16). */
static void to_bf16_state(Rng *r, const float *f, uint16_t *h, size_t n, uint16_t denormal)
{
    for (size_t i = 0; i < n; i++)
        h[i] = rng_u32(r) % 16 == 0 ? denormal : bf16_rne_ref(f[i]);
}

/* ---- the generic size / thread / alignment driver --------------------------- */

/* Runs `steps` steps of one kernel case from the state seeded by `seed`,
 * leaving the final state in st; with check, compares each step with the
 * oracle. */
typedef void (*RunFn)(const void *kcase, State *st, size_t n, int steps, uint64_t seed,
                      int nthreads, int check);

/* One case at one size: the checked single-thread run, then the same run
 * with 2, 3 and 7 threads and (but for the large size, to save time under
 * qemu) with aligned buffers, which must give the same bits (update.h:
 * element i gets the same instructions wherever it falls). */
static void check_case(RunFn run, const void *kcase, const char *name, int count,
                       const size_t elem[], size_t n, int steps, uint64_t seed)
{
    ctx.kernel = name;
    ctx.n = n;
    State a, b;
    state_alloc(&a, count, elem, n, 1);
    run(kcase, &a, n, steps, seed, 1, 1);
    for (size_t t = 0; t < ARRAY_LEN(thread_counts); t++) {
        state_alloc(&b, count, elem, n, 1);
        run(kcase, &b, n, steps, seed, thread_counts[t], 0);
        check_same_state(&a, &b, n, "with more threads than 1 (nthreads 2, 3 or 7)");
        state_free(&b);
    }
    if (n < LARGE_N) {
        state_alloc(&b, count, elem, n, 0);
        run(kcase, &b, n, steps, seed, 1, 0);
        check_same_state(&a, &b, n, "between misaligned and 64-byte aligned buffers");
        state_free(&b);
    }
    state_free(&a);
}

/* Sizes 0..67 reach every tail of 4-, 8- and 16-lane loops unrolled up to
 * 4 times; the others cross the thread split (chunks of 64). */
#define SMALL_STEPS 12
static const size_t extra_sizes[] = { 100, 200, 1000, 4099 };

static void check_all_sizes(RunFn run, const void *kcase, const char *name, int count,
                            const size_t elem[], int large, uint64_t seed)
{
    for (size_t n = 0; n <= 67; n++)
        check_case(run, kcase, name, count, elem, n, SMALL_STEPS, seed + n);
    for (size_t k = 0; k < ARRAY_LEN(extra_sizes); k++)
        check_case(run, kcase, name, count, elem, extra_sizes[k], SMALL_STEPS, seed + 100 + k);
    if (large)
        check_case(run, kcase, name, count, elem, LARGE_N, 2, seed + 1000);
}

/* ---- AMO and Adam, fp32 moments ---------------------------------------------- */

typedef struct AmoCase {
    const char *name;
    int adam;      /* 1: lr, beta, gamma, eps are Adam's; args from kn_adam_args */
    KnAmoArgs args; /* for Adam, grad_scale, l2, decay and the bounds still apply */
} AmoCase;

static KnAmoArgs amo_case_args(const AmoCase *c, uint64_t t)
{
    if (!c->adam)
        return c->args;
    const KnAmoArgs *p = &c->args;
    KnAmoArgs a = kn_adam_args(p->lr, p->beta, p->gamma, p->eps, t);
    a.grad_scale = p->grad_scale;
    a.l2 = p->l2;
    a.decay = p->decay;
    a.lo = p->lo;
    a.hi = p->hi;
    return a;
}

static AmoRef amo_case_ref(const AmoCase *c, uint64_t t)
{
    const KnAmoArgs *p = &c->args;
    if (!c->adam)
        return amo_ref_from_args(p);
    AmoRef r = adam_ref(p->lr, p->beta, p->gamma, p->eps, t);
    r.grad_scale = p->grad_scale;
    r.l2 = p->l2;
    r.decay = p->decay;
    r.lo = p->lo;
    r.hi = p->hi;
    return r;
}

static void amo_run(const void *kcase, State *st, size_t n, int steps, uint64_t seed,
                    int nthreads, int check)
{
    const AmoCase *c = kcase;
    float *th = st->p[0], *m = st->p[1], *v = st->p[2];
    Rng rng = { seed };
    fill_theta(&rng, th, n);
    fill_first_moment(&rng, m, n);
    fill_second_moment(&rng, v, n);
    Buf bg, bp;
    float *g = buf_f32(&bg, n, 1), *prev = buf_f32(&bp, 3 * n, 0);
    for (int s = 0; s < steps; s++) {
        const KnAmoArgs a = amo_case_args(c, (uint64_t)s + 1);
        fill_grad_step(seed, s, g, n);
        if (check) {
            memcpy(prev, th, n * sizeof(float));
            memcpy(prev + n, m, n * sizeof(float));
            memcpy(prev + 2 * n, v, n * sizeof(float));
        }
        assert_int_equal(kn_amo_update(th, m, v, g, n, &a, nthreads), AMO_OK);
        if (!check)
            continue;
        const AmoRef r = amo_case_ref(c, (uint64_t)s + 1);
        ctx.step = s;
        for (size_t i = 0; i < n; i++) {
            Out ot, om, ov;
            amo_oracle(&r, prev[i], prev[n + i], prev[2 * n + i], g[i], 0.0, &ot, &om, &ov);
            check_near("theta", i, th[i], ot);
            check_near("m", i, m[i], om);
            check_near("v", i, v[i], ov);
            check_bounds(i, th[i], a.lo, a.hi);
        }
    }
    buf_free(&bg);
    buf_free(&bp);
}

static const size_t amo_elem[] = { sizeof(float), sizeof(float), sizeof(float) };

static KnAmoArgs amo_args(float lr, float beta, float gamma, float eps)
{
    KnAmoArgs a = kn_amo_args_default();
    a.lr = lr;
    a.beta = beta;
    a.gamma = gamma;
    a.eps = eps;
    return a;
}

static void test_amo(void **state)
{
    (void)state;
    AmoCase cases[4] = {
        { "amo", 0, kn_amo_args_default() },
        { "amo clip, l2, decay", 0, amo_args(1e-2f, 0.5f, 0.9f, 1e-6f) },
        { "amo bounds", 0, kn_amo_args_default() },
        /* one bound infinite: the kernels must still clamp */
        { "amo upper bound only", 0, kn_amo_args_default() },
    };
    cases[1].args.grad_scale = 0.25f;
    cases[1].args.l2 = 1e-2f;
    cases[1].args.decay = 1e-4f;
    cases[2].args.lo = -0.5f;
    cases[2].args.hi = 0.25f;
    cases[3].args.hi = 0.25f;
    FOR_EACH_LEVEL(lv) {
        for (size_t c = 0; c < ARRAY_LEN(cases); c++)
            check_all_sizes(amo_run, &cases[c], cases[c].name, 3, amo_elem, c == 0,
                            1000 * c + 1);
        print_level_ok(lv, "amo", KN_K_AMO);
    }
}

static void test_adam(void **state)
{
    (void)state;
    /* kn_adam_args folds torch.optim.Adam's bias corrections into lr and
     * v_scale; each is the double value rounded once to fp32. */
    static const uint64_t ts[] = { 1, 2, 3, 10, 100, 1000, 1000000 };
    for (size_t k = 0; k < ARRAY_LEN(ts); k++) {
        const KnAmoArgs a = kn_adam_args(3e-4f, 0.9f, 0.999f, 1e-8f, ts[k]);
        const AmoRef r = adam_ref(3e-4f, 0.9f, 0.999f, 1e-8f, ts[k]);
        assert_true(fabs(a.lr - r.lr) <= 0x1p-24 * r.lr);
        assert_true(fabs(a.v_scale - r.v_scale) <= 0x1p-24 * r.v_scale);
        assert_true(a.beta == 0.9f && a.gamma == 0.999f && a.eps == 1e-8f);
        assert_true(a.grad_scale == 1.0f && a.l2 == 0.0f && a.decay == 0.0f);
        assert_true(a.lo == -INFINITY && a.hi == INFINITY);
    }
    AmoCase cases[3] = {
        { "adam", 1, amo_args(1e-3f, 0.9f, 0.999f, 1e-8f) },
        { "adam l2 (coupled weight decay)", 1, amo_args(1e-3f, 0.9f, 0.99f, 1e-8f) },
        { "adamw (decoupled weight decay)", 1, amo_args(1e-2f, 0.8f, 0.999f, 1e-7f) },
    };
    cases[1].args.l2 = 1e-2f;
    cases[2].args.decay = 1e-2f * 1e-2f;
    FOR_EACH_LEVEL(lv) {
        for (size_t c = 0; c < ARRAY_LEN(cases); c++)
            check_all_sizes(amo_run, &cases[c], cases[c].name, 3, amo_elem, 0, 1000 * c + 2);
        print_level_ok(lv, "adam", KN_K_AMO);
    }
}

/* From m = v = 0 with grad_scale 1 and no decay the first AMO step is
 * lr (1 - beta) |g| / (sqrt(1 - gamma) |g| + eps), about 3.162 lr for the
 * defaults; Adam's bias corrections make it lr. */
static void test_first_step(void **state)
{
    (void)state;
    enum { N = 1000 };
    const double amo_factor = 0.1 / sqrt(0.001); /* (1 - beta) / sqrt(1 - gamma) */
    float g[N];
    Rng rng = { 99 };
    for (size_t i = 0; i < N; i++) {
        const double mag = pow(10.0, -2.0 + 3.0 * rng_uniform(&rng)); /* 0.01 .. 10 */
        g[i] = i % 100 == 0 ? 0.0f : (float)(rng_u32(&rng) & 1 ? mag : -mag);
    }
    FOR_EACH_LEVEL(lv) {
        static float th[2][N], m[N], v[N];
        const KnAmoArgs args[2] = { kn_amo_args_default(),
                                    kn_adam_args(1e-3f, 0.9f, 0.999f, 1e-8f, 1) };
        double mean_ratio[2] = { 0, 0 };
        for (int k = 0; k < 2; k++) {
            memset(th[k], 0, sizeof th[k]);
            memset(m, 0, sizeof m);
            memset(v, 0, sizeof v);
            assert_int_equal(kn_amo_update(th[k], m, v, g, N, &args[k], 1), AMO_OK);
            const double want = k == 0 ? amo_factor : 1.0, lr = 1e-3;
            for (size_t i = 0; i < N; i++) {
                if (g[i] == 0.0f) { /* 0 / (0 + eps): no step, and no NaN */
                    assert_true(th[k][i] == 0.0f && m[i] == 0.0f && v[i] == 0.0f);
                    continue;
                }
                const double ratio = -th[k][i] / (lr * (g[i] > 0 ? 1.0 : -1.0));
                if (fabs(ratio / want - 1.0) > 1e-3) {
                    print_error("level %s: first %s step at g = %g moves theta by %.6g lr, "
                                "want %.6g lr\n", lv->name, k ? "adam" : "amo", g[i], ratio,
                                want);
                    fail();
                }
                mean_ratio[k] += ratio / (N - N / 100);
            }
        }
        print_message("level %s: first step from zero state: amo %.5f lr, adam %.5f lr, "
                      "ratio %.5f (want %.5f)\n", lv->name, mean_ratio[0], mean_ratio[1],
                      mean_ratio[0] / mean_ratio[1], amo_factor);
        assert_true(fabs(mean_ratio[0] / mean_ratio[1] / amo_factor - 1.0) < 1e-3);
    }
}

/* ---- AMO with bf16 moments ---------------------------------------------------- */

typedef struct Bf16Case {
    const char *name;
    KnAmoArgs args;
    int nearest;
    uint64_t index0;
} Bf16Case;

static void bf16_run(const void *kcase, State *st, size_t n, int steps, uint64_t seed,
                     int nthreads, int check)
{
    const Bf16Case *c = kcase;
    float *th = st->p[0];
    uint16_t *m = st->p[1], *v = st->p[2];
    Rng rng = { seed };
    Buf bg, bp, bq;
    float *g = buf_f32(&bg, n, 1), *prev = buf_f32(&bp, n, 0);
    uint16_t *prevh = buf_alloc(&bq, 2 * n, ELEM_BF16, 0);
    fill_theta(&rng, th, n);
    fill_first_moment(&rng, g, n);
    to_bf16_state(&rng, g, m, n, 0x8001); /* -2^-133 */
    fill_second_moment(&rng, g, n);
    to_bf16_state(&rng, g, v, n, 0x0003);
    KnBf16Round rd = { .seed = seed * 31 + 7, .index0 = c->index0, .nearest = c->nearest };
    for (int s = 0; s < steps; s++) {
        rd.step = (uint64_t)s;
        fill_grad_step(seed, s, g, n);
        if (check) {
            memcpy(prev, th, n * sizeof(float));
            memcpy(prevh, m, n * sizeof(uint16_t));
            memcpy(prevh + n, v, n * sizeof(uint16_t));
        }
        assert_int_equal(kn_amo_update_bf16(th, m, v, g, n, &c->args, &rd, nthreads), AMO_OK);
        if (!check)
            continue;
        const AmoRef r = amo_ref_from_args(&c->args);
        ctx.step = s;
        for (size_t i = 0; i < n; i++) {
            Out ot, om, ov;
            amo_oracle(&r, prev[i], bf16_value(prevh[i]), bf16_value(prevh[n + i]), g[i],
                       KN_BF16_STEP_RTOL, &ot, &om, &ov);
            check_near("theta", i, th[i], ot);
            check_bf16_moment("m", i, m[i], om, c->nearest);
            check_bf16_moment("v", i, v[i], ov, c->nearest);
            check_bounds(i, th[i], c->args.lo, c->args.hi);
        }
    }
    buf_free(&bg);
    buf_free(&bp);
    buf_free(&bq);
}

static const size_t bf16_elem[] = { sizeof(float), sizeof(uint16_t), sizeof(uint16_t) };

static void test_amo_bf16(void **state)
{
    (void)state;
    Bf16Case cases[5] = {
        { "amo_bf16 stochastic", kn_amo_args_default(), 0, 0 },
        /* index0 near 2^32: the stream's index wraps inside the call */
        { "amo_bf16 stochastic, clip, decay, bounds", amo_args(1e-2f, 0.5f, 0.9f, 1e-6f), 0,
          (1ull << 32) - 40 },
        { "amo_bf16 nearest", kn_amo_args_default(), 1, 12345 },
        /* the kernels have an instance for each bounds setting: clamping
         * with nearest rounding, and with one bound infinite */
        { "amo_bf16 nearest, bounds", kn_amo_args_default(), 1, 777 },
        { "amo_bf16 stochastic, lower bound only", kn_amo_args_default(), 0, 99 },
    };
    cases[1].args.grad_scale = 0.5f;
    cases[1].args.l2 = 1e-3f;
    cases[1].args.decay = 1e-4f;
    cases[1].args.lo = -0.75f;
    cases[1].args.hi = 0.5f;
    cases[3].args.lo = -0.5f;
    cases[3].args.hi = 0.25f;
    cases[4].args.lo = -0.25f;
    FOR_EACH_BF16_LEVEL(lv) {
        /* the rows without AES or VAES differ in the random bits alone: the
         * stochastic cases, up to the odd sizes, suffice there */
        for (size_t c = 0; c < ARRAY_LEN(cases); c++)
            if (!(lv->bf16 && cases[c].nearest))
                check_all_sizes(bf16_run, &cases[c], cases[c].name, 3, bf16_elem,
                                c == 0 && !lv->bf16, 1000 * c + 3);
        print_level_ok(lv, "amo_bf16 (stochastic and nearest)", KN_K_AMO_BF16);
    }
}

/* The random bits themselves: with beta = gamma = 1/2, grad_scale 1, no l2
 * and short-mantissa inputs, the fp32 moments are exact whatever the
 * instruction order, so the stored bf16 must be exactly the rounding of
 * that value with kn_bf16_random()'s bits for element index0 + i (low 16
 * for m, high 16 for v), or its round-to-nearest-even. */
static void check_bf16_stream(size_t n, uint64_t index0, int nearest, int nthreads, Rng *rng)
{
    Buf bt, bm, bv, bg;
    float *th = buf_f32(&bt, n, 1), *g = buf_f32(&bg, n, 3);
    uint16_t *m = buf_alloc(&bm, n, ELEM_BF16, 1), *v = buf_alloc(&bv, n, ELEM_BF16, 3);
    float *m1 = malloc((n + 1) * sizeof(float)), *v1 = malloc((n + 1) * sizeof(float));
    assert_true(m1 && v1);
    for (size_t i = 0; i < n; i++) {
        /* m, v: 8-bit mantissas in [2^-4, 1); g = k 2^-11, |k| < 2048 */
        const double mm = ldexp(128 + rng_u32(rng) % 128, -8 - (int)(rng_u32(rng) % 4));
        const double vv = ldexp(128 + rng_u32(rng) % 128, -8 - (int)(rng_u32(rng) % 4));
        const double gg = ldexp((double)(int)(rng_u32(rng) % 4095) - 2047, -11);
        m[i] = bf16_rne_ref((float)(rng_u32(rng) & 1 ? mm : -mm));
        v[i] = bf16_rne_ref((float)vv);
        g[i] = (float)gg;
        th[i] = (float)rng_normal(rng);
        m1[i] = (float)(0.5 * bf16_value(m[i]) + 0.5 * gg); /* exact: 13 bits */
        v1[i] = (float)(0.5 * vv + 0.5 * gg * gg);          /* exact: 23 bits */
    }
    const KnAmoArgs a = amo_args(1e-3f, 0.5f, 0.5f, 1e-8f);
    const KnBf16Round rd = { .seed = rng_u64(rng), .step = rng_u64(rng) % 1000,
                             .index0 = index0, .nearest = nearest };
    assert_int_equal(kn_amo_update_bf16(th, m, v, g, n, &a, &rd, nthreads), AMO_OK);
    const KnBf16Key key = kn_bf16_key(&rd);
    for (size_t i = 0; i < n; i++) {
        const uint32_t r = kn_bf16_random(&key, index0 + i);
        const uint16_t wm = nearest ? bf16_rne_ref(m1[i]) : bf16_sr_ref(m1[i], r & 0xffffu);
        const uint16_t wv = nearest ? bf16_rne_ref(v1[i]) : bf16_sr_ref(v1[i], r >> 16);
        if (m[i] != wm || v[i] != wv) {
            print_error("level %s, n %zu, index0 %llu, %s: element %zu stores m %#06x v %#06x, "
                        "want %#06x %#06x (fp32 %.9g %.9g, random bits %#010x)\n", ctx.level,
                        n, (unsigned long long)index0, nearest ? "nearest" : "stochastic", i,
                        (unsigned)m[i], (unsigned)v[i], (unsigned)wm, (unsigned)wv, m1[i],
                        v1[i], (unsigned)r);
            fail();
        }
    }
    free(m1);
    free(v1);
    buf_free(&bt);
    buf_free(&bm);
    buf_free(&bv);
    buf_free(&bg);
}

static void test_amo_bf16_stream(void **state)
{
    (void)state;
    static const size_t sizes[] = { 200, 1000, 4099 };
    FOR_EACH_BF16_LEVEL(lv) {
        Rng rng = { 5 };
        for (int nearest = 0; nearest <= 1; nearest++) {
            for (size_t n = 0; n <= 67; n++)
                check_bf16_stream(n, n % 2 ? (1ull << 32) - 30 : n * 1000003, nearest, 1, &rng);
            for (size_t k = 0; k < ARRAY_LEN(sizes); k++)
                check_bf16_stream(sizes[k], (1ull << 32) - 100 + k, nearest, 3, &rng);
        }
        print_level_ok(lv, "amo_bf16 random stream", KN_K_AMO_BF16);
    }
}

/* A NaN or infinite theta, with and without bounds: the formula gives NaN
 * for theta and both moments (l2 * theta is 0 * Inf or NaN even with l2 = 0,
 * and the clamp keeps a NaN), while the other elements stay finite.  The
 * unbounded kernels skip the clamp, so this is also what shows that skipping
 * it lets NaN through as the clamp did. */
static void check_amo_nonfinite(size_t n, int bf16, int bounded)
{
    static const float bad[] = { NAN, INFINITY, -INFINITY };
    Buf bt, bm, bv, bg;
    float *th = buf_f32(&bt, n, 1), *g = buf_f32(&bg, n, 2);
    void *m = buf_alloc(&bm, n, bf16 ? 2 : 4, 3), *v = buf_alloc(&bv, n, bf16 ? 2 : 4, 1);
    KnAmoArgs a = kn_amo_args_default();
    if (bounded) {
        a.lo = -0.5f;
        a.hi = 0.5f;
    }
    FOR_EACH_BF16_LEVEL(lv) {
        Rng rng = { n + 17 };
        for (size_t i = 0; i < n; i++) {
            th[i] = (float)(0.1 * rng_normal(&rng));
            g[i] = (float)(1e-2 * rng_normal(&rng));
            if (bf16) {
                ((uint16_t *)m)[i] = bf16_rne_ref(g[i]);
                ((uint16_t *)v)[i] = bf16_rne_ref(g[i] * g[i]);
            } else {
                ((float *)m)[i] = g[i];
                ((float *)v)[i] = g[i] * g[i];
            }
        }
        for (size_t i = 0; i < n; i += 7)
            th[i] = bad[(i / 7) % 3];
        const KnBf16Round r = { .seed = 3, .step = 1 };
        assert_int_equal(bf16 ? kn_amo_update_bf16(th, m, v, g, n, &a, &r, 1)
                              : kn_amo_update(th, m, v, g, n, &a, 1), AMO_OK);
        for (size_t i = 0; i < n; i++) {
            const float mi = bf16 ? bf16_value(((uint16_t *)m)[i]) : ((float *)m)[i];
            const float vi = bf16 ? bf16_value(((uint16_t *)v)[i]) : ((float *)v)[i];
            const int want_nan = i % 7 == 0;
            if (want_nan ? !(isnan(th[i]) && isnan(mi) && isnan(vi))
                         : !(isfinite(th[i]) && isfinite(mi) && isfinite(vi))) {
                print_error("level %s, %s, %s, n %zu: element %zu (theta in %s) gives theta %g "
                            "m %g v %g\n", lv->name, bf16 ? "amo_bf16" : "amo",
                            bounded ? "bounds" : "no bounds", n, i,
                            want_nan ? "NaN/Inf" : "finite", (double)th[i], (double)mi,
                            (double)vi);
                fail();
            }
        }
    }
    buf_free(&bt);
    buf_free(&bm);
    buf_free(&bv);
    buf_free(&bg);
}

static void test_amo_nonfinite_theta(void **state)
{
    (void)state;
    static const size_t sizes[] = { 5, 37, 100 };
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++)
        for (int bf16 = 0; bf16 <= 1; bf16++)
            for (int bounded = 0; bounded <= 1; bounded++)
                check_amo_nonfinite(sizes[k], bf16, bounded);
}

/* ---- SGD ------------------------------------------------------------------------ */

typedef struct SgdCase {
    const char *name;
    KnSgdArgs args;
    int null_buf; /* momentum 0: pass NULL for the buffer */
} SgdCase;

static void sgd_run(const void *kcase, State *st, size_t n, int steps, uint64_t seed,
                    int nthreads, int check)
{
    const SgdCase *c = kcase;
    float *th = st->p[0], *buf = st->p[1];
    Rng rng = { seed };
    fill_theta(&rng, th, n);
    /* The first step must set the buffer without reading it, and momentum 0
     * must not touch it: NaN shows either. */
    for (size_t i = 0; i < n; i++)
        buf[i] = NAN;
    Buf bg, bp;
    float *g = buf_f32(&bg, n, 1), *prev = buf_f32(&bp, 2 * n, 0);
    for (int s = 0; s < steps; s++) {
        KnSgdArgs a = c->args;
        a.first = s == 0;
        fill_grad_step(seed, s, g, n);
        if (check) {
            memcpy(prev, th, n * sizeof(float));
            memcpy(prev + n, buf, n * sizeof(float));
        }
        assert_int_equal(kn_sgd_update(th, c->null_buf ? NULL : buf, g, n, &a, nthreads), AMO_OK);
        if (!check)
            continue;
        ctx.step = s;
        for (size_t i = 0; i < n; i++) {
            Out ot, ob;
            sgd_oracle(&a, prev[i], prev[n + i], g[i], &ot, &ob);
            check_near("theta", i, th[i], ot);
            if (a.momentum != 0.0f)
                check_near("buf", i, buf[i], ob);
            check_bounds(i, th[i], a.lo, a.hi);
        }
        if (c->args.momentum == 0.0f)
            check_same_bytes("buf", buf, prev + n, sizeof(float), n, "with momentum 0");
    }
    buf_free(&bg);
    buf_free(&bp);
}

static const size_t sgd_elem[] = { sizeof(float), sizeof(float) };

static KnSgdArgs sgd_args(float lr, float momentum, float dampening, int nesterov)
{
    return (KnSgdArgs){ .lr = lr, .momentum = momentum, .dampening = dampening,
                        .nesterov = nesterov, .grad_scale = 1.0f, .lo = -INFINITY,
                        .hi = INFINITY };
}

static void test_sgd(void **state)
{
    (void)state;
    SgdCase cases[] = {
        { "sgd", sgd_args(1e-2f, 0.0f, 0.0f, 0), 1 },
        { "sgd momentum 0, buffer given, clip, l2, decay, bounds", sgd_args(1e-1f, 0, 0, 0), 0 },
        { "sgd momentum", sgd_args(1e-2f, 0.9f, 0.0f, 0), 0 },
        { "sgd momentum, dampening", sgd_args(1e-2f, 0.9f, 0.1f, 0), 0 },
        { "sgd nesterov, clip, l2, decay", sgd_args(1e-2f, 0.9f, 0.0f, 1), 0 },
    };
    cases[1].args.grad_scale = 0.5f;
    cases[1].args.l2 = 1e-3f;
    cases[1].args.decay = 1e-4f;
    cases[1].args.lo = -1.0f;
    cases[1].args.hi = 0.5f;
    cases[4].args.grad_scale = 0.75f;
    cases[4].args.l2 = 1e-2f;
    cases[4].args.decay = 1e-3f;
    FOR_EACH_LEVEL(lv) {
        for (size_t c = 0; c < ARRAY_LEN(cases); c++)
            check_all_sizes(sgd_run, &cases[c], cases[c].name, 2, sgd_elem, c == 4,
                            1000 * c + 4);
        print_level_ok(lv, "sgd (momentum 0, dampening, nesterov, first step)", KN_K_SGD);
    }
}

/* ---- RMSprop -------------------------------------------------------------------- */

typedef struct RmsCase {
    const char *name;
    KnRmspropArgs args;
    int null_buf; /* momentum 0: pass NULL for the buffer */
} RmsCase;

static void rmsprop_run(const void *kcase, State *st, size_t n, int steps, uint64_t seed,
                        int nthreads, int check)
{
    const RmsCase *c = kcase;
    float *th = st->p[0], *v = st->p[1], *buf = st->p[2];
    const int mom = c->args.momentum > 0.0f;
    Rng rng = { seed };
    fill_theta(&rng, th, n);
    fill_second_moment(&rng, v, n);
    if (mom)
        fill_first_moment(&rng, buf, n);
    else
        for (size_t i = 0; i < n; i++)
            buf[i] = NAN; /* must stay untouched */
    Buf bg, bp;
    float *g = buf_f32(&bg, n, 1), *prev = buf_f32(&bp, 3 * n, 0);
    for (int s = 0; s < steps; s++) {
        fill_grad_step(seed, s, g, n);
        if (check) {
            memcpy(prev, th, n * sizeof(float));
            memcpy(prev + n, v, n * sizeof(float));
            memcpy(prev + 2 * n, buf, n * sizeof(float));
        }
        assert_int_equal(kn_rmsprop_update(th, v, c->null_buf ? NULL : buf, g, n, &c->args,
                                           nthreads), AMO_OK);
        if (!check)
            continue;
        ctx.step = s;
        for (size_t i = 0; i < n; i++) {
            Out ot, ov, ob;
            rmsprop_oracle(&c->args, prev[i], prev[n + i], prev[2 * n + i], g[i], &ot, &ov, &ob);
            check_near("theta", i, th[i], ot);
            check_near("v", i, v[i], ov);
            if (mom)
                check_near("buf", i, buf[i], ob);
            check_bounds(i, th[i], c->args.lo, c->args.hi);
        }
        if (!mom)
            check_same_bytes("buf", buf, prev + 2 * n, sizeof(float), n, "with momentum 0");
    }
    buf_free(&bg);
    buf_free(&bp);
}

static const size_t rmsprop_elem[] = { sizeof(float), sizeof(float), sizeof(float) };

static KnRmspropArgs rmsprop_args(float lr, float alpha, float eps, float momentum)
{
    return (KnRmspropArgs){ .lr = lr, .alpha = alpha, .eps = eps, .momentum = momentum,
                            .grad_scale = 1.0f, .lo = -INFINITY, .hi = INFINITY };
}

static void test_rmsprop(void **state)
{
    (void)state;
    RmsCase cases[] = {
        { "rmsprop", rmsprop_args(1e-2f, 0.99f, 1e-8f, 0.0f), 1 },
        { "rmsprop momentum 0, buffer given", rmsprop_args(1e-3f, 0.9f, 1e-6f, 0.0f), 0 },
        { "rmsprop momentum", rmsprop_args(1e-2f, 0.99f, 1e-8f, 0.9f), 0 },
        { "rmsprop momentum, clip, l2, decay, bounds", rmsprop_args(1e-2f, 0.95f, 1e-7f, 0.5f),
          0 },
    };
    cases[3].args.grad_scale = 0.5f;
    cases[3].args.l2 = 1e-3f;
    cases[3].args.decay = 1e-4f;
    cases[3].args.lo = -0.5f;
    cases[3].args.hi = 0.5f;
    FOR_EACH_LEVEL(lv) {
        for (size_t c = 0; c < ARRAY_LEN(cases); c++)
            check_all_sizes(rmsprop_run, &cases[c], cases[c].name, 3, rmsprop_elem, c == 2,
                            1000 * c + 5);
        print_level_ok(lv, "rmsprop (with and without momentum)", KN_K_RMSPROP);
    }
}

/* ---- sum of squares ------------------------------------------------------------ */

/* The order of the sum is fixed by n alone (update.h), so every level and
 * every thread count must give the bits of the first run; the value must
 * be within 1e-12 relative of the compensated oracle. */
static void check_sumsq_size(size_t n, int wide, uint64_t seed)
{
    Buf bx;
    float *x = buf_f32(&bx, n, 1);
    Rng rng = { seed };
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = rng_u32(&rng) % 8;
        x[i] = u == 0 ? awkward(&rng) : (float)rng_normal(&rng);
        if (!wide && fabsf(x[i]) > 1e3f)
            x[i] = 1.5f; /* no 1e18: its square would hide every other term */
    }
    const double want = sumsq_oracle(x, n);
    double first = 0.0;
    int have_first = 0;
    FOR_EACH_LEVEL(lv) {
        for (size_t t = 0; t <= ARRAY_LEN(thread_counts); t++) {
            const int nt = t == 0 ? 1 : thread_counts[t - 1];
            double got = -1.0;
            assert_int_equal(kn_sumsq(x, n, nt, &got), AMO_OK);
            if (!have_first) {
                first = got;
                have_first = 1;
                if (!(fabs(got - want) <= 1e-12 * want)) {
                    print_error("n %zu: kn_sumsq %.17g, oracle %.17g\n", n, got, want);
                    fail();
                }
            } else if (memcmp(&got, &first, sizeof got) != 0) {
                print_error("level %s, n %zu, nthreads %d: kn_sumsq %.17g, but %.17g at the "
                            "first level with one thread\n", lv->name, n, nt, got, first);
                fail();
            }
        }
    }
    buf_free(&bx);
}

/* A NaN or an Inf anywhere: AMO_ENONFINITE, and the sum is not finite. */
static void check_sumsq_nonfinite(size_t n)
{
    static const float bad[] = { NAN, INFINITY, -INFINITY };
    Buf bx;
    float *x = buf_f32(&bx, n, 1);
    Rng rng = { n };
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rng_normal(&rng);
    const size_t where[] = { 0, n / 2, n - 1 };
    FOR_EACH_LEVEL(lv) {
        for (size_t w = 0; w < ARRAY_LEN(where); w++)
            for (size_t b = 0; b < ARRAY_LEN(bad); b++) {
                if (n == LARGE_N && w != b) /* keep the large size cheap */
                    continue;
                const float keep = x[where[w]];
                x[where[w]] = bad[b];
                for (int nt = 1; nt <= 3; nt += 2) {
                    double got = 0.0;
                    assert_int_equal(kn_sumsq(x, n, nt, &got), AMO_ENONFINITE);
                    assert_false(isfinite(got));
                }
                x[where[w]] = keep;
            }
    }
    buf_free(&bx);
}

static void test_sumsq(void **state)
{
    (void)state;
    static const size_t sizes[] = { 100, 1000, 65535, 65536, 65537, 2 * 65536 + 5, LARGE_N };
    for (size_t n = 0; n <= 67; n++) {
        check_sumsq_size(n, 0, n + 1);
        check_sumsq_size(n, 1, n + 101);
    }
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        check_sumsq_size(sizes[k], 0, k + 201);
        if (sizes[k] != LARGE_N)
            check_sumsq_size(sizes[k], 1, k + 301);
    }
    static const size_t bad_sizes[] = { 1, 2, 31, 33, 67, 1000, 65537, LARGE_N };
    for (size_t k = 0; k < ARRAY_LEN(bad_sizes); k++)
        check_sumsq_nonfinite(bad_sizes[k]);
    FOR_EACH_LEVEL(lv)
        print_level_ok(lv, "sumsq (same bits at every level and thread count)", KN_K_SUMSQ);
}

/* ---- bf16 conversions ------------------------------------------------------------ */

typedef struct Bf16Pair { uint32_t f32; uint16_t bf16; } Bf16Pair;

static void test_bf16_conversions(void **state)
{
    (void)state;
    /* Round to nearest even, one case per rule of update.h. */
    static const Bf16Pair rne[] = {
        { 0x3f808000u, 0x3f80 }, /* tie, kept part even: down        */
        { 0x3f818000u, 0x3f82 }, /* tie, kept part odd: up           */
        { 0xbf808000u, 0xbf80 }, /* negative ties, both ways        */
        { 0xbf818000u, 0xbf82 },
        { 0x3f807fffu, 0x3f80 }, /* just below a tie                 */
        { 0x3f808001u, 0x3f81 }, /* just above a tie                 */
        { 0xbf808001u, 0xbf81 },
        { 0x3f80ffffu, 0x3f81 },
        { 0x3fffffffu, 0x4000 }, /* carries into the exponent        */
        { 0x7f800001u, 0x7fc0 }, /* signalling NaN, low payload: quiet, not Inf */
        { 0xff800001u, 0xffc0 }, /* negative signalling NaN          */
        { 0x7fa00000u, 0x7fe0 }, /* signalling NaN, top payload kept */
        { 0x7fc00000u, 0x7fc0 }, /* quiet NaN                        */
        { 0xffc12345u, 0xffc1 },
        { 0x7f800000u, 0x7f80 }, /* +-Inf                            */
        { 0xff800000u, 0xff80 },
        { 0x00000000u, 0x0000 }, /* +-0                              */
        { 0x80000000u, 0x8000 },
        { 0x00000001u, 0x0000 }, /* denormals: zero of the same sign */
        { 0x807fffffu, 0x8000 },
        { 0x007fffffu, 0x0000 }, /* not the smallest normal          */
        { 0x00800000u, 0x0080 }, /* smallest normal                  */
        { 0x7f7fffffu, 0x7f80 }, /* largest finite: rounds to Inf    */
        { 0xff7f8000u, 0xff80 }, /* tie at the top, odd: -Inf        */
        { 0x7f7f7fffu, 0x7f7f },
    };
    for (size_t k = 0; k < ARRAY_LEN(rne); k++) {
        const float f = f32_from_bits(rne[k].f32);
        assert_int_equal(bf16_rne_ref(f), rne[k].bf16); /* the reference itself */
        if (kn_f32_to_bf16_rne(f) != rne[k].bf16) {
            print_error("kn_f32_to_bf16_rne(%#010x) = %#06x, want %#06x\n",
                        (unsigned)rne[k].f32, (unsigned)kn_f32_to_bf16_rne(f),
                        (unsigned)rne[k].bf16);
            fail();
        }
    }
    /* Stochastic: the extreme random bits, on the same values. */
    static const uint32_t sr_r[] = { 0, 1, 0x7fff, 0x8000, 0xffff };
    for (size_t k = 0; k < ARRAY_LEN(rne); k++)
        for (size_t j = 0; j < ARRAY_LEN(sr_r); j++) {
            const float f = f32_from_bits(rne[k].f32);
            assert_int_equal(kn_f32_to_bf16_sr(f, sr_r[j]), bf16_sr_ref(f, sr_r[j]));
        }
    assert_int_equal(kn_f32_to_bf16_sr(f32_from_bits(0x7f7fffffu), 0xffff), 0x7f80);
    assert_int_equal(kn_f32_to_bf16_sr(f32_from_bits(0x7f7fffffu), 0), 0x7f7f);
    assert_int_equal(kn_f32_to_bf16_sr(f32_from_bits(0x3f800001u), 0xffff), 0x3f81);
    assert_int_equal(kn_f32_to_bf16_sr(f32_from_bits(0x3f800001u), 0xfffe), 0x3f80);
    assert_int_equal(kn_f32_to_bf16_sr(f32_from_bits(0x807fffffu), 0xffff), 0x8000);
    assert_int_equal(kn_f32_to_bf16_sr(f32_from_bits(0x7f800001u), 0xffff), 0x7fc0);

    /* Random bit patterns (NaNs and denormals included). */
    Rng rng = { 11 };
    for (int k = 0; k < 1 << 20; k++) {
        const uint32_t u = rng_u32(&rng), r = rng_u32(&rng) & 0xffffu;
        const float f = f32_from_bits(u);
        if (kn_f32_to_bf16_rne(f) != bf16_rne_ref(f) || kn_f32_to_bf16_sr(f, r) != bf16_sr_ref(f, r)) {
            print_error("%#010x (r %#06x): rne %#06x sr %#06x, want %#06x %#06x\n", (unsigned)u,
                        (unsigned)r, (unsigned)kn_f32_to_bf16_rne(f),
                        (unsigned)kn_f32_to_bf16_sr(f, r), (unsigned)bf16_rne_ref(f),
                        (unsigned)bf16_sr_ref(f, r));
            fail();
        }
    }

    /* bf16 -> fp32 is exact: all 65536 patterns, compared as bits. */
    for (uint32_t h = 0; h <= 0xffffu; h++)
        assert_int_equal(f32_bits(kn_bf16_to_f32((uint16_t)h)), h << 16);
}

/* Stochastic rounding is unbiased: over all 65536 random values the mean
 * is exactly the input, and over random draws close to it; each result is
 * one of the two bf16 neighbours. */
static void test_bf16_sr_unbiased(void **state)
{
    (void)state;
    static const float xs[] = { 0.1f, -3.14159265f, 1234.567f, 1e-30f, -7.77e25f, 1.00390625f };
    Rng rng = { 17 };
    for (size_t k = 0; k < ARRAY_LEN(xs); k++) {
        const float x = xs[k];
        const uint32_t u = f32_bits(x);
        const double below = bf16_value((uint16_t)(u >> 16));         /* toward zero */
        const double above = bf16_value((uint16_t)((u >> 16) + 1));   /* away        */
        double sum = 0.0;
        for (uint32_t r = 0; r <= 0xffffu; r++) {
            const double y = bf16_value(kn_f32_to_bf16_sr(x, r));
            assert_true(y == below || y == above);
            sum += y; /* exact: all terms share an exponent within 1 */
        }
        assert_true(sum / 65536.0 == (double)x);
        enum { DRAWS = 200000 };
        double mean = 0.0;
        for (int d = 0; d < DRAWS; d++)
            mean += bf16_value(kn_f32_to_bf16_sr(x, rng_u32(&rng) & 0xffffu));
        mean /= DRAWS;
        /* sd of the mean <= ulp/2 / sqrt(DRAWS) <= 2^-8 / 447 ~ 9e-6 relative */
        const double rel = fabs(mean / x - 1.0);
        print_message("sr of %.9g: mean of %d draws off by %.2e relative\n", (double)x, DRAWS, rel);
        assert_true(rel < 1e-4);
    }
}

/* ---- the rounding stream ------------------------------------------------------------ */

/* The portable AES round is AES: FIPS-197, appendix B, round 1 (the state
 * at its start, the round key, the state at the start of round 2). */
static void test_aes_round(void **state)
{
    (void)state;
    uint8_t s[16] = { 0x19, 0x3d, 0xe3, 0xbe, 0xa0, 0xf4, 0xe2, 0x2b,
                      0x9a, 0xc6, 0x8d, 0x2a, 0xe9, 0xf8, 0x48, 0x08 };
    static const uint8_t k[16] = { 0xa0, 0xfa, 0xfe, 0x17, 0x88, 0x54, 0x2c, 0xb1,
                                   0x23, 0xa3, 0x39, 0x39, 0x2a, 0x6c, 0x76, 0x05 };
    static const uint8_t want[16] = { 0xa4, 0x9c, 0x7f, 0xf2, 0x68, 0x9f, 0x35, 0x2b,
                                      0x6b, 0x5b, 0xea, 0x43, 0x02, 0x6a, 0x50, 0x49 };
    kn_aes_enc_round(s, k);
    assert_memory_equal(s, want, 16);
}

/* Pearson correlation of n pairs. */
static double corr(const double *x, const double *y, size_t n)
{
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        mx += x[i] / (double)n;
        my += y[i] / (double)n;
    }
    for (size_t i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxy / sqrt(sxx * syy);
}

/* Chi-square of the top 8 bits of n 16-bit values against uniform. */
static double chi2_256(const double *x, size_t n)
{
    double count[256] = { 0 }, c2 = 0.0;
    for (size_t i = 0; i < n; i++)
        count[(unsigned)x[i] >> 8] += 1.0;
    for (int b = 0; b < 256; b++)
        c2 += (count[b] - n / 256.0) * (count[b] - n / 256.0) / (n / 256.0);
    return c2;
}

/* The 16-bit halves of the stream (bf16.h) are uniform and uncorrelated
 * where the training uses them together: along a tensor in one step (the
 * neighbours, the words of a block, m's bits against v's), and for one
 * element from step to step; and the rounding it drives is unbiased over
 * steps.  Bounds: chi-square with 255 degrees of freedom below 400 (mean
 * 255, sd 22.6), correlations within 6 / sqrt(n). */
static void test_bf16_stream_stats(void **state)
{
    (void)state;
    enum { N = 1 << 18, STEPS = 1 << 16 };
    static double m16[N], v16[N];
    const KnBf16Round rd = { .seed = 42, .step = 7 };
    const KnBf16Key key = kn_bf16_key(&rd);
    for (size_t i = 0; i < N; i++) {
        const uint32_t r = kn_bf16_random(&key, (1ull << 32) - N / 2 + i); /* wraps */
        m16[i] = r & 0xffff;
        v16[i] = r >> 16;
    }
    const double bound = 6.0 / sqrt((double)N);
    const double c[] = { corr(m16, m16 + 1, N - 1), corr(v16, v16 + 1, N - 1),
                         corr(m16, v16, N), corr(m16, m16 + 4, N - 4),
                         corr(m16, v16 + 1, N - 1), corr(v16, v16 + 64, N - 64) };
    print_message("stream, one step: chi2 m %.1f v %.1f; corr next %.2e %.2e, m-v %.2e, "
                  "block +4 %.2e, m-v next %.2e, v +64 %.2e (bound %.2e)\n", chi2_256(m16, N),
                  chi2_256(v16, N), c[0], c[1], c[2], c[3], c[4], c[5], bound);
    assert_true(chi2_256(m16, N) < 400.0 && chi2_256(v16, N) < 400.0);
    for (size_t k = 0; k < ARRAY_LEN(c); k++)
        assert_true(fabs(c[k]) < bound);

    /* one element over steps: uniform, independent, unbiased rounding */
    static double ms[STEPS], vs[STEPS];
    const float x = 0.1f; /* the dropped half is 0xcccd of 65536 */
    double mean = 0.0;
    for (size_t t = 0; t < STEPS; t++) {
        const KnBf16Round rt = { .seed = 42, .step = t };
        const KnBf16Key kt = kn_bf16_key(&rt);
        const uint32_t r = kn_bf16_random(&kt, 12345);
        ms[t] = r & 0xffff;
        vs[t] = r >> 16;
        mean += bf16_value(kn_f32_to_bf16_sr(x, r & 0xffff)) / STEPS;
    }
    const double sb = 6.0 / sqrt((double)STEPS), rel = fabs(mean / x - 1.0);
    print_message("stream, one element over %d steps: chi2 m %.1f v %.1f; corr next step %.2e "
                  "%.2e, m-v %.2e (bound %.2e); sr of %.9g: mean off by %.2e relative\n", STEPS,
                  chi2_256(ms, STEPS), chi2_256(vs, STEPS), corr(ms, ms + 1, STEPS - 1),
                  corr(vs, vs + 1, STEPS - 1), corr(ms, vs, STEPS), sb, (double)x, rel);
    assert_true(chi2_256(ms, STEPS) < 400.0 && chi2_256(vs, STEPS) < 400.0);
    assert_true(fabs(corr(ms, ms + 1, STEPS - 1)) < sb && fabs(corr(vs, vs + 1, STEPS - 1)) < sb);
    assert_true(fabs(corr(ms, vs, STEPS)) < sb);
    /* sd of the mean: ulp / 2 / sqrt(STEPS) ~ 2^-8 / 256 relative */
    assert_true(rel < 1e-4);
}

/* ---- bf16 moments in training ----------------------------------------------------- */

/* |a - b| / |a - ref| over N elements. */
static double rel_dist(const float *a, const float *b, const float *ref, size_t n)
{
    double d2 = 0.0, r2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        d2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r2 += ((double)a[i] - (ref ? ref[i] : 0.0f)) * ((double)a[i] - (ref ? ref[i] : 0.0f));
    }
    return sqrt(d2 / r2);
}

/* Noisy quadratic f(theta) = 1/2 sum c_i theta_i^2, gradient c_i theta_i
 * + noise: AMO with fp32 moments and with stochastically rounded bf16
 * moments, from the same start with the same noise, must stay close.
 * (Rounding to nearest is run too, for the log: it drifts 4x further.) */
static void test_bf16_quadratic(void **state)
{
    (void)state;
    enum { N = 4096, STEPS = 1000 };
    static float c[N], th0[N], tha[N], ma[N], va[N], thb[N], ga[N], gb[N], thc[N], gc[N];
    static uint16_t mb[N], vb[N], mc[N], vc[N];
    Rng rng = { 2024 };
    for (size_t i = 0; i < N; i++) {
        c[i] = (float)exp(log(0.1) + rng_uniform(&rng) * log(100.0)); /* 0.1 .. 10 */
        th0[i] = (float)rng_normal(&rng);
    }
    const KnAmoArgs a = kn_amo_args_default();
    FOR_EACH_BF16_LEVEL(lv) {
        memcpy(tha, th0, sizeof th0);
        memcpy(thb, th0, sizeof th0);
        memcpy(thc, th0, sizeof th0);
        memset(ma, 0, sizeof ma);
        memset(va, 0, sizeof va);
        memset(mb, 0, sizeof mb);
        memset(vb, 0, sizeof vb);
        memset(mc, 0, sizeof mc);
        memset(vc, 0, sizeof vc);
        KnBf16Round sr = { .seed = 77 }, rne = { .seed = 77, .nearest = 1 };
        Rng noise = { 4242 };
        for (int t = 0; t < STEPS; t++) {
            for (size_t i = 0; i < N; i++) {
                const float xi = (float)(0.5 * rng_normal(&noise));
                ga[i] = c[i] * tha[i] + xi;
                gb[i] = c[i] * thb[i] + xi;
                gc[i] = c[i] * thc[i] + xi;
            }
            sr.step = rne.step = (uint64_t)t;
            assert_int_equal(kn_amo_update(tha, ma, va, ga, N, &a, 1), AMO_OK);
            assert_int_equal(kn_amo_update_bf16(thb, mb, vb, gb, N, &a, &sr, 1), AMO_OK);
            assert_int_equal(kn_amo_update_bf16(thc, mc, vc, gc, N, &a, &rne, 1), AMO_OK);
        }
        double f0 = 0, fa = 0, fb = 0;
        for (size_t i = 0; i < N; i++) {
            f0 += 0.5 * c[i] * th0[i] * th0[i];
            fa += 0.5 * c[i] * tha[i] * tha[i];
            fb += 0.5 * c[i] * thb[i] * thb[i];
        }
        const double rel = rel_dist(tha, thb, NULL, N), rel_move = rel_dist(tha, thb, th0, N);
        print_message("level %s: noisy quadratic, %d steps: |theta_bf16 - theta_fp32| = %.2e "
                      "|theta_fp32| = %.2e |theta_fp32 - theta_0| (nearest: %.2e, %.2e); "
                      "f %.4g -> fp32 %.4g, bf16 %.4g\n", lv->name, STEPS, rel, rel_move,
                      rel_dist(tha, thc, NULL, N), rel_dist(tha, thc, th0, N), f0, fa, fb);
        /* Measured 0.82% and 0.35% at every level (nearest: 3.4% and 1.4%):
         * the bounds leave stochastic rounding 3x room and fail nearest. */
        assert_true(fa < 0.1 * f0); /* it did train */
        assert_true(rel < 0.025);
        assert_true(rel_move < 0.012);
        assert_true(fabs(fb / fa - 1.0) < 0.02);
    }
}

/* Round to nearest freezes v when gamma is close to 1 (update.h): after 200
 * steps of |g| = 1 and 2000 of |g| = 0.01 with gamma 0.999, fp32 v has
 * decayed to about 0.025; stochastic rounding follows it, nearest stays
 * near the 0.18 it had. */
static void test_bf16_freeze(void **state)
{
    (void)state;
    enum { N = 1024, LOUD = 200, QUIET = 2000 };
    static float tha[N], ma[N], va[N], thb[N], thc[N], g[N];
    static uint16_t mb[N], vb[N], mc[N], vc[N];
    const KnAmoArgs a = kn_amo_args_default(); /* gamma 0.999 */
    FOR_EACH_BF16_LEVEL(lv) {
        memset(tha, 0, sizeof tha);
        memset(ma, 0, sizeof ma);
        memset(va, 0, sizeof va);
        memset(thb, 0, sizeof thb);
        memset(thc, 0, sizeof thc);
        memset(mb, 0, sizeof mb);
        memset(vb, 0, sizeof vb);
        memset(mc, 0, sizeof mc);
        memset(vc, 0, sizeof vc);
        Rng rng = { 31337 };
        KnBf16Round sr = { .seed = 5 }, rne = { .seed = 5, .nearest = 1 };
        for (int t = 0; t < LOUD + QUIET; t++) {
            const float mag = t < LOUD ? 1.0f : 0.01f;
            for (size_t i = 0; i < N; i++)
                g[i] = rng_u32(&rng) & 1 ? mag : -mag;
            sr.step = rne.step = (uint64_t)t;
            assert_int_equal(kn_amo_update(tha, ma, va, g, N, &a, 1), AMO_OK);
            assert_int_equal(kn_amo_update_bf16(thb, mb, vb, g, N, &a, &sr, 1), AMO_OK);
            assert_int_equal(kn_amo_update_bf16(thc, mc, vc, g, N, &a, &rne, 1), AMO_OK);
        }
        double vf = 0, vs = 0, vn = 0;
        for (size_t i = 0; i < N; i++) {
            vf += va[i] / N;
            vs += bf16_value(vb[i]) / N;
            vn += bf16_value(vc[i]) / N;
        }
        print_message("level %s: v after %d loud and %d quiet steps: fp32 %.5f, bf16 "
                      "stochastic %.5f (%+.2f%%), bf16 nearest %.5f (%.1fx: frozen)\n", lv->name,
                      LOUD, QUIET, vf, vs, 100.0 * (vs / vf - 1.0), vn, vn / vf);
        assert_true(fabs(vs / vf - 1.0) < 0.10);
        assert_true(vn > 3.0 * vf);
    }
}

/* m under a steady gradient g, from 0, for beta 0.9 (250 steps) and 0.99
 * (2500): fp32 m reaches g (to 1e-11), and so must bf16 m on average.
 * Rounding m to nearest stalls where a step, (1 - beta) |g - m|, falls
 * under half a bf16 spacing: about 5 spacings short of g at 0.9 (2-4%)
 * but 50 at 0.99 (20-40%), which is why m is rounded stochastically too. */
static void test_bf16_m_steady(void **state)
{
    (void)state;
    enum { N = 1024 };
    static float th[N], g[N];
    static uint16_t m[2][N], v[2][N];
    static const float betas[] = { 0.9f, 0.99f };
    Rng rng = { 808 };
    for (size_t i = 0; i < N; i++) /* magnitudes 1e-4 .. 1, both signs */
        g[i] = (float)((rng_u32(&rng) & 1 ? 1.0 : -1.0) * pow(10.0, -4.0 * rng_uniform(&rng)));
    FOR_EACH_BF16_LEVEL(lv) {
        for (size_t b = 0; b < ARRAY_LEN(betas); b++) {
            KnAmoArgs a = kn_amo_args_default();
            a.beta = betas[b];
            memset(th, 0, sizeof th);
            memset(m, 0, sizeof m);
            memset(v, 0, sizeof v);
            const int steps = b == 0 ? 250 : 2500;
            for (int t = 0; t < steps; t++)
                for (int nearest = 0; nearest <= 1; nearest++) {
                    const KnBf16Round rd = { .seed = 3, .step = (uint64_t)t, .nearest = nearest };
                    assert_int_equal(kn_amo_update_bf16(th, m[nearest], v[nearest], g, N, &a,
                                                        &rd, 1), AMO_OK);
                }
            double sr = 0.0, rne = 0.0, rne_worst = 1.0;
            for (size_t i = 0; i < N; i++) {
                sr += bf16_value(m[0][i]) / g[i] / N;
                rne += bf16_value(m[1][i]) / g[i] / N;
                rne_worst = fmin(rne_worst, bf16_value(m[1][i]) / g[i]);
            }
            print_message("level %s: m / g after %d steps of a steady g at beta %.2f: "
                          "stochastic %.5f, nearest %.5f (worst %.3f)\n", lv->name, steps,
                          (double)a.beta, sr, rne, rne_worst);
            assert_true(fabs(sr - 1.0) < 2e-3); /* 1024 draws of a fraction of 2^-8 */
            if (b == 1)
                assert_true(rne < 0.9); /* nearest stalls at 0.99 */
        }
    }
}

/* ---- argument checks ---------------------------------------------------------------- */

enum { BAD_N = 100 };

/* Every buffer of the bad-input tests lives in one arena, so "nothing
 * written" is a single comparison. */
typedef struct Arena {
    float f[6 * BAD_N];
    float copy[6 * BAD_N];
} Arena;

static void arena_reset(Arena *ar)
{
    for (size_t i = 0; i < ARRAY_LEN(ar->f); i++)
        ar->f[i] = 0.25f + (float)(i % 7);
    memcpy(ar->copy, ar->f, sizeof ar->f);
}

static void expect_status_untouched(AmoStatus got, AmoStatus want, const Arena *ar, const char *what)
{
    if (got != want) {
        print_error("%s: status %s, want %s\n", what, amo_status_str(got), amo_status_str(want));
        fail();
    }
    if (memcmp(ar->f, ar->copy, sizeof ar->f) != 0) {
        print_error("%s: returned %s but wrote to a buffer\n", what, amo_status_str(got));
        fail();
    }
}

/* A float field of an args struct, poisoned with a non-finite value. */
typedef struct Field { const char *name; size_t offset; } Field;

#define FIELD(T, f) { #f, offsetof(T, f) }

static const Field amo_fields[] = {
    FIELD(KnAmoArgs, lr), FIELD(KnAmoArgs, beta), FIELD(KnAmoArgs, gamma),
    FIELD(KnAmoArgs, eps), FIELD(KnAmoArgs, v_scale), FIELD(KnAmoArgs, grad_scale),
    FIELD(KnAmoArgs, l2), FIELD(KnAmoArgs, decay),
};
static const Field sgd_fields[] = {
    FIELD(KnSgdArgs, lr), FIELD(KnSgdArgs, momentum), FIELD(KnSgdArgs, dampening),
    FIELD(KnSgdArgs, grad_scale), FIELD(KnSgdArgs, l2), FIELD(KnSgdArgs, decay),
};
static const Field rmsprop_fields[] = {
    FIELD(KnRmspropArgs, lr), FIELD(KnRmspropArgs, alpha), FIELD(KnRmspropArgs, eps),
    FIELD(KnRmspropArgs, momentum), FIELD(KnRmspropArgs, grad_scale),
    FIELD(KnRmspropArgs, l2), FIELD(KnRmspropArgs, decay),
};

static void set_field(void *args, size_t offset, float value)
{
    memcpy((char *)args + offset, &value, sizeof value);
}

/* The bad scalar values and bounds, given a call on a copy of the args. */
typedef AmoStatus (*CallFn)(Arena *ar, const void *args);

static void check_bad_scalars(CallFn call, Arena *ar, const void *good, size_t size,
                              size_t lo_off, size_t hi_off, const Field *fields, size_t nfields,
                              const char *kernel)
{
    static const float bad[] = { NAN, INFINITY, -INFINITY };
    _Alignas(max_align_t) char args[64];
    char what[128];
    assert_true(size <= sizeof args);
    for (size_t f = 0; f < nfields; f++)
        for (size_t b = 0; b < ARRAY_LEN(bad); b++) {
            memcpy(args, good, size);
            set_field(args, fields[f].offset, bad[b]);
            snprintf(what, sizeof what, "%s with %s = %g", kernel, fields[f].name, bad[b]);
            arena_reset(ar);
            expect_status_untouched(call(ar, args), AMO_EINVAL, ar, what);
        }
    const float bounds[][2] = { { NAN, 1.0f }, { -1.0f, NAN }, { 1.0f, -1.0f }, { NAN, NAN } };
    for (size_t b = 0; b < ARRAY_LEN(bounds); b++) {
        memcpy(args, good, size);
        set_field(args, lo_off, bounds[b][0]);
        set_field(args, hi_off, bounds[b][1]);
        snprintf(what, sizeof what, "%s with bounds [%g, %g]", kernel, bounds[b][0], bounds[b][1]);
        arena_reset(ar);
        expect_status_untouched(call(ar, args), AMO_EINVAL, ar, what);
    }
}

/* Buffers at arena offsets (in floats) for the four-buffer calls. */
static float *at(Arena *ar, size_t off) { return ar->f + off; }

static AmoStatus call_amo(Arena *ar, const void *args)
{
    return kn_amo_update(at(ar, 0), at(ar, BAD_N), at(ar, 2 * BAD_N), at(ar, 3 * BAD_N), BAD_N,
                         args, 2);
}

static AmoStatus call_bf16(Arena *ar, const void *args)
{
    const KnBf16Round rd = { 0 };
    return kn_amo_update_bf16(at(ar, 0), (uint16_t *)at(ar, BAD_N), (uint16_t *)at(ar, 2 * BAD_N),
                              at(ar, 3 * BAD_N), BAD_N, args, &rd, 2);
}

static AmoStatus call_sgd(Arena *ar, const void *args)
{
    return kn_sgd_update(at(ar, 0), at(ar, BAD_N), at(ar, 2 * BAD_N), BAD_N, args, 2);
}

static AmoStatus call_rmsprop(Arena *ar, const void *args)
{
    return kn_rmsprop_update(at(ar, 0), at(ar, BAD_N), at(ar, 2 * BAD_N), at(ar, 3 * BAD_N),
                             BAD_N, args, 2);
}

static void test_bad_amo(void **state)
{
    (void)state;
    static Arena ar;
    const KnAmoArgs a = kn_amo_args_default();
    const KnBf16Round rd = { 0 };
    float *th = at(&ar, 0), *m = at(&ar, BAD_N), *v = at(&ar, 2 * BAD_N), *g = at(&ar, 3 * BAD_N);
    uint16_t *mh = (uint16_t *)m, *vh = (uint16_t *)v;
    const size_t n = BAD_N;

    /* n == 0: a no-op whatever the pointers */
    assert_int_equal(kn_amo_update(NULL, NULL, NULL, NULL, 0, NULL, 1), AMO_OK);
    assert_int_equal(kn_amo_update_bf16(NULL, NULL, NULL, NULL, 0, NULL, NULL, 1), AMO_OK);

    arena_reset(&ar);
    expect_status_untouched(kn_amo_update(NULL, m, v, g, n, &a, 1), AMO_EINVAL, &ar,
                            "amo theta NULL");
    expect_status_untouched(kn_amo_update(th, NULL, v, g, n, &a, 1), AMO_EINVAL, &ar,
                            "amo m NULL");
    expect_status_untouched(kn_amo_update(th, m, NULL, g, n, &a, 1), AMO_EINVAL, &ar,
                            "amo v NULL");
    expect_status_untouched(kn_amo_update(th, m, v, NULL, n, &a, 1), AMO_EINVAL, &ar,
                            "amo g NULL");
    expect_status_untouched(kn_amo_update(th, m, v, g, n, NULL, 1), AMO_EINVAL, &ar,
                            "amo args NULL");
    expect_status_untouched(kn_amo_update_bf16(NULL, mh, vh, g, n, &a, &rd, 1), AMO_EINVAL, &ar,
                            "amo_bf16 theta NULL");
    expect_status_untouched(kn_amo_update_bf16(th, NULL, vh, g, n, &a, &rd, 1), AMO_EINVAL, &ar,
                            "amo_bf16 m NULL");
    expect_status_untouched(kn_amo_update_bf16(th, mh, NULL, g, n, &a, &rd, 1), AMO_EINVAL, &ar,
                            "amo_bf16 v NULL");
    expect_status_untouched(kn_amo_update_bf16(th, mh, vh, NULL, n, &a, &rd, 1), AMO_EINVAL, &ar,
                            "amo_bf16 g NULL");
    expect_status_untouched(kn_amo_update_bf16(th, mh, vh, g, n, NULL, &rd, 1), AMO_EINVAL, &ar,
                            "amo_bf16 args NULL");
    expect_status_untouched(kn_amo_update_bf16(th, mh, vh, g, n, &a, NULL, 1), AMO_EINVAL, &ar,
                            "amo_bf16 rounding NULL");

    /* Overlaps, including by one element; in-place (each buffer its own) is fine. */
    expect_status_untouched(kn_amo_update(th, th + n / 2, v, g, n, &a, 1), AMO_EOVERLAP, &ar,
                            "amo m inside theta");
    expect_status_untouched(kn_amo_update(th, m, m + n - 1, g, n, &a, 1), AMO_EOVERLAP, &ar,
                            "amo v overlapping m by one element");
    expect_status_untouched(kn_amo_update(th, m, v, th, n, &a, 1), AMO_EOVERLAP, &ar,
                            "amo g == theta");
    expect_status_untouched(kn_amo_update(g - n + 1, m, v, g, n, &a, 1), AMO_EOVERLAP, &ar,
                            "amo theta overlapping g by one element");
    expect_status_untouched(kn_amo_update_bf16(th, mh, mh + n - 1, g, n, &a, &rd, 1),
                            AMO_EOVERLAP, &ar, "amo_bf16 v overlapping m");
    expect_status_untouched(kn_amo_update_bf16(th, (uint16_t *)(th + n / 2), vh, g, n, &a, &rd,
                                               1), AMO_EOVERLAP, &ar, "amo_bf16 m inside theta");
    expect_status_untouched(kn_amo_update_bf16(th, mh, vh, (float *)vh, n, &a, &rd, 1),
                            AMO_EOVERLAP, &ar, "amo_bf16 g == v");
    /* bf16 buffers are half as long: m and v back to back in m's space do not overlap */
    assert_int_equal(kn_amo_update_bf16(th, mh, mh + n, g, n, &a, &rd, 1), AMO_OK);
    assert_int_equal(kn_amo_update(th, th + n, th + 2 * n, th + 3 * n, n, &a, 1), AMO_OK);

    check_bad_scalars(call_amo, &ar, &a, sizeof a, offsetof(KnAmoArgs, lo),
                      offsetof(KnAmoArgs, hi), amo_fields, ARRAY_LEN(amo_fields), "amo");
    check_bad_scalars(call_bf16, &ar, &a, sizeof a, offsetof(KnAmoArgs, lo),
                      offsetof(KnAmoArgs, hi), amo_fields, ARRAY_LEN(amo_fields), "amo_bf16");
}

static void test_bad_sgd_rmsprop(void **state)
{
    (void)state;
    static Arena ar;
    const size_t n = BAD_N;
    float *th = at(&ar, 0), *b = at(&ar, n), *v = at(&ar, n), *g = at(&ar, 2 * n);
    float *rb = at(&ar, 2 * n), *rg = at(&ar, 3 * n);
    const KnSgdArgs s0 = sgd_args(0.1f, 0.0f, 0.0f, 0), sm = sgd_args(0.1f, 0.9f, 0.0f, 1);
    const KnRmspropArgs r0 = rmsprop_args(0.1f, 0.99f, 1e-8f, 0.0f);
    const KnRmspropArgs rm = rmsprop_args(0.1f, 0.99f, 1e-8f, 0.9f);

    assert_int_equal(kn_sgd_update(NULL, NULL, NULL, 0, NULL, 1), AMO_OK);
    assert_int_equal(kn_rmsprop_update(NULL, NULL, NULL, NULL, 0, NULL, 1), AMO_OK);

    arena_reset(&ar);
    expect_status_untouched(kn_sgd_update(NULL, b, g, n, &sm, 1), AMO_EINVAL, &ar, "sgd theta NULL");
    expect_status_untouched(kn_sgd_update(th, b, NULL, n, &sm, 1), AMO_EINVAL, &ar, "sgd g NULL");
    expect_status_untouched(kn_sgd_update(th, NULL, g, n, &sm, 1), AMO_EINVAL, &ar,
                            "sgd buffer NULL with momentum");
    expect_status_untouched(kn_sgd_update(th, b, g, n, NULL, 1), AMO_EINVAL, &ar, "sgd args NULL");
    expect_status_untouched(kn_sgd_update(th, th + 1, g, n, &sm, 1), AMO_EOVERLAP, &ar,
                            "sgd buffer overlapping theta");
    expect_status_untouched(kn_sgd_update(th, b, th + n - 1, n, &sm, 1), AMO_EOVERLAP, &ar,
                            "sgd g overlapping theta");
    expect_status_untouched(kn_rmsprop_update(NULL, v, rb, rg, n, &rm, 1), AMO_EINVAL, &ar,
                            "rmsprop theta NULL");
    expect_status_untouched(kn_rmsprop_update(th, NULL, rb, rg, n, &rm, 1), AMO_EINVAL, &ar,
                            "rmsprop v NULL");
    expect_status_untouched(kn_rmsprop_update(th, v, rb, NULL, n, &rm, 1), AMO_EINVAL, &ar,
                            "rmsprop g NULL");
    expect_status_untouched(kn_rmsprop_update(th, v, NULL, rg, n, &rm, 1), AMO_EINVAL, &ar,
                            "rmsprop buffer NULL with momentum");
    expect_status_untouched(kn_rmsprop_update(th, v, rb, rg, n, NULL, 1), AMO_EINVAL, &ar,
                            "rmsprop args NULL");
    expect_status_untouched(kn_rmsprop_update(th, th + n / 2, rb, rg, n, &rm, 1), AMO_EOVERLAP,
                            &ar, "rmsprop v overlapping theta");
    expect_status_untouched(kn_rmsprop_update(th, v, rb, rb + 3, n, &rm, 1), AMO_EOVERLAP, &ar,
                            "rmsprop g overlapping the buffer");
    /* Without momentum the buffer is not used: NULL is fine. */
    assert_int_equal(kn_sgd_update(th, NULL, g, n, &s0, 1), AMO_OK);
    assert_int_equal(kn_rmsprop_update(th, v, NULL, rg, n, &r0, 1), AMO_OK);

    check_bad_scalars(call_sgd, &ar, &sm, sizeof sm, offsetof(KnSgdArgs, lo),
                      offsetof(KnSgdArgs, hi), sgd_fields, ARRAY_LEN(sgd_fields), "sgd");
    check_bad_scalars(call_rmsprop, &ar, &rm, sizeof rm, offsetof(KnRmspropArgs, lo),
                      offsetof(KnRmspropArgs, hi), rmsprop_fields, ARRAY_LEN(rmsprop_fields),
                      "rmsprop");

    /* kn_sumsq */
    double out = -1.0;
    assert_int_equal(kn_sumsq(NULL, 0, 1, &out), AMO_OK);
    assert_true(out == 0.0);
    assert_int_equal(kn_sumsq(NULL, n, 1, &out), AMO_EINVAL);
    assert_int_equal(kn_sumsq(th, n, 1, NULL), AMO_EINVAL);
}

/* ---- CPU levels ---------------------------------------------------------------------- */

static void test_cpu_levels(void **state)
{
    (void)state;
    const unsigned detected = kn_cpu_detected();
    assert_int_equal(kn_cpu_set_arch("auto"), AMO_OK);
    assert_int_equal(kn_cpu_flags(), detected);
    print_message("detected: %s (flags %#x)\n", kn_cpu_level_name(detected), detected);

    assert_int_equal(kn_cpu_set_arch("bogus"), AMO_EINVAL);
    assert_int_equal(kn_cpu_set_arch(""), AMO_EINVAL);
    assert_int_equal(kn_cpu_flags(), detected);

    /* A level the CPU lacks is refused and leaves the flags alone. */
    static const struct { const char *name; unsigned needs; } named[] = {
        { "avx2", KN_CPU_AVX2 }, { "avx512", KN_CPU_AVX512 }, { "neon", KN_CPU_NEON },
    };
    for (size_t k = 0; k < ARRAY_LEN(named); k++) {
        assert_int_equal(kn_cpu_set_arch("auto"), AMO_OK);
        const AmoStatus st = kn_cpu_set_arch(named[k].name);
        if (detected & named[k].needs) {
            assert_int_equal(st, AMO_OK);
            /* "avx512" keeps AVX512_BF16 when the CPU has it */
            assert_true(strncmp(kn_cpu_level_name(kn_cpu_flags()), named[k].name,
                                strlen(named[k].name)) == 0);
        } else {
            assert_int_equal(st, AMO_EUNSUPPORTED);
            assert_int_equal(kn_cpu_flags(), detected);
        }
    }
#if defined(__x86_64__)
    assert_int_equal(kn_cpu_set_arch("neon"), AMO_EUNSUPPORTED);
#elif defined(__aarch64__)
    assert_int_equal(kn_cpu_set_arch("avx512"), AMO_EUNSUPPORTED);
    assert_int_equal(kn_cpu_set_arch("avx2"), AMO_EUNSUPPORTED);
#endif
    for (unsigned bit = 1; bit & KN_CPU_ALL; bit <<= 1) {
        if (detected & bit)
            continue;
        assert_int_equal(kn_cpu_set_arch("auto"), AMO_OK);
        assert_int_equal(kn_cpu_set_mask(bit), AMO_EUNSUPPORTED);
        assert_int_equal(kn_cpu_flags(), detected);
    }

    /* A mask that skips a rung of the ladder is refused. */
    if (detected & KN_CPU_AVX512) {
        assert_int_equal(kn_cpu_set_arch("auto"), AMO_OK);
        assert_int_equal(kn_cpu_set_mask(KN_CPU_AVX512), AMO_EINVAL);
        assert_int_equal(kn_cpu_flags(), detected);
    }
    if (detected & KN_CPU_AVX512BF16)
        assert_int_equal(kn_cpu_set_mask(KN_CPU_AVX2 | KN_CPU_AVX512BF16), AMO_EINVAL);
    /* AES goes with a SIMD level; VAES with AVX-512 and AES */
    if (detected & KN_CPU_AES)
        assert_int_equal(kn_cpu_set_mask(KN_CPU_AES), AMO_EINVAL);
    if (detected & KN_CPU_VAES) {
        assert_int_equal(kn_cpu_set_mask(KN_CPU_AVX2 | KN_CPU_AES | KN_CPU_VAES), AMO_EINVAL);
        assert_int_equal(kn_cpu_set_mask(KN_CPU_AVX2 | KN_CPU_AVX512 | KN_CPU_VAES), AMO_EINVAL);
    }
    assert_int_equal(kn_cpu_flags(), detected);

    assert_int_equal(kn_cpu_set_arch("scalar"), AMO_OK);
    assert_int_equal(kn_cpu_flags(), 0);
    for (int k = 0; k < KN_K_COUNT; k++)
        assert_string_equal(kn_kernel_level((KnKernel)k), "scalar");

    assert_int_equal(kn_cpu_set_arch("auto"), AMO_OK);
    assert_int_equal(kn_cpu_flags(), detected);
}

/* Every slot reports the level it runs at: the SIMD files must fill all of
 * them (AVX512_BF16 only the bf16 one). */
static void test_level_names(void **state)
{
    (void)state;
    int bad = 0;
    FOR_EACH_BF16_LEVEL(lv) {
        assert_string_equal(kn_cpu_level_name(lv->mask), lv->level);
        for (int k = 0; k < KN_K_COUNT; k++) {
            const char *got = kn_kernel_level((KnKernel)k);
            const char *want = expected_slot_level(lv, (KnKernel)k);
            const int ok = got && strcmp(got, want) == 0;
            print_message("level %s: kernel %s runs at level %s%s%s\n", lv->name,
                          kn_kernel_name((KnKernel)k), got ? got : "(null)",
                          ok ? "" : ", want ", ok ? "" : want);
            bad += !ok;
        }
    }
    assert_int_equal(bad, 0);
}

/* ---- AMO_ARCH ------------------------------------------------------------------------- */

/* Run by tests/meson.build as `test_kernels --amo-arch` with AMO_ARCH set
 * (it is read once, at first use, so each value needs a process).  A level
 * this CPU has sets the mask; an unknown name or a missing level makes
 * kn_cpu_init_from_env and every kernel call fail, writing nothing, until
 * kn_cpu_set_arch overrides it. */
static void test_amo_arch_env(void **state)
{
    (void)state;
    const char *env = getenv("AMO_ARCH");
    assert_non_null(env);
    static const struct { const char *name; unsigned needs, flags; } named[] = {
        { "auto", 0, KN_CPU_ALL }, { "scalar", 0, 0 }, { "avx2", KN_CPU_AVX2, KN_CPU_AVX2 },
        { "avx512", KN_CPU_AVX512,
          KN_CPU_AVX2 | KN_CPU_AVX512 | KN_CPU_AVX512BF16 | KN_CPU_AMX },
        { "neon", KN_CPU_NEON, KN_CPU_NEON },
    };
    AmoStatus want = AMO_EINVAL;
    unsigned flags = 0;
    for (size_t k = 0; k < ARRAY_LEN(named); k++)
        if (strcmp(env, named[k].name) == 0) {
            const int has = (kn_cpu_detected() & named[k].needs) == named[k].needs;
            want = has ? AMO_OK : AMO_EUNSUPPORTED;
            flags = named[k].flags & kn_cpu_detected();
        }
    print_message("AMO_ARCH=%s: want %s\n", env, amo_status_str(want));
    assert_int_equal(kn_cpu_init_from_env(), want);

    enum { N = 37 };
    float th[N], m[N], v[N], g[N], keep[N];
    for (size_t i = 0; i < N; i++)
        th[i] = m[i] = v[i] = g[i] = keep[i] = 0.5f;
    const KnAmoArgs a = kn_amo_args_default();
    double out = -1.0;
    const AmoStatus st = kn_amo_update(th, m, v, g, N, &a, 1);
    if (want != AMO_OK) {
        assert_int_equal(st, want);
        assert_int_equal(kn_sumsq(g, N, 1, &out), want);
        assert_memory_equal(th, keep, sizeof th);
        assert_memory_equal(m, keep, sizeof m);
        assert_memory_equal(v, keep, sizeof v);
    } else {
        assert_int_equal(st, AMO_OK);
        assert_int_equal(kn_cpu_flags(), flags);
        assert_string_equal(kn_kernel_level(KN_K_SUMSQ), kn_cpu_level_name(flags));
    }
    /* The API overrides the variable and clears its error. */
    assert_int_equal(kn_cpu_set_arch("auto"), AMO_OK);
    assert_int_equal(kn_cpu_init_from_env(), AMO_OK);
    assert_int_equal(kn_amo_update(th, m, v, g, N, &a, 1), AMO_OK);
}

/* ---- main ------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    /* The first kernel call applies AMO_ARCH; make it happen now, so that it
     * cannot later override the levels the tests set. */
    (void)kn_kernel_level(KN_K_AMO);
    return kn_cpu_set_arch("auto") == AMO_OK ? 0 : -1;
}

/* A test that failed inside a level loop leaves that level's mask. */
static int restore_auto(void **state)
{
    (void)state;
    return kn_cpu_set_arch("auto") == AMO_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return kn_cpu_set_arch("auto") == AMO_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--amo-arch") == 0) {
        const struct CMUnitTest env_tests[] = { cmocka_unit_test(test_amo_arch_env) };
        return cmocka_run_group_tests(env_tests, NULL, NULL);
    }
    if (argc > 1) /* a test name, or a pattern such as "test_amo*" */
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_cpu_levels, restore_auto),
        cmocka_unit_test_teardown(test_bf16_conversions, restore_auto),
        cmocka_unit_test_teardown(test_bf16_sr_unbiased, restore_auto),
        cmocka_unit_test_teardown(test_aes_round, restore_auto),
        cmocka_unit_test_teardown(test_bf16_stream_stats, restore_auto),
        cmocka_unit_test_teardown(test_amo, restore_auto),
        cmocka_unit_test_teardown(test_adam, restore_auto),
        cmocka_unit_test_teardown(test_first_step, restore_auto),
        cmocka_unit_test_teardown(test_amo_bf16, restore_auto),
        cmocka_unit_test_teardown(test_amo_bf16_stream, restore_auto),
        cmocka_unit_test_teardown(test_amo_nonfinite_theta, restore_auto),
        cmocka_unit_test_teardown(test_sgd, restore_auto),
        cmocka_unit_test_teardown(test_rmsprop, restore_auto),
        cmocka_unit_test_teardown(test_sumsq, restore_auto),
        cmocka_unit_test_teardown(test_bf16_quadratic, restore_auto),
        cmocka_unit_test_teardown(test_bf16_freeze, restore_auto),
        cmocka_unit_test_teardown(test_bf16_m_steady, restore_auto),
        cmocka_unit_test_teardown(test_bad_amo, restore_auto),
        cmocka_unit_test_teardown(test_bad_sgd_rmsprop, restore_auto),
        cmocka_unit_test_teardown(test_level_names, restore_auto),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

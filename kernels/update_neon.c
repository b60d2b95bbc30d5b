/* The update kernels in aarch64 Advanced SIMD (ASIMD, baseline on aarch64).
 *
 * The arithmetic is the reference's, line for line, with no fused
 * multiply-add: every operation rounds once, and vsqrtq_f32 / vdivq_f32 are
 * the correctly rounded instructions, so on the same inputs these kernels
 * give the reference's bits (up to the sign of a zero clamped to a bound of
 * zero: FMAX/FMIN order -0 < +0).  The kernels are memory-bound; FMA would
 * buy nothing but a difference from the specification.
 *
 * Same instructions for every element (update.h): each element-wise kernel
 * is one loop over float32x4 quads in a function that is never inlined,
 * cloned or unrolled.  The caller runs it over the whole quads, then over a
 * zero-padded copy of the last n % 4 elements.  One copy of the code matters
 * even for the bits of a NaN: when both operands of an add are NaN, ARM
 * returns the first, and the compiler orders commutative operands freely in
 * each copy it makes of a loop body. */
#ifndef __ARM_NEON
#error "kernels/meson.build must build this file with the neon flags"
#endif
#include <arm_neon.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/update_dsp.h"

#define KN_ALWAYS_INLINE static inline __attribute__((always_inline))
#if defined(__clang__)
#define KN_ONE_COPY static __attribute__((noinline))
#else
#define KN_ONE_COPY static __attribute__((noipa)) /* noinline, and no clones */
#endif
#define KN_NO_UNROLL _Pragma("GCC unroll 1")

static inline float32x4_t clamp4(float32x4_t x, float32x4_t lo, float32x4_t hi)
{
    return vminq_f32(vmaxq_f32(x, lo), hi);
}

/* ---- AMO ------------------------------------------------------------------ */

typedef struct AmoK {
    float32x4_t grad_scale, l2, beta, omb, gamma, omg, v_scale, eps, decay, lr, lo, hi;
} AmoK;

static inline AmoK amo_consts(const KnAmoArgs *a)
{
    return (AmoK){
        .grad_scale = vdupq_n_f32(a->grad_scale), .l2 = vdupq_n_f32(a->l2),
        .beta = vdupq_n_f32(a->beta), .omb = vdupq_n_f32(1.0f - a->beta),
        .gamma = vdupq_n_f32(a->gamma), .omg = vdupq_n_f32(1.0f - a->gamma),
        .v_scale = vdupq_n_f32(a->v_scale), .eps = vdupq_n_f32(a->eps),
        .decay = vdupq_n_f32(a->decay), .lr = vdupq_n_f32(a->lr),
        .lo = vdupq_n_f32(a->lo), .hi = vdupq_n_f32(a->hi),
    };
}

/* amo_elem() of update_ref.c on four lanes: returns the new theta. */
KN_ALWAYS_INLINE float32x4_t amo4(float32x4_t theta, float32x4_t *m, float32x4_t *v,
                                  float32x4_t g, const AmoK *k)
{
    const float32x4_t gs = vaddq_f32(vmulq_f32(k->grad_scale, g), vmulq_f32(k->l2, theta));
    const float32x4_t mn = vaddq_f32(vmulq_f32(k->beta, *m), vmulq_f32(k->omb, gs));
    const float32x4_t vn = vaddq_f32(vmulq_f32(k->gamma, *v),
                                     vmulq_f32(k->omg, vmulq_f32(gs, gs)));
    const float32x4_t den = vaddq_f32(vmulq_f32(vsqrtq_f32(vn), k->v_scale), k->eps);
    float32x4_t t = vsubq_f32(theta, vmulq_f32(k->decay, theta));
    t = vsubq_f32(t, vdivq_f32(vmulq_f32(k->lr, mn), den));
    *m = mn;
    *v = vn;
    return clamp4(t, k->lo, k->hi);
}

KN_ONE_COPY void amo_quads(float *theta, float *m, float *v, const float *g, size_t nq,
                           const KnAmoArgs *a)
{
    const AmoK k = amo_consts(a);
    KN_NO_UNROLL
    for (size_t i = 0; i < 4 * nq; i += 4) {
        float32x4_t mq = vld1q_f32(m + i), vq = vld1q_f32(v + i);
        const float32x4_t t = amo4(vld1q_f32(theta + i), &mq, &vq, vld1q_f32(g + i), &k);
        vst1q_f32(m + i, mq);
        vst1q_f32(v + i, vq);
        vst1q_f32(theta + i, t);
    }
}

static void amo_neon(float *theta, float *m, float *v, const float *g, size_t n,
                     const KnAmoArgs *a)
{
    const size_t i = n & ~(size_t)3, r = n - i;
    amo_quads(theta, m, v, g, i / 4, a);
    if (r) {
        float tb[4] = { 0 }, mb[4] = { 0 }, vb[4] = { 0 }, gb[4] = { 0 };
        memcpy(tb, theta + i, r * sizeof(float));
        memcpy(mb, m + i, r * sizeof(float));
        memcpy(vb, v + i, r * sizeof(float));
        memcpy(gb, g + i, r * sizeof(float));
        amo_quads(tb, mb, vb, gb, 1, a);
        memcpy(theta + i, tb, r * sizeof(float));
        memcpy(m + i, mb, r * sizeof(float));
        memcpy(v + i, vb, r * sizeof(float));
    }
}

/* ---- AMO with bf16 moments ---------------------------------------------------- */

static inline float32x4_t bf16_load(const uint16_t *p)
{
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}

/* fp32 -> bf16 as kn_f32_to_bf16_rne / _sr do it: NaN made quiet, zero and
 * denormal inputs to a zero of the same sign, anything else (u + add) >> 16
 * with add the rounding increment (below 2^16). */
static inline uint16x4_t bf16_round(float32x4_t f, uint32x4_t add)
{
    const uint32x4_t u = vreinterpretq_u32_f32(f);
    const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)),
                                     vdupq_n_u32(0x7f800000u));
    const uint32x4_t normal = vbicq_u32(vtstq_u32(u, vdupq_n_u32(0x7f800000u)), nan);
    const uint32x4_t special = vbslq_u32(nan, vorrq_u32(u, vdupq_n_u32(0x00400000u)),
                                         vandq_u32(u, vdupq_n_u32(0x80000000u)));
    return vshrn_n_u32(vbslq_u32(normal, vaddq_u32(u, add), special), 16);
}

static inline uint32x4_t rne_add(float32x4_t f)
{
    const uint32x4_t u = vreinterpretq_u32_f32(f);
    return vaddq_u32(vdupq_n_u32(0x7fffu), vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1)));
}

/* The rounding stream (bf16.h): one block of 4 elements per quad, so the
 * quads run on whole blocks (index0 a multiple of 4, kn_bf16_head).  With
 * the AES extension the block is AESMC(AESE(s, 0)) ^ k per round, which is
 * x86 AESENC(s, k); without it, the table-driven rounds of bf16.c. */
#if defined(__clang__)
#define KN_TARGET_AES __attribute__((target("aes")))
#else
#define KN_TARGET_AES __attribute__((target("+crypto")))
#endif

typedef struct SrKey4 { uint32x4_t k0; uint8x16_t k1, k2; } SrKey4;

static inline SrKey4 sr_key4(const KnBf16Key *k)
{
    return (SrKey4){ vld1q_u32(k->k0), vreinterpretq_u8_u32(vld1q_u32(k->k1)),
                     vreinterpretq_u8_u32(vld1q_u32(k->k2)) };
}

KN_TARGET_AES static inline uint32x4_t sr_random4_aes(uint32_t idx, const SrKey4 *k,
                                                        const KnBf16Key *key)
{
    (void)key;
    static const uint32_t iota[4] = { 0, 1, 2, 3 };
    const uint32x4_t x = vaddq_u32(vaddq_u32(vdupq_n_u32(idx), vld1q_u32(iota)), k->k0);
    uint8x16_t s = vaesmcq_u8(vaeseq_u8(vreinterpretq_u8_u32(x), vdupq_n_u8(0)));
    s = veorq_u8(vaesmcq_u8(vaeseq_u8(s, k->k1)), k->k2);
    return vreinterpretq_u32_u8(s);
}

static inline uint32x4_t sr_random4_c(uint32_t idx, const SrKey4 *k, const KnBf16Key *key)
{
    (void)k;
    uint32_t r[4];
    kn_bf16_random_block(key, idx, r);
    return vld1q_u32(r);
}

/* idx: the low 32 bits of the global index of element 0.  nearest and aes
 * are constants at each call site. */
KN_ALWAYS_INLINE void amo_bf16_loop(float *theta, uint16_t *m, uint16_t *v, const float *g,
                                    size_t nq, const KnAmoArgs *a, const KnBf16Key *key,
                                    uint32_t idx, const int nearest, const int aes)
{
    const AmoK k = amo_consts(a);
    const SrKey4 sk = sr_key4(key);
    KN_NO_UNROLL
    for (size_t i = 0; i < 4 * nq; i += 4) {
        float32x4_t mf = bf16_load(m + i), vf = bf16_load(v + i);
        vst1q_f32(theta + i, amo4(vld1q_f32(theta + i), &mf, &vf, vld1q_f32(g + i), &k));
        uint32x4_t madd, vadd;
        if (nearest) {
            madd = rne_add(mf);
            vadd = rne_add(vf);
        } else {
            const uint32x4_t rnd = aes ? sr_random4_aes(idx + (uint32_t)i, &sk, key)
                                       : sr_random4_c(idx + (uint32_t)i, &sk, key);
            madd = vandq_u32(rnd, vdupq_n_u32(0xffffu));
            vadd = vshrq_n_u32(rnd, 16);
        }
        vst1_u16(m + i, bf16_round(mf, madd));
        vst1_u16(v + i, bf16_round(vf, vadd));
    }
}

typedef void AmoBf16Quads(float *theta, uint16_t *m, uint16_t *v, const float *g,
                          size_t nq, const KnAmoArgs *a, const KnBf16Key *key, uint32_t idx);

KN_ONE_COPY void amo_bf16_quads_rne(float *theta, uint16_t *m, uint16_t *v, const float *g,
                                    size_t nq, const KnAmoArgs *a, const KnBf16Key *key,
                                    uint32_t idx)
{
    amo_bf16_loop(theta, m, v, g, nq, a, key, idx, 1, 0);
}

KN_ONE_COPY KN_TARGET_AES void amo_bf16_quads_sr_aes(float *theta, uint16_t *m, uint16_t *v,
                                                       const float *g, size_t nq,
                                                       const KnAmoArgs *a,
                                                       const KnBf16Key *key, uint32_t idx)
{
    amo_bf16_loop(theta, m, v, g, nq, a, key, idx, 0, 1);
}

KN_ONE_COPY void amo_bf16_quads_sr_c(float *theta, uint16_t *m, uint16_t *v, const float *g,
                                     size_t nq, const KnAmoArgs *a, const KnBf16Key *key,
                                     uint32_t idx)
{
    amo_bf16_loop(theta, m, v, g, nq, a, key, idx, 0, 0);
}

/* The slot's body: the head (kn_bf16_head, through self), then the whole
 * quads, then the last n % 4 elements on a padded copy. */
static void amo_bf16_run(KnAmoBf16Fn *self, AmoBf16Quads *sr, float *theta, uint16_t *m,
                         uint16_t *v, const float *g, size_t n, const KnAmoArgs *a,
                         const KnBf16Key *key, uint64_t index0, int nearest)
{
    const size_t h = kn_bf16_head(self, theta, m, v, g, n, a, key, index0, nearest);
    theta += h, m += h, v += h, g += h, n -= h, index0 += h;
    AmoBf16Quads *const quads = nearest ? amo_bf16_quads_rne : sr;
    const size_t i = n & ~(size_t)3, r = n - i;
    quads(theta, m, v, g, i / 4, a, key, (uint32_t)index0);
    if (r) {
        float tb[4] = { 0 }, gb[4] = { 0 };
        uint16_t mb[4] = { 0 }, vb[4] = { 0 };
        memcpy(tb, theta + i, r * sizeof(float));
        memcpy(gb, g + i, r * sizeof(float));
        memcpy(mb, m + i, r * sizeof(uint16_t));
        memcpy(vb, v + i, r * sizeof(uint16_t));
        quads(tb, mb, vb, gb, 1, a, key, (uint32_t)(index0 + i));
        memcpy(theta + i, tb, r * sizeof(float));
        memcpy(m + i, mb, r * sizeof(uint16_t));
        memcpy(v + i, vb, r * sizeof(uint16_t));
    }
}

/* The slot with the AES extension and the one without. */
static void amo_bf16_neon_aes(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                              const KnAmoArgs *a, const KnBf16Key *key, uint64_t index0,
                              int nearest)
{
    amo_bf16_run(amo_bf16_neon_aes, amo_bf16_quads_sr_aes, theta, m, v, g, n, a, key, index0,
                 nearest);
}

static void amo_bf16_neon_c(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                            const KnAmoArgs *a, const KnBf16Key *key, uint64_t index0,
                            int nearest)
{
    amo_bf16_run(amo_bf16_neon_c, amo_bf16_quads_sr_c, theta, m, v, g, n, a, key, index0,
                 nearest);
}

/* ---- SGD ---------------------------------------------------------------------- */

/* mom: momentum != 0 (else buf is NULL and untouched); first, nesterov: as
 * in KnSgdArgs.  All three are constants at each call site. */
KN_ALWAYS_INLINE void sgd_loop(float *theta, float *buf, const float *g, size_t nq,
                               const KnSgdArgs *a, const int mom, const int first,
                               const int nesterov)
{
    const float32x4_t grad_scale = vdupq_n_f32(a->grad_scale), l2 = vdupq_n_f32(a->l2);
    const float32x4_t momentum = vdupq_n_f32(a->momentum);
    const float32x4_t omd = vdupq_n_f32(1.0f - a->dampening);
    const float32x4_t decay = vdupq_n_f32(a->decay), lr = vdupq_n_f32(a->lr);
    const float32x4_t lo = vdupq_n_f32(a->lo), hi = vdupq_n_f32(a->hi);
    KN_NO_UNROLL
    for (size_t i = 0; i < 4 * nq; i += 4) {
        const float32x4_t th = vld1q_f32(theta + i);
        const float32x4_t gs = vaddq_f32(vmulq_f32(grad_scale, vld1q_f32(g + i)),
                                         vmulq_f32(l2, th));
        float32x4_t d = gs;
        if (mom) {
            const float32x4_t b = first ? gs
                : vaddq_f32(vmulq_f32(momentum, vld1q_f32(buf + i)), vmulq_f32(omd, gs));
            vst1q_f32(buf + i, b);
            d = nesterov ? vaddq_f32(gs, vmulq_f32(momentum, b)) : b;
        }
        float32x4_t t = vsubq_f32(th, vmulq_f32(decay, th));
        t = vsubq_f32(t, vmulq_f32(lr, d));
        vst1q_f32(theta + i, clamp4(t, lo, hi));
    }
}

typedef void SgdQuads(float *theta, float *buf, const float *g, size_t nq,
                      const KnSgdArgs *a);

KN_ONE_COPY void sgd_quads_plain(float *theta, float *buf, const float *g, size_t nq,
                                 const KnSgdArgs *a)
{
    (void)buf;
    sgd_loop(theta, NULL, g, nq, a, 0, 0, 0);
}

KN_ONE_COPY void sgd_quads_first(float *theta, float *buf, const float *g, size_t nq,
                                 const KnSgdArgs *a)
{
    sgd_loop(theta, buf, g, nq, a, 1, 1, 0);
}

KN_ONE_COPY void sgd_quads_first_nesterov(float *theta, float *buf, const float *g,
                                          size_t nq, const KnSgdArgs *a)
{
    sgd_loop(theta, buf, g, nq, a, 1, 1, 1);
}

KN_ONE_COPY void sgd_quads_momentum(float *theta, float *buf, const float *g, size_t nq,
                                    const KnSgdArgs *a)
{
    sgd_loop(theta, buf, g, nq, a, 1, 0, 0);
}

KN_ONE_COPY void sgd_quads_nesterov(float *theta, float *buf, const float *g, size_t nq,
                                    const KnSgdArgs *a)
{
    sgd_loop(theta, buf, g, nq, a, 1, 0, 1);
}

static void sgd_neon(float *theta, float *buf, const float *g, size_t n, const KnSgdArgs *a)
{
    const int mom = a->momentum != 0.0f;
    SgdQuads *const quads = !mom ? sgd_quads_plain
        : a->first ? (a->nesterov ? sgd_quads_first_nesterov : sgd_quads_first)
        : (a->nesterov ? sgd_quads_nesterov : sgd_quads_momentum);
    const size_t i = n & ~(size_t)3, r = n - i;
    quads(theta, buf, g, i / 4, a);
    if (r) {
        float tb[4] = { 0 }, bb[4] = { 0 }, gb[4] = { 0 };
        memcpy(tb, theta + i, r * sizeof(float));
        memcpy(gb, g + i, r * sizeof(float));
        if (mom)
            memcpy(bb, buf + i, r * sizeof(float));
        quads(tb, bb, gb, 1, a);
        memcpy(theta + i, tb, r * sizeof(float));
        if (mom)
            memcpy(buf + i, bb, r * sizeof(float));
    }
}

/* ---- RMSprop ------------------------------------------------------------------ */

/* mom: momentum > 0 (else buf is NULL and untouched), a call-site constant. */
KN_ALWAYS_INLINE void rmsprop_loop(float *theta, float *v, float *buf, const float *g,
                                   size_t nq, const KnRmspropArgs *a, const int mom)
{
    const float32x4_t grad_scale = vdupq_n_f32(a->grad_scale), l2 = vdupq_n_f32(a->l2);
    const float32x4_t alpha = vdupq_n_f32(a->alpha), oma = vdupq_n_f32(1.0f - a->alpha);
    const float32x4_t eps = vdupq_n_f32(a->eps), momentum = vdupq_n_f32(a->momentum);
    const float32x4_t decay = vdupq_n_f32(a->decay), lr = vdupq_n_f32(a->lr);
    const float32x4_t lo = vdupq_n_f32(a->lo), hi = vdupq_n_f32(a->hi);
    KN_NO_UNROLL
    for (size_t i = 0; i < 4 * nq; i += 4) {
        const float32x4_t th = vld1q_f32(theta + i);
        const float32x4_t gs = vaddq_f32(vmulq_f32(grad_scale, vld1q_f32(g + i)),
                                         vmulq_f32(l2, th));
        const float32x4_t vn = vaddq_f32(vmulq_f32(alpha, vld1q_f32(v + i)),
                                         vmulq_f32(oma, vmulq_f32(gs, gs)));
        const float32x4_t den = vaddq_f32(vsqrtq_f32(vn), eps);
        vst1q_f32(v + i, vn);
        float32x4_t d = vdivq_f32(gs, den);
        if (mom) {
            d = vaddq_f32(vmulq_f32(momentum, vld1q_f32(buf + i)), d);
            vst1q_f32(buf + i, d);
        }
        float32x4_t t = vsubq_f32(th, vmulq_f32(decay, th));
        t = vsubq_f32(t, vmulq_f32(lr, d));
        vst1q_f32(theta + i, clamp4(t, lo, hi));
    }
}

typedef void RmspropQuads(float *theta, float *v, float *buf, const float *g, size_t nq,
                          const KnRmspropArgs *a);

KN_ONE_COPY void rmsprop_quads_plain(float *theta, float *v, float *buf, const float *g,
                                     size_t nq, const KnRmspropArgs *a)
{
    (void)buf;
    rmsprop_loop(theta, v, NULL, g, nq, a, 0);
}

KN_ONE_COPY void rmsprop_quads_momentum(float *theta, float *v, float *buf, const float *g,
                                        size_t nq, const KnRmspropArgs *a)
{
    rmsprop_loop(theta, v, buf, g, nq, a, 1);
}

static void rmsprop_neon(float *theta, float *v, float *buf, const float *g, size_t n,
                         const KnRmspropArgs *a)
{
    const int mom = a->momentum > 0.0f;
    RmspropQuads *const quads = mom ? rmsprop_quads_momentum : rmsprop_quads_plain;
    const size_t i = n & ~(size_t)3, r = n - i;
    quads(theta, v, buf, g, i / 4, a);
    if (r) {
        float tb[4] = { 0 }, vb[4] = { 0 }, bb[4] = { 0 }, gb[4] = { 0 };
        memcpy(tb, theta + i, r * sizeof(float));
        memcpy(vb, v + i, r * sizeof(float));
        memcpy(gb, g + i, r * sizeof(float));
        if (mom)
            memcpy(bb, buf + i, r * sizeof(float));
        quads(tb, vb, bb, gb, 1, a);
        memcpy(theta + i, tb, r * sizeof(float));
        memcpy(v + i, vb, r * sizeof(float));
        if (mom)
            memcpy(buf + i, bb, r * sizeof(float));
    }
}

/* ---- sum of squares ----------------------------------------------------------- */

/* 32 elements into the 32 fp64 lanes: acc[q] holds lanes 2q and 2q + 1.  A
 * float's square is exact in fp64, so the fused multiply-add rounds once,
 * like the reference's add.  (No operand-order question here: FMLA takes a
 * NaN from the accumulator first, whatever the compiler does.) */
KN_ALWAYS_INLINE void sumsq_block(float64x2_t acc[KN_SUMSQ_LANES / 2], const float *x)
{
    for (int q = 0; q < KN_SUMSQ_LANES / 4; q++) {
        const float32x4_t f = vld1q_f32(x + 4 * q);
        const float64x2_t lo = vcvt_f64_f32(vget_low_f32(f)), hi = vcvt_high_f64_f32(f);
        acc[2 * q] = vfmaq_f64(acc[2 * q], lo, lo);
        acc[2 * q + 1] = vfmaq_f64(acc[2 * q + 1], hi, hi);
    }
}

static double sumsq_neon(const float *x, size_t n)
{
    float64x2_t acc[KN_SUMSQ_LANES / 2];
    for (int q = 0; q < KN_SUMSQ_LANES / 2; q++)
        acc[q] = vdupq_n_f64(0.0);
    size_t i = 0;
    for (; i + KN_SUMSQ_LANES <= n; i += KN_SUMSQ_LANES)
        sumsq_block(acc, x + i);
    if (n - i) {
        /* The padding adds +0.0, which changes no lane: each lane is +0.0,
         * positive, Inf or NaN (never -0.0). */
        float xb[KN_SUMSQ_LANES] = { 0 };
        memcpy(xb, x + i, (n - i) * sizeof(float));
        sumsq_block(acc, xb);
    }
    double lane[KN_SUMSQ_LANES];
    for (int q = 0; q < KN_SUMSQ_LANES / 2; q++)
        vst1q_f64(lane + 2 * q, acc[q]);
    return kn_sumsq_lanes(lane);
}

void kn_update_dsp_init_neon(KnUpdateDSP *dsp, unsigned flags)
{
    dsp->amo = amo_neon;
    dsp->amo_bf16 = (flags & KN_CPU_AES) ? amo_bf16_neon_aes : amo_bf16_neon_c;
    dsp->sgd = sgd_neon;
    dsp->rmsprop = rmsprop_neon;
    dsp->sumsq = sumsq_neon;
    for (int k = 0; k < KN_K_COUNT; k++)
        dsp->level[k] = "neon";
}

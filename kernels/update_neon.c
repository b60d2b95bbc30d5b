/* The update kernels in aarch64 Advanced SIMD (ASIMD, baseline on aarch64).
 *
 * Each kernel runs one block body (16 floats, 32 for sumsq) over the array;
 * the last partial block is copied into zero-padded stack buffers, run
 * through the same body and copied back, so every element gets the same
 * instruction sequence wherever it falls (update.h).
 *
 * The arithmetic is the reference's, line for line, with no fused
 * multiply-add: every operation rounds once, and vsqrtq_f32 / vdivq_f32 are
 * the correctly rounded instructions, so on the same inputs these kernels
 * give the reference's bits (up to the sign of a zero clamped to a bound
 * of zero: FMAX/FMIN order -0 < +0).  The kernels are memory-bound; FMA
 * would buy nothing but a difference from the specification. */
#ifndef __ARM_NEON
#error "kernels/meson.build must build this file with the neon flags"
#endif
#include <arm_neon.h>
#include <string.h>

#include "kernels/update_dsp.h"

#define KN_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Floats per block body; the tail buffers hold one block. */
#define BLK 16

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

KN_ALWAYS_INLINE void amo_block(float *theta, float *m, float *v, const float *g,
                                const AmoK *k)
{
    for (int j = 0; j < BLK; j += 4) {
        float32x4_t mj = vld1q_f32(m + j), vj = vld1q_f32(v + j);
        const float32x4_t t = amo4(vld1q_f32(theta + j), &mj, &vj, vld1q_f32(g + j), k);
        vst1q_f32(m + j, mj);
        vst1q_f32(v + j, vj);
        vst1q_f32(theta + j, t);
    }
}

static void amo_neon(float *theta, float *m, float *v, const float *g, size_t n,
                     const KnAmoArgs *a)
{
    const AmoK k = amo_consts(a);
    size_t i = 0;
    for (; i + BLK <= n; i += BLK)
        amo_block(theta + i, m + i, v + i, g + i, &k);
    const size_t r = n - i;
    if (r) {
        float tb[BLK] = { 0 }, mb[BLK] = { 0 }, vb[BLK] = { 0 }, gb[BLK] = { 0 };
        memcpy(tb, theta + i, r * sizeof(float));
        memcpy(mb, m + i, r * sizeof(float));
        memcpy(vb, v + i, r * sizeof(float));
        memcpy(gb, g + i, r * sizeof(float));
        amo_block(tb, mb, vb, gb, &k);
        memcpy(theta + i, tb, r * sizeof(float));
        memcpy(m + i, mb, r * sizeof(float));
        memcpy(v + i, vb, r * sizeof(float));
    }
}

/* ---- AMO with bf16 moments ---------------------------------------------------- */

/* fp32 bits -> bf16 in the high half of each lane, as kn_f32_to_bf16_rne /
 * _sr do it: NaN made quiet, zero and denormal inputs to a zero of the same
 * sign, anything else u + add (a rounding increment below 2^16). */
static inline uint32x4_t bf16_round_bits(uint32x4_t u, uint32x4_t add)
{
    const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)),
                                     vdupq_n_u32(0x7f800000u));
    const uint32x4_t normal = vtstq_u32(u, vdupq_n_u32(0x7f800000u));
    const uint32x4_t special = vbslq_u32(nan, vorrq_u32(u, vdupq_n_u32(0x00400000u)),
                                         vandq_u32(u, vdupq_n_u32(0x80000000u)));
    return vbslq_u32(vbicq_u32(normal, nan), vaddq_u32(u, add), special);
}

static inline uint32x4_t bf16_rne_add(uint32x4_t u)
{
    return vaddq_u32(vdupq_n_u32(0x7fffu), vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1)));
}

/* kn_hash32() on four lanes. */
static inline uint32x4_t hash32x4(uint32x4_t x)
{
    x = veorq_u32(x, vshrq_n_u32(x, 16));
    x = vmulq_u32(x, vdupq_n_u32(0x7feb352dU));
    x = veorq_u32(x, vshrq_n_u32(x, 15));
    x = vmulq_u32(x, vdupq_n_u32(0x846ca68bU));
    x = veorq_u32(x, vshrq_n_u32(x, 16));
    return x;
}

static inline float32x4_t bf16_load(uint16x4_t h)
{
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

/* 16 elements; idx: the low 32 bits of the global index of element 0. */
KN_ALWAYS_INLINE void amo_bf16_block(float *theta, uint16_t *m, uint16_t *v,
                                     const float *g, const AmoK *k, uint32_t key,
                                     uint32_t idx, const int nearest)
{
    static const uint32_t iota[4] = { 0, 1, 2, 3 };
    const uint16x8_t mh[2] = { vld1q_u16(m), vld1q_u16(m + 8) };
    const uint16x8_t vh[2] = { vld1q_u16(v), vld1q_u16(v + 8) };
    uint16x4_t mo[4], vo[4];
    for (int j = 0; j < 4; j++) {
        const uint16x8_t mq = mh[j >> 1], vq = vh[j >> 1];
        float32x4_t mf = bf16_load((j & 1) ? vget_high_u16(mq) : vget_low_u16(mq));
        float32x4_t vf = bf16_load((j & 1) ? vget_high_u16(vq) : vget_low_u16(vq));
        const float32x4_t t = amo4(vld1q_f32(theta + 4 * j), &mf, &vf,
                                   vld1q_f32(g + 4 * j), k);
        vst1q_f32(theta + 4 * j, t);
        const uint32x4_t mu = vreinterpretq_u32_f32(mf), vu = vreinterpretq_u32_f32(vf);
        uint32x4_t madd, vadd;
        if (nearest) {
            madd = bf16_rne_add(mu);
            vadd = bf16_rne_add(vu);
        } else {
            const uint32x4_t i4 = vaddq_u32(vdupq_n_u32(idx + 4u * (uint32_t)j),
                                            vld1q_u32(iota));
            const uint32x4_t r = hash32x4(veorq_u32(i4, vdupq_n_u32(key)));
            madd = vandq_u32(r, vdupq_n_u32(0xffffu));
            vadd = vshrq_n_u32(r, 16);
        }
        mo[j] = vshrn_n_u32(bf16_round_bits(mu, madd), 16);
        vo[j] = vshrn_n_u32(bf16_round_bits(vu, vadd), 16);
    }
    vst1q_u16(m, vcombine_u16(mo[0], mo[1]));
    vst1q_u16(m + 8, vcombine_u16(mo[2], mo[3]));
    vst1q_u16(v, vcombine_u16(vo[0], vo[1]));
    vst1q_u16(v + 8, vcombine_u16(vo[2], vo[3]));
}

/* One call per rounding mode, so the choice is made once, outside the loop. */
KN_ALWAYS_INLINE void amo_bf16_run(float *theta, uint16_t *m, uint16_t *v, const float *g,
                                   size_t n, const AmoK *k, uint32_t key, uint64_t index0,
                                   const int nearest)
{
    size_t i = 0;
    for (; i + BLK <= n; i += BLK)
        amo_bf16_block(theta + i, m + i, v + i, g + i, k, key, (uint32_t)(index0 + i),
                       nearest);
    const size_t r = n - i;
    if (r) {
        float tb[BLK] = { 0 }, gb[BLK] = { 0 };
        uint16_t mb[BLK] = { 0 }, vb[BLK] = { 0 };
        memcpy(tb, theta + i, r * sizeof(float));
        memcpy(gb, g + i, r * sizeof(float));
        memcpy(mb, m + i, r * sizeof(uint16_t));
        memcpy(vb, v + i, r * sizeof(uint16_t));
        amo_bf16_block(tb, mb, vb, gb, k, key, (uint32_t)(index0 + i), nearest);
        memcpy(theta + i, tb, r * sizeof(float));
        memcpy(m + i, mb, r * sizeof(uint16_t));
        memcpy(v + i, vb, r * sizeof(uint16_t));
    }
}

static void amo_bf16_neon(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                          const KnAmoArgs *a, uint32_t key, uint64_t index0, int nearest)
{
    const AmoK k = amo_consts(a);
    if (nearest)
        amo_bf16_run(theta, m, v, g, n, &k, key, index0, 1);
    else
        amo_bf16_run(theta, m, v, g, n, &k, key, index0, 0);
}

/* ---- SGD ---------------------------------------------------------------------- */

typedef struct SgdK {
    float32x4_t grad_scale, l2, momentum, omd, decay, lr, lo, hi;
} SgdK;

/* mom: momentum != 0 (else buf is NULL and untouched); first, nesterov: as
 * in KnSgdArgs.  All three are constants at each call site. */
KN_ALWAYS_INLINE void sgd_block(float *theta, float *buf, const float *g, const SgdK *k,
                                const int mom, const int first, const int nesterov)
{
    for (int j = 0; j < BLK; j += 4) {
        const float32x4_t th = vld1q_f32(theta + j);
        const float32x4_t gs = vaddq_f32(vmulq_f32(k->grad_scale, vld1q_f32(g + j)),
                                         vmulq_f32(k->l2, th));
        float32x4_t d = gs;
        if (mom) {
            const float32x4_t b = first ? gs
                : vaddq_f32(vmulq_f32(k->momentum, vld1q_f32(buf + j)),
                            vmulq_f32(k->omd, gs));
            vst1q_f32(buf + j, b);
            d = nesterov ? vaddq_f32(gs, vmulq_f32(k->momentum, b)) : b;
        }
        float32x4_t t = vsubq_f32(th, vmulq_f32(k->decay, th));
        t = vsubq_f32(t, vmulq_f32(k->lr, d));
        vst1q_f32(theta + j, clamp4(t, k->lo, k->hi));
    }
}

KN_ALWAYS_INLINE void sgd_run(float *theta, float *buf, const float *g, size_t n,
                              const SgdK *k, const int mom, const int first,
                              const int nesterov)
{
    size_t i = 0;
    for (; i + BLK <= n; i += BLK)
        sgd_block(theta + i, mom ? buf + i : NULL, g + i, k, mom, first, nesterov);
    const size_t r = n - i;
    if (r) {
        float tb[BLK] = { 0 }, bb[BLK] = { 0 }, gb[BLK] = { 0 };
        memcpy(tb, theta + i, r * sizeof(float));
        memcpy(gb, g + i, r * sizeof(float));
        if (mom && !first)
            memcpy(bb, buf + i, r * sizeof(float));
        sgd_block(tb, bb, gb, k, mom, first, nesterov);
        memcpy(theta + i, tb, r * sizeof(float));
        if (mom)
            memcpy(buf + i, bb, r * sizeof(float));
    }
}

static void sgd_neon(float *theta, float *buf, const float *g, size_t n, const KnSgdArgs *a)
{
    const SgdK k = {
        .grad_scale = vdupq_n_f32(a->grad_scale), .l2 = vdupq_n_f32(a->l2),
        .momentum = vdupq_n_f32(a->momentum), .omd = vdupq_n_f32(1.0f - a->dampening),
        .decay = vdupq_n_f32(a->decay), .lr = vdupq_n_f32(a->lr),
        .lo = vdupq_n_f32(a->lo), .hi = vdupq_n_f32(a->hi),
    };
    if (a->momentum == 0.0f)
        sgd_run(theta, NULL, g, n, &k, 0, 0, 0);
    else if (a->first && a->nesterov)
        sgd_run(theta, buf, g, n, &k, 1, 1, 1);
    else if (a->first)
        sgd_run(theta, buf, g, n, &k, 1, 1, 0);
    else if (a->nesterov)
        sgd_run(theta, buf, g, n, &k, 1, 0, 1);
    else
        sgd_run(theta, buf, g, n, &k, 1, 0, 0);
}

/* ---- RMSprop ------------------------------------------------------------------ */

typedef struct RmsK {
    float32x4_t grad_scale, l2, alpha, oma, eps, momentum, decay, lr, lo, hi;
} RmsK;

/* mom: momentum > 0 (else buf is NULL and untouched), a call-site constant. */
KN_ALWAYS_INLINE void rmsprop_block(float *theta, float *v, float *buf, const float *g,
                                    const RmsK *k, const int mom)
{
    for (int j = 0; j < BLK; j += 4) {
        const float32x4_t th = vld1q_f32(theta + j);
        const float32x4_t gs = vaddq_f32(vmulq_f32(k->grad_scale, vld1q_f32(g + j)),
                                         vmulq_f32(k->l2, th));
        const float32x4_t vn = vaddq_f32(vmulq_f32(k->alpha, vld1q_f32(v + j)),
                                         vmulq_f32(k->oma, vmulq_f32(gs, gs)));
        const float32x4_t den = vaddq_f32(vsqrtq_f32(vn), k->eps);
        vst1q_f32(v + j, vn);
        float32x4_t d = vdivq_f32(gs, den);
        if (mom) {
            d = vaddq_f32(vmulq_f32(k->momentum, vld1q_f32(buf + j)), d);
            vst1q_f32(buf + j, d);
        }
        float32x4_t t = vsubq_f32(th, vmulq_f32(k->decay, th));
        t = vsubq_f32(t, vmulq_f32(k->lr, d));
        vst1q_f32(theta + j, clamp4(t, k->lo, k->hi));
    }
}

KN_ALWAYS_INLINE void rmsprop_run(float *theta, float *v, float *buf, const float *g,
                                  size_t n, const RmsK *k, const int mom)
{
    size_t i = 0;
    for (; i + BLK <= n; i += BLK)
        rmsprop_block(theta + i, v + i, mom ? buf + i : NULL, g + i, k, mom);
    const size_t r = n - i;
    if (r) {
        float tb[BLK] = { 0 }, vb[BLK] = { 0 }, bb[BLK] = { 0 }, gb[BLK] = { 0 };
        memcpy(tb, theta + i, r * sizeof(float));
        memcpy(vb, v + i, r * sizeof(float));
        memcpy(gb, g + i, r * sizeof(float));
        if (mom)
            memcpy(bb, buf + i, r * sizeof(float));
        rmsprop_block(tb, vb, bb, gb, k, mom);
        memcpy(theta + i, tb, r * sizeof(float));
        memcpy(v + i, vb, r * sizeof(float));
        if (mom)
            memcpy(buf + i, bb, r * sizeof(float));
    }
}

static void rmsprop_neon(float *theta, float *v, float *buf, const float *g, size_t n,
                         const KnRmspropArgs *a)
{
    const RmsK k = {
        .grad_scale = vdupq_n_f32(a->grad_scale), .l2 = vdupq_n_f32(a->l2),
        .alpha = vdupq_n_f32(a->alpha), .oma = vdupq_n_f32(1.0f - a->alpha),
        .eps = vdupq_n_f32(a->eps), .momentum = vdupq_n_f32(a->momentum),
        .decay = vdupq_n_f32(a->decay), .lr = vdupq_n_f32(a->lr),
        .lo = vdupq_n_f32(a->lo), .hi = vdupq_n_f32(a->hi),
    };
    if (a->momentum > 0.0f)
        rmsprop_run(theta, v, buf, g, n, &k, 1);
    else
        rmsprop_run(theta, v, NULL, g, n, &k, 0);
}

/* ---- sum of squares ----------------------------------------------------------- */

/* 32 elements into the 32 fp64 lanes: acc[q] holds lanes 2q and 2q + 1.  A
 * float's square is exact in fp64, so the fused multiply-add rounds once,
 * like the reference's add. */
KN_ALWAYS_INLINE void sumsq_block(float64x2_t acc[16], const float *x)
{
    for (int q = 0; q < 8; q++) {
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

void kn_update_dsp_init_neon(KnUpdateDSP *dsp)
{
    dsp->amo = amo_neon;
    dsp->amo_bf16 = amo_bf16_neon;
    dsp->sgd = sgd_neon;
    dsp->rmsprop = rmsprop_neon;
    dsp->sumsq = sumsq_neon;
    for (int k = 0; k < KN_K_COUNT; k++)
        dsp->level[k] = "neon";
}

/* The C reference of every update kernel: the specification the SIMD levels
 * are tested against.  Built without ISA flags and in ISO C mode, so no
 * multiply-add is contracted into an FMA: each line below rounds once. */
#include <math.h>

#include "kernels/update_dsp.h"

static inline float clampf(float x, float lo, float hi)
{
    /* NaN stays NaN (the SIMD levels put the bound first in max/min for that);
     * bounds are never NaN (checked at the API). */
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

static inline float amo_grad(float g, float theta, const KnAmoArgs *a)
{
    return a->grad_scale * g + a->l2 * theta;
}

/* One AMO element from fp32 moments; returns the new theta and updates *m,
 * *v.  Shared by the fp32 and bf16-state kernels. */
static inline float amo_elem(float theta, float *m, float *v, float g,
                             const KnAmoArgs *a, float one_m_beta, float one_m_gamma)
{
    const float gs = amo_grad(g, theta, a);
    const float mn = a->beta * *m + one_m_beta * gs;
    const float vn = a->gamma * *v + one_m_gamma * (gs * gs);
    const float den = sqrtf(vn) * a->v_scale + a->eps;
    float t = theta - a->decay * theta;
    t = t - a->lr * mn / den;
    *m = mn;
    *v = vn;
    return clampf(t, a->lo, a->hi);
}

static void amo_c(float *theta, float *m, float *v, const float *g, size_t n,
                  const KnAmoArgs *a)
{
    const float omb = 1.0f - a->beta, omg = 1.0f - a->gamma;
    for (size_t i = 0; i < n; i++)
        theta[i] = amo_elem(theta[i], &m[i], &v[i], g[i], a, omb, omg);
}

static void amo_bf16_c(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                       const KnAmoArgs *a, const KnBf16Key *key, uint64_t index0, int nearest)
{
    const float omb = 1.0f - a->beta, omg = 1.0f - a->gamma;
    uint32_t y[4]; /* kn_bf16_random() of the current block of 4 */
    for (size_t i = 0; i < n; i++) {
        float mf = kn_bf16_to_f32(m[i]), vf = kn_bf16_to_f32(v[i]);
        theta[i] = amo_elem(theta[i], &mf, &vf, g[i], a, omb, omg);
        if (nearest) {
            m[i] = kn_f32_to_bf16_rne(mf);
            v[i] = kn_f32_to_bf16_rne(vf);
        } else {
            const uint32_t x = (uint32_t)(index0 + i);
            if (i == 0 || (x & 3) == 0)
                kn_bf16_random_block(key, x & ~3u, y);
            m[i] = kn_f32_to_bf16_sr(mf, y[x & 3] & 0xffff);
            v[i] = kn_f32_to_bf16_sr(vf, y[x & 3] >> 16);
        }
    }
}

static void sgd_c(float *theta, float *buf, const float *g, size_t n, const KnSgdArgs *a)
{
    const float omd = 1.0f - a->dampening;
    for (size_t i = 0; i < n; i++) {
        const float gs = a->grad_scale * g[i] + a->l2 * theta[i];
        float d = gs;
        if (a->momentum != 0.0f) {
            const float b = a->first ? gs : a->momentum * buf[i] + omd * gs;
            buf[i] = b;
            d = a->nesterov ? gs + a->momentum * b : b;
        }
        float t = theta[i] - a->decay * theta[i];
        t = t - a->lr * d;
        theta[i] = clampf(t, a->lo, a->hi);
    }
}

static void rmsprop_c(float *theta, float *v, float *buf, const float *g, size_t n,
                      const KnRmspropArgs *a)
{
    const float oma = 1.0f - a->alpha;
    for (size_t i = 0; i < n; i++) {
        const float gs = a->grad_scale * g[i] + a->l2 * theta[i];
        const float vn = a->alpha * v[i] + oma * (gs * gs);
        const float den = sqrtf(vn) + a->eps;
        v[i] = vn;
        float d = gs / den;
        if (a->momentum > 0.0f) {
            d = a->momentum * buf[i] + d;
            buf[i] = d;
        }
        float t = theta[i] - a->decay * theta[i];
        t = t - a->lr * d;
        theta[i] = clampf(t, a->lo, a->hi);
    }
}

static double sumsq_c(const float *x, size_t n)
{
    double lane[KN_SUMSQ_LANES] = { 0 };
    for (size_t i = 0; i < n; i++) {
        const double d = x[i];
        lane[i % KN_SUMSQ_LANES] += d * d; /* exact product: FMA or not, same sum */
    }
    return kn_sumsq_lanes(lane);
}

void kn_update_dsp_init_c(KnUpdateDSP *dsp)
{
    dsp->amo = amo_c;
    dsp->amo_bf16 = amo_bf16_c;
    dsp->sgd = sgd_c;
    dsp->rmsprop = rmsprop_c;
    dsp->sumsq = sumsq_c;
    for (int k = 0; k < KN_K_COUNT; k++)
        dsp->level[k] = "scalar";
}

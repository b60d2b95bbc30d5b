/* AVX512_BF16 level: the bf16-state AMO/Adam update with VCVTNE2PS2BF16,
 * which rounds 32 fp32 values to bf16 in one instruction.  The instruction
 * rounds to nearest even, treats denormal inputs as zero and quiets NaNs:
 * exactly kn_f32_to_bf16_rne (update.h).  Stochastic rounding adds the
 * random bits to the fp32 bits and clears the dropped half first, so the
 * instruction's own rounding is exact and only packs; NaN and tiny lanes are
 * passed through untouched so it handles them as in the nearest case.  The
 * other slots stay at the avx512 level. */
#ifndef __AVX512BF16__
#error "kernels/meson.build must build this file with the avx512bf16 flags"
#endif

#include "kernels/amo_avx512.h"

KN_INLINE __m512 sr_prepare(__m512 x, __m512i r16)
{
    const __m512i u = _mm512_castps_si512(x);
    /* NaN and zero/denormal lanes go to the instruction untouched (adding
     * r to +-0 would be harmless, but it is the same class test) */
    const __mmask16 keep = _mm512_fpclass_ps_mask(x, 0xa7);
    const __m512i y = _mm512_and_si512(_mm512_add_epi32(u, r16), _mm512_set1_epi32((int)0xffff0000u));
    return _mm512_castsi512_ps(_mm512_mask_mov_epi32(y, keep, u));
}

KN_INLINE __m512i to_bf16(__m512 hi, __m512 lo)
{
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* 32 elements: two 16-lane halves through the shared AMO arithmetic. */
KN_INLINE void block32(float *theta, uint16_t *m, uint16_t *v, const float *g, __mmask32 k,
                       const AmoVec *c, __m512i idx, __m512i key, int nearest)
{
    __m512 mm[2], vv[2];
    for (int h = 0; h < 2; h++) {
        const __mmask16 kh = (__mmask16)(k >> (16 * h));
        mm[h] = bf16_load(kh, m + 16 * h);
        vv[h] = bf16_load(kh, v + 16 * h);
        const __m512 t = amo_vec_step(_mm512_maskz_loadu_ps(kh, theta + 16 * h), &mm[h], &vv[h],
                                      _mm512_maskz_loadu_ps(kh, g + 16 * h), c);
        _mm512_mask_storeu_ps(theta + 16 * h, kh, t);
        if (!nearest) {
            const __m512i r = sr_random(_mm512_add_epi32(idx, _mm512_set1_epi32(16 * h)), key);
            mm[h] = sr_prepare(mm[h], _mm512_and_si512(r, _mm512_set1_epi32(0xffff)));
            vv[h] = sr_prepare(vv[h], _mm512_srli_epi32(r, 16));
        }
    }
    _mm512_mask_storeu_epi16(m, k, to_bf16(mm[1], mm[0]));
    _mm512_mask_storeu_epi16(v, k, to_bf16(vv[1], vv[0]));
}

KN_INLINE void loop(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                    const KnAmoArgs *a, uint32_t key, uint64_t index0, int nearest)
{
    const AmoVec c = amo_vec_init(a);
    const __m512i kv = _mm512_set1_epi32((int)key), step = _mm512_set1_epi32(32);
    __m512i idx = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)index0), iota16());
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        block32(theta + i, m + i, v + i, g + i, 0xffffffffu, &c, idx, kv, nearest);
        idx = _mm512_add_epi32(idx, step);
    }
    if (i < n)
        block32(theta + i, m + i, v + i, g + i, (__mmask32)((1ull << (n - i)) - 1), &c, idx, kv,
                nearest);
}

static void amo_bf16_avx512bf16(float *theta, uint16_t *m, uint16_t *v, const float *g,
                                size_t n, const KnAmoArgs *a, uint32_t key, uint64_t index0,
                                int nearest)
{
    if (nearest)
        loop(theta, m, v, g, n, a, key, index0, 1);
    else
        loop(theta, m, v, g, n, a, key, index0, 0);
}

void kn_update_dsp_init_avx512bf16(KnUpdateDSP *dsp)
{
    dsp->amo_bf16 = amo_bf16_avx512bf16;
    dsp->level[KN_K_AMO_BF16] = "avx512bf16";
}

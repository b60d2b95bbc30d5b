/* The table of update kernels (internal to kernels/).  Init fills every slot
 * with the C reference, then each ISA level overrides the slots it has
 * (dav1d's ladder).  A slot processes one contiguous range on the calling
 * thread; update.c does the checking and the threading. */
#ifndef AMO_KERNELS_UPDATE_DSP_H
#define AMO_KERNELS_UPDATE_DSP_H

#include <string.h>

#include "kernels/update.h"

typedef struct KnUpdateDSP {
    void (*amo)(float *theta, float *m, float *v, const float *g, size_t n,
                const KnAmoArgs *a);
    /* key: kn_bf16_key(); index0: global index of element 0 */
    void (*amo_bf16)(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                     const KnAmoArgs *a, const KnBf16Key *key, uint64_t index0, int nearest);
    void (*sgd)(float *theta, float *buf, const float *g, size_t n, const KnSgdArgs *a);
    void (*rmsprop)(float *theta, float *v, float *buf, const float *g, size_t n,
                    const KnRmspropArgs *a);
    /* n <= KN_SUMSQ_CHUNK: element i goes to lane i % 32 (each lane a
     * sequential fp64 sum from +0.0), then kn_sumsq_lanes() combines them. */
    double (*sumsq)(const float *x, size_t n);
    const char *level[KN_K_COUNT];
} KnUpdateDSP;

/* The type of the bf16-state slot. */
typedef void KnAmoBf16Fn(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                         const KnAmoArgs *a, const KnBf16Key *key, uint64_t index0, int nearest);

/* The rounding stream comes in blocks of 4 elements aligned on the global
 * index (bf16.h), which the SIMD kernels compute 4 at a time.  A call whose
 * index0 is not a multiple of 4 first runs fn on a zero-padded copy of its
 * head's block: elements 0 .. h-1 at positions index0 % 4 .. 3, so each
 * gets its own word and the same instructions as anywhere else.  Returns h
 * (0 when aligned or rounding to nearest); the caller goes on from there,
 * aligned. */
static inline size_t kn_bf16_head(KnAmoBf16Fn *fn, float *theta, uint16_t *m, uint16_t *v,
                                  const float *g, size_t n, const KnAmoArgs *a,
                                  const KnBf16Key *key, uint64_t index0, int nearest)
{
    const size_t s = (size_t)(index0 & 3);
    if (nearest || s == 0 || n == 0)
        return 0;
    const size_t h = n < 4 - s ? n : 4 - s;
    float tb[4] = { 0 }, gb[4] = { 0 };
    uint16_t mb[4] = { 0 }, vb[4] = { 0 };
    memcpy(tb + s, theta, h * sizeof(float));
    memcpy(gb + s, g, h * sizeof(float));
    memcpy(mb + s, m, h * sizeof(uint16_t));
    memcpy(vb + s, v, h * sizeof(uint16_t));
    fn(tb, mb, vb, gb, 4, a, key, index0 - s, 0);
    memcpy(theta, tb + s, h * sizeof(float));
    memcpy(m, mb + s, h * sizeof(uint16_t));
    memcpy(v, vb + s, h * sizeof(uint16_t));
    return h;
}

#define KN_SUMSQ_LANES 32

/* The fixed pairwise tree over the 32 lanes, shared by every level so that
 * all of them give bitwise the same sum. */
static inline double kn_sumsq_lanes(const double lane[KN_SUMSQ_LANES])
{
    double t[KN_SUMSQ_LANES];
    for (int i = 0; i < KN_SUMSQ_LANES; i++)
        t[i] = lane[i];
    for (int w = KN_SUMSQ_LANES / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++)
            t[i] = t[i] + t[i + w];
    return t[0];
}

/* Each level's init overrides the slots it has for these CPU flags (the
 * bf16-state slot needs KN_CPU_AES at the avx2 level, and picks VAESENC or
 * AESENC at the avx512 levels by KN_CPU_VAES). */
void kn_update_dsp_init_c(KnUpdateDSP *dsp);
void kn_update_dsp_init_avx2(KnUpdateDSP *dsp, unsigned flags);
void kn_update_dsp_init_avx512(KnUpdateDSP *dsp, unsigned flags);
void kn_update_dsp_init_avx512bf16(KnUpdateDSP *dsp, unsigned flags);
void kn_update_dsp_init_neon(KnUpdateDSP *dsp, unsigned flags);

/* One AES encryption round on the 16 bytes s (FIPS-197 byte order), as x86
 * AESENC: SubBytes, ShiftRows, MixColumns, then XOR the round key k
 * (bf16.c: the portable half of the stochastic-rounding stream). */
void kn_aes_enc_round(uint8_t s[16], const uint8_t k[16]);

/* The table for the current kn_cpu_flags(), rebuilt when the flags change;
 * NULL when AMO_ARCH names a level the CPU does not have. */
const KnUpdateDSP *kn_update_dsp(void);

#endif

/* The table of update kernels (internal to kernels/).  Init fills every slot
 * with the C reference, then each ISA level overrides the slots it has
 * (dav1d's ladder).  A slot processes one contiguous range on the calling
 * thread; update.c does the checking and the threading. */
#ifndef AMO_KERNELS_UPDATE_DSP_H
#define AMO_KERNELS_UPDATE_DSP_H

#include "kernels/update.h"

typedef struct KnUpdateDSP {
    void (*amo)(float *theta, float *m, float *v, const float *g, size_t n,
                const KnAmoArgs *a);
    /* key: kn_bf16_key(); index0: global index of element 0 */
    void (*amo_bf16)(float *theta, uint16_t *m, uint16_t *v, const float *g, size_t n,
                     const KnAmoArgs *a, uint32_t key, uint64_t index0, int nearest);
    void (*sgd)(float *theta, float *buf, const float *g, size_t n, const KnSgdArgs *a);
    void (*rmsprop)(float *theta, float *v, float *buf, const float *g, size_t n,
                    const KnRmspropArgs *a);
    /* n <= KN_SUMSQ_CHUNK: element i goes to lane i % 32 (each lane a
     * sequential fp64 sum from +0.0), then kn_sumsq_lanes() combines them. */
    double (*sumsq)(const float *x, size_t n);
    const char *level[KN_K_COUNT];
} KnUpdateDSP;

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

void kn_update_dsp_init_c(KnUpdateDSP *dsp);
void kn_update_dsp_init_avx2(KnUpdateDSP *dsp);
void kn_update_dsp_init_avx512(KnUpdateDSP *dsp);
void kn_update_dsp_init_avx512bf16(KnUpdateDSP *dsp);
void kn_update_dsp_init_neon(KnUpdateDSP *dsp);

/* The table for the current kn_cpu_flags(), rebuilt when the flags change;
 * NULL when AMO_ARCH names a level the CPU does not have. */
const KnUpdateDSP *kn_update_dsp(void);

#endif

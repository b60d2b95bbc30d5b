/* The measured bandwidth limit beside each update kernel: loops that move
 * exactly the bytes a kernel moves (same arrays, same element sizes, same
 * reads and writes, plain vector loads and stores, no streaming stores) and
 * do next to no arithmetic.  amo-bench kernels runs each kernel and then
 * its limit on the same buffers, at the same thread count, with the same
 * split of the tensor into contiguous chunks as kernels/update.c, at the
 * CPU level kn_cpu_flags() selects (scalar and neon: plain C, vectorised
 * by the compiler for the baseline, SSE2 or ASIMD; avx2 and avx512:
 * limit_<isa>.c, built with the kernels' flags for those levels).
 *
 * The loops add s * g to each fp32 array that is written (s = 0 at run
 * time, so the compiler cannot know it; a -0 may become +0) and XOR the
 * bf16 arrays with 0: the kernels' state is left as it was. */
#ifndef AMO_HARNESS_LIMIT_H
#define AMO_HARNESS_LIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum HxLimitKind {
    HX_LIMIT_F3,  /* 3 fp32 arrays read+written, 1 fp32 read: 28 B/param
                     (AMO and Adam fp32, RMSprop with momentum)            */
    HX_LIMIT_F2,  /* 2 fp32 read+written, 1 fp32 read: 20 B/param
                     (SGD with momentum, RMSprop without)                  */
    HX_LIMIT_F1H2,/* 1 fp32 and 2 uint16 read+written, 1 fp32 read:
                     20 B/param (AMO with bf16 moments)                    */
    HX_LIMIT_R1,  /* 1 fp32 array read: 4 B/param (sum of squares)        */
    HX_LIMIT_COUNT
} HxLimitKind;

/* Bytes moved per parameter. */
int hx_limit_bytes(HxLimitKind k);

/* Runs the limit loop of kind k over n parameters on nthreads threads.
 * f[0..2] are the fp32 arrays written (as many as the kind has; for
 * HX_LIMIT_R1, f[0] is the one read), h[0..1] the uint16 ones, g the fp32
 * array only read.  Returns a value derived from every element read by
 * HX_LIMIT_R1 (so the loads cannot be dropped), 0 otherwise.  The split
 * into threads is the one the kernel uses (see limit.c). */
double hx_limit_run(HxLimitKind k, float *const f[3], uint16_t *const h[2], const float *g,
                    size_t n, int nthreads, int late);

/* late != 0: every value stored first goes through HX_LIMIT_LATE_DEPTH
 * dependent multiply-adds y * (1 + s) + (-s), s = 0 read at run time, which
 * keep it bit for bit (y * 1 + (-0) = y for -0 too) but quiet a signalling
 * NaN; bf16 values are widened to fp32 for them and narrowed back, exactly.
 * So the stores wait on arithmetic, as a kernel's do.  On some cores a loop
 * whose stores go out as soon as their loads arrive streams slower than one
 * whose stores wait (an AMD Zen 5 core at 64M parameters:
 * results/kernels/README.md, session 9), so amo-bench kernels times both
 * forms and takes the faster as the limit.  HX_LIMIT_R1 stores nothing and
 * ignores late. */
#define HX_LIMIT_LATE_DEPTH 8

/* The machine's measured fp32 FMA peak in GFLOP/s at the current level, on
 * nthreads threads: independent FMA chains in registers (12 per thread,
 * enough to cover the latency of two FMA units), no memory traffic; the
 * best of a few repetitions of about 50 ms. */
double hx_fma_peak_gflops(int nthreads);

/* For tests only: the s the loops read (0 unless set), so that a test can
 * see each form's arithmetic, the late form's depth included. */
void hx_limit_set_s(float s);

/* The level the limit loops run at now ("c-baseline", "avx2", "avx512"). */
const char *hx_limit_level(void);

/* ---- internal: the per-level loops (one contiguous range each) -------- */
typedef struct HxLimitDSP {
    void (*f3)(float *a, float *b, float *c, const float *g, size_t n, float s, int late);
    void (*f2)(float *a, float *b, const float *g, size_t n, float s, int late);
    void (*f1h2)(float *a, uint16_t *b, uint16_t *c, const float *g, size_t n, float s,
                 uint16_t k, int late);
    double (*r1)(const float *x, size_t n);
    /* iters rounds of 12 independent FMA chains; returns the flops done
     * (and a value derived from the chains, in *sink, so none is dropped) */
    double (*fma)(long iters, float *sink);
    const char *level;
} HxLimitDSP;

#define HX_LIMIT_INLINE static inline __attribute__((always_inline))

/* The late form on one value (the C level, and the vector levels' tails). */
HX_LIMIT_INLINE float hx_limit_keep(float y, float s, int late)
{
    if (late)
        for (int j = 0; j < HX_LIMIT_LATE_DEPTH; j++)
            y = y * (1.0f + s) + -s;
    return y;
}

HX_LIMIT_INLINE uint16_t hx_limit_keep_bf16(uint16_t h, float s, uint16_t k, int late)
{
    if (late) {
        uint32_t u = (uint32_t)h << 16;
        float y;
        memcpy(&y, &u, sizeof y);
        y = hx_limit_keep(y, s, 1);
        memcpy(&u, &y, sizeof u);
        h = (uint16_t)(u >> 16);
    }
    return h ^ k;
}

/* Each level's f3_SFX, f2_SFX and f1h2_SFX for the table: its inline
 * f3_body, f2_body and f1h2_body instantiated with late a constant, so the
 * plain form's loop stays free of the late form's code. */
#define HX_LIMIT_FORMS(sfx)                                                                   \
    static void f3_##sfx(float *a, float *b, float *c, const float *g, size_t n, float s,      \
                         int late)                                                            \
    {                                                                                         \
        if (late)                                                                             \
            f3_body(a, b, c, g, n, s, 1);                                                     \
        else                                                                                  \
            f3_body(a, b, c, g, n, s, 0);                                                     \
    }                                                                                         \
    static void f2_##sfx(float *a, float *b, const float *g, size_t n, float s, int late)     \
    {                                                                                         \
        if (late)                                                                             \
            f2_body(a, b, g, n, s, 1);                                                        \
        else                                                                                  \
            f2_body(a, b, g, n, s, 0);                                                        \
    }                                                                                         \
    static void f1h2_##sfx(float *a, uint16_t *b, uint16_t *c, const float *g, size_t n,      \
                           float s, uint16_t k, int late)                                     \
    {                                                                                         \
        if (late)                                                                             \
            f1h2_body(a, b, c, g, n, s, k, 1);                                                \
        else                                                                                  \
            f1h2_body(a, b, c, g, n, s, k, 0);                                                \
    }

void hx_limit_init_avx2(HxLimitDSP *d);
void hx_limit_init_avx512(HxLimitDSP *d);

#endif

/* Optimizer update kernels: the per-element arithmetic of AMO and of the
 * baselines it is compared with, one pass over memory each.
 *
 * Every kernel has a plain C reference (update_ref.c, the specification) and
 * AVX2, AVX-512 and NEON versions chosen at run time from kn_cpu_flags().
 * All of them accept any alignment and any n, and process element i with the
 * same instruction sequence wherever i falls (tails use masks or a padded
 * copy), so results are bitwise independent of how a tensor is split across
 * threads.
 *
 * Per-step scalars (bias-correction factors, the clip scale) are computed
 * once by the caller and passed in the argument structs. */
#ifndef AMO_KERNELS_UPDATE_H
#define AMO_KERNELS_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/bf16.h"
#include "common/status.h"

/* AMO (paper, section 3, Algorithm 1), per element:
 *     g     = grad_scale * g + l2 * theta       (l2: coupled weight decay)
 *     m     = beta  * m + (1 - beta)  * g
 *     v     = gamma * v + (1 - gamma) * g^2
 *     theta = theta - decay * theta             (decay: decoupled, = lr * wd)
 *     theta = theta - lr * m / (sqrt(v) * v_scale + eps)
 *     theta = min(max(theta, lo), hi)
 * AMO itself has v_scale = 1 and lr = alpha0 (no bias correction).  Adam is
 * the same arithmetic with lr = alpha / (1 - beta^t) and
 * v_scale = 1 / sqrt(1 - gamma^t): see kn_adam_args(). */
typedef struct KnAmoArgs {
    float lr;          /* alpha0; for Adam alpha / (1 - beta^t)              */
    float beta, gamma; /* first and second moment decay (Adam's beta1, beta2) */
    float eps;         /* >= FLT_MIN: a denormal eps gives NaN at avx512 where
                        * v is 0 (its reciprocal estimate is Inf)             */
    float v_scale;     /* multiplies sqrt(v): 1 for AMO                       */
    float grad_scale;  /* global-norm clip factor; 1 when not clipping        */
    float l2;          /* coupled weight decay (added to the gradient); 0 off */
    float decay;       /* decoupled weight decay per step (lr * wd); 0 off    */
    float lo, hi;      /* parameter bounds; -INFINITY / INFINITY when off     */
} KnAmoArgs;

/* AMO with the paper's defaults (alpha0 1e-3, beta 0.9, gamma 0.999, eps
 * 1e-8), no clipping, no decay, no bounds. */
AMO_API KnAmoArgs kn_amo_args_default(void);

/* Adam (PyTorch torch.optim.Adam) at step t >= 1, expressed as KnAmoArgs:
 * the bias corrections are folded into lr and v_scale in double precision. */
AMO_API KnAmoArgs kn_adam_args(float lr, float beta1, float beta2, float eps, uint64_t t);

/* SGD with momentum, as torch.optim.SGD documents it:
 *     g = grad_scale * g + l2 * theta
 *     b = first ? g : momentum * b + (1 - dampening) * g
 *     d = nesterov ? g + momentum * b : b      (d = g when momentum == 0)
 *     theta = theta - decay * theta - lr * d,  then clamped to [lo, hi]
 * With momentum == 0 the buffer is not touched and may be NULL. */
typedef struct KnSgdArgs {
    float lr, momentum, dampening;
    int nesterov;      /* 0 or 1 */
    int first;         /* 1 on the first step: the buffer is set to g       */
    float grad_scale, l2, decay, lo, hi;
} KnSgdArgs;

/* RMSprop, as torch.optim.RMSprop documents it (not centered):
 *     g = grad_scale * g + l2 * theta
 *     v = alpha * v + (1 - alpha) * g^2
 *     momentum > 0: b = momentum * b + g / (sqrt(v) + eps); d = b
 *     otherwise:    d = g / (sqrt(v) + eps)   (b untouched, may be NULL)
 *     theta = theta - decay * theta - lr * d,  then clamped to [lo, hi] */
typedef struct KnRmspropArgs {
    float lr, alpha, eps, momentum; /* eps >= FLT_MIN, as KnAmoArgs */
    float grad_scale, l2, decay, lo, hi;
} KnRmspropArgs;

/* The bf16-state kernels may compute the step lr * m / (sqrt(v) * v_scale +
 * eps) to this relative error, where the fp32 kernels stay within a few
 * ulp: their moments carry 8 significant bits (stochastic rounding moves m
 * by up to 2^-8 of itself each step), 16 times more than this.  The
 * avx512bf16 level uses the room (three 14-bit estimates without Newton
 * steps: 3 x 2^-14 at most, 0.42 x 2^-12 measured); the other levels
 * compute the step as in fp32. */
#define KN_BF16_STEP_RTOL 0x1p-12

/* Sums of squares are accumulated in fp64 over chunks of this many elements;
 * the chunk sums are added in order.  The order is fixed by n alone, so the
 * result is bitwise the same for any thread count and any ISA level. */
#define KN_SUMSQ_CHUNK 65536

/* The public entry points.  They check their arguments, then run the kernel
 * chosen for the current CPU flags over nthreads contiguous chunks (OpenMP;
 * nthreads <= 1 runs on the calling thread).
 *   - n == 0 is a no-op and returns AMO_OK, whatever the pointers.
 *   - A NULL buffer that the call needs, with n > 0: AMO_EINVAL.
 *   - Overlapping buffers: AMO_EOVERLAP (in place means theta, m and v are
 *     each updated in place; no two of them and g may share memory).
 *   - A non-finite scalar (lr, beta, ..., NaN bounds, lo > hi): AMO_EINVAL.
 *   - A bad AMO_ARCH: its status (AMO_EINVAL unknown name, AMO_EUNSUPPORTED
 *     a level the CPU lacks), until kn_cpu_set_arch() overrides it.
 * Nothing is written when an error is returned. */
AMO_API AmoStatus kn_amo_update(float *theta, float *m, float *v, const float *g, size_t n,
                               const KnAmoArgs *a, int nthreads);
AMO_API AmoStatus kn_amo_update_bf16(float *theta, uint16_t *m, uint16_t *v, const float *g,
                                    size_t n, const KnAmoArgs *a, const KnBf16Round *r,
                                    int nthreads);
AMO_API AmoStatus kn_sgd_update(float *theta, float *buf, const float *g, size_t n,
                               const KnSgdArgs *a, int nthreads);
AMO_API AmoStatus kn_rmsprop_update(float *theta, float *v, float *buf, const float *g, size_t n,
                                   const KnRmspropArgs *a, int nthreads);

/* Sum of x[i]^2 in fp64 (order: see KN_SUMSQ_CHUNK).  Writes *out and
 * returns AMO_ENONFINITE if any x[i] is NaN or Inf (then *out is NaN or Inf:
 * squares of floats cannot overflow a double sum), AMO_OK otherwise. */
AMO_API AmoStatus kn_sumsq(const float *x, size_t n, int nthreads, double *out);

/* The kernel slots, and which level each one is using now. */
typedef enum KnKernel {
    KN_K_AMO, KN_K_AMO_BF16, KN_K_SGD, KN_K_RMSPROP, KN_K_SUMSQ, KN_K_COUNT
} KnKernel;
AMO_API const char *kn_kernel_name(KnKernel k);
AMO_API const char *kn_kernel_level(KnKernel k);

#endif

/* The optimizers: AMO (the paper, section 3) and the baselines it is
 * compared with, over a list of parameter tensors, on top of the update
 * kernels in kernels/.
 *
 *     OptConfig c = opt_config_default(OPT_AMO);
 *     Opt *o;
 *     if (opt_create(&o, &c, tensors, count, err, sizeof err)) ... report err
 *     for (;;) {
 *         ... fill the gradients ...
 *         OptStepInfo info;
 *         opt_step(o, &info);   // info.grad_norm, .clipped, .skipped, .lr
 *     }
 *
 * One step: global gradient L2 norm over all tensors (one pass, fp64, the
 * same bits for any thread count); if it is NaN or Inf the step is skipped
 * and nothing changes; clip factor min(1, tau / (norm + 1e-6)) handed to the
 * kernels as their gradient scale (clipping costs no extra pass); one
 * update pass per tensor with the bounds applied in the same pass. */
#ifndef AMO_OPTIM_OPTIM_H
#define AMO_OPTIM_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef enum OptAlgo { OPT_AMO, OPT_ADAM, OPT_SGD, OPT_RMSPROP } OptAlgo;

typedef enum OptSchedule {
    OPT_SCHED_CONSTANT, /* lr (the paper's choice)                                  */
    OPT_SCHED_STEP,     /* lr * step_gamma ^ floor((t - 1) / step_size)              */
    OPT_SCHED_COSINE,   /* min_lr + (lr - min_lr) (1 + cos(pi (t-1) / total)) / 2,
                         * then min_lr after total steps                          */
    OPT_SCHED_INVSQRT,  /* lr / sqrt(t): the step size of the paper's Theorem 1      */
} OptSchedule;

typedef enum OptDecay {
    OPT_DECAY_L2,        /* coupled: wd * theta added to the gradient (PyTorch Adam) */
    OPT_DECAY_DECOUPLED, /* theta -= lr * wd * theta before the update (AdamW)       */
} OptDecay;

typedef enum OptStateType { OPT_STATE_FP32, OPT_STATE_BF16 } OptStateType;

typedef struct OptConfig {
    OptAlgo algo;
    float lr;               /* alpha0                                             */
    /* AMO and Adam */
    float beta, gamma;      /* first and second moment decay (Adam's beta1, beta2) */
    float eps;
    int bias_correction;    /* AMO only: 1 makes AMO Adam (isolates the mechanism) */
    /* SGD and RMSprop */
    float momentum, dampening;
    int nesterov;
    float alpha;            /* RMSprop smoothing constant                         */
    /* all */
    int clip;               /* global-norm gradient clipping on/off               */
    float tau;              /* clip threshold                                     */
    float lo, hi;           /* parameter bounds; -INFINITY / INFINITY: off        */
    float weight_decay;     /* 0: off                                             */
    OptDecay decay_mode;
    OptSchedule schedule;
    uint64_t warmup;        /* linear warm-up steps (0: none), before schedule    */
    uint64_t step_size;     /* OPT_SCHED_STEP                                     */
    float step_gamma;       /* OPT_SCHED_STEP                                     */
    uint64_t total_steps;   /* OPT_SCHED_COSINE                                   */
    float min_lr;           /* OPT_SCHED_COSINE                                   */
    OptStateType state;     /* moments in fp32, or bf16 (AMO and Adam only)       */
    uint64_t seed;          /* stochastic rounding of bf16 moments                */
    int threads;            /* OpenMP threads for the step (each parallel region
                             * names it; the caller's OpenMP settings and affinity
                             * are left alone); 0: omp_get_max_threads()           */
} OptConfig;

/* The defaults, documented in README.md:
 *   AMO      lr 1e-3, beta 0.9, gamma 0.999, eps 1e-8, clipping on, tau 1.0
 *   Adam     lr 1e-3, beta 0.9, gamma 0.999, eps 1e-8   (PyTorch's)
 *   SGD      lr 0.1, momentum 0.9, dampening 0, no Nesterov
 *   RMSprop  lr 1e-2, alpha 0.99, eps 1e-8, momentum 0  (PyTorch's)
 * and for all: no bounds, no weight decay, constant schedule, fp32 state,
 * clipping off except for AMO. */
AMO_API OptConfig opt_config_default(OptAlgo algo);

AMO_API const char *opt_algo_name(OptAlgo a);
/* "amo", "adam", "sgd", "rmsprop" -> algo; -1 if unknown. */
AMO_API int opt_algo_parse(const char *name);

/* One parameter tensor.  The optimizer keeps the pointers: the caller owns
 * the memory and fills grad before each step. */
typedef struct OptTensor {
    float *param;
    float *grad;
    size_t n;
    int no_decay;           /* 1: no weight decay (biases, batch-norm affine) */
} OptTensor;

typedef struct Opt Opt;

/* Checks the configuration (beta, gamma, alpha outside [0, 1), eps < FLT_MIN,
 * tau <= 0 with clipping on, a negative or non-finite lr, lo > hi, ...) and
 * the tensors (NULL, overlapping).  On error returns AMO_EINVAL (or
 * AMO_ENOMEM) and writes a message naming the value into err. */
AMO_API AmoStatus opt_create(Opt **out, const OptConfig *cfg, const OptTensor *tensors, int count,
                            char *err, size_t errlen);
AMO_API void opt_destroy(Opt *o);

typedef struct OptStepInfo {
    double grad_norm;       /* global L2 norm before clipping (NaN/Inf if skipped) */
    float grad_scale;       /* clip factor applied (1 if not clipped)              */
    float lr;               /* learning rate of this step                         */
    int clipped, skipped;   /* 0 or 1                                              */
    uint64_t step;          /* steps taken so far, skipped ones not counted        */
    const char *level;      /* ISA level of the update kernel that ran            */
} OptStepInfo;

/* One step.  A NaN or Inf gradient skips it (info->skipped = 1, params and
 * state bitwise untouched) and returns AMO_OK: a training loop logs and goes
 * on.  Errors (AMO_EUNSUPPORTED for a bad AMO_ARCH) leave everything as it
 * was. */
AMO_API AmoStatus opt_step(Opt *o, OptStepInfo *info);

/* What a binding (python/amo, PyTorch) changes between steps, without
 * rebuilding the optimizer or touching its state.
 *
 * New parameter and gradient pointers (autograd reallocates gradients; a
 * PyTorch state dict load replaces parameters): the same count and sizes as
 * at creation, checked as opt_create checks them.  On error nothing changes. */
AMO_API AmoStatus opt_set_tensors(Opt *o, const OptTensor *tensors, int count, char *err,
                                  size_t errlen);

/* Per-tensor learning rate and weight decay (PyTorch's param groups):
 * from the next step, tensor i moves with lr opt_lr_at(cfg, t) * lr_scale[i]
 * and weight decay cfg.weight_decay * wd_scale[i] (0 still for no_decay
 * tensors).  A caller with its own schedules (PyTorch's) sets cfg.lr = 1,
 * cfg.weight_decay = 1 and passes the absolute values.  The global clip norm
 * stays global over all tensors.  NULL for one array: 1 for every tensor; both
 * NULL: back to the config alone.  Values must be finite and >= 0.  Not part
 * of the state file (opt_save).  On error nothing changes. */
AMO_API AmoStatus opt_set_tensor_scales(Opt *o, const float *lr_scale, const float *wd_scale,
                                        char *err, size_t errlen);

/* New hyperparameters from the next step on, moments and counters kept
 * (PyTorch's OneCycleLR cycles Adam's beta1 and SGD's momentum): checked as
 * opt_create checks them, and the algorithm, the state type and the moment
 * buffers it keeps must stay (SGD's momentum cannot go from 0 to > 0).  On
 * error nothing changes. */
AMO_API AmoStatus opt_set_config(Opt *o, const OptConfig *cfg, char *err, size_t errlen);

/* Moment buffer 0 or 1 (AMO/Adam: m, v; SGD: the momentum buffer; RMSprop:
 * v, then the momentum buffer), NULL if the algorithm keeps fewer.  The
 * tensors' moments lie one after the other in creation order, fp32 or bf16
 * (uint16_t, the top half of the fp32 bits) by cfg.state.  A caller may read
 * and write them between steps (a binding's state dict). */
AMO_API void *opt_moments(Opt *o, int buffer);

/* Sets the counters a state dict restores (clipped <= steps, else
 * AMO_EINVAL): the next step is steps + 1 (bias correction, SGD's first
 * step, the bf16 rounding stream). */
AMO_API AmoStatus opt_set_steps(Opt *o, uint64_t steps, uint64_t skipped, uint64_t clipped);

/* Learning rate the schedule gives at step t (t >= 1). */
AMO_API float opt_lr_at(const OptConfig *cfg, uint64_t t);

AMO_API const OptConfig *opt_config(const Opt *o);
AMO_API uint64_t opt_steps(const Opt *o);         /* updates applied              */
AMO_API uint64_t opt_skipped(const Opt *o);       /* steps skipped for NaN/Inf    */
AMO_API uint64_t opt_clipped(const Opt *o);       /* steps whose gradient was clipped */
AMO_API int opt_threads(const Opt *o);            /* OpenMP threads the step uses */

/* State file: the caller's tag, step counts, the hyperparameters and every
 * moment buffer, versioned and checksummed (format in optim.c).  Saving
 * writes a temporary file and renames it, so a crash never leaves a
 * half-written state.  The tag is opaque here: a caller that keeps states of
 * several runs side by side passes a hash of what identifies the run, and
 * loading refuses a file saved with another tag.  Loading refuses
 * (AMO_EFORMAT, message in err naming the file and the byte offset or field)
 * a truncated or corrupted file, another tag, algorithm, state type,
 * hyperparameter or tensor size; nothing is changed unless the whole file
 * checks out.  The step counts are the file's: a caller that knows which
 * step it resumes compares opt_steps + opt_skipped with it.  AMO_EIO: the
 * file cannot be opened, read or written. */
AMO_API AmoStatus opt_save(const Opt *o, const char *path, uint64_t tag, char *err, size_t errlen);
AMO_API AmoStatus opt_load(Opt *o, const char *path, uint64_t tag, char *err, size_t errlen);

#endif

/* The optimizer step (paper, section 3, Algorithm 1, with the baselines of
 * section 5) on top of the kernels, and the state file. */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/cpu.h"
#include "common/hash.h"
#include "kernels/update.h"
#include "optim/optim.h"

/* A piece is one contiguous run of one tensor, at most one sum-of-squares
 * chunk long and starting on a chunk boundary of its tensor, so that the
 * chunk sums can be computed in any order and added in a fixed one. */
typedef struct Piece {
    int tensor;
    size_t off;          /* element offset inside the tensor        */
    size_t n;
    size_t state_off;    /* element offset inside the moment buffers */
} Piece;

struct Opt {
    OptConfig cfg;
    OptTensor *t;
    int count;
    size_t total;        /* elements over all tensors */
    Piece *pieces;
    size_t npieces;
    double *partial;     /* one sum of squares per piece */
    void *s0, *s1;       /* moment buffers (layout: see state_buffers()) */
    uint64_t steps, skipped, clipped;
    int threads;
    float *lr_scale, *wd_scale; /* per tensor (opt_set_tensor_scales); NULL: all 1 */
    struct StepArgs *targs;     /* per tensor, this step's, when the scales are set */
};

static void set_err(char *err, size_t len, const char *fmt, ...)
{
    if (!err || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* ---- configuration ------------------------------------------------------- */

OptConfig opt_config_default(OptAlgo algo)
{
    OptConfig c = {
        .algo = algo, .lr = 1e-3f, .beta = 0.9f, .gamma = 0.999f, .eps = 1e-8f,
        .bias_correction = 0, .momentum = 0.0f, .dampening = 0.0f, .nesterov = 0,
        .alpha = 0.99f, .clip = 0, .tau = 1.0f, .lo = -INFINITY, .hi = INFINITY,
        .weight_decay = 0.0f, .decay_mode = OPT_DECAY_L2, .schedule = OPT_SCHED_CONSTANT,
        .warmup = 0, .step_size = 1000, .step_gamma = 0.1f, .total_steps = 0,
        .min_lr = 0.0f, .state = OPT_STATE_FP32, .seed = 0, .threads = 0,
    };
    switch (algo) {
    case OPT_AMO: c.clip = 1; break;
    case OPT_ADAM: break;
    case OPT_SGD: c.lr = 0.1f; c.momentum = 0.9f; break;
    case OPT_RMSPROP: c.lr = 1e-2f; break;
    }
    return c;
}

static const char *const algo_names[] = { "amo", "adam", "sgd", "rmsprop" };

const char *opt_algo_name(OptAlgo a)
{
    return (unsigned)a < 4 ? algo_names[a] : "?";
}

int opt_algo_parse(const char *name)
{
    for (int i = 0; name && i < 4; i++)
        if (!strcmp(name, algo_names[i]))
            return i;
    return -1;
}

static int in_unit(float x) { return isfinite(x) && x >= 0.0f && x < 1.0f; }

static AmoStatus check_config(const OptConfig *c, char *err, size_t len)
{
#define BAD(...) do { set_err(err, len, __VA_ARGS__); return AMO_EINVAL; } while (0)
    if ((unsigned)c->algo > OPT_RMSPROP)
        BAD("unknown algorithm %d", (int)c->algo);
    if (!isfinite(c->lr) || c->lr < 0.0f)
        BAD("lr %g: must be finite and >= 0", (double)c->lr);
    if (c->algo == OPT_AMO || c->algo == OPT_ADAM) {
        if (!in_unit(c->beta))
            BAD("beta %g: must be in [0, 1)", (double)c->beta);
        if (!in_unit(c->gamma))
            BAD("gamma %g: must be in [0, 1)", (double)c->gamma);
    }
    /* A denormal eps would make sqrt(v) + eps denormal where v is 0, whose
     * AVX-512 reciprocal estimate is Inf (0 * Inf: NaN), see amo_quotient. */
    if (c->algo != OPT_SGD && !(isfinite(c->eps) && c->eps >= FLT_MIN))
        BAD("eps %g: must be finite and >= %g (FLT_MIN, the smallest normal float)",
            (double)c->eps, (double)FLT_MIN);
    if (c->algo == OPT_RMSPROP && !in_unit(c->alpha))
        BAD("alpha %g: must be in [0, 1)", (double)c->alpha);
    if ((c->algo == OPT_SGD || c->algo == OPT_RMSPROP) &&
        !(isfinite(c->momentum) && c->momentum >= 0.0f))
        BAD("momentum %g: must be finite and >= 0", (double)c->momentum);
    if (c->algo == OPT_SGD && !in_unit(c->dampening) && c->dampening != 1.0f)
        BAD("dampening %g: must be in [0, 1]", (double)c->dampening);
    if (c->algo == OPT_SGD && c->nesterov && (c->momentum <= 0.0f || c->dampening != 0.0f))
        BAD("nesterov needs momentum > 0 and dampening 0 (as in PyTorch)");
    if (c->clip && !(isfinite(c->tau) && c->tau > 0.0f))
        BAD("tau %g: must be finite and > 0", (double)c->tau);
    if (isnan(c->lo) || isnan(c->hi) || c->lo > c->hi || c->lo == INFINITY || c->hi == -INFINITY)
        BAD("bounds [%g, %g]: need lo <= hi", (double)c->lo, (double)c->hi);
    if (!isfinite(c->weight_decay) || c->weight_decay < 0.0f)
        BAD("weight decay %g: must be finite and >= 0", (double)c->weight_decay);
    if ((unsigned)c->decay_mode > OPT_DECAY_DECOUPLED)
        BAD("unknown weight decay mode %d", (int)c->decay_mode);
    if ((unsigned)c->schedule > OPT_SCHED_INVSQRT)
        BAD("unknown schedule %d", (int)c->schedule);
    if (c->schedule == OPT_SCHED_STEP &&
        (c->step_size == 0 || !isfinite(c->step_gamma) || c->step_gamma <= 0.0f ||
         c->step_gamma > 1.0f))
        BAD("step schedule: step size %llu must be > 0 and factor %g in (0, 1]",
            (unsigned long long)c->step_size, (double)c->step_gamma);
    if (c->schedule == OPT_SCHED_COSINE &&
        (c->total_steps == 0 || !isfinite(c->min_lr) || c->min_lr < 0.0f || c->min_lr > c->lr))
        BAD("cosine schedule: total steps %llu must be > 0 and min lr %g in [0, lr]",
            (unsigned long long)c->total_steps, (double)c->min_lr);
    if ((unsigned)c->state > OPT_STATE_BF16)
        BAD("unknown state type %d", (int)c->state);
    if (c->state == OPT_STATE_BF16 && c->algo != OPT_AMO && c->algo != OPT_ADAM)
        BAD("bf16 state is for amo and adam only, not %s", opt_algo_name(c->algo));
    if (c->threads < 0)
        BAD("threads %d: must be >= 0 (0: one per core)", c->threads);
    return AMO_OK;
#undef BAD
}

float opt_lr_at(const OptConfig *c, uint64_t t)
{
    if (t < 1)
        t = 1;
    double lr = c->lr;
    switch (c->schedule) {
    case OPT_SCHED_CONSTANT: break;
    case OPT_SCHED_STEP:
        if (c->step_size)
            lr *= pow(c->step_gamma, (double)((t - 1) / c->step_size));
        break;
    case OPT_SCHED_COSINE:
        /* after total_steps it stays at min_lr (PyTorch's CosineAnnealingLR
         * would climb back up) */
        lr = t > c->total_steps || !c->total_steps
                 ? c->min_lr
                 : c->min_lr + (c->lr - c->min_lr) * 0.5 *
                                   (1.0 + cos(3.14159265358979323846 * (double)(t - 1) / (double)c->total_steps));
        break;
    case OPT_SCHED_INVSQRT: lr /= sqrt((double)t); break;
    }
    if (c->warmup && t <= c->warmup)
        lr *= (double)t / (double)c->warmup;
    return (float)lr;
}

/* ---- creation -------------------------------------------------------------- */

/* Moment buffers per algorithm: AMO/Adam m (s0), v (s1); SGD momentum buffer
 * (s0, only with momentum); RMSprop v (s0), momentum buffer (s1, only with
 * momentum). */
static int state_buffers(const OptConfig *c)
{
    switch (c->algo) {
    case OPT_AMO: case OPT_ADAM: return 2;
    case OPT_SGD: return c->momentum != 0.0f;
    case OPT_RMSPROP: return 1 + (c->momentum > 0.0f);
    }
    return 0;
}

static size_t state_elem_size(const OptConfig *c)
{
    return c->state == OPT_STATE_BF16 ? sizeof(uint16_t) : sizeof(float);
}

static void *alloc_zero(size_t bytes)
{
    const size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p)
        memset(p, 0, rounded ? rounded : 64);
    return p;
}

static int spans_overlap(const float *a, size_t an, const float *b, size_t bn)
{
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return an && bn && x < y + bn * sizeof(float) && y < x + an * sizeof(float);
}

/* A parameter may share memory with no other tensor's parameter or
 * gradient: pieces are updated in parallel, so tied weights would race and
 * be updated twice (tie them by making them one tensor).  Gradients are only
 * read and may be shared.  O(count^2): run once, at creation. */
static AmoStatus check_cross_overlap(const OptTensor *t, int count, char *err, size_t len)
{
    for (int i = 0; i < count; i++)
        for (int j = 0; j < count; j++) {
            if (i == j)
                continue;
            if (i < j && spans_overlap(t[i].param, t[i].n, t[j].param, t[j].n)) {
                set_err(err, len, "tensors %d and %d: parameters overlap", i, j);
                return AMO_EINVAL;
            }
            if (spans_overlap(t[i].param, t[i].n, t[j].grad, t[j].n)) {
                set_err(err, len, "tensor %d param overlaps tensor %d grad", i, j);
                return AMO_EINVAL;
            }
        }
    return AMO_OK;
}

/* One tensor on its own: its pointers, and its parameter apart from its
 * gradient. */
static AmoStatus check_tensor(const OptTensor *t, int i, char *err, size_t errlen)
{
    if (t->n && (!t->param || !t->grad)) {
        set_err(err, errlen, "tensor %d: NULL param or grad with %zu elements", i, t->n);
        return AMO_EINVAL;
    }
    const uintptr_t p = (uintptr_t)t->param, g = (uintptr_t)t->grad, b = t->n * sizeof(float);
    if (t->n && p < g + b && g < p + b) {
        set_err(err, errlen, "tensor %d: param and grad overlap", i);
        return AMO_EINVAL;
    }
    return AMO_OK;
}

AmoStatus opt_create(Opt **out, const OptConfig *cfg, const OptTensor *tensors, int count,
                    char *err, size_t errlen)
{
    if (!out || !cfg || (count > 0 && !tensors) || count < 0) {
        set_err(err, errlen, "opt_create: NULL argument or negative tensor count");
        return AMO_EINVAL;
    }
    *out = NULL;
    AmoStatus st = check_config(cfg, err, errlen);
    if (st != AMO_OK)
        return st;
    size_t total = 0, npieces = 0;
    for (int i = 0; i < count; i++) {
        const OptTensor *t = &tensors[i];
        if ((st = check_tensor(t, i, err, errlen)) != AMO_OK)
            return st;
        total += t->n;
        npieces += (t->n + KN_SUMSQ_CHUNK - 1) / KN_SUMSQ_CHUNK;
    }
    if ((st = check_cross_overlap(tensors, count, err, errlen)) != AMO_OK)
        return st;
    Opt *o = calloc(1, sizeof(*o));
    if (!o) {
        set_err(err, errlen, "out of memory for the optimizer");
        return AMO_ENOMEM;
    }
    o->cfg = *cfg;
    o->count = count;
    o->total = total;
    o->npieces = npieces;
    o->t = malloc((size_t)(count ? count : 1) * sizeof(*o->t));
    o->pieces = malloc((npieces ? npieces : 1) * sizeof(*o->pieces));
    o->partial = malloc((npieces ? npieces : 1) * sizeof(*o->partial));
    const int nb = state_buffers(cfg);
    const size_t sb = total * state_elem_size(cfg);
    o->s0 = nb >= 1 ? alloc_zero(sb) : NULL;
    o->s1 = nb >= 2 ? alloc_zero(sb) : NULL;
    if (!o->t || !o->pieces || !o->partial || (nb >= 1 && !o->s0) || (nb >= 2 && !o->s1)) {
        opt_destroy(o);
        set_err(err, errlen, "out of memory for %zu parameters of optimizer state", total);
        return AMO_ENOMEM;
    }
    if (count)
        memcpy(o->t, tensors, (size_t)count * sizeof(*o->t));
    size_t k = 0, so = 0;
    for (int i = 0; i < count; i++) {
        for (size_t off = 0; off < tensors[i].n; off += KN_SUMSQ_CHUNK) {
            const size_t left = tensors[i].n - off;
            o->pieces[k++] = (Piece){ i, off, left < KN_SUMSQ_CHUNK ? left : KN_SUMSQ_CHUNK,
                                      so + off };
        }
        so += tensors[i].n;
    }
    /* Each parallel region names its thread count (num_threads): the
     * caller's OpenMP settings and affinity are left as they are. */
    o->threads = cfg->threads ? cfg->threads : omp_get_max_threads();
    *out = o;
    return AMO_OK;
}

void opt_destroy(Opt *o)
{
    if (!o)
        return;
    free(o->t);
    free(o->pieces);
    free(o->partial);
    free(o->s0);
    free(o->s1);
    free(o->lr_scale);
    free(o->wd_scale);
    free(o->targs);
    free(o);
}

const OptConfig *opt_config(const Opt *o) { return &o->cfg; }
uint64_t opt_steps(const Opt *o) { return o->steps; }
uint64_t opt_skipped(const Opt *o) { return o->skipped; }
uint64_t opt_clipped(const Opt *o) { return o->clipped; }
int opt_threads(const Opt *o) { return o->threads; }

/* ---- the step -------------------------------------------------------------- */

typedef struct StepArgs {
    KnAmoArgs amo[2];     /* [no_decay] */
    KnSgdArgs sgd[2];
    KnRmspropArgs rms[2];
    KnBf16Round round;
} StepArgs;

/* weight_decay: the config's, or a tensor's with its scale. */
static void step_args(const Opt *o, uint64_t t, float lr, float weight_decay, float scale,
                      StepArgs *s)
{
    const OptConfig *c = &o->cfg;
    for (int nd = 0; nd < 2; nd++) {
        const float wd = nd ? 0.0f : weight_decay;
        const float l2 = c->decay_mode == OPT_DECAY_L2 ? wd : 0.0f;
        const float decay = c->decay_mode == OPT_DECAY_DECOUPLED ? lr * wd : 0.0f;
        KnAmoArgs a = kn_amo_args_default();
        if (c->algo == OPT_ADAM || c->bias_correction) {
            a = kn_adam_args(lr, c->beta, c->gamma, c->eps, t);
        } else {
            a.lr = lr;
            a.beta = c->beta;
            a.gamma = c->gamma;
            a.eps = c->eps;
        }
        a.grad_scale = scale;
        a.l2 = l2;
        a.decay = decay;
        a.lo = c->lo;
        a.hi = c->hi;
        s->amo[nd] = a;
        s->sgd[nd] = (KnSgdArgs){ .lr = lr, .momentum = c->momentum, .dampening = c->dampening,
                                  .nesterov = c->nesterov, .first = t == 1, .grad_scale = scale,
                                  .l2 = l2, .decay = decay, .lo = c->lo, .hi = c->hi };
        s->rms[nd] = (KnRmspropArgs){ .lr = lr, .alpha = c->alpha, .eps = c->eps,
                                      .momentum = c->momentum, .grad_scale = scale, .l2 = l2,
                                      .decay = decay, .lo = c->lo, .hi = c->hi };
    }
    s->round = (KnBf16Round){ .seed = c->seed, .step = t, .index0 = 0, .nearest = 0 };
}

static AmoStatus update_piece(const Opt *o, const Piece *p, const StepArgs *s)
{
    const OptTensor *t = &o->t[p->tensor];
    float *th = t->param + p->off;
    const float *g = t->grad + p->off;
    const int nd = t->no_decay != 0;
    if (o->targs)
        s = &o->targs[p->tensor];
    float *f0 = o->s0 ? (float *)o->s0 + p->state_off : NULL;
    float *f1 = o->s1 ? (float *)o->s1 + p->state_off : NULL;
    switch (o->cfg.algo) {
    case OPT_AMO:
    case OPT_ADAM:
        if (o->cfg.state == OPT_STATE_BF16) {
            KnBf16Round r = s->round;
            r.index0 = p->state_off;
            return kn_amo_update_bf16(th, (uint16_t *)o->s0 + p->state_off,
                                      (uint16_t *)o->s1 + p->state_off, g, p->n, &s->amo[nd],
                                      &r, 1);
        }
        return kn_amo_update(th, f0, f1, g, p->n, &s->amo[nd], 1);
    case OPT_SGD: return kn_sgd_update(th, f0, g, p->n, &s->sgd[nd], 1);
    case OPT_RMSPROP: return kn_rmsprop_update(th, f0, f1, g, p->n, &s->rms[nd], 1);
    }
    return AMO_EINVAL;
}

AmoStatus opt_step(Opt *o, OptStepInfo *info)
{
    if (!o)
        return AMO_EINVAL;
    AmoStatus st = kn_cpu_init_from_env();
    if (st != AMO_OK)
        return st;
    const long np = (long)o->npieces;

    /* 1. Global norm: one chunk sum per piece, added in piece order. */
#pragma omp parallel for num_threads(o->threads) schedule(static)
    for (long i = 0; i < np; i++) {
        const Piece *p = &o->pieces[i];
        double s = 0.0;
        kn_sumsq(o->t[p->tensor].grad + p->off, p->n, 1, &s); /* NaN/Inf: seen below */
        o->partial[i] = s;
    }
    double sumsq = 0.0;
    for (long i = 0; i < np; i++)
        sumsq += o->partial[i];
    const double norm = sqrt(sumsq);

    OptStepInfo inf = { .grad_norm = norm, .grad_scale = 1.0f, .step = o->steps,
                        .level = kn_kernel_level(o->cfg.state == OPT_STATE_BF16 ? KN_K_AMO_BF16
                                                 : o->cfg.algo == OPT_SGD      ? KN_K_SGD
                                                 : o->cfg.algo == OPT_RMSPROP  ? KN_K_RMSPROP
                                                                               : KN_K_AMO) };
    /* 2. A NaN or Inf anywhere: skip the whole step, touch nothing. */
    if (!isfinite(norm)) {
        o->skipped++;
        inf.skipped = 1;
        inf.lr = opt_lr_at(&o->cfg, o->steps + 1);
        if (info)
            *info = inf;
        return AMO_OK;
    }
    /* 3. The clip factor, applied inside the update kernels. */
    if (o->cfg.clip) {
        const double f = (double)o->cfg.tau / (norm + 1e-6);
        if (f < 1.0) {
            inf.grad_scale = (float)f;
            inf.clipped = 1;
        }
    }
    /* 4-5. The update with bounds, one pass. */
    const uint64_t t = o->steps + 1;
    inf.lr = opt_lr_at(&o->cfg, t);
    StepArgs sa;
    step_args(o, t, inf.lr, o->cfg.weight_decay, inf.grad_scale, &sa);
    for (int i = 0; o->targs && i < o->count; i++)
        step_args(o, t, inf.lr * o->lr_scale[i], o->cfg.weight_decay * o->wd_scale[i],
                  inf.grad_scale, &o->targs[i]);
    int bad = 0;
#pragma omp parallel for num_threads(o->threads) schedule(static) reduction(max : bad)
    for (long i = 0; i < np; i++) {
        const AmoStatus s = update_piece(o, &o->pieces[i], &sa);
        if (s != AMO_OK && (int)s > bad)
            bad = (int)s;
    }
    if (bad)
        return (AmoStatus)bad; /* cannot happen: arguments were checked at create */
    o->steps = t;
    o->clipped += (uint64_t)inf.clipped;
    inf.step = t;
    if (info)
        *info = inf;
    return AMO_OK;
}

/* ---- what a binding changes between steps ----------------------------------- */

AmoStatus opt_set_tensors(Opt *o, const OptTensor *tensors, int count, char *err, size_t errlen)
{
    if (!o || count < 0 || (count > 0 && !tensors)) {
        set_err(err, errlen, "opt_set_tensors: NULL argument or negative tensor count");
        return AMO_EINVAL;
    }
    if (count != o->count) {
        set_err(err, errlen, "%d tensors, the optimizer was created with %d", count, o->count);
        return AMO_EINVAL;
    }
    AmoStatus st;
    for (int i = 0; i < count; i++) {
        if (tensors[i].n != o->t[i].n) {
            set_err(err, errlen, "tensor %d: %zu elements, the optimizer was created with %zu",
                    i, tensors[i].n, o->t[i].n);
            return AMO_EINVAL;
        }
        if ((st = check_tensor(&tensors[i], i, err, errlen)) != AMO_OK)
            return st;
    }
    if ((st = check_cross_overlap(tensors, count, err, errlen)) != AMO_OK)
        return st;
    if (count)
        memcpy(o->t, tensors, (size_t)count * sizeof(*o->t));
    return AMO_OK;
}

static AmoStatus check_scales(const float *x, int count, const char *what, char *err,
                              size_t errlen)
{
    for (int i = 0; x && i < count; i++)
        if (!(isfinite(x[i]) && x[i] >= 0.0f)) {
            set_err(err, errlen, "tensor %d: %s scale %g must be finite and >= 0", i, what,
                    (double)x[i]);
            return AMO_EINVAL;
        }
    return AMO_OK;
}

AmoStatus opt_set_tensor_scales(Opt *o, const float *lr_scale, const float *wd_scale, char *err,
                                size_t errlen)
{
    if (!o) {
        set_err(err, errlen, "opt_set_tensor_scales: NULL optimizer");
        return AMO_EINVAL;
    }
    AmoStatus st = check_scales(lr_scale, o->count, "lr", err, errlen);
    if (st != AMO_OK || (st = check_scales(wd_scale, o->count, "weight decay", err, errlen)))
        return st;
    if (!lr_scale && !wd_scale) {
        free(o->lr_scale);
        free(o->wd_scale);
        free(o->targs);
        o->lr_scale = o->wd_scale = NULL;
        o->targs = NULL;
        return AMO_OK;
    }
    const size_t n = (size_t)(o->count ? o->count : 1);
    if (!o->targs) {
        float *l = malloc(n * sizeof(*l)), *w = malloc(n * sizeof(*w));
        StepArgs *a = malloc(n * sizeof(*a));
        if (!l || !w || !a) {
            free(l);
            free(w);
            free(a);
            set_err(err, errlen, "out of memory for %d tensor scales", o->count);
            return AMO_ENOMEM;
        }
        o->lr_scale = l;
        o->wd_scale = w;
        o->targs = a;
    }
    for (int i = 0; i < o->count; i++) {
        o->lr_scale[i] = lr_scale ? lr_scale[i] : 1.0f;
        o->wd_scale[i] = wd_scale ? wd_scale[i] : 1.0f;
    }
    return AMO_OK;
}

AmoStatus opt_set_config(Opt *o, const OptConfig *cfg, char *err, size_t errlen)
{
    if (!o || !cfg) {
        set_err(err, errlen, "opt_set_config: NULL optimizer or configuration");
        return AMO_EINVAL;
    }
    AmoStatus st = check_config(cfg, err, errlen);
    if (st != AMO_OK)
        return st;
    if (cfg->algo != o->cfg.algo || cfg->state != o->cfg.state ||
        state_buffers(cfg) != state_buffers(&o->cfg)) {
        set_err(err, errlen, "%s with %d moment buffers (%s): the optimizer has %s with %d "
                "(%s); create another", opt_algo_name(cfg->algo), state_buffers(cfg),
                cfg->state == OPT_STATE_BF16 ? "bf16" : "fp32", opt_algo_name(o->cfg.algo),
                state_buffers(&o->cfg), o->cfg.state == OPT_STATE_BF16 ? "bf16" : "fp32");
        return AMO_EINVAL;
    }
    o->cfg = *cfg;
    o->threads = cfg->threads ? cfg->threads : omp_get_max_threads();
    return AMO_OK;
}

void *opt_moments(Opt *o, int buffer)
{
    if (!o || buffer < 0 || buffer >= state_buffers(&o->cfg))
        return NULL;
    return buffer ? o->s1 : o->s0;
}

AmoStatus opt_set_steps(Opt *o, uint64_t steps, uint64_t skipped, uint64_t clipped)
{
    if (!o || clipped > steps)
        return AMO_EINVAL;
    o->steps = steps;
    o->skipped = skipped;
    o->clipped = clipped;
    return AMO_OK;
}

/* ---- the state file ----------------------------------------------------------
 * Little-endian, in this order:
 *     0   char[8]  "AMOSTATE"
 *     8   u32      format version (2)
 *    12   u32      header bytes (from offset 0 to the first moment buffer)
 *    16   u64      the caller's tag (opaque: e.g. a hash of what identifies its run)
 *    24   u64      steps, skipped, clipped
 *    48   hyperparameters, as hyper_fields() lists them (u32/f32/u64)
 *    ..   u32      tensor count, then u64 elements per tensor
 *    ..   u32      moment buffers, u32 bytes per element, u64 elements each
 *    ..   the moment buffers, one after the other
 *   end   u64      FNV-1a 64 of every byte before it
 * A file another optimizer cannot continue from exactly, or that carries
 * another tag, is refused. */

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the state file is written in host order, assumed little-endian"
#endif

#define STATE_MAGIC "AMOSTATE"
#define STATE_VERSION 2u

typedef struct Buf { unsigned char *p; size_t len, cap; int oom; } Buf;

static void put(Buf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u32(Buf *b, uint32_t x) { put(b, &x, 4); }
static void put_u64(Buf *b, uint64_t x) { put(b, &x, 8); }
static void put_f32(Buf *b, float x) { put(b, &x, 4); }

/* Every hyperparameter of OptConfig but the thread count (results do not
 * depend on it), with its name for error messages. */
typedef struct Field { const char *name; char type; size_t off; } Field;
#define F(t, name) { #name, t, offsetof(OptConfig, name) }
static const Field hyper_fields[] = {
    F('u', algo), F('f', lr), F('f', beta), F('f', gamma), F('f', eps), F('u', bias_correction),
    F('f', momentum), F('f', dampening), F('u', nesterov), F('f', alpha), F('u', clip),
    F('f', tau), F('f', lo), F('f', hi), F('f', weight_decay), F('u', decay_mode),
    F('u', schedule), F('q', warmup), F('q', step_size), F('f', step_gamma),
    F('q', total_steps), F('f', min_lr), F('u', state), F('q', seed),
};
#undef F
#define NFIELDS (sizeof(hyper_fields) / sizeof(hyper_fields[0]))

static void put_field(Buf *b, const OptConfig *c, const Field *f)
{
    const char *p = (const char *)c + f->off;
    if (f->type == 'f') {
        float x;
        memcpy(&x, p, 4);
        put_f32(b, x);
    } else if (f->type == 'q') {
        uint64_t x;
        memcpy(&x, p, 8);
        put_u64(b, x);
    } else {
        int x; /* ints and enums */
        memcpy(&x, p, sizeof x);
        put_u32(b, (uint32_t)x);
    }
}

static size_t field_size(const Field *f) { return f->type == 'q' ? 8 : 4; }

static void put_header(Buf *b, const Opt *o, uint64_t tag)
{
    put(b, STATE_MAGIC, 8);
    put_u32(b, STATE_VERSION);
    put_u32(b, 0); /* header bytes, patched below */
    put_u64(b, tag);
    put_u64(b, o->steps);
    put_u64(b, o->skipped);
    put_u64(b, o->clipped);
    for (size_t i = 0; i < NFIELDS; i++)
        put_field(b, &o->cfg, &hyper_fields[i]);
    put_u32(b, (uint32_t)o->count);
    for (int i = 0; i < o->count; i++)
        put_u64(b, o->t[i].n);
    put_u32(b, (uint32_t)state_buffers(&o->cfg));
    put_u32(b, (uint32_t)state_elem_size(&o->cfg));
    put_u64(b, o->total);
    if (!b->oom) {
        const uint32_t hb = (uint32_t)b->len;
        memcpy(b->p + 12, &hb, 4);
    }
}

AmoStatus opt_save(const Opt *o, const char *path, uint64_t tag, char *err, size_t errlen)
{
    if (!o || !path) {
        set_err(err, errlen, "opt_save: NULL optimizer or path");
        return AMO_EINVAL;
    }
    Buf b = { 0 };
    put_header(&b, o, tag);
    const size_t sb = o->total * state_elem_size(&o->cfg);
    if (o->s0)
        put(&b, o->s0, sb);
    if (o->s1)
        put(&b, o->s1, sb);
    if (!b.oom)
        put_u64(&b, amo_fnv1a64(b.p, b.len));
    if (b.oom) {
        free(b.p);
        set_err(err, errlen, "%s: out of memory building the state", path);
        return AMO_ENOMEM;
    }
    /* Write beside the target, then rename: the old file stays whole until
     * the new one is complete. */
    const size_t tl = strlen(path) + 8;
    char *tmp = malloc(tl);
    if (!tmp) {
        free(b.p);
        set_err(err, errlen, "%s: out of memory", path);
        return AMO_ENOMEM;
    }
    snprintf(tmp, tl, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    AmoStatus st = AMO_OK;
    if (!f) {
        set_err(err, errlen, "%s: cannot open for writing", tmp);
        st = AMO_EIO;
    } else {
        /* on disk before the rename: a checkpoint may name this file */
        const int ok = fwrite(b.p, 1, b.len, f) == b.len && fflush(f) == 0 &&
                       fsync(fileno(f)) == 0;
        if (fclose(f) != 0 || !ok) {
            set_err(err, errlen, "%s: write failed (disk full?)", tmp);
            st = AMO_EIO;
        } else if (rename(tmp, path) != 0) {
            set_err(err, errlen, "%s: cannot rename to %s", tmp, path);
            st = AMO_EIO;
        }
        if (st != AMO_OK)
            remove(tmp);
    }
    free(tmp);
    free(b.p);
    return st;
}

static int read_file(const char *path, unsigned char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 1 << 16, n = 0;
    unsigned char *p = malloc(cap);
    while (p) {
        const size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        unsigned char *q = realloc(p, cap * 2);
        if (!q) {
            free(p);
            p = NULL;
            break;
        }
        p = q;
        cap *= 2;
    }
    const int bad = ferror(f);
    fclose(f);
    if (!p || bad) {
        free(p);
        return -1;
    }
    *data = p;
    *len = n;
    return 0;
}

AmoStatus opt_load(Opt *o, const char *path, uint64_t tag, char *err, size_t errlen)
{
    if (!o || !path) {
        set_err(err, errlen, "opt_load: NULL optimizer or path");
        return AMO_EINVAL;
    }
    if (err && errlen)
        err[0] = 0;
    unsigned char *d;
    size_t len;
    if (read_file(path, &d, &len)) {
        set_err(err, errlen, "%s: cannot read", path);
        return AMO_EIO;
    }
    /* The header this optimizer would write: the file's must match it
     * field by field, except the three counters at offset 24. */
    Buf want = { 0 };
    put_header(&want, o, tag);
    AmoStatus st = AMO_EFORMAT;
    const size_t sb = o->total * state_elem_size(&o->cfg);
    const int nb = state_buffers(&o->cfg);
    const size_t expect = want.len + (size_t)nb * sb + 8;
    if (want.oom) {
        st = AMO_ENOMEM;
        goto out;
    }
    if (len < 16 || memcmp(d, STATE_MAGIC, 8)) {
        set_err(err, errlen, "%s: not an amo state file (bad magic at offset 0)", path);
        goto out;
    }
    uint32_t ver;
    memcpy(&ver, d + 8, 4);
    if (ver != STATE_VERSION) {
        set_err(err, errlen, "%s: format version %u at offset 8, this build reads %u", path,
                ver, STATE_VERSION);
        goto out;
    }
    if (len < 8 + 16) {
        set_err(err, errlen, "%s: truncated at offset %zu", path, len);
        goto out;
    }
    uint64_t stored, sum;
    memcpy(&stored, d + len - 8, 8);
    sum = amo_fnv1a64(d, len - 8);
    if (len != expect) {
        /* Name the first field that differs if the header is readable, else
         * the size. */
        set_err(err, errlen, "%s: %zu bytes, expected %zu for this optimizer (%s)", path, len,
                expect, len < expect ? "truncated" : "trailing data or other sizes");
    } else if (stored != sum) {
        set_err(err, errlen, "%s: checksum mismatch (stored %016llx, computed %016llx): corrupted",
                path, (unsigned long long)stored, (unsigned long long)sum);
        goto out;
    }
    /* The tag, then the hyperparameters and sizes, naming the first mismatch. */
    uint64_t ftag;
    memcpy(&ftag, d + 16, 8);
    if (ftag != tag) {
        set_err(err, errlen, "%s: tag %016llx at offset 16, expected %016llx (the state of "
                "another run)", path, (unsigned long long)ftag, (unsigned long long)tag);
        goto out;
    }
    size_t off = 48;
    for (size_t i = 0; i < NFIELDS; i++) {
        const size_t fs = field_size(&hyper_fields[i]);
        if (off + fs > len || off + fs > want.len)
            goto out;
        if (memcmp(d + off, want.p + off, fs)) {
            set_err(err, errlen, "%s: %s differs at offset %zu (file and optimizer must match)",
                    path, hyper_fields[i].name, off);
            goto out;
        }
        off += fs;
    }
    if (off + 4 <= len && memcmp(d + off, want.p + off, 4)) {
        set_err(err, errlen, "%s: tensor count differs at offset %zu", path, off);
        goto out;
    }
    off += 4;
    for (int i = 0; i < o->count; i++, off += 8)
        if (off + 8 <= len && memcmp(d + off, want.p + off, 8)) {
            uint64_t fn;
            memcpy(&fn, d + off, 8);
            set_err(err, errlen, "%s: tensor %d has %llu elements in the file, %zu here (offset %zu)",
                    path, i, (unsigned long long)fn, o->t[i].n, off);
            goto out;
        }
    if (len != expect || memcmp(d + off, want.p + off, want.len - off))
        goto out; /* message already set, or buffer layout differs */
    memcpy(&o->steps, d + 24, 8);
    memcpy(&o->skipped, d + 32, 8);
    memcpy(&o->clipped, d + 40, 8);
    if (o->s0)
        memcpy(o->s0, d + want.len, sb);
    if (o->s1)
        memcpy(o->s1, d + want.len + sb, sb);
    st = AMO_OK;
out:
    if (st == AMO_EFORMAT && err && errlen && !err[0])
        set_err(err, errlen, "%s: state layout differs from this optimizer", path);
    free(want.p);
    free(d);
    return st;
}

/* The optimizer step (paper, section 3, Algorithm 1, with the baselines of
 * section 5) on top of the kernels; the state file is in state.c. */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "kernels/cpu.h"
#include "kernels/update.h"
#include "optim/opt_impl.h"

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
#define BAD(...) return amo_err(AMO_EINVAL, err, len, __VA_ARGS__)
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
                                   (1.0 + cos(3.14159265358979323846 * (double)(t - 1) /
                                              (double)c->total_steps));
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
int opt_state_buffers(const OptConfig *c)
{
    switch (c->algo) {
    case OPT_AMO: case OPT_ADAM: return 2;
    case OPT_SGD: return c->momentum != 0.0f;
    case OPT_RMSPROP: return 1 + (c->momentum > 0.0f);
    }
    return 0;
}

size_t opt_state_elem_size(const OptConfig *c)
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
                return amo_err(AMO_EINVAL, err, len, "tensors %d and %d: parameters overlap", i, j);
            }
            if (spans_overlap(t[i].param, t[i].n, t[j].grad, t[j].n)) {
                return amo_err(AMO_EINVAL, err, len, "tensor %d param overlaps tensor %d grad",
                               i, j);
            }
        }
    return AMO_OK;
}

/* One tensor on its own: its pointers, and its parameter apart from its
 * gradient. */
static AmoStatus check_tensor(const OptTensor *t, int i, char *err, size_t errlen)
{
    if (t->n && (!t->param || !t->grad)) {
        amo_err(AMO_EINVAL, err, errlen, "tensor %d: NULL param or grad with %zu elements", i, t->n);
        return AMO_EINVAL;
    }
    const uintptr_t p = (uintptr_t)t->param, g = (uintptr_t)t->grad, b = t->n * sizeof(float);
    if (t->n && p < g + b && g < p + b) {
        amo_err(AMO_EINVAL, err, errlen, "tensor %d: param and grad overlap", i);
        return AMO_EINVAL;
    }
    return AMO_OK;
}

AmoStatus opt_create(Opt **out, const OptConfig *cfg, const OptTensor *tensors, int count,
                    char *err, size_t errlen)
{
    if (!out || !cfg || (count > 0 && !tensors) || count < 0) {
        return amo_err(AMO_EINVAL, err, errlen,
                       "opt_create: NULL argument or negative tensor count");
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
        return amo_err(AMO_ENOMEM, err, errlen, "out of memory for the optimizer");
    }
    o->cfg = *cfg;
    o->count = count;
    o->total = total;
    o->npieces = npieces;
    o->t = malloc((size_t)(count ? count : 1) * sizeof(*o->t));
    o->pieces = malloc((npieces ? npieces : 1) * sizeof(*o->pieces));
    o->partial = malloc((npieces ? npieces : 1) * sizeof(*o->partial));
    const int nb = opt_state_buffers(cfg);
    const size_t sb = total * opt_state_elem_size(cfg);
    o->s0 = nb >= 1 ? alloc_zero(sb) : NULL;
    o->s1 = nb >= 2 ? alloc_zero(sb) : NULL;
    if (!o->t || !o->pieces || !o->partial || (nb >= 1 && !o->s0) || (nb >= 2 && !o->s1)) {
        opt_destroy(o);
        return amo_err(AMO_ENOMEM, err, errlen,
                       "out of memory for %zu parameters of optimizer state", total);
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
        amo_err(AMO_EINVAL, err, errlen, "opt_set_tensors: NULL argument or negative tensor count");
        return AMO_EINVAL;
    }
    if (count != o->count) {
        amo_err(AMO_EINVAL, err, errlen, "%d tensors, the optimizer was created with %d", count, o->count);
        return AMO_EINVAL;
    }
    AmoStatus st;
    for (int i = 0; i < count; i++) {
        if (tensors[i].n != o->t[i].n) {
            amo_err(AMO_EINVAL, err, errlen, "tensor %d: %zu elements, the optimizer was created with %zu",
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
            amo_err(AMO_EINVAL, err, errlen, "tensor %d: %s scale %g must be finite and >= 0", i, what,
                    (double)x[i]);
            return AMO_EINVAL;
        }
    return AMO_OK;
}

AmoStatus opt_set_tensor_scales(Opt *o, const float *lr_scale, const float *wd_scale, char *err,
                                size_t errlen)
{
    if (!o) {
        amo_err(AMO_EINVAL, err, errlen, "opt_set_tensor_scales: NULL optimizer");
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
            amo_err(AMO_EINVAL, err, errlen, "out of memory for %d tensor scales", o->count);
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
        amo_err(AMO_EINVAL, err, errlen, "opt_set_config: NULL optimizer or configuration");
        return AMO_EINVAL;
    }
    AmoStatus st = check_config(cfg, err, errlen);
    if (st != AMO_OK)
        return st;
    if (cfg->algo != o->cfg.algo || cfg->state != o->cfg.state ||
        opt_state_buffers(cfg) != opt_state_buffers(&o->cfg)) {
        amo_err(AMO_EINVAL, err, errlen, "%s with %d moment buffers (%s): the optimizer has %s with %d "
                "(%s); create another", opt_algo_name(cfg->algo), opt_state_buffers(cfg),
                cfg->state == OPT_STATE_BF16 ? "bf16" : "fp32", opt_algo_name(o->cfg.algo),
                opt_state_buffers(&o->cfg), o->cfg.state == OPT_STATE_BF16 ? "bf16" : "fp32");
        return AMO_EINVAL;
    }
    o->cfg = *cfg;
    o->threads = cfg->threads ? cfg->threads : omp_get_max_threads();
    return AMO_OK;
}

void *opt_moments(Opt *o, int buffer)
{
    if (!o || buffer < 0 || buffer >= opt_state_buffers(&o->cfg))
        return NULL;
    return buffer ? o->s1 : o->s0;
}

AmoStatus opt_set_steps(Opt *o, uint64_t steps, uint64_t skipped, uint64_t clipped)
{
    /* the ranges opt_load checks */
    if (!o || clipped > steps || steps > (1ull << 62) || skipped > (1ull << 62))
        return AMO_EINVAL;
    o->steps = steps;
    o->skipped = skipped;
    o->clipped = clipped;
    return AMO_OK;
}

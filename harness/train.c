/* One training run: data, model, optimizer, the step loop with its timings,
 * evaluation, checkpoints (their format: harness/checkpoint.c), and the
 * CSVs.  The loop reads like the paper's Algorithm 1 with a network around
 * it:
 *
 *     for each step:  batch -> forward -> loss -> backward -> opt_step
 *     every eval_every steps: validation (and test) accuracy, checkpoint */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hwloc.h>
#include <zlib.h>

#include "harness/checkpoint.h"
#include "harness/common.h"
#include "harness/csv.h"
#include "harness/error.h"
#include "harness/timer.h"
#include "harness/train.h"
#include "kernels/cpu.h"
#include "kernels/update.h"
#include "nn/data.h"
#include "nn/loss.h"
#include "nn/resnet.h"
#include "harness/threads.h"

/* ---- specification ----------------------------------------------------------- */

void hx_train_defaults(HxTrainSpec *s)
{
    *s = (HxTrainSpec){
        .dataset = "fashion", .nval = 5000, .augment = 1,
        .syn_n = 2048, .syn_ch = 3, .syn_hw = 32, .syn_classes = 10,
        .depth = 18, .width = 0.25,
        .opt = opt_config_default(OPT_AMO),
        .smoothing = 0.1f, .batch = 128, .epochs = 1.0, .seed = 1, .threads = 0,
        .out = "amo-runs", .targets = { 0.85, 0.88, 0.90 }, .ntargets = 3,
    };
}

void hx_train_run_id(HxTrainSpec *s)
{
    if (s->run_id[0])
        return;
    const OptConfig *c = &s->opt;
    char hyp[96];
    switch (c->algo) {
    case OPT_AMO:
    case OPT_ADAM:
        snprintf(hyp, sizeof hyp, "b%g-g%g%s", (double)c->beta, (double)c->gamma,
                 c->algo == OPT_AMO && c->bias_correction ? "-bc" : "");
        break;
    case OPT_SGD: snprintf(hyp, sizeof hyp, "m%g%s", (double)c->momentum, c->nesterov ? "-nest" : ""); break;
    case OPT_RMSPROP: snprintf(hyp, sizeof hyp, "a%g-m%g", (double)c->alpha, (double)c->momentum); break;
    }
    char clip[32] = "noclip";
    if (c->clip)
        snprintf(clip, sizeof clip, "clip%g", (double)c->tau);
    /* Everything else that changes a run's result goes into a short hash,
     * so that --resume and ablation never continue or skip a run made with
     * other settings under the same readable name. */
    char piece[256];
    uint32_t h = 2166136261u; /* FNV-1a 32, fed one formatted field at a time */
#define HASH(...)                                                               \
    do {                                                                        \
        snprintf(piece, sizeof piece, __VA_ARGS__);                             \
        for (const char *p_ = piece; *p_; p_++)                                 \
            h = (h ^ (unsigned char)*p_) * 16777619u;                           \
        h = (h ^ '|') * 16777619u;                                              \
    } while (0)
    HASH("%s", s->dataset);
    for (const char *p_ = s->data_dir ? s->data_dir : ""; *p_; p_++)
        h = (h ^ (unsigned char)*p_) * 16777619u;
    HASH("%d|%d|%d|%d|%d|%d", s->nval, s->augment, s->syn_n, s->syn_ch, s->syn_hw,
         s->syn_classes);
    HASH("%d|%.9g|%d|%d", s->depth, s->width, s->bf16, s->conv_algo);
    HASH("%.9g|%.9g|%.9g|%.9g|%.9g|%.9g", (double)c->lr, (double)c->beta, (double)c->gamma,
         (double)c->eps, (double)c->momentum, (double)c->dampening);
    HASH("%.9g|%.9g|%.9g|%.9g|%.9g", (double)c->alpha, (double)c->tau, (double)c->lo,
         (double)c->hi, (double)c->weight_decay);
    HASH("%d|%d|%d|%d|%d|%d", c->bias_correction, c->nesterov, c->clip, (int)c->decay_mode,
         (int)c->schedule, (int)c->state);
    HASH("%llu|%llu|%.9g|%llu|%.9g", (unsigned long long)c->warmup,
         (unsigned long long)c->step_size, (double)c->step_gamma,
         (unsigned long long)c->total_steps, (double)c->min_lr);
    HASH("%.9g|%d|%.9g|%ld|%ld", (double)s->smoothing, s->batch, s->epochs, s->steps,
         s->eval_every);
    for (int k = 0; k < s->ntargets; k++)
        HASH("%.9g", s->targets[k]);
#undef HASH
    snprintf(s->run_id, sizeof s->run_id, "%s-r%dw%g%s-%s-lr%g-%s-%s%s-s%llu-%08x", s->dataset,
             s->depth, s->width, s->bf16 ? "-bf16" : "", opt_algo_name(c->algo), (double)c->lr,
             hyp, clip, isfinite(c->lo) || isfinite(c->hi) ? "-bounds" : "",
             (unsigned long long)s->seed, h);
}

/* ---- rows kept in memory, written whole at checkpoints -------------------------- */

typedef struct Rows {
    HxStepRow *s;
    HxConvRow *c;
    size_t ns, nc, caps, capc;
} Rows;

static void push_step(Rows *r, const HxStepRow *x)
{
    if (r->ns == r->caps) {
        r->caps = r->caps ? 2 * r->caps : 1024;
        r->s = realloc(r->s, r->caps * sizeof(*r->s));
        if (!r->s)
            hx_fail(HX_EXIT_FAIL, "out of memory for step rows");
    }
    r->s[r->ns++] = *x;
}

static void push_conv(Rows *r, const HxConvRow *x)
{
    if (r->nc == r->capc) {
        r->capc = r->capc ? 2 * r->capc : 64;
        r->c = realloc(r->c, r->capc * sizeof(*r->c));
        if (!r->c)
            hx_fail(HX_EXIT_FAIL, "out of memory for evaluation rows");
    }
    r->c[r->nc++] = *x;
}

/* ---- the run's state --------------------------------------------------------- */

typedef struct Run {
    const HxTrainSpec *s;
    char dir[4096];
    NnDataset train, test;
    NnSplit split;
    int *test_idx;          /* 0 .. test.n - 1, the test batcher's list */
    NnBatcher tb, vb, eb;
    NnResNet *net;
    Opt *opt;
    OptTensor *tensors;
    int ntensors;
    float *x;
    int *y;
    float *prev;            /* the parameters before the step (update size)   */
    long total_steps, steps_per_epoch, eval_every;
    /* progress, all in the checkpoint */
    long step;
    double wall0;           /* wall seconds before this process (resumed runs) */
    double train_s;         /* seconds inside training steps                   */
    double run_loss;        /* running training loss and accuracy since the   */
    double run_correct, run_seen; /* last evaluation                           */
    Rows rows;
    HxTrainResult res;
    double last_progress;   /* wall time of the last progress line         */
} Run;

/* ---- data, model, optimizer ---------------------------------------------------- */

static void load_data(Run *r)
{
    const HxTrainSpec *s = r->s;
    char err[1024] = "";
    AmoStatus st;
    if (!strcmp(s->dataset, "fashion") || !strcmp(s->dataset, "mnist")) {
        const char *dir = s->data_dir ? s->data_dir : NN_FASHION_DIR;
        if (!strcmp(s->dataset, "mnist") && !s->data_dir)
            hx_fail(HX_EXIT_USAGE, "--dataset mnist needs --data DIR (the IDX files)");
        st = nn_data_mnist(&r->train, &r->test, dir, err, sizeof err);
    } else if (!strcmp(s->dataset, "cifar10")) {
        if (!s->data_dir)
            hx_fail(HX_EXIT_USAGE, "--dataset cifar10 needs --data DIR (the binary version: "
                                   "data_batch_1.bin ... test_batch.bin)");
        st = nn_data_cifar10(&r->train, &r->test, s->data_dir, err, sizeof err);
    } else {
        st = nn_data_synthetic(&r->train, s->syn_n, s->syn_ch, s->syn_hw, s->syn_hw,
                               s->syn_classes, s->seed ^ 0x5eedull);
        if (st == AMO_OK)
            st = nn_data_synthetic(&r->test, s->syn_n / 4 > 0 ? s->syn_n / 4 : 1, s->syn_ch,
                                   s->syn_hw, s->syn_hw, s->syn_classes, s->seed ^ 0x7e57ull);
        snprintf(err, sizeof err, "synthetic data %d x %d x %d x %d: %s", s->syn_n, s->syn_ch,
                 s->syn_hw, s->syn_hw, amo_status_str(st));
    }
    /* Data that is not there is a bad --data (or a missing package); data
     * that is there but broken is a failure. */
    if (st != AMO_OK)
        hx_fail(st == AMO_EINVAL || st == AMO_EIO ? HX_EXIT_USAGE : HX_EXIT_FAIL, "%s%s%s%s",
                s->data_dir ? "--data " : "", s->data_dir ? s->data_dir : "",
                s->data_dir ? ": " : "", err);
    /* The split is fixed (seed 0), whatever the run's seed: every run of a
     * study validates on the same examples. */
    /* The default 5000 shrinks for small data sets (synthetic); an explicit
     * --val that leaves no training batch is refused below by the split. */
    const int nval = s->nval < r->train.n ? s->nval : r->train.n / 10;
    if (nval < 1) /* every evaluation needs one */
        hx_fail(HX_EXIT_USAGE, "--val %d: no validation examples from %d training examples",
                s->nval, r->train.n);
    st = nn_data_split(&r->train, nval, 0, &r->split, err, sizeof err);
    if (st != AMO_OK && nval != s->nval) /* name the size the split was given */
        hx_fail(HX_EXIT_USAGE, "--val %d, shrunk to %d for %d training examples: %s", s->nval,
                nval, r->train.n, err);
    if (st != AMO_OK)
        hx_fail(HX_EXIT_USAGE, "--val %d: %s", s->nval, err);
    float mean[4], sd[4];
    nn_data_stats(&r->train, r->split.train, r->split.ntrain, mean, sd);
    if (nn_batcher_init(&r->tb, &r->train, r->split.train, r->split.ntrain, s->batch, s->seed,
                        mean, sd) != AMO_OK ||
        nn_batcher_init(&r->vb, &r->train, r->split.val, r->split.nval ? r->split.nval : 1,
                        s->batch, 0, mean, sd) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "out of memory for the batches");
    r->test_idx = hx_malloc((size_t)r->test.n * sizeof(int));
    for (int i = 0; i < r->test.n; i++)
        r->test_idx[i] = i;
    if (nn_batcher_init(&r->eb, &r->test, r->test_idx, r->test.n, s->batch, 0, mean, sd) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "out of memory for the batches");
    r->vb.shuffle = r->eb.shuffle = 0;
    r->vb.drop_last = r->eb.drop_last = 0;
    nn_batcher_seek(&r->vb, 0, 0);
    nn_batcher_seek(&r->eb, 0, 0);
    if (s->augment) {
        r->tb.pad = r->train.h >= 32 ? 4 : 2;
        r->tb.flip = 1;
    }
    if (r->split.ntrain < s->batch)
        hx_fail(HX_EXIT_USAGE, "--batch %d: larger than the %d training examples", s->batch,
                r->split.ntrain);
}

static void build_model(Run *r)
{
    const HxTrainSpec *s = r->s;
    NnResNetConfig cfg = { .depth = s->depth, .stem = NN_STEM_CIFAR, .width = s->width,
                           .in_ch = r->train.c, .classes = r->train.classes, .batch = s->batch,
                           .h = r->train.h, .w = r->train.w, .bf16 = s->bf16,
                           .conv_algo = s->conv_algo, .seed = s->seed };
    char err[1024] = "";
    /* Threads first: oneDNN fixes a primitive's thread count when it creates
     * it, so --threads must be set before the network exists. */
    int threads = 1;
    (void)hx_set_threads(s->threads, &threads); /* (a failed pinning is no error) */
    if (nn_resnet_create(&r->net, &cfg, err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "model: %s", err);
    size_t np;
    float *p = nn_resnet_params(r->net, &np);
    float *g = nn_resnet_grads(r->net);
    const NnParamInfo *pi = nn_resnet_tensors(r->net, &r->ntensors);
    r->tensors = hx_malloc((size_t)r->ntensors * sizeof(*r->tensors));
    for (int i = 0; i < r->ntensors; i++)
        r->tensors[i] = (OptTensor){
            .param = p + pi[i].offset, .grad = g + pi[i].offset, .n = pi[i].count,
            /* no weight decay on batch-norm affine parameters and biases */
            .no_decay = pi[i].kind != NN_CONV_WEIGHT && pi[i].kind != NN_FC_WEIGHT };
    OptConfig oc = s->opt;
    oc.threads = threads;
    oc.seed = s->seed;
    if (oc.schedule == OPT_SCHED_COSINE && oc.total_steps == 0)
        oc.total_steps = (uint64_t)r->total_steps;
    const AmoStatus ost = opt_create(&r->opt, &oc, r->tensors, r->ntensors, err, sizeof err);
    if (ost != AMO_OK)
        hx_fail(ost == AMO_EINVAL ? HX_EXIT_USAGE : HX_EXIT_FAIL, "optimizer: %s", err);
    const size_t img = (size_t)r->train.c * r->train.h * r->train.w;
    r->x = hx_malloc((size_t)s->batch * img * sizeof(float));
    r->y = hx_malloc((size_t)s->batch * sizeof(int));
    r->prev = hx_malloc(np * sizeof(float));
}

/* ---- evaluation ---------------------------------------------------------------- */

static int argmax(const float *z, int k)
{
    int best = 0;
    for (int j = 1; j < k; j++)
        if (z[j] > z[best])
            best = j;
    return best;
}

/* Plain cross-entropy (no smoothing) and accuracy over a whole split, with
 * batch-norm in inference mode. */
static void evaluate(Run *r, NnBatcher *b, double *loss, double *acc)
{
    const int K = r->train.classes;
    double lsum = 0;
    long correct = 0, seen = 0;
    nn_batcher_seek(b, 0, 0);
    int cnt;
    while ((cnt = nn_batcher_next(b, r->x, r->y)) > 0) {
        if (nn_resnet_forward(r->net, r->x, 0) != AMO_OK)
            hx_fail(HX_EXIT_FAIL, "evaluation forward: %s", nn_resnet_error(r->net));
        const float *z = nn_resnet_logits(r->net);
        double l = 0;
        nn_xent_smooth(&l, NULL, z, r->y, cnt, K, 0.0f); /* NaN logits give NaN loss */
        lsum += l * cnt;
        for (int i = 0; i < cnt; i++)
            correct += argmax(z + (size_t)i * K, K) == r->y[i];
        seen += cnt;
    }
    *loss = seen ? lsum / (double)seen : NAN;
    *acc = seen ? (double)correct / (double)seen : NAN;
}

/* ---- files ----------------------------------------------------------------------- */

static void path_in(char *buf, size_t len, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
        hx_fail(HX_EXIT_USAGE, "--out: path too long: %s/%s", dir, name);
}

static const char *const step_cols[] = {
    "run_id", "step", "epoch", "wall_s", "data_ms", "forward_ms", "backward_ms", "optimizer_ms",
    "loss", "lr", "grad_norm", "clipped", "skipped", "images_per_s", "update_norm", "at_bound",
};

/* The configuration columns shared by convergence.csv and summary.csv. */
static const char *const cfg_cols[] = {
    "run_id", "dataset", "model", "width", "bf16", "optimizer", "lr", "beta", "gamma", "eps",
    "bias_correction", "momentum", "dampening", "nesterov", "alpha", "clip", "tau", "lo", "hi",
    "weight_decay", "decay_mode", "schedule", "warmup", "label_smoothing", "seed", "batch",
    "threads", "kernel_level", "conv_algo",
};
#define NCFG (int)(sizeof(cfg_cols) / sizeof(cfg_cols[0]))

static const char *const conv_cols[] = {
    "step", "epoch", "wall_s", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
    "test_acc",
};

static const char *const sched_names[] = { "constant", "step", "cosine", "invsqrt" };

static void put_cfg(HxCsv *w, const Run *r)
{
    const HxTrainSpec *s = r->s;
    const OptConfig *c = &s->opt;
    char model[32];
    snprintf(model, sizeof model, "resnet%d", s->depth);
    hx_csv_str(w, s->run_id);
    hx_csv_str(w, s->dataset);
    hx_csv_str(w, model);
    hx_csv_num(w, s->width);
    hx_csv_int(w, s->bf16);
    hx_csv_str(w, opt_algo_name(c->algo));
    hx_csv_num(w, c->lr);
    hx_csv_num(w, c->beta);
    hx_csv_num(w, c->gamma);
    hx_csv_num(w, c->eps);
    hx_csv_int(w, c->algo == OPT_ADAM || c->bias_correction);
    hx_csv_num(w, c->momentum);
    hx_csv_num(w, c->dampening);
    hx_csv_int(w, c->nesterov);
    hx_csv_num(w, c->alpha);
    hx_csv_int(w, c->clip);
    hx_csv_num(w, c->tau);
    hx_csv_num(w, c->lo);
    hx_csv_num(w, c->hi);
    hx_csv_num(w, c->weight_decay);
    hx_csv_str(w, c->decay_mode == OPT_DECAY_L2 ? "l2" : "decoupled");
    hx_csv_str(w, sched_names[c->schedule]);
    hx_csv_int(w, (int64_t)c->warmup);
    hx_csv_num(w, s->smoothing);
    hx_csv_int(w, (int64_t)s->seed);
    hx_csv_int(w, s->batch);
    hx_csv_int(w, r->opt ? opt_threads(r->opt) : s->threads);
    hx_csv_str(w, kn_kernel_level(c->state == OPT_STATE_BF16 ? KN_K_AMO_BF16 : KN_K_AMO));
    hx_csv_str(w, hx_conv_algo_names[s->conv_algo]);
}

static HxCsv *csv_open(const char *path, const char *const *cols, int n)
{
    HxCsv *w;
    if (hx_csv_open(&w, path, cols, n) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s: cannot create: %s", path, strerror(errno));
    return w;
}

static void csv_close(HxCsv *w, const char *path)
{
    if (hx_csv_close(w) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s: cannot write: %s", path, strerror(errno));
}

static void write_steps_csv(const Run *r)
{
    char path[4200];
    path_in(path, sizeof path, r->dir, "steps.csv");
    HxCsv *w = csv_open(path, step_cols, (int)(sizeof step_cols / sizeof *step_cols));
    for (size_t i = 0; i < r->rows.ns; i++) {
        const HxStepRow *x = &r->rows.s[i];
        hx_csv_str(w, r->s->run_id);
        hx_csv_int(w, (int64_t)x->step);
        hx_csv_num(w, x->epoch);
        hx_csv_num(w, x->wall);
        hx_csv_num(w, x->data_ms);
        hx_csv_num(w, x->fwd_ms);
        hx_csv_num(w, x->bwd_ms);
        hx_csv_num(w, x->opt_ms);
        hx_csv_num(w, x->loss);
        hx_csv_num(w, x->lr);
        hx_csv_num(w, x->gnorm);
        hx_csv_int(w, (int64_t)x->clipped);
        hx_csv_int(w, (int64_t)x->skipped);
        hx_csv_num(w, x->ips);
        hx_csv_num(w, x->update_norm);
        hx_csv_int(w, (int64_t)x->at_bound);
        hx_csv_end_row(w);
    }
    csv_close(w, path);
}

static void write_conv_csv(const Run *r)
{
    char path[4200];
    path_in(path, sizeof path, r->dir, "convergence.csv");
    const char *cols[NCFG + 9];
    memcpy(cols, cfg_cols, sizeof cfg_cols);
    memcpy(cols + NCFG, conv_cols, sizeof conv_cols);
    HxCsv *w = csv_open(path, cols, NCFG + 9);
    for (size_t i = 0; i < r->rows.nc; i++) {
        const HxConvRow *x = &r->rows.c[i];
        put_cfg(w, r);
        hx_csv_int(w, (int64_t)x->step);
        hx_csv_num(w, x->epoch);
        hx_csv_num(w, x->wall);
        hx_csv_num(w, x->train_loss);
        hx_csv_num(w, x->train_acc);
        hx_csv_num(w, x->val_loss);
        hx_csv_num(w, x->val_acc);
        hx_csv_num(w, x->test_loss);
        hx_csv_num(w, x->test_acc);
        hx_csv_end_row(w);
    }
    csv_close(w, path);
}

static const char *const sum_cols[] = {
    "steps", "train_seconds", "wall_s", "images_per_s", "final_val_loss", "final_val_acc",
    "best_val_acc", "best_val_step", "final_test_acc", "clipped_steps", "skipped_steps",
    "diverged", "data_ms", "forward_ms", "backward_ms", "optimizer_ms",
    "target1", "steps_to_target1", "seconds_to_target1", "reached_target1",
    "target2", "steps_to_target2", "seconds_to_target2", "reached_target2",
    "target3", "steps_to_target3", "seconds_to_target3", "reached_target3",
    "target4", "steps_to_target4", "seconds_to_target4", "reached_target4",
};
#define NSUM (int)(sizeof(sum_cols) / sizeof(sum_cols[0]))

static void write_summary_csv(const Run *r, double wall)
{
    char path[4200];
    path_in(path, sizeof path, r->dir, "summary.csv");
    const char *cols[NCFG + NSUM];
    memcpy(cols, cfg_cols, sizeof cfg_cols);
    memcpy(cols + NCFG, sum_cols, sizeof sum_cols);
    HxCsv *w = csv_open(path, cols, NCFG + NSUM);
    const HxTrainResult *x = &r->res;
    put_cfg(w, r);
    hx_csv_int(w, x->steps);
    hx_csv_num(w, x->seconds);
    hx_csv_num(w, wall);
    hx_csv_num(w, x->images_per_s);
    hx_csv_num(w, x->final_val_loss);
    hx_csv_num(w, x->final_val_acc);
    hx_csv_num(w, x->best_val_acc);
    hx_csv_int(w, x->best_val_step);
    hx_csv_num(w, x->final_test_acc);
    hx_csv_int(w, (int64_t)x->clipped);
    hx_csv_int(w, (int64_t)x->skipped);
    hx_csv_int(w, x->diverged);
    hx_csv_num(w, x->ms_data);
    hx_csv_num(w, x->ms_forward);
    hx_csv_num(w, x->ms_backward);
    hx_csv_num(w, x->ms_optim);
    for (int k = 0; k < HX_MAX_TARGETS; k++) {
        if (k < r->s->ntargets) {
            hx_csv_num(w, r->s->targets[k]);
            hx_csv_int(w, x->steps_to[k]);
            hx_csv_num(w, x->seconds_to[k]);
            hx_csv_int(w, x->reached[k]);
        } else {
            for (int j = 0; j < 4; j++)
                hx_csv_str(w, NULL);
        }
    }
    hx_csv_end_row(w);
    csv_close(w, path);
}

/* ---- checkpoints ------------------------------------------------------------------
 * checkpoint.bin (harness/checkpoint.c) holds the progress, the rows so far,
 * the parameters and batch-norm statistics; the optimizer's state is in
 * optim-STEP.state (opt_save), named by the step so that the checkpoint never
 * points at a newer one.  Both carry the run id; both are written to
 * temporaries and renamed, the checkpoint last. */

/* What this run is: written into its checkpoints, and what one must match. */
static HxCkptRun ckpt_run(const Run *r)
{
    size_t np, ns;
    nn_resnet_params(r->net, &np);
    nn_resnet_stats(r->net, &ns);
    return (HxCkptRun){ .run_id = r->s->run_id, .total_steps = r->total_steps,
                        .steps_per_epoch = r->steps_per_epoch, .eval_every = r->eval_every,
                        .batch = r->s->batch, .ntrain = r->split.ntrain, .nval = r->split.nval,
                        .ntest = r->test.n, .nparams = np, .nstats = ns };
}

static void save_checkpoint(Run *r, double wall)
{
    char path[4200], name[64], err[1024] = "";
    snprintf(name, sizeof name, "optim-%ld.state", r->step);
    path_in(path, sizeof path, r->dir, name);
    if (opt_save(r->opt, path, hx_run_tag(r->s->run_id), err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "checkpoint: %s", err);
    size_t np, ns;
    const HxCkptRun run = ckpt_run(r);
    const HxCheckpoint ck = {
        .step = r->step, .epoch = (int64_t)r->tb.epoch, .pos = r->tb.pos, .wall = wall,
        .train_s = r->train_s, .run_loss = r->run_loss, .run_correct = r->run_correct,
        .run_seen = r->run_seen, .res = r->res, .steps = r->rows.s, .conv = r->rows.c,
        .nsteps = r->rows.ns, .nconv = r->rows.nc, .params = nn_resnet_params(r->net, &np),
        .stats = nn_resnet_stats(r->net, &ns) };
    path_in(path, sizeof path, r->dir, "checkpoint.bin");
    hx_checkpoint_save(path, &run, &ck);
    /* The CSVs so far, so an interrupted run has them too. */
    write_steps_csv(r);
    write_conv_csv(r);
    /* Older optimizer states are no longer referenced. */
    DIR *d = opendir(r->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long k;
        if (sscanf(e->d_name, "optim-%ld.state", &k) == 1 && k != r->step &&
            strstr(e->d_name, ".state") && !strstr(e->d_name, ".tmp")) {
            path_in(path, sizeof path, r->dir, e->d_name);
            remove(path);
        }
    }
    if (d)
        closedir(d);
}

/* Returns 1 if a checkpoint was loaded.  The optimizer state must be the
 * one saved with it: its run's tag, and as many steps, skipped and clipped
 * ones as the checkpoint counts (a state renamed from another step has
 * other counts). */
static int load_checkpoint(Run *r)
{
    char path[4200], err[1024] = "";
    path_in(path, sizeof path, r->dir, "checkpoint.bin");
    const HxCkptRun want = ckpt_run(r);
    HxCheckpoint ck;
    if (!hx_checkpoint_load(path, &want, &ck))
        return 0;
    char name[64];
    snprintf(name, sizeof name, "optim-%lld.state", (long long)ck.step);
    char opath[4200];
    path_in(opath, sizeof opath, r->dir, name);
    if (opt_load(r->opt, opath, hx_run_tag(r->s->run_id), err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "resume: %s", err);
    const uint64_t steps = opt_steps(r->opt), skipped = opt_skipped(r->opt),
                   clipped = opt_clipped(r->opt);
    if (steps + skipped != (uint64_t)ck.step || skipped != ck.res.skipped ||
        clipped != ck.res.clipped)
        hx_fail(HX_EXIT_FAIL, "%s: %llu steps (%llu of them skipped, %llu clipped), but %s is "
                "at step %lld (%llu skipped, %llu clipped): not the state saved with it", opath,
                (unsigned long long)(steps + skipped), (unsigned long long)skipped,
                (unsigned long long)clipped, path, (long long)ck.step,
                (unsigned long long)ck.res.skipped, (unsigned long long)ck.res.clipped);
    size_t np, ns;
    float *p = nn_resnet_params(r->net, &np), *st = nn_resnet_stats(r->net, &ns);
    memcpy(p, ck.params, np * sizeof(float)); /* the sizes checked by the parse */
    memcpy(st, ck.stats, ns * sizeof(float));
    free(r->rows.s);
    free(r->rows.c);
    r->rows = (Rows){ .s = ck.steps, .c = ck.conv, .ns = ck.nsteps, .nc = ck.nconv,
                      .caps = ck.nsteps, .capc = ck.nconv };
    ck.steps = NULL; /* the run's rows now */
    ck.conv = NULL;
    r->step = ck.step;
    nn_batcher_seek(&r->tb, (uint64_t)ck.epoch, (int)ck.pos);
    r->wall0 = ck.wall;
    r->train_s = ck.train_s;
    r->run_loss = ck.run_loss;
    r->run_correct = ck.run_correct;
    r->run_seen = ck.run_seen;
    r->res = ck.res;
    hx_checkpoint_free(&ck);
    return 1;
}

/* ---- metadata ----------------------------------------------------------------------- */

static void write_metadata(const Run *r, const HxInvocation *whole)
{
    char path[4200], ts[32];
    path_in(path, sizeof path, r->dir, "metadata.json");
    hx_utc_timestamp(ts, sizeof ts);
    HxTopology t;
    const int have_topo = hx_topology(&t) == AMO_OK;
    NnResNetInfo ni;
    nn_resnet_info(r->net, &ni);
    HxJson *j = hx_json_open(path);
    char *cmd = hx_command_line(whole);
    hx_json_str(j, "command", cmd);
    free(cmd);
    hx_json_str(j, "run_id", r->s->run_id);
    hx_json_str(j, "date_utc", ts);
    hx_json_str(j, "amo_version", hx_version());
    hx_json_str(j, "git_commit", hx_git_commit());
    hx_json_str(j, "kernel_level", kn_kernel_level(r->s->opt.state == OPT_STATE_BF16
                                                        ? KN_K_AMO_BF16 : KN_K_AMO));
    hx_json_str(j, "cpu_detected_level", kn_cpu_level_name(kn_cpu_detected()));
    hx_json_str(j, "onednn_isa", nn_resnet_isa(r->net));
    hx_json_str(j, "onednn_version", hx_onednn_version());
    hx_json_str(j, "zlib_version", zlibVersion());
    char hw[32];
    snprintf(hw, sizeof hw, "%u.%u.%u", HWLOC_API_VERSION >> 16, (HWLOC_API_VERSION >> 8) & 0xff,
             HWLOC_API_VERSION & 0xff);
    hx_json_str(j, "hwloc_api_version", hw);
    hx_json_str(j, "compiler", __VERSION__);
    hx_json_str(j, "dtype", ni.dtype);
    hx_json_str(j, "conv_algo", hx_conv_algo_names[r->s->conv_algo]);
    hx_json_int(j, "winograd_convolutions", ni.wino_convs);
    hx_json_int(j, "parameters", (long long)ni.nparams);
    hx_json_str(j, "topology", have_topo ? t.summary : "unknown");
    hx_json_int(j, "threads", opt_threads(r->opt));
    hx_json_int(j, "train_examples", r->split.ntrain);
    hx_json_int(j, "val_examples", r->split.nval);
    hx_json_int(j, "test_examples", r->test.n);
    hx_json_int(j, "total_steps", r->total_steps);
    hx_json_int(j, "eval_every", r->eval_every);
    hx_json_close(j);
}

/* ---- progress ------------------------------------------------------------------------ */

static void progress(Run *r, double wall, double loss, int final)
{
    const int tty = isatty(STDERR_FILENO);
    if (r->s->quiet || (!final && wall - r->last_progress < (tty ? 0.25 : 30.0)))
        return;
    r->last_progress = wall;
    const double done = (double)r->step / (double)r->total_steps;
    const double eta = done > 0 ? wall * (1 - done) / done : NAN;
    const double ips = r->train_s > 0 ? (double)r->step * r->s->batch / r->train_s : 0;
    const double acc = r->run_seen > 0 ? r->run_correct / r->run_seen : NAN;
    char val[32] = "val -";
    if (r->rows.nc > 0)
        snprintf(val, sizeof val, "val %.3f", r->rows.c[r->rows.nc - 1].val_acc);
    fprintf(stderr,
            "%s%s  epoch %.2f  step %ld/%ld  loss %.4f  acc %.3f  %s  %.0f img/s  ETA %.0fs%s",
            tty ? "\r\033[K" : "", r->s->run_id, (double)r->step / (double)r->steps_per_epoch,
            r->step, r->total_steps, loss, acc, val, ips, eta, tty && !final ? "" : "\n");
    fflush(stderr);
}

/* ---- the loop --------------------------------------------------------------------------- */

static void eval_point(Run *r, double wall, int final)
{
    const HxTrainSpec *s = r->s;
    HxConvRow c = { (double)r->step, (double)r->step / (double)r->steps_per_epoch, wall,
                  r->run_seen > 0 ? r->run_loss / r->run_seen : NAN,
                  r->run_seen > 0 ? r->run_correct / r->run_seen : NAN, NAN, NAN, NAN, NAN };
    evaluate(r, &r->vb, &c.val_loss, &c.val_acc);
    if (final || s->test_every_eval)
        evaluate(r, &r->eb, &c.test_loss, &c.test_acc);
    push_conv(&r->rows, &c);
    r->run_loss = r->run_correct = r->run_seen = 0;
    HxTrainResult *x = &r->res;
    if (c.val_acc > x->best_val_acc || x->best_val_step < 0) {
        x->best_val_acc = c.val_acc;
        x->best_val_step = r->step;
    }
    for (int k = 0; k < s->ntargets; k++)
        if (!x->reached[k] && c.val_acc >= s->targets[k]) {
            x->reached[k] = 1;
            x->steps_to[k] = r->step;
            x->seconds_to[k] = r->train_s;
        }
    x->final_val_acc = c.val_acc;
    x->final_val_loss = c.val_loss;
    x->final_test_acc = c.test_acc;
}

/* The step's size in parameter space and how many parameters sit on a bound,
 * both outside the timed region. */
static void update_size(const Run *r, const float *theta, size_t n, HxStepRow *row)
{
    const double lo = r->s->opt.lo, hi = r->s->opt.hi;
    const int bounded = isfinite(lo) || isfinite(hi);
    double ss = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)theta[i] - (double)r->prev[i];
        ss += d * d;
        if (bounded)
            at += (double)theta[i] <= lo || (double)theta[i] >= hi;
    }
    row->update_norm = sqrt(ss);
    row->at_bound = (double)at;
}

static void one_step(Run *r, double wall)
{
    const int K = r->train.classes;
    HxStepRow row = { .step = (double)r->step + 1 };
    size_t np;
    float *theta = nn_resnet_params(r->net, &np);
    memcpy(r->prev, theta, np * sizeof(float)); /* untimed: for the update size */
    double t0 = hx_now();
    if (!nn_batcher_next(&r->tb, r->x, r->y)) /* end of an epoch: the next one begins */
        nn_batcher_next(&r->tb, r->x, r->y);
    const double t1 = hx_now();
    float loss = NAN;
    if (nn_resnet_forward(r->net, r->x, 1) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "forward at step %ld: %s", r->step + 1, nn_resnet_error(r->net));
    /* A non-finite loss is recorded, its gradients make the optimizer skip
     * the step, and the run is marked diverged. */
    const AmoStatus ls = nn_resnet_loss(r->net, r->y, r->s->smoothing, &loss);
    if (ls != AMO_OK && ls != AMO_ENONFINITE)
        hx_fail(HX_EXIT_FAIL, "loss at step %ld: %s", r->step + 1, nn_resnet_error(r->net));
    const double t2 = hx_now();
    if (nn_resnet_backward(r->net) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "backward at step %ld: %s", r->step + 1, nn_resnet_error(r->net));
    const double t3 = hx_now();
    OptStepInfo info;
    const AmoStatus st = opt_step(r->opt, &info);
    if (st != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "optimizer step %ld: %s", r->step + 1, amo_status_str(st));
    const double t4 = hx_now();
    const float *z = nn_resnet_logits(r->net);
    int correct = 0;
    for (int i = 0; i < r->s->batch; i++)
        correct += argmax(z + (size_t)i * K, K) == r->y[i];
    r->step++;
    r->train_s += t4 - t0;
    r->run_loss += (double)loss * r->s->batch;
    r->run_correct += correct;
    r->run_seen += r->s->batch;
    row.epoch = (double)r->step / (double)r->steps_per_epoch;
    row.wall = wall + (t4 - t0);
    row.data_ms = (t1 - t0) * 1e3;
    row.fwd_ms = (t2 - t1) * 1e3;
    row.bwd_ms = (t3 - t2) * 1e3;
    row.opt_ms = (t4 - t3) * 1e3;
    row.loss = loss;
    row.lr = info.lr;
    row.gnorm = info.grad_norm;
    row.clipped = info.clipped;
    row.skipped = info.skipped;
    row.ips = r->s->batch / (t4 - t0);
    update_size(r, theta, np, &row);
    push_step(&r->rows, &row);
    r->res.clipped += (uint64_t)info.clipped;
    r->res.skipped += (uint64_t)info.skipped;
    if (!isfinite(loss) || r->res.skipped * 10 > (uint64_t)r->step + 10)
        r->res.diverged = 1;
}

static void finish_result(Run *r)
{
    HxTrainResult *x = &r->res;
    x->steps = r->step;
    x->seconds = r->train_s;
    x->images_per_s = r->train_s > 0 ? (double)r->step * r->s->batch / r->train_s : NAN;
    double sum[4] = { 0 };
    for (size_t i = 0; i < r->rows.ns; i++) {
        sum[0] += r->rows.s[i].data_ms;
        sum[1] += r->rows.s[i].fwd_ms;
        sum[2] += r->rows.s[i].bwd_ms;
        sum[3] += r->rows.s[i].opt_ms;
    }
    const double n = r->rows.ns ? (double)r->rows.ns : NAN;
    x->ms_data = sum[0] / n;
    x->ms_forward = sum[1] / n;
    x->ms_backward = sum[2] / n;
    x->ms_optim = sum[3] / n;
    for (int k = 0; k < r->s->ntargets; k++)
        if (!x->reached[k]) {
            x->steps_to[k] = r->total_steps + 1; /* censored: budget + 1 */
            x->seconds_to[k] = NAN;
        }
}

static void free_run(Run *r)
{
    opt_destroy(r->opt);
    nn_resnet_destroy(r->net);
    nn_batcher_free(&r->tb);
    nn_batcher_free(&r->vb);
    nn_batcher_free(&r->eb);
    nn_split_free(&r->split);
    nn_data_free(&r->train);
    nn_data_free(&r->test);
    free(r->test_idx);
    free(r->tensors);
    free(r->x);
    free(r->y);
    free(r->prev);
    free(r->rows.s);
    free(r->rows.c);
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A finished run keeps its results only: the optimizer states, and the
 * temporaries a killed process left behind (checkpoint.bin.tmp,
 * metadata.json.tmp, the CSV writer's ".NAME.csv.XXXXXX"). */
static void remove_leftovers(const char *dir)
{
    static const char *const csvs[] = { ".steps.csv.", ".convergence.csv.", ".summary.csv." };
    char path[4200];
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *n = e->d_name;
        const size_t len = strlen(n);
        int gone = !strncmp(n, "optim-", 6) || !strncmp(n, "checkpoint.bin", 14) ||
                   (len > 4 && !strcmp(n + len - 4, ".tmp"));
        for (int i = 0; i < 3; i++)
            gone |= !strncmp(n, csvs[i], strlen(csvs[i]));
        if (gone) {
            path_in(path, sizeof path, dir, n);
            remove(path);
        }
    }
    if (d)
        closedir(d);
}

void hx_train_run(const HxTrainSpec *s, const HxInvocation *whole, HxTrainResult *res)
{
    Run r = { .s = s };
    char path[4200], runs[4200];
    path_in(runs, sizeof runs, s->out, "runs");
    path_in(r.dir, sizeof r.dir, runs, s->run_id);
    path_in(path, sizeof path, r.dir, "summary.csv");
    const int finished = file_exists(path);
    char ck[4200];
    path_in(ck, sizeof ck, r.dir, "checkpoint.bin");
    if ((finished || file_exists(ck)) && !s->resume)
        hx_fail(HX_EXIT_USAGE, "--out %s: run %s is already there; pass --resume to continue "
                "or skip it, or choose another --out", s->out, s->run_id);
    if (finished) {
        hx_summary_load(path, s->run_id, s->steps, res);
        res->already_done = 1;
        /* A kill between the summary's rename and the checkpoint's removal
         * below left them: the run is finished, they go now. */
        remove_leftovers(r.dir);
        if (!s->quiet)
            fprintf(stderr, "%s: finished before, skipped\n", s->run_id);
        return;
    }
    load_data(&r);
    r.steps_per_epoch = nn_batcher_steps(&r.tb);
    r.total_steps = s->steps > 0 ? s->steps : (long)ceil(s->epochs * (double)r.steps_per_epoch);
    if (r.total_steps < 1)
        hx_fail(HX_EXIT_USAGE, "--epochs %g: less than one step", s->epochs);
    r.eval_every = s->eval_every > 0 ? s->eval_every : r.steps_per_epoch;
    build_model(&r);
    /* only now: a run refused for its data or settings leaves no directory */
    hx_out_dir("--out", r.dir);
    r.res.best_val_step = -1;
    const int resumed = s->resume && load_checkpoint(&r);
    write_metadata(&r, whole);
    if (resumed && !s->quiet)
        fprintf(stderr, "%s: resumed at step %ld\n", s->run_id, r.step);
    const long ckpt = s->ckpt_every > 0 ? s->ckpt_every : r.eval_every;
    long next_ckpt = (r.step / ckpt + 1) * ckpt;
    const double start = hx_now() - r.wall0;
    float loss = NAN;
    while (r.step < r.total_steps && !r.res.diverged) {
        one_step(&r, hx_now() - start);
        loss = (float)r.rows.s[r.rows.ns - 1].loss;
        const int last = r.step == r.total_steps || r.res.diverged;
        progress(&r, hx_now() - start, loss, last);
        if (r.step % r.eval_every == 0 || last) {
            eval_point(&r, hx_now() - start, last);
            if (r.step >= next_ckpt && !last) {
                save_checkpoint(&r, hx_now() - start);
                next_ckpt = (r.step / ckpt + 1) * ckpt;
            }
        }
    }
    finish_result(&r);
    const double wall = hx_now() - start;
    write_steps_csv(&r);
    write_conv_csv(&r);
    write_summary_csv(&r, wall); /* last: its presence marks the run finished */
    remove(ck);
    remove_leftovers(r.dir);
    *res = r.res;
    free_run(&r);
}

/* ---- the combined CSVs ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* OUT/NAME = the header of the first OUT/runs/x/NAME and the data rows of
 * all of them, in the order of the run names; written through the CSV
 * writer's temporary-and-rename. */
static void combine_one(const char *out, char **names, int n, const char *file)
{
    char dst[4200], src[4300];
    path_in(dst, sizeof dst, out, file);
    /* One temporary per process: runs in parallel into one OUT each combine,
     * and each rename is whole (the last one lists every run; 'combine' redoes it). */
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dst, (long)getpid());
    FILE *w = fopen(tmp, "wb");
    if (!w)
        hx_fail(HX_EXIT_FAIL, "%s: cannot create: %s", tmp, strerror(errno));
    int header_done = 0, any = 0;
    char *line = NULL;
    size_t cap = 0;
    for (int i = 0; i < n; i++) {
        snprintf(src, sizeof src, "%s/runs/%s/%s", out, names[i], file);
        FILE *f = fopen(src, "rb");
        if (!f)
            continue;
        ssize_t len;
        int first = 1;
        while ((len = getline(&line, &cap, f)) > 0) {
            if (first && header_done) {
                first = 0;
                continue;
            }
            first = 0;
            header_done = 1;
            any = 1;
            fwrite(line, 1, (size_t)len, w);
        }
        fclose(f);
    }
    free(line);
    const int ok = fflush(w) == 0 && !ferror(w);
    if (fclose(w) != 0 || !ok)
        hx_fail(HX_EXIT_FAIL, "%s: cannot write: %s", tmp, strerror(errno));
    if (!any)
        remove(tmp);
    else if (rename(tmp, dst) != 0)
        hx_fail(HX_EXIT_FAIL, "%s: cannot write: %s", dst, strerror(errno));
}

void hx_train_combine(const char *out)
{
    char runs[4200];
    path_in(runs, sizeof runs, out, "runs");
    DIR *d = opendir(runs);
    if (!d)
        return;
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, (size_t)cap * sizeof(*names));
            if (!names)
                hx_fail(HX_EXIT_FAIL, "out of memory listing %s", runs);
        }
        names[n] = hx_malloc(strlen(e->d_name) + 1);
        strcpy(names[n++], e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(*names), cmp_str);
    combine_one(out, names, n, "summary.csv");
    combine_one(out, names, n, "convergence.csv");
    combine_one(out, names, n, "steps.csv");
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The runs by number (their ids are 40-70 characters), then a table that
 * fits 100 columns with up to four targets. */
void hx_train_print_table(const HxTrainSpec *specs, const HxTrainResult *res, int n)
{
    printf("\n");
    for (int i = 0; i < n; i++)
        printf("%2d  %s%s\n", i + 1, specs[i].run_id, res[i].diverged ? "  DIVERGED" : "");
    printf("\n %-2s %6s %6s %6s %6s %7s %5s %4s", "#", "val", "best", "test", "img/s", "train_s",
           "clip%", "skip");
    for (int k = 0; n > 0 && k < specs[0].ntargets; k++)
        printf(" steps@%-4.2f", specs[0].targets[k]);
    printf("\n");
    int censored = 0;
    for (int i = 0; i < n; i++) {
        const HxTrainResult *x = &res[i];
        printf("%2d  %6.4f %6.4f %6.4f %6.0f %7.1f %5.1f %4llu", i + 1, x->final_val_acc,
               x->best_val_acc, x->final_test_acc, x->images_per_s, x->seconds,
               x->steps ? 100.0 * (double)x->clipped / (double)x->steps : 0.0,
               (unsigned long long)x->skipped);
        for (int k = 0; k < specs[i].ntargets; k++) {
            if (x->reached[k]) {
                printf(" %10ld", x->steps_to[k]);
            } else {
                printf(" %9ld+", x->steps_to[k] - 1);
                censored = 1;
            }
        }
        printf("\n");
    }
    printf("\nval, test: accuracy at the end (best: the best validation); steps@T: the first\n"
           "evaluation step whose validation accuracy reached T%s\n",
           censored ? "; N+: not reached in the run's N steps" : "");
}

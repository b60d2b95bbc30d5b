/* One training run: data, model, optimizer, the step loop with its timings,
 * evaluation, checkpoints (their format: harness/checkpoint.c), and the
 * CSVs.  The loop reads like the paper's Algorithm 1 with a network around
 * it:
 *
 *     for each step:  batch -> forward -> loss -> backward -> opt_step
 *     every eval_every steps: validation (and test) accuracy, checkpoint */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"
#include "common/hash.h"
#include "harness/common.h"
#include "harness/dist.h"
#include "harness/error.h"
#include "harness/run.h"
#include "harness/threads.h"
#include "harness/timer.h"
#include "nn/loss.h"
#include "nn/resnet.h"

/* ---- specification ----------------------------------------------------------- */

void hx_train_defaults(HxTrainSpec *s)
{
    *s = (HxTrainSpec){
        .dataset = "fashion", .nval = 5000, .augment = 1,
        .syn_n = 2048, .syn_ch = 3, .syn_hw = 32, .syn_classes = 10, .loader_threads = 2,
        .image_size = 224,
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
    uint32_t h = AMO_FNV32_INIT; /* fed one formatted field at a time */
#define HASH(...)                                                               \
    do {                                                                        \
        snprintf(piece, sizeof piece, __VA_ARGS__);                             \
        h = amo_fnv1a32(amo_fnv1a32(h, piece, strlen(piece)), "|", 1);          \
    } while (0)
    HASH("%s", s->dataset);
    if (s->data_dir)
        h = amo_fnv1a32(h, s->data_dir, strlen(s->data_dir));
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
    /* Settings added later enter the hash only when not at their default,
     * so the runs made before them keep their ids. */
    if (s->init != NN_INIT_HE)
        HASH("init%d", s->init);
    if (s->test_at_best)
        HASH("test-at-best");
    if (s->full_decode || s->image_size != 224)
        HASH("%d|%d", s->full_decode, s->image_size);
    if (s->sync_bn)
        HASH("sync-bn");
#undef HASH
    char model[48];
    snprintf(model, sizeof model, "r%dw%g%s%s", s->depth, s->width, s->bf16 ? "-bf16" : "",
             s->init == NN_INIT_TORCH ? "-torchinit" : "");
    if ((size_t)snprintf(s->run_id, sizeof s->run_id, "%s-%s-%s-lr%g-%s-%s%s-s%llu-%08x",
                         s->dataset, model, opt_algo_name(c->algo), (double)c->lr, hyp, clip,
                         isfinite(c->lo) || isfinite(c->hi) ? "-bounds" : "",
                         (unsigned long long)s->seed, h) >= sizeof s->run_id)
        hx_fail(HX_EXIT_USAGE, "run id %s...: longer than %d bytes", s->run_id,
                HX_RUN_ID_MAX - 1); /* the hash would be cut off: runs would collide */
}

/* ---- data, model, optimizer ---------------------------------------------------- */

static void load_data(Run *r)
{
    const HxTrainSpec *s = r->s;
    char err[1024] = "";
    AmoStatus st;
    if (!strcmp(s->dataset, "folder")) {
        hx_load_folder(r); /* harness/data_folder.c */
        return;
    }
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
    r->tsrc.b = &r->tb;
    r->vsrc.b = &r->vb;
    r->esrc.b = &r->eb;
    r->in_ch = r->train.c;
    r->in_h = r->train.h;
    r->in_w = r->train.w;
    r->classes = r->train.classes;
    r->stem = NN_STEM_CIFAR;
    r->ntrain = r->split.ntrain;
    r->nval = r->split.nval;
    r->ntest = r->test.n;
}

static void build_model(Run *r)
{
    const HxTrainSpec *s = r->s;
    const NnResNetConfig cfg = { .depth = s->depth, .stem = (NnStem)r->stem, .width = s->width,
                                 .in_ch = r->in_ch, .classes = r->classes,
                                 .batch = r->bl, .h = r->in_h, .w = r->in_w,
                                 .bf16 = s->bf16, .conv_algo = s->conv_algo,
                                 .init = (NnInit)s->init, .seed = s->seed };
    OptConfig oc = s->opt;
    oc.seed = s->seed;
    if (oc.schedule == OPT_SCHED_COSINE && oc.total_steps == 0)
        oc.total_steps = (uint64_t)r->total_steps;
    /* Ranks on one host share its cores, data-parallel or each with runs of
     * its own (ablation): one thread per core between them. */
    const int local = hx_dist_local_size(), cores = hx_default_threads();
    const int threads = s->threads || local == 1 ? s->threads
                        : cores / local > 1          ? cores / local
                                                     : 1;
    hx_model_create(&r->m, &cfg, oc, threads,
                    (r->dp ? HX_DP : 0) | (s->sync_bn ? HX_DP_SYNC_BN : 0));
    size_t np;
    nn_resnet_params(r->m.net, &np);
    const size_t img = (size_t)r->in_ch * r->in_h * r->in_w;
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

/* This rank's share of a batch of cnt examples in r->x, r->y: from *first,
 * the number (0 when the batch ends before it). */
static int my_share(const Run *r, int cnt, int *first)
{
    *first = r->rank * r->bl;
    const int end = cnt < *first + r->bl ? cnt : *first + r->bl;
    return end > *first ? end - *first : 0;
}

static const float *rows_at(const Run *r, int first)
{
    return r->x + (size_t)first * (size_t)r->in_ch * (size_t)r->in_h * (size_t)r->in_w;
}

/* Plain cross-entropy (no smoothing) and accuracy over a whole split, with
 * batch-norm in inference mode; data-parallel, each rank its share of each
 * batch, the sums reduced at the end. */
static void evaluate(Run *r, HxSource *b, double *loss, double *acc)
{
    const int K = r->classes;
    double sum[3] = { 0 }; /* loss x examples, correct, seen */
    hx_source_seek(b, 0, 0);
    int cnt, first;
    while ((cnt = hx_source_next(b, r->x, r->y)) > 0) {
        const int n = my_share(r, cnt, &first);
        if (!n)
            continue;
        if (nn_resnet_forward(r->m.net, rows_at(r, first), 0) != AMO_OK)
            hx_fail(HX_EXIT_FAIL, "evaluation forward: %s", nn_resnet_error(r->m.net));
        const float *z = nn_resnet_logits(r->m.net);
        const int *y = r->y + first;
        double l = 0;
        nn_xent_smooth(&l, NULL, z, y, n, K, 0.0f); /* NaN logits give NaN loss */
        sum[0] += l * n;
        for (int i = 0; i < n; i++)
            sum[1] += argmax(z + (size_t)i * K, K) == y[i];
        sum[2] += n;
    }
    if (r->dp)
        hx_dist_sum_f64(sum, 3);
    *loss = sum[2] ? sum[0] / sum[2] : NAN;
    *acc = sum[2] ? sum[1] / sum[2] : NAN;
}

/* Data-parallel: every rank must hold the same parameters (the same
 * averaged gradients, the same update); a difference is a bug or a broken
 * rank, and an error.  Batch norm's running statistics are rank 0's, as
 * PyTorch DDP broadcasts them (with local statistics they drift apart). */
static void check_replicas(Run *r)
{
    if (!r->dp)
        return;
    size_t np, ns;
    const float *p = nn_resnet_params(r->m.net, &np);
    float *stats = nn_resnet_stats(r->m.net, &ns);
    hx_dist_bcast_f32(stats, ns, 0);
    const uint64_t h = amo_fnv1a64(p, np * sizeof *p);
    int64_t root = (int64_t)h, differ;
    hx_dist_bcast_i64(&root, 1, 0);
    differ = (uint64_t)root != h;
    hx_dist_sum_i64(&differ, 1);
    if (differ)
        hx_fail(HX_EXIT_FAIL, "step %ld: the parameters differ across ranks (FNV-1a 64 "
                "%016llx on rank 0; %lld of %d ranks differ)", r->step,
                (unsigned long long)root, (long long)differ, r->ranks);
}

/* ---- progress ------------------------------------------------------------------------ */

static void progress(Run *r, double wall, double loss, int final)
{
    const int tty = isatty(STDERR_FILENO);
    if (r->s->quiet || !r->root || (!final && wall - r->last_progress < (tty ? 0.25 : 30.0)))
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
    check_replicas(r);
    evaluate(r, &r->vsrc, &c.val_loss, &c.val_acc);
    HxTrainResult *x = &r->res;
    const int best = c.val_acc > x->best_val_acc || x->best_val_step < 0;
    /* The test set at each new best costs about 11 evaluations a run where a
     * copy of the best parameters would cost a checkpoint format (PROTOCOL.md).
     * Without a test set of its own (a folder without test/) it is val's. */
    const int test = final || s->test_every_eval || (best && s->test_at_best);
    if (test && r->test_is_val) {
        c.test_loss = c.val_loss;
        c.test_acc = c.val_acc;
    } else if (test) {
        evaluate(r, &r->esrc, &c.test_loss, &c.test_acc);
    }
    hx_rows_push_conv(&r->rows, &c);
    r->run_loss = r->run_correct = r->run_seen = 0;
    if (best) {
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
    const int K = r->classes;
    HxStepRow row = { .step = (double)r->step + 1 };
    size_t np;
    float *theta = nn_resnet_params(r->m.net, &np);
    memcpy(r->prev, theta, np * sizeof(float)); /* untimed: for the update size */
    double t0 = hx_now();
    /* Every rank draws the whole batch (the same order and augmentation as
     * one process; a folder's loader decodes only this rank's share) and
     * trains on its share. */
    if (!hx_source_next(&r->tsrc, r->x, r->y)) /* end of an epoch: the next one begins */
        hx_source_next(&r->tsrc, r->x, r->y);
    const double t1 = hx_now();
    /* A non-finite loss is recorded, its gradients make the optimizer skip
     * the step, and the run is marked diverged. */
    float loss;
    OptStepInfo info;
    HxStepTimes tm;
    int first;
    my_share(r, r->s->batch, &first);
    const int *y = r->y + first;
    hx_model_step(&r->m, rows_at(r, first), y, r->s->smoothing, r->step + 1, &loss, &info, &tm);
    const float *z = nn_resnet_logits(r->m.net);
    double correct = 0;
    for (int i = 0; i < r->bl; i++)
        correct += argmax(z + (size_t)i * K, K) == y[i];
    if (r->dp) { /* the batch's loss: the mean of the ranks' equal shares */
        double v[2] = { loss, correct };
        hx_dist_sum_f64(v, 2);
        loss = (float)(v[0] / r->ranks);
        correct = v[1];
    }
    const double t4 = hx_now();
    r->step++;
    r->train_s += t4 - t0;
    r->run_loss += (double)loss * r->s->batch;
    r->run_correct += correct;
    r->run_seen += r->s->batch;
    row.epoch = (double)r->step / (double)r->steps_per_epoch;
    row.wall = wall + (t4 - t0);
    row.data_ms = (t1 - t0) * 1e3;
    row.fwd_ms = tm.forward * 1e3;
    row.bwd_ms = tm.backward * 1e3;
    row.opt_ms = tm.optimizer * 1e3;
    row.comm_ms = tm.comm * 1e3;
    row.loss = loss;
    row.lr = info.lr;
    row.gnorm = info.grad_norm;
    row.clipped = info.clipped;
    row.skipped = info.skipped;
    row.ips = r->s->batch / (t4 - t0);
    update_size(r, theta, np, &row);
    hx_rows_push_step(&r->rows, &row);
    r->res.clipped += (uint64_t)info.clipped;
    r->res.skipped += (uint64_t)info.skipped;
    if (!isfinite(loss) || r->res.skipped * 10 > (uint64_t)r->step + 10)
        r->res.diverged = 1;
}

/* --save-params: the flat buffer as it is (nn_resnet_tensors' order),
 * little-endian fp32, for comparing runs' parameters. */
static void save_params(Run *r)
{
    if (!r->s->save_params)
        return;
    size_t np;
    const float *p = nn_resnet_params(r->m.net, &np);
    char err[4400];
    if (amo_write_atomic(r->s->save_params, p, np * sizeof *p, err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "--save-params %s: %s", r->s->save_params, err);
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
    hx_model_destroy(&r->m);
    nn_batcher_free(&r->tb);
    nn_batcher_free(&r->vb);
    nn_batcher_free(&r->eb);
    nn_loader_destroy(r->tl);
    nn_loader_destroy(r->vl);
    nn_loader_destroy(r->el);
    nn_folder_free(&r->ftrain);
    nn_folder_free(&r->fval);
    nn_folder_free(&r->ftest);
    nn_split_free(&r->split);
    nn_data_free(&r->train);
    nn_data_free(&r->test);
    free(r->test_idx);
    free(r->x);
    free(r->y);
    free(r->prev);
    free(r->rows.s);
    free(r->rows.c);
}

/* Data-parallel or not: who this process is, its share of each batch. */
static void set_ranks(Run *r)
{
    const HxTrainSpec *s = r->s;
    r->dp = s->data_parallel && hx_dist_size() > 1;
    r->rank = r->dp ? hx_dist_rank() : 0;
    r->ranks = r->dp ? hx_dist_size() : 1;
    r->root = r->rank == 0;
    if (s->batch % r->ranks)
        hx_fail(HX_EXIT_USAGE, "--batch %d: not divisible by the %d ranks (each rank takes an "
                "equal share of every batch; --batch is the global batch)", s->batch, r->ranks);
    r->bl = s->batch / r->ranks;
    if (r->dp) /* (collective: not when each rank trains runs of its own) */
        hx_dist_hosts(r->hosts, sizeof r->hosts);
    else
        gethostname(r->hosts, sizeof r->hosts - 1);
}

void hx_train_run(const HxTrainSpec *s, const HxInvocation *whole, HxTrainResult *res)
{
    Run r = { .s = s };
    set_ranks(&r);
    char path[4200], runs[4200];
    hx_path_in(runs, sizeof runs, s->out, "runs");
    hx_path_in(r.dir, sizeof r.dir, runs, s->run_id);
    hx_path_in(path, sizeof path, r.dir, "summary.csv");
    const int finished = hx_file_exists(path);
    char ck[4200];
    hx_path_in(ck, sizeof ck, r.dir, "checkpoint.bin");
    if ((finished || hx_file_exists(ck)) && !s->resume)
        hx_fail(HX_EXIT_USAGE, "--out %s: run %s is already there; pass --resume to continue "
                "or skip it, or choose another --out", s->out, s->run_id);
    if (finished) {
        hx_summary_load(path, s->run_id, s->steps, res);
        /* local batch norm makes the result depend on the rank count, which
         * the run id does not name: another count's result is not this run's */
        if (res->ranks != r.ranks)
            hx_fail(HX_EXIT_USAGE, "%s: run %s finished on %d rank(s); this job has %d: its "
                    "results are not this job's (choose another --out)", path, s->run_id,
                    res->ranks, r.ranks);
        res->already_done = 1;
        /* A kill between the summary's rename and the checkpoint's removal
         * below left them: the run is finished, they go now. */
        if (r.root)
            hx_run_remove_leftovers(r.dir);
        if (!s->quiet && r.root)
            fprintf(stderr, "%s: finished before, skipped\n", s->run_id);
        return;
    }
    load_data(&r);
    r.steps_per_epoch = hx_source_steps(&r.tsrc);
    r.total_steps = s->steps > 0 ? s->steps : (long)ceil(s->epochs * (double)r.steps_per_epoch);
    if (r.total_steps < 1)
        hx_fail(HX_EXIT_USAGE, "--epochs %g: less than one step", s->epochs);
    r.eval_every = s->eval_every > 0 ? s->eval_every : r.steps_per_epoch;
    build_model(&r);
    /* only now: a run refused for its data or settings leaves no directory */
    if (r.root)
        hx_out_dir("--out", r.dir);
    r.res.best_val_step = -1;
    const int resumed = s->resume && hx_run_load_checkpoint(&r);
    check_replicas(&r);
    if (r.dp)
        r.sums_ms = hx_model_time_sums(&r.m, 5);
    if (r.root)
        hx_run_write_metadata(&r, whole);
    if (resumed && !s->quiet && r.root)
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
                if (r.root)
                    hx_run_save_checkpoint(&r, hx_now() - start);
                next_ckpt = (r.step / ckpt + 1) * ckpt;
            }
        }
    }
    finish_result(&r);
    const double wall = hx_now() - start;
    if (r.root) {
        hx_run_write_steps(&r);
        hx_run_write_conv(&r);
        hx_run_write_summary(&r, wall); /* last: its presence marks the run finished */
        remove(ck);
        save_params(&r);
        hx_run_remove_leftovers(r.dir);
    }
    *res = r.res;
    free_run(&r);
}

/* The files of a training run (harness/run.h): its CSVs, metadata.json,
 * checkpoints, the leftovers of a killed process, and the combined CSVs of
 * an output directory. */
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

#include "common/version.h"
#include "common/file.h"
#include "harness/common.h"
#include "harness/csv.h"
#include "harness/dist.h"
#include "harness/error.h"
#include "harness/run.h"
#include "harness/threads.h"
#include "harness/timer.h"
#include "kernels/cpu.h"
#include "kernels/update.h"
#include "nn/resnet.h"

/* Appends x (size bytes) to the array p of *n elements, doubling *cap;
 * returns the array. */
static void *push(void *p, size_t *n, size_t *cap, const void *x, size_t size)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        if (!(p = realloc(p, *cap * size)))
            hx_fail(HX_EXIT_FAIL, "out of memory for the run's rows");
    }
    memcpy((char *)p + (*n)++ * size, x, size);
    return p;
}

void hx_rows_push_step(Rows *r, const HxStepRow *x)
{
    r->s = push(r->s, &r->ns, &r->caps, x, sizeof *x);
}

void hx_rows_push_conv(Rows *r, const HxConvRow *x)
{
    r->c = push(r->c, &r->nc, &r->capc, x, sizeof *x);
}

/* ---- files ----------------------------------------------------------------------- */

void hx_path_in(char *buf, size_t len, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
        hx_fail(HX_EXIT_USAGE, "--out: path too long: %s/%s", dir, name);
}

static const char *const step_cols[] = {
    "run_id", "step", "epoch", "wall_s", "data_ms", "forward_ms", "backward_ms", "optimizer_ms",
    "loss", "lr", "grad_norm", "clipped", "skipped", "images_per_s", "update_norm", "at_bound",
    "comm_ms",
};

/* The configuration columns shared by convergence.csv and summary.csv. */
static const char *const cfg_cols[] = {
    "run_id", "dataset", "model", "width", "bf16", "optimizer", "lr", "beta", "gamma", "eps",
    "bias_correction", "momentum", "dampening", "nesterov", "alpha", "clip", "tau", "lo", "hi",
    "weight_decay", "decay_mode", "schedule", "warmup", "label_smoothing", "seed", "batch",
    "threads", "kernel_level", "conv_algo", "ranks", "sync_bn",
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
    hx_csv_int(w, r->m.opt ? opt_threads(r->m.opt) : s->threads);
    hx_csv_str(w, kn_kernel_level(c->state == OPT_STATE_BF16 ? KN_K_AMO_BF16 : KN_K_AMO));
    hx_csv_str(w, hx_conv_algo_names[s->conv_algo]);
    hx_csv_int(w, r->ranks); /* data-parallel: local batch norm depends on it */
    hx_csv_int(w, s->sync_bn);
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

void hx_run_write_steps(const Run *r)
{
    char path[4200];
    hx_path_in(path, sizeof path, r->dir, "steps.csv");
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
        hx_csv_num(w, x->comm_ms);
        hx_csv_end_row(w);
    }
    csv_close(w, path);
}

void hx_run_write_conv(const Run *r)
{
    char path[4200];
    hx_path_in(path, sizeof path, r->dir, "convergence.csv");
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

void hx_run_write_summary(const Run *r, double wall)
{
    char path[4200];
    hx_path_in(path, sizeof path, r->dir, "summary.csv");
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
    nn_resnet_params(r->m.net, &np);
    nn_resnet_stats(r->m.net, &ns);
    return (HxCkptRun){ .run_id = r->s->run_id, .total_steps = r->total_steps,
                        .steps_per_epoch = r->steps_per_epoch, .eval_every = r->eval_every,
                        .batch = r->s->batch, .ntrain = r->ntrain, .nval = r->nval,
                        .ntest = r->ntest, .nparams = np, .nstats = ns, .ranks = r->ranks };
}

void hx_run_save_checkpoint(Run *r, double wall)
{
    char path[4200], name[64], err[1024] = "";
    snprintf(name, sizeof name, "optim-%ld.state", r->step);
    hx_path_in(path, sizeof path, r->dir, name);
    if (opt_save(r->m.opt, path, hx_run_tag(r->s->run_id), err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "checkpoint: %s", err);
    size_t np, ns;
    const HxCkptRun run = ckpt_run(r);
    uint64_t epoch;
    int pos;
    hx_source_position(&r->tsrc, &epoch, &pos);
    const HxCheckpoint ck = {
        .step = r->step, .epoch = (int64_t)epoch, .pos = pos, .wall = wall,
        .train_s = r->train_s, .run_loss = r->run_loss, .run_correct = r->run_correct,
        .run_seen = r->run_seen, .res = r->res, .steps = r->rows.s, .conv = r->rows.c,
        .nsteps = r->rows.ns, .nconv = r->rows.nc, .params = nn_resnet_params(r->m.net, &np),
        .stats = nn_resnet_stats(r->m.net, &ns) };
    hx_path_in(path, sizeof path, r->dir, "checkpoint.bin");
    hx_checkpoint_save(path, &run, &ck);
    /* The CSVs so far, so an interrupted run has them too. */
    hx_run_write_steps(r);
    hx_run_write_conv(r);
    /* Older optimizer states are no longer referenced. */
    DIR *d = opendir(r->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long k;
        if (sscanf(e->d_name, "optim-%ld.state", &k) == 1 && k != r->step &&
            strstr(e->d_name, ".state") && !strstr(e->d_name, ".tmp")) {
            hx_path_in(path, sizeof path, r->dir, e->d_name);
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
int hx_run_load_checkpoint(Run *r)
{
    char path[4200], err[1024] = "";
    hx_path_in(path, sizeof path, r->dir, "checkpoint.bin");
    const HxCkptRun want = ckpt_run(r);
    HxCheckpoint ck;
    if (!hx_checkpoint_load(path, &want, &ck))
        return 0;
    char name[64];
    snprintf(name, sizeof name, "optim-%lld.state", (long long)ck.step);
    char opath[4200];
    hx_path_in(opath, sizeof opath, r->dir, name);
    if (opt_load(r->m.opt, opath, hx_run_tag(r->s->run_id), err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "resume: %s", err);
    const uint64_t steps = opt_steps(r->m.opt), skipped = opt_skipped(r->m.opt),
                   clipped = opt_clipped(r->m.opt);
    if (steps + skipped != (uint64_t)ck.step || skipped != ck.res.skipped ||
        clipped != ck.res.clipped)
        hx_fail(HX_EXIT_FAIL, "%s: %llu steps (%llu of them skipped, %llu clipped), but %s is "
                "at step %lld (%llu skipped, %llu clipped): not the state saved with it", opath,
                (unsigned long long)(steps + skipped), (unsigned long long)skipped,
                (unsigned long long)clipped, path, (long long)ck.step,
                (unsigned long long)ck.res.skipped, (unsigned long long)ck.res.clipped);
    size_t np, ns;
    float *p = nn_resnet_params(r->m.net, &np), *st = nn_resnet_stats(r->m.net, &ns);
    memcpy(p, ck.params, np * sizeof(float)); /* the sizes checked by the parse */
    memcpy(st, ck.stats, ns * sizeof(float));
    free(r->rows.s);
    free(r->rows.c);
    r->rows = (Rows){ .s = ck.steps, .c = ck.conv, .ns = ck.nsteps, .nc = ck.nconv,
                      .caps = ck.nsteps, .capc = ck.nconv };
    ck.steps = NULL; /* the run's rows now */
    ck.conv = NULL;
    r->step = ck.step;
    hx_source_seek(&r->tsrc, (uint64_t)ck.epoch, (int)ck.pos);
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

void hx_run_write_metadata(const Run *r, const HxInvocation *whole)
{
    char path[4200], ts[32];
    hx_path_in(path, sizeof path, r->dir, "metadata.json");
    hx_utc_timestamp(ts, sizeof ts);
    HxTopology t;
    const int have_topo = hx_topology(&t) == AMO_OK;
    NnResNetInfo ni;
    nn_resnet_info(r->m.net, &ni);
    HxJson *j = hx_json_open(path);
    char *cmd = hx_command_line(whole);
    hx_json_str(j, "command", cmd);
    free(cmd);
    hx_json_str(j, "run_id", r->s->run_id);
    hx_json_str(j, "date_utc", ts);
    hx_json_str(j, "amo_version", amo_version());
    hx_json_str(j, "git_commit", amo_build_commit());
    hx_json_str(j, "kernel_level", kn_kernel_level(r->s->opt.state == OPT_STATE_BF16
                                                        ? KN_K_AMO_BF16 : KN_K_AMO));
    hx_json_str(j, "cpu_detected_level", kn_cpu_level_name(kn_cpu_detected()));
    hx_json_str(j, "onednn_isa", nn_resnet_isa(r->m.net));
    hx_json_str(j, "onednn_version", hx_onednn_version());
    hx_json_str(j, "zlib_version", zlibVersion());
    char hw[32];
    snprintf(hw, sizeof hw, "%u.%u.%u", HWLOC_API_VERSION >> 16, (HWLOC_API_VERSION >> 8) & 0xff,
             HWLOC_API_VERSION & 0xff);
    hx_json_str(j, "hwloc_api_version", hw);
    hx_json_str(j, "compiler", __VERSION__);
    hx_json_str(j, "dtype", ni.dtype);
    hx_json_str(j, "conv_algo", hx_conv_algo_names[r->s->conv_algo]);
    hx_json_str(j, "init", r->s->init == NN_INIT_TORCH ? "torch" : "he");
    hx_json_int(j, "test_at_best", r->s->test_at_best);
    hx_json_int(j, "winograd_convolutions", ni.wino_convs);
    hx_json_int(j, "parameters", (long long)ni.nparams);
    hx_json_str(j, "topology", have_topo ? t.summary : "unknown");
    hx_json_int(j, "threads", opt_threads(r->m.opt));
    hx_json_int(j, "train_examples", r->ntrain);
    hx_json_int(j, "val_examples", r->nval);
    hx_json_int(j, "test_examples", r->ntest);
    if (r->tl) { /* --dataset folder: what decoded it (the results do not depend on it) */
        hx_json_int(j, "loader_threads", r->s->loader_threads);
        hx_json_int(j, "image_size", r->s->image_size);
        hx_json_int(j, "classes", r->classes);
    }
    hx_json_int(j, "total_steps", r->total_steps);
    hx_json_int(j, "eval_every", r->eval_every);
    /* data-parallel (harness/dist.h): 1 rank when alone */
    hx_json_int(j, "ranks", r->ranks);
    hx_json_str(j, "hosts", r->hosts);
    hx_json_int(j, "threads_per_rank", opt_threads(r->m.opt));
    hx_json_str(j, "mpi_library", hx_dist_library());
    hx_json_int(j, "sync_bn", r->s->sync_bn);
    hx_json_int(j, "grad_bucket_floats", (long long)r->m.sync.bucket);
    hx_json_num(j, "grad_sums_alone_ms", r->sums_ms);
    hx_json_close(j);
}

int hx_file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A finished run keeps its results only: the optimizer states, the
 * checkpoint, and the temporaries a killed process left behind (every atomic
 * write's ".NAME.PID.K.tmp", common/file.h). */
void hx_run_remove_leftovers(const char *dir)
{
    char path[4200];
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *n = e->d_name;
        const size_t len = strlen(n);
        if (!strncmp(n, "optim-", 6) || !strncmp(n, "checkpoint.bin", 14) ||
            (len > 4 && !strcmp(n + len - 4, ".tmp"))) {
            hx_path_in(path, sizeof path, dir, n);
            remove(path);
        }
    }
    if (d)
        closedir(d);
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
    char dst[4200], src[4300], err[4400];
    hx_path_in(dst, sizeof dst, out, file);
    /* each process writes its own temporary and renames it whole: runs in
     * parallel into one OUT each combine (the last rename lists every run;
     * 'combine' redoes it) */
    AmoFile *af;
    if (amo_file_create(&af, dst, err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s", err);
    FILE *w = amo_file_stream(af);
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
    if (!any)
        amo_file_abort(af);
    else if (amo_file_commit(af, err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s", err);
}

void hx_train_combine(const char *out)
{
    char runs[4200];
    hx_path_in(runs, sizeof runs, out, "runs");
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

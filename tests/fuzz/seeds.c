/* The seed corpus of the fuzz targets: small valid inputs, so that fuzzing
 * starts past the magic numbers and the checksum.
 *
 *     seeds DIR           writes DIR/idx/seed-*, DIR/cifar/seed-*, DIR/state/seed-*,
 *                         DIR/checkpoint/seed-*, DIR/summary/seed-*
 *     seeds --check DIR   exit 1 unless DIR holds those files byte for byte
 *
 * tests/fuzz/corpus/ is this program's output; the check (a test) says when
 * a format change has made it stale: then rerun `seeds tests/fuzz/corpus`.
 * Gzip members are written uncompressed (stored blocks), whose bytes do not
 * depend on the zlib version. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "harness/checkpoint.h"
#include "harness/csv.h"
#include "kernels/cpu.h"
#include "optim/optim.h"
#include "tests/fuzz/fuzz.h"

typedef struct Bytes { unsigned char p[4096]; size_t n; } Bytes;

static void add(Bytes *b, const void *p, size_t n)
{
    if (b->n + n > sizeof b->p) {
        fprintf(stderr, "seeds: a seed outgrew %zu bytes\n", sizeof b->p);
        exit(1);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void add_be32(Bytes *b, uint32_t v)
{
    const unsigned char p[4] = { v >> 24, v >> 16 & 255, v >> 8 & 255, v & 255 };
    add(b, p, 4);
}

/* The file at path, which a seed writer has just written. */
static Bytes slurp(const char *path)
{
    Bytes out = { .n = 0 };
    FILE *f = fopen(path, "rb");
    if (!f || (out.n = fread(out.p, 1, sizeof out.p, f)) == sizeof out.p) {
        fprintf(stderr, "seeds: %s: cannot read, or a seed outgrew %zu bytes\n", path,
                sizeof out.p);
        exit(1);
    }
    fclose(f);
    return out;
}

/* src as a gzip member of stored blocks. */
static Bytes gzip_stored(const Bytes *src)
{
    Bytes out = { .n = 0 };
    z_stream z = { 0 };
    if (deflateInit2(&z, Z_NO_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        exit(1);
    z.next_in = (unsigned char *)src->p;
    z.avail_in = (uInt)src->n;
    z.next_out = out.p;
    z.avail_out = sizeof out.p;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        exit(1);
    out.n = sizeof out.p - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* 2 images of 2 x 3 pixels, labels 3 and 9 (the largest allowed). */
static void idx_pair(Bytes *images, Bytes *labels)
{
    *images = (Bytes){ .n = 0 };
    *labels = (Bytes){ .n = 0 };
    add_be32(images, 0x803);
    add_be32(images, 2);
    add_be32(images, 2);
    add_be32(images, 3);
    const unsigned char px[12] = { 0, 1, 2, 127, 128, 255, 9, 8, 7, 6, 5, 4 };
    add(images, px, sizeof px);
    add_be32(labels, 0x801);
    add_be32(labels, 2);
    add(labels, (const unsigned char[]){ 3, 9 }, 2);
}

static Bytes idx_seed(int gz_images, int gz_labels)
{
    Bytes im, lb, out = { .n = 0 };
    idx_pair(&im, &lb);
    if (gz_images)
        im = gzip_stored(&im);
    if (gz_labels)
        lb = gzip_stored(&lb);
    add(&out, (const unsigned char[]){ im.n & 255, im.n >> 8 }, FUZZ_IDX_SPLIT);
    add(&out, im.p, im.n);
    add(&out, lb.p, lb.n);
    return out;
}

/* The first file replaced by one record: label 3, pixels 255 - i. */
static Bytes cifar_seed(void)
{
    Bytes out = { .n = 0 };
    unsigned char rec[1 + 3073];
    rec[0] = 0;
    rec[1] = 3;
    for (int i = 2; i < (int)sizeof rec; i++)
        rec[i] = (unsigned char)(255 - i);
    add(&out, rec, sizeof rec);
    return out;
}

/* Optimizer i after two steps (nonzero counters and moments), saved. */
static Bytes state_seed(int i)
{
    FuzzOpt f;
    for (int j = 0; j < FUZZ_N0 + FUZZ_N1; j++)
        f.param[j] = 0.25f * (float)(j - 3);
    Opt *o = fuzz_opt_create(&f, i);
    if (!o)
        exit(1);
    for (int s = 0; s < 2; s++) {
        for (int j = 0; j < FUZZ_N0 + FUZZ_N1; j++)
            f.grad[j] = 0.125f * (float)(j + s) - 0.5f;
        OptStepInfo info;
        if (opt_step(o, &info) != AMO_OK)
            exit(1);
    }
    char path[200], err[256];
    snprintf(path, sizeof path, "%s/state", fuzz_dir);
    if (opt_save(o, path, FUZZ_STATE_TAG, err, sizeof err) != AMO_OK) {
        fprintf(stderr, "seeds: %s\n", err);
        exit(1);
    }
    opt_destroy(o);
    return slurp(path);
}

/* The checkpoint of fuzz_ckpt_run after its evaluation at step 0, 5 or 10.
 * From step 5 on its rows hold a skipped step (gradient norm NaN) and one
 * that took no time (an infinite rate); the test set is measured, and the
 * first target reached, at step 10 only. */
static Bytes ckpt_seed(int step)
{
    const HxCkptRun run = fuzz_ckpt_run();
    /* where `step` steps of 5 per epoch leave the batcher: 4 examples a
     * step, capped at the 18 there are */
    static const int64_t at[3][2] = { { 0, 0 }, { 0, 18 }, { 1, 18 } };
    HxStepRow rows[FUZZ_CKPT_STEPS];
    HxConvRow conv[FUZZ_CKPT_STEPS / FUZZ_CKPT_EVERY];
    float params[FUZZ_CKPT_PARAMS], stats[FUZZ_CKPT_STATS];
    for (int i = 0; i < step; i++) {
        const double t = i + 1;
        rows[i] = (HxStepRow){ .step = t, .epoch = t / (double)run.steps_per_epoch,
                               .wall = 0.01 * t, .data_ms = 0.1, .fwd_ms = 0.2, .bwd_ms = 0.3,
                               .opt_ms = 0.05, .loss = 2.25 - 0.125 * t, .lr = 1e-3,
                               .gnorm = 1.5, .clipped = 1, .ips = 400, .update_norm = 0.01,
                               .at_bound = i % 3 };
    }
    if (step > 0) {
        rows[2].gnorm = NAN;
        rows[2].clipped = 0;
        rows[2].skipped = 1;
        rows[2].update_norm = 0;
        rows[3].ips = INFINITY;
    }
    for (int j = 0; j < step / FUZZ_CKPT_EVERY; j++) {
        const double t = (j + 1) * FUZZ_CKPT_EVERY;
        const int last = (j + 1) * FUZZ_CKPT_EVERY == step;
        conv[j] = (HxConvRow){ t, t / (double)run.steps_per_epoch, 0.01 * t + 0.005, 1.75, 0.375,
                               1.5, 0.5, last ? 1.625 : NAN, last ? 0.5 : NAN };
    }
    for (int i = 0; i < FUZZ_CKPT_PARAMS; i++)
        params[i] = 0.25f * (float)i - 0.5f;
    for (int i = 0; i < FUZZ_CKPT_STATS; i++)
        stats[i] = 1.0f + (float)i;
    const int some = step > 0, ten = step == 10;
    const HxTrainResult res = {
        .steps = step, .seconds = 0.01 * step, .images_per_s = some ? 400 : NAN,
        .final_val_acc = some ? 0.5 : NAN, .best_val_acc = some ? 0.5 : NAN,
        .final_test_acc = ten ? 0.5 : NAN, .final_val_loss = some ? 1.5 : NAN,
        .best_val_step = some ? FUZZ_CKPT_EVERY : -1,
        .steps_to = { ten ? 10 : FUZZ_CKPT_STEPS + 1 }, .seconds_to = { ten ? 0.105 : NAN },
        .reached = { ten }, .clipped = (uint64_t)(step - some), .skipped = (uint64_t)some,
        .ms_data = some ? 0.1 : NAN, .ms_forward = some ? 0.2 : NAN,
        .ms_backward = some ? 0.3 : NAN, .ms_optim = some ? 0.05 : NAN,
    };
    const HxCheckpoint ck = {
        .step = step, .epoch = at[step / FUZZ_CKPT_EVERY][0], .pos = at[step / FUZZ_CKPT_EVERY][1],
        .wall = 0.01 * step + 0.25, .train_s = 0.01 * step, .run_loss = 3.5, .run_seen = 8,
        .run_correct = 3, .res = res, .steps = rows, .conv = conv, .nsteps = (size_t)step,
        .nconv = (size_t)(step / FUZZ_CKPT_EVERY), .params = params, .stats = stats,
    };
    unsigned char *buf;
    size_t len;
    if (hx_checkpoint_serialise(&run, &ck, &buf, &len) != AMO_OK)
        exit(1);
    Bytes out = { .n = 0 };
    add(&out, buf, len);
    free(buf);
    return out;
}

/* The summary.csv of fuzz_ckpt_run finished (two targets, the first
 * reached) or diverged at step 7 (no targets, nothing measured, an infinite
 * rate): the columns of train.c's summaries that hx_summary_parse reads,
 * through the harness's CSV writer (numbers "%.6g", NaN an empty field). */
static Bytes summary_seed(int diverged)
{
    static const char *const head[] = {
        "run_id", "steps", "train_seconds", "images_per_s", "final_val_loss", "final_val_acc",
        "best_val_acc", "best_val_step", "final_test_acc", "clipped_steps", "skipped_steps",
        "diverged", "data_ms", "forward_ms", "backward_ms", "optimizer_ms",
    };
    enum { NHEAD = sizeof head / sizeof *head, NTARGET = 4 * HX_MAX_TARGETS };
    static const double val[2][NHEAD - 1] = {
        { 12, 0.18, 266.667, 1.375, 0.5, 0.666667, 10, 0.625, 11, 1, 0, 0.1, 0.2, 0.3, 0.05 },
        { 7, 0.07, INFINITY, NAN, NAN, NAN, -1, NAN, 6, 0, 1, 0.1, 0.2, 0.3, 0.05 },
    };
    /* target, steps to it, seconds to it, reached: NaN for the empty fields
     * of the targets a run does not have */
    double target[NTARGET];
    for (int k = 0; k < NTARGET; k++)
        target[k] = NAN;
    if (!diverged)
        memcpy(target, (const double[8]){ 0.5, 10, 0.105, 1, 0.9, 13, NAN, 0 },
               8 * sizeof *target);
    static const char *const tcol[4] = { "target", "steps_to_target", "seconds_to_target",
                                         "reached_target" };
    char tname[NTARGET][32];
    const char *cols[NHEAD + NTARGET];
    memcpy(cols, head, sizeof head);
    for (int k = 0; k < NTARGET; k++) {
        snprintf(tname[k], sizeof tname[k], "%s%d", tcol[k % 4], k / 4 + 1);
        cols[NHEAD + k] = tname[k];
    }
    char path[200];
    snprintf(path, sizeof path, "%s/summary.csv", fuzz_dir);
    HxCsv *w;
    if (hx_csv_open(&w, path, cols, NHEAD + NTARGET) != AMO_OK)
        exit(1);
    hx_csv_str(w, fuzz_ckpt_run().run_id);
    for (int i = 0; i < NHEAD - 1; i++)
        hx_csv_num(w, val[diverged][i]);
    for (int k = 0; k < NTARGET; k++)
        hx_csv_num(w, target[k]);
    if (hx_csv_end_row(w) != AMO_OK || hx_csv_close(w) != AMO_OK)
        exit(1);
    return slurp(path);
}

/* Writes b to dir/sub/name, or (check) compares it with that file. */
static int emit(const char *dir, const char *sub, const char *name, const Bytes *b, int check)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (!check && ((mkdir(dir, 0777) != 0 && errno != EEXIST)
                   || (mkdir(path, 0777) != 0 && errno != EEXIST))) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    if (!check) {
        fuzz_write(path, b->p, b->n);
        return 0;
    }
    Bytes have = { .n = 0 };
    FILE *f = fopen(path, "rb");
    if (f) {
        have.n = fread(have.p, 1, sizeof have.p, f);
        fclose(f);
    }
    if (f && have.n == b->n && !memcmp(have.p, b->p, b->n))
        return 0;
    fprintf(stderr, "%s: %s: rerun `seeds %s` (tests/fuzz/seeds.c)\n", path,
            f ? "differs from what the formats are now" : "missing", dir);
    return 1;
}

int main(int argc, char **argv)
{
    const int check = argc == 3 && !strcmp(argv[1], "--check");
    if (argc != 2 + check) {
        fprintf(stderr, "usage: seeds [--check] DIR\n");
        return 2;
    }
    const char *dir = argv[1 + check];
    /* The optimizer states hold the steps' results, which differ in the
     * last bits between the C reference and the FMA kernels: the reference,
     * the specification, makes the same seeds on every CPU and under every
     * AMO_ARCH. */
    if (kn_cpu_set_arch("scalar") != AMO_OK)
        return 1;
    fuzz_dir_make("seeds");
    Bytes b[3] = { idx_seed(0, 0), idx_seed(1, 1), idx_seed(0, 1) };
    int bad = emit(dir, "idx", "seed-raw", &b[0], check)
              + emit(dir, "idx", "seed-gz", &b[1], check)
              + emit(dir, "idx", "seed-raw-gz", &b[2], check);
    b[0] = cifar_seed();
    bad += emit(dir, "cifar", "seed-one-record", &b[0], check);
    for (int i = 0; i < FUZZ_NOPT; i++) {
        char name[32];
        snprintf(name, sizeof name, "seed-%s%s", opt_algo_name(fuzz_opt_config(i).algo),
                 i == 1 ? "-bf16" : i == 3 ? "-plain" : i == 4 ? "-momentum" : "");
        b[0] = state_seed(i);
        bad += emit(dir, "state", name, &b[0], check);
    }
    for (int step = 0; step < FUZZ_CKPT_STEPS; step += FUZZ_CKPT_EVERY) {
        char name[32];
        snprintf(name, sizeof name, "seed-step%d", step);
        b[0] = ckpt_seed(step);
        bad += emit(dir, "checkpoint", name, &b[0], check);
    }
    b[0] = summary_seed(0);
    b[1] = summary_seed(1);
    bad += emit(dir, "summary", "seed-finished", &b[0], check)
           + emit(dir, "summary", "seed-diverged", &b[1], check);
    return bad ? 1 : 0;
}

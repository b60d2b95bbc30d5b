/* checkpoint.bin, and a finished run's result read back from its
 * summary.csv (harness/checkpoint.h): every field read back is checked
 * against the run that reads it, and the first one that is wrong is named
 * by offset, name and value. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "harness/checkpoint.h"
#include "harness/csv.h"
#include "harness/error.h"
#include "common/hash.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoints are written in host order, assumed little-endian"
#endif

/* ---- the layout ---------------------------------------------------------------
 * checkpoint.bin, little-endian:
 *     0  char[8]    "AMOCKPT1"
 *     8  u32        format version (4)
 *    12  char[160]  run id, NUL-padded: the run's
 *   172  i64 x 10   total steps, steps per epoch, evaluation interval, batch,
 *                   training, validation and test examples, parameters,
 *                   batch-norm statistics, ranks: each the run's
 *   252  i64        step, in [0, total steps - 1] and a multiple of the
 *                   evaluation interval (checkpoints follow evaluations;
 *                   the last step finishes the run instead)
 *   260  i64        epoch and in-epoch position of the training batcher:
 *                   where `step` batches of the run put it
 *   276  f64 x 5    wall and training seconds; running loss, examples seen
 *                   and correct since the last evaluation
 *   316  result     216 bytes, put_result
 *   532  i64 x 2    step rows (= step), evaluation rows (= step / interval)
 *   548  rows       16 fields of 8 bytes per step row, then 9 per
 *                   evaluation row (step_fields, conv_fields)
 *    ..  f32        the parameters, then the batch-norm statistics, finite
 *   end  u64        FNV-1a 64 of every byte before it
 * Integers that the run keeps in doubles (row steps, flags, counts) are
 * written as i64. */

#define CKPT_MAGIC "AMOCKPT1"
#define CKPT_VERSION 4u /* 4: ranks, comm_ms (data-parallel train) */

/* ---- writing, into common/file.h's growable buffer ---------------------------- */

static void put(AmoBuf *w, const void *src, size_t n) { amo_buf_put(w, src, n); }
static void put_i64(AmoBuf *w, int64_t x) { put(w, &x, 8); }
static void put_f64(AmoBuf *w, double x) { put(w, &x, 8); }

/* ---- reading: each get_ checks its field; the first error stops the rest ------- */

typedef struct Rd {
    const unsigned char *p;
    size_t len, off;        /* len: up to the checksum; off: the next field  */
    HxFieldErr e;
} Rd;

#define failf(r, ...) hx_field_fail(&(r)->e, __VA_ARGS__)

void hx_field_fail(HxFieldErr *e, size_t off, const char *fmt, ...)
{
    if (e->bad)
        return;
    e->bad = 1;
    if (!e->err || !e->errlen)
        return;
    size_t n = (size_t)snprintf(e->err, e->errlen, "offset %zu: ", off);
    if (e->table && n < e->errlen)
        n += (size_t)snprintf(e->err + n, e->errlen - n, "%s %zu ", e->table, e->row);
    if (n < e->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->err + n, e->errlen - n, fmt, ap);
        va_end(ap);
    }
}

/* The next n bytes, or NULL once anything failed or the file ends first. */
static const unsigned char *take(Rd *r, size_t n, const char *name)
{
    if (r->e.bad)
        return NULL;
    if (r->len - r->off < n) {
        failf(r, r->off, "%s: truncated, %zu bytes left, %zu needed", name, r->len - r->off, n);
        return NULL;
    }
    const unsigned char *q = r->p + r->off;
    r->off += n;
    return q;
}

/* An integer in [lo, hi] (lo == hi: exactly lo).  A wrong one returns lo,
 * so that nothing downstream sizes a buffer by it. */
static int64_t get_i64(Rd *r, const char *name, int64_t lo, int64_t hi)
{
    const size_t at = r->off;
    const unsigned char *q = take(r, 8, name);
    int64_t x = lo;
    if (q)
        memcpy(&x, q, 8);
    if (x >= lo && x <= hi)
        return x;
    if (lo == hi)
        failf(r, at, "%s %lld, expected %lld", name, (long long)x, (long long)lo);
    else
        failf(r, at, "%s %lld outside [%lld, %lld]", name, (long long)x, (long long)lo,
              (long long)hi);
    return lo;
}

enum { F_INF = 1, F_NAN = 2 }; /* what a real field may be besides [lo, hi] */

static double get_f64(Rd *r, const char *name, double lo, double hi, int flags)
{
    const size_t at = r->off;
    const unsigned char *q = take(r, 8, name);
    double x = lo;
    if (q)
        memcpy(&x, q, 8);
    if (isnan(x) ? flags & F_NAN : (isfinite(x) || flags & F_INF) && x >= lo && x <= hi)
        return x;
    if (isnan(x) || !(isfinite(x) || flags & F_INF))
        failf(r, at, "%s %g: must be %s", name, x, flags & F_INF ? "a number" : "finite");
    else if (lo == hi)
        failf(r, at, "%s %.17g, expected %.17g", name, x, lo);
    else
        failf(r, at, "%s %g outside [%g, %g]", name, x, lo, hi);
    return lo;
}

/* n finite floats into dst. */
static void get_f32s(Rd *r, const char *name, float *dst, size_t n)
{
    const size_t at = r->off;
    const unsigned char *q = take(r, n * 4, name);
    if (!q)
        return;
    memcpy(dst, q, n * 4);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i])) {
            failf(r, at + 4 * i, "%s %zu of %zu is %g: must be finite", name, i, n,
                  (double)dst[i]);
            return;
        }
}

/* Magic, version and checksum; then r covers the fields, from offset 12. */
static void get_frame(Rd *r)
{
    if (r->len < 8 || memcmp(r->p, CKPT_MAGIC, 8)) {
        failf(r, 0, "not a checkpoint: no \"%s\" magic (%zu bytes)", CKPT_MAGIC, r->len);
        return;
    }
    if (r->len < 12 + 8) {
        failf(r, r->len, "truncated: %zu bytes", r->len);
        return;
    }
    uint32_t v;
    memcpy(&v, r->p + 8, 4);
    if (v != CKPT_VERSION) {
        failf(r, 8, "format version %u, this build reads %u", v, CKPT_VERSION);
        return;
    }
    uint64_t stored;
    memcpy(&stored, r->p + r->len - 8, 8);
    const uint64_t sum = amo_fnv1a64(r->p, r->len - 8);
    if (stored != sum) {
        failf(r, r->len - 8, "checksum %016llx, the bytes before it give %016llx: truncated "
              "or corrupted", (unsigned long long)stored, (unsigned long long)sum);
        return;
    }
    r->len -= 8;
    r->off = 12;
}

/* The run id: NUL-padded to HX_RUN_ID_MAX bytes, and the run's. */
static void get_run_id(Rd *r, const char *run_id)
{
    const size_t at = r->off;
    const unsigned char *q = take(r, HX_RUN_ID_MAX, "run id");
    if (!q)
        return;
    char id[HX_RUN_ID_MAX];
    memcpy(id, q, sizeof id);
    const char *nul = memchr(id, 0, sizeof id);
    if (!nul) {
        failf(r, at, "run id not NUL-terminated in its %d bytes", HX_RUN_ID_MAX);
        return;
    }
    for (const char *c = nul; c < id + sizeof id; c++)
        if (*c) {
            failf(r, at + (size_t)(c - id), "run id padding byte %d: must be 0",
                  (unsigned char)*c);
            return;
        }
    if (strcmp(id, run_id)) {
        for (char *c = id; *c; c++) /* a message of printable bytes */
            if (*c < 0x20 || *c > 0x7e)
                *c = '?';
        failf(r, at, "run id \"%s\", expected \"%s\" (a checkpoint of another run)", id,
              run_id);
    }
}

/* ---- the fields --------------------------------------------------------------------- */

/* The run's result so far, checked against its budget (total steps) and the
 * step it is at.  Accuracies and timings are NaN where nothing was measured. */
static void put_result(AmoBuf *w, const HxTrainResult *x)
{
    put_i64(w, x->steps);
    put_f64(w, x->seconds);
    put_f64(w, x->images_per_s);
    put_f64(w, x->final_val_acc);
    put_f64(w, x->best_val_acc);
    put_f64(w, x->final_test_acc);
    put_f64(w, x->final_val_loss);
    put_i64(w, x->best_val_step);
    for (int k = 0; k < HX_MAX_TARGETS; k++) {
        put_i64(w, x->steps_to[k]);
        put_f64(w, x->seconds_to[k]);
        put_i64(w, x->reached[k]);
    }
    put_i64(w, (int64_t)x->clipped);
    put_i64(w, (int64_t)x->skipped);
    put_i64(w, x->diverged);
    put_f64(w, x->ms_data);
    put_f64(w, x->ms_forward);
    put_f64(w, x->ms_backward);
    put_f64(w, x->ms_optim);
}

static void get_result(Rd *r, HxTrainResult *x, int64_t total, int64_t step)
{
    const double inf = INFINITY;
    *x = (HxTrainResult){ 0 };
    x->steps = (long)get_i64(r, "result steps", 0, step);
    x->seconds = get_f64(r, "train seconds", 0, inf, 0);
    x->images_per_s = get_f64(r, "images per second", 0, inf, F_INF | F_NAN);
    x->final_val_acc = get_f64(r, "final validation accuracy", 0, 1, F_NAN);
    x->best_val_acc = get_f64(r, "best validation accuracy", 0, 1, F_NAN);
    x->final_test_acc = get_f64(r, "final test accuracy", 0, 1, F_NAN);
    x->final_val_loss = get_f64(r, "final validation loss", -inf, inf, F_INF | F_NAN);
    x->best_val_step = (long)get_i64(r, "best validation step", -1, step);
    for (int k = 0; k < HX_MAX_TARGETS; k++) {
        x->steps_to[k] = (long)get_i64(r, "steps to a target", 0, total + 1);
        x->seconds_to[k] = get_f64(r, "seconds to a target", 0, inf, F_NAN);
        x->reached[k] = (int)get_i64(r, "target reached", 0, 1);
    }
    x->clipped = (uint64_t)get_i64(r, "clipped steps", 0, step);
    x->skipped = (uint64_t)get_i64(r, "skipped steps", 0, step);
    x->diverged = (int)get_i64(r, "diverged", 0, 1);
    x->ms_data = get_f64(r, "data ms", 0, inf, F_NAN);
    x->ms_forward = get_f64(r, "forward ms", 0, inf, F_NAN);
    x->ms_backward = get_f64(r, "backward ms", 0, inf, F_NAN);
    x->ms_optim = get_f64(r, "optimizer ms", 0, inf, F_NAN);
}

/* A row's fields, named as their CSV columns, with what each may hold.  The
 * step and epoch follow from the row's position; a training loss is finite
 * (a non-finite one ends the run, and no checkpoint follows it). */
typedef enum Kind {
    K_STEP,      /* integer: this row's step                                  */
    K_EPOCH,     /* step / steps per epoch, exactly as the run computes it    */
    K_NONNEG,    /* finite, >= 0: times, the learning rate, an update's norm  */
    K_FINITE,
    K_RATE,      /* >= 0, +inf (a zero duration)                              */
    K_NORM,      /* >= 0, +inf or NaN (the norm of a skipped step's gradient) */
    K_FLAG,      /* integer 0 or 1                                            */
    K_PARAMS,    /* integer in [0, parameters]                                */
    K_LOSS,      /* anything (an evaluation of a diverging model)             */
    K_FRACTION,  /* [0, 1] or NaN (not measured)                              */
} Kind;

typedef struct Field { const char *name; size_t off; Kind kind; } Field;

#define S(name, member, kind) { name, offsetof(HxStepRow, member), kind }
static const Field step_fields[] = {
    S("step", step, K_STEP), S("epoch", epoch, K_EPOCH), S("wall_s", wall, K_NONNEG),
    S("data_ms", data_ms, K_NONNEG), S("forward_ms", fwd_ms, K_NONNEG),
    S("backward_ms", bwd_ms, K_NONNEG), S("optimizer_ms", opt_ms, K_NONNEG),
    S("loss", loss, K_FINITE), S("lr", lr, K_NONNEG), S("grad_norm", gnorm, K_NORM),
    S("clipped", clipped, K_FLAG), S("skipped", skipped, K_FLAG),
    S("images_per_s", ips, K_RATE), S("update_norm", update_norm, K_NONNEG),
    S("at_bound", at_bound, K_PARAMS), S("comm_ms", comm_ms, K_NONNEG),
};
#undef S
#define C(name, member, kind) { name, offsetof(HxConvRow, member), kind }
static const Field conv_fields[] = {
    C("step", step, K_STEP), C("epoch", epoch, K_EPOCH), C("wall_s", wall, K_NONNEG),
    C("train_loss", train_loss, K_LOSS), C("train_acc", train_acc, K_FRACTION),
    C("val_loss", val_loss, K_LOSS), C("val_acc", val_acc, K_FRACTION),
    C("test_loss", test_loss, K_LOSS), C("test_acc", test_acc, K_FRACTION),
};
#undef C
#define NSTEPF (sizeof step_fields / sizeof *step_fields)
#define NCONVF (sizeof conv_fields / sizeof *conv_fields)

static int is_integer(Kind k) { return k == K_STEP || k == K_FLAG || k == K_PARAMS; }

static void put_row(AmoBuf *w, const Field *f, size_t nf, const void *row)
{
    for (size_t i = 0; i < nf; i++) {
        double v;
        memcpy(&v, (const char *)row + f[i].off, sizeof v);
        if (is_integer(f[i].kind))
            put_i64(w, (int64_t)v);
        else
            put_f64(w, v);
    }
}

static void get_row(Rd *r, const Field *f, size_t nf, void *row, int64_t step,
                    const HxCkptRun *run)
{
    const double inf = INFINITY, epoch = (double)step / (double)run->steps_per_epoch;
    for (size_t i = 0; i < nf; i++) {
        const char *n = f[i].name;
        double v = 0;
        switch (f[i].kind) {
        case K_STEP: v = (double)get_i64(r, n, step, step); break;
        case K_EPOCH: v = get_f64(r, n, epoch, epoch, 0); break;
        case K_NONNEG: v = get_f64(r, n, 0, inf, 0); break;
        case K_FINITE: v = get_f64(r, n, -inf, inf, 0); break;
        case K_RATE: v = get_f64(r, n, 0, inf, F_INF); break;
        case K_NORM: v = get_f64(r, n, 0, inf, F_INF | F_NAN); break;
        case K_FLAG: v = (double)get_i64(r, n, 0, 1); break;
        case K_PARAMS: v = (double)get_i64(r, n, 0, (int64_t)run->nparams); break;
        case K_LOSS: v = get_f64(r, n, -inf, inf, F_INF | F_NAN); break;
        case K_FRACTION: v = get_f64(r, n, 0, 1, F_NAN); break;
        }
        memcpy((char *)row + f[i].off, &v, sizeof v);
    }
}

/* ---- checkpoint.bin ------------------------------------------------------------------ */

/* The run's description, in file order; the sizes are u64 below 2^63. */
static const struct { const char *name; size_t off; } run_fields[] = {
    { "total steps", offsetof(HxCkptRun, total_steps) },
    { "steps per epoch", offsetof(HxCkptRun, steps_per_epoch) },
    { "evaluation interval", offsetof(HxCkptRun, eval_every) },
    { "batch", offsetof(HxCkptRun, batch) },
    { "training examples", offsetof(HxCkptRun, ntrain) },
    { "validation examples", offsetof(HxCkptRun, nval) },
    { "test examples", offsetof(HxCkptRun, ntest) },
    { "parameters", offsetof(HxCkptRun, nparams) },
    { "batch-norm statistics", offsetof(HxCkptRun, nstats) },
    { "ranks", offsetof(HxCkptRun, ranks) },
};

static int64_t run_field(const HxCkptRun *run, size_t i)
{
    int64_t v;
    memcpy(&v, (const char *)run + run_fields[i].off, sizeof v);
    return v;
}

static void put_run(AmoBuf *w, const HxCkptRun *run)
{
    for (size_t i = 0; i < sizeof run_fields / sizeof *run_fields; i++)
        put_i64(w, run_field(run, i));
}

static void get_run(Rd *r, const HxCkptRun *want)
{
    for (size_t i = 0; i < sizeof run_fields / sizeof *run_fields; i++) {
        const size_t at = r->off;
        const int64_t v = get_i64(r, run_fields[i].name, INT64_MIN, INT64_MAX), w = run_field(want, i);
        if (v == w || r->e.bad)
            continue;
        if (run_fields[i].off == offsetof(HxCkptRun, ranks))
            failf(r, at, "rank count %lld, this job has %lld: resume it with as many (mpirun "
                  "-np %lld)", (long long)v, (long long)w, (long long)v);
        else
            failf(r, at, "%s %lld, expected %lld", run_fields[i].name, (long long)v,
                  (long long)w);
    }
}

static void put_checkpoint(AmoBuf *w, const char *id, const HxCkptRun *run, const HxCheckpoint *ck)
{
    const uint32_t version = CKPT_VERSION;
    put(w, CKPT_MAGIC, 8);
    put(w, &version, 4);
    put(w, id, HX_RUN_ID_MAX);
    put_run(w, run);
    put_i64(w, ck->step);
    put_i64(w, ck->epoch);
    put_i64(w, ck->pos);
    put_f64(w, ck->wall);
    put_f64(w, ck->train_s);
    put_f64(w, ck->run_loss);
    put_f64(w, ck->run_seen);
    put_f64(w, ck->run_correct);
    put_result(w, &ck->res);
    put_i64(w, (int64_t)ck->nsteps);
    put_i64(w, (int64_t)ck->nconv);
    for (size_t i = 0; i < ck->nsteps; i++)
        put_row(w, step_fields, NSTEPF, &ck->steps[i]);
    for (size_t i = 0; i < ck->nconv; i++)
        put_row(w, conv_fields, NCONVF, &ck->conv[i]);
    put(w, ck->params, run->nparams * sizeof(float));
    put(w, ck->stats, run->nstats * sizeof(float));
}

AmoStatus hx_checkpoint_serialise(const HxCkptRun *run, const HxCheckpoint *ck,
                                 unsigned char **buf, size_t *len)
{
    char id[HX_RUN_ID_MAX] = { 0 };
    const size_t idlen = strlen(run->run_id);
    if (idlen >= sizeof id)
        return AMO_EINVAL;
    memcpy(id, run->run_id, idlen);
    AmoBuf w = { 0 };
    put_checkpoint(&w, id, run, ck);
    const uint64_t sum = amo_fnv1a64(w.p, w.len);
    put(&w, &sum, 8);
    if (w.oom) {
        amo_buf_free(&w);
        return AMO_ENOMEM;
    }
    *buf = w.p;
    *len = w.len;
    return AMO_OK;
}

void hx_checkpoint_free(HxCheckpoint *ck)
{
    free(ck->steps);
    free(ck->conv);
    free(ck->params);
    free(ck->stats);
    *ck = (HxCheckpoint){ 0 };
}

/* Where `step` steps leave the training batcher: one batch per step, and an
 * epoch's end noticed only by the step after it (nn_batcher_next). */
static void batcher_at(const HxCkptRun *run, int64_t step, int64_t *epoch, int64_t *pos)
{
    *epoch = *pos = 0;
    if (step > 0) {
        *epoch = (step - 1) / run->steps_per_epoch;
        *pos = ((step - 1) % run->steps_per_epoch + 1) * run->batch;
        if (*pos > run->ntrain)
            *pos = run->ntrain;
    }
}

/* The scalars after the run's description, up to the row counts. */
static void get_progress(Rd *r, const HxCkptRun *want, HxCheckpoint *ck)
{
    const int64_t ev = want->eval_every;
    size_t at = r->off;
    ck->step = get_i64(r, "step", 0, want->total_steps - 1);
    if (ck->step % ev)
        failf(r, at, "step %lld is not an evaluation step (every %lld)", (long long)ck->step,
              (long long)ev);
    int64_t epoch, pos;
    batcher_at(want, ck->step, &epoch, &pos);
    at = r->off;
    ck->epoch = get_i64(r, "epoch", 0, (want->total_steps - 1) / want->steps_per_epoch);
    if (ck->epoch != epoch)
        failf(r, at, "epoch %lld, but %lld steps end in epoch %lld", (long long)ck->epoch,
              (long long)ck->step, (long long)epoch);
    at = r->off;
    const int64_t end = want->steps_per_epoch * want->batch;
    ck->pos = get_i64(r, "in-epoch position", 0, end < want->ntrain ? end : want->ntrain);
    if (ck->pos != pos)
        failf(r, at, "in-epoch position %lld, but %lld steps end at %lld", (long long)ck->pos,
              (long long)ck->step, (long long)pos);
    ck->wall = get_f64(r, "wall seconds", 0, INFINITY, 0);
    ck->train_s = get_f64(r, "train seconds", 0, INFINITY, 0);
    ck->run_loss = get_f64(r, "running loss", -INFINITY, INFINITY, 0);
    ck->run_seen = get_f64(r, "running examples", 0, (double)(ev * want->batch), 0);
    ck->run_correct = get_f64(r, "running correct", 0, ck->run_seen, 0);
    get_result(r, &ck->res, want->total_steps, ck->step);
    ck->nsteps = (size_t)get_i64(r, "step rows", ck->step, ck->step);
    ck->nconv = (size_t)get_i64(r, "evaluation rows", ck->step / ev, ck->step / ev);
}

/* Room in the file for what the counts promise, before allocating it. */
static int room(Rd *r, size_t bytes, const char *name)
{
    if (!r->e.bad && bytes > r->len - r->off)
        failf(r, r->off, "%s: %zu bytes, %zu left: truncated", name, bytes, r->len - r->off);
    return !r->e.bad;
}

AmoStatus hx_checkpoint_parse(const void *buf, size_t len, const HxCkptRun *want,
                             HxCheckpoint *out, char *err, size_t errlen)
{
    *out = (HxCheckpoint){ 0 };
    if (err && errlen)
        err[0] = '\0';
    if (!buf || !want || !want->run_id || want->total_steps < 1 || want->steps_per_epoch < 1 ||
        want->eval_every < 1 || want->batch < 1) {
        if (err && errlen)
            snprintf(err, errlen, "hx_checkpoint_parse: no buffer, or an impossible run");
        return AMO_EINVAL;
    }
    Rd r = { .p = buf, .len = len, .e = { .err = err, .errlen = errlen } };
    HxCheckpoint ck = { 0 };
    get_frame(&r);
    get_run_id(&r, want->run_id);
    get_run(&r, want);
    get_progress(&r, want, &ck);
    const size_t rowsz = 8 * (NSTEPF * ck.nsteps + NCONVF * ck.nconv);
    if (!room(&r, rowsz + 4 * (want->nparams + want->nstats), "rows and parameters"))
        return AMO_EFORMAT;
    ck.steps = malloc((ck.nsteps ? ck.nsteps : 1) * sizeof(HxStepRow));
    ck.conv = malloc((ck.nconv ? ck.nconv : 1) * sizeof(HxConvRow));
    ck.params = malloc(want->nparams ? want->nparams * sizeof(float) : 1);
    ck.stats = malloc(want->nstats ? want->nstats * sizeof(float) : 1);
    if (!ck.steps || !ck.conv || !ck.params || !ck.stats) {
        hx_checkpoint_free(&ck);
        if (err && errlen)
            snprintf(err, errlen, "out of memory for a checkpoint of %zu bytes", len);
        return AMO_ENOMEM;
    }
    r.e.table = "step row";
    for (size_t i = 0; i < ck.nsteps; i++) {
        r.e.row = i + 1;
        get_row(&r, step_fields, NSTEPF, &ck.steps[i], (int64_t)i + 1, want);
    }
    r.e.table = "evaluation row";
    for (size_t i = 0; i < ck.nconv; i++) {
        r.e.row = i + 1;
        get_row(&r, conv_fields, NCONVF, &ck.conv[i], ((int64_t)i + 1) * want->eval_every, want);
    }
    r.e.table = NULL;
    get_f32s(&r, "parameter", ck.params, want->nparams);
    get_f32s(&r, "batch-norm statistic", ck.stats, want->nstats);
    if (!r.e.bad && r.off != r.len)
        failf(&r, r.off, "%zu bytes after the last field", r.len - r.off);
    if (r.e.bad) {
        hx_checkpoint_free(&ck);
        return AMO_EFORMAT;
    }
    *out = ck;
    return AMO_OK;
}

uint64_t hx_run_tag(const char *run_id)
{
    return amo_fnv1a64(run_id, strlen(run_id));
}

/* ---- files ------------------------------------------------------------------------- */

/* The whole file, or NULL if there is none. */
static unsigned char *read_whole(const char *path, size_t *len)
{
    unsigned char *d;
    char err[4400];
    if (amo_read_file(path, &d, len, err, sizeof err) == AMO_OK)
        return d;
    if (errno == ENOENT)
        return NULL;
    hx_fail(HX_EXIT_FAIL, "%s", err);
}

void hx_checkpoint_save(const char *path, const HxCkptRun *run, const HxCheckpoint *ck)
{
    unsigned char *buf;
    size_t len;
    const AmoStatus st = hx_checkpoint_serialise(run, ck, &buf, &len);
    if (st != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s: cannot write: %s", path, amo_status_str(st));
    char err[4400];
    const AmoStatus ws = amo_write_atomic(path, buf, len, err, sizeof err);
    free(buf);
    if (ws != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s", err);
}

int hx_checkpoint_load(const char *path, const HxCkptRun *want, HxCheckpoint *ck)
{
    size_t len;
    unsigned char *d = read_whole(path, &len);
    if (!d)
        return 0;
    char err[1024];
    const AmoStatus st = hx_checkpoint_parse(d, len, want, ck, err, sizeof err);
    free(d);
    if (st != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s: %s", path, err);
    return 1;
}

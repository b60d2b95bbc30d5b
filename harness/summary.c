/* A finished run's result, read back from its summary.csv (harness/checkpoint.h).
 * The summary holds every field of HxTrainResult (run_files.c's sum_cols); it is
 * also what marks a run finished: a run has one record of its result, and
 * runs finished by earlier builds read like any other. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "harness/checkpoint.h"
#include "harness/csv.h"
#include "harness/error.h"

enum { F_INF = 1, F_NAN = 2 }; /* what a number may be besides [lo, hi] */


typedef struct Cols {
    HxCsvRecord head, row;
    HxFieldErr e;
} Cols;

#define failf(c, ...) hx_field_fail(&(c)->e, __VA_ARGS__)

/* The row's field under column name, or NULL (and the error) if none. */
static const char *col(Cols *c, const char *name, size_t *at)
{
    for (int i = 0; i < c->head.n; i++)
        if (!strcmp(c->head.field[i], name)) {
            if (i >= c->row.n)
                break;
            *at = c->row.at[i];
            return c->row.field[i];
        }
    failf(c, 0, "no %s column", name);
    return NULL;
}

static int has_col(const Cols *c, const char *name)
{
    for (int i = 0; i < c->head.n; i++)
        if (!strcmp(c->head.field[i], name))
            return 1;
    return 0;
}

/* An integer column in [lo, hi]. */
static int64_t col_i64(Cols *c, const char *name, int64_t lo, int64_t hi)
{
    size_t at;
    const char *s = col(c, name, &at);
    if (!s)
        return lo;
    char *end;
    errno = 0;
    const long long x = strtoll(s, &end, 10);
    if (!*s || *end || errno) {
        failf(c, at, "%s \"%s\": not an integer", name, s);
        return lo;
    }
    if (x < lo || x > hi) {
        failf(c, at, "%s %lld outside [%lld, %lld]", name, x, (long long)lo, (long long)hi);
        return lo;
    }
    return x;
}

/* A number column in [lo, hi]; empty is NaN, allowed with F_NAN. */
static double col_f64(Cols *c, const char *name, double lo, double hi, int flags)
{
    size_t at;
    const char *s = col(c, name, &at);
    if (!s)
        return lo;
    char *end;
    const double x = *s ? strtod(s, &end) : NAN;
    if (*s && (*end || isnan(x))) {
        failf(c, at, "%s \"%s\": not a number", name, s);
        return lo;
    }
    if (isnan(x) ? flags & F_NAN : (isfinite(x) || flags & F_INF) && x >= lo && x <= hi)
        return x;
    if (!*s)
        failf(c, at, "%s empty: a number in [%g, %g] needed", name, lo, hi);
    else
        failf(c, at, "%s %s outside [%g, %g]%s", name, s, lo, hi,
              flags & F_NAN ? " or empty" : "");
    return lo;
}

AmoStatus hx_summary_parse(const char *buf, size_t len, const char *run_id, int64_t total_steps,
                          HxTrainResult *out, char *err, size_t errlen)
{
    *out = (HxTrainResult){ 0 };
    if (err && errlen)
        err[0] = '\0';
    if (!buf || !run_id) {
        if (err && errlen)
            snprintf(err, errlen, "hx_summary_parse: no buffer or run id");
        return AMO_EINVAL;
    }
    Cols *c = malloc(sizeof *c);
    if (!c)
        return AMO_ENOMEM;
    *c = (Cols){ .e = { .err = err, .errlen = errlen } };
    size_t off = 0;
    if (hx_csv_record(buf, len, &off, &c->head) != AMO_OK)
        failf(c, off, "header: not a CSV record");
    else if (off == len)
        failf(c, off, "truncated: a header and no row");
    else if (hx_csv_record(buf, len, &off, &c->row) != AMO_OK)
        failf(c, off, "row: not a CSV record");
    else if (off != len)
        failf(c, off, "more than one row");
    const double inf = INFINITY;
    const int64_t total = total_steps > 0 ? total_steps : INT64_MAX - 1;
    HxTrainResult x = { 0 };
    size_t at;
    const char *id = c->e.bad ? NULL : col(c, "run_id", &at);
    if (id && strcmp(id, run_id))
        failf(c, at, "run_id \"%s\", expected \"%s\" (the summary of another run)", id, run_id);
    if (!c->e.bad) {
        x.steps = (long)col_i64(c, "steps", 1, total);
        const int64_t n = x.steps;
        x.seconds = col_f64(c, "train_seconds", 0, inf, 0);
        x.images_per_s = col_f64(c, "images_per_s", 0, inf, F_INF | F_NAN);
        x.final_val_loss = col_f64(c, "final_val_loss", -inf, inf, F_INF | F_NAN);
        x.final_val_acc = col_f64(c, "final_val_acc", 0, 1, F_NAN);
        x.best_val_acc = col_f64(c, "best_val_acc", 0, 1, F_NAN);
        x.best_val_step = (long)col_i64(c, "best_val_step", -1, n);
        x.final_test_acc = col_f64(c, "final_test_acc", 0, 1, F_NAN);
        x.clipped = (uint64_t)col_i64(c, "clipped_steps", 0, n);
        x.skipped = (uint64_t)col_i64(c, "skipped_steps", 0, n);
        x.diverged = (int)col_i64(c, "diverged", 0, 1);
        /* summaries from before data-parallel runs have no ranks column: 1 */
        x.ranks = has_col(c, "ranks") ? (int)col_i64(c, "ranks", 1, 1 << 20) : 1;
        x.ms_data = col_f64(c, "data_ms", 0, inf, F_NAN);
        x.ms_forward = col_f64(c, "forward_ms", 0, inf, F_NAN);
        x.ms_backward = col_f64(c, "backward_ms", 0, inf, F_NAN);
        x.ms_optim = col_f64(c, "optimizer_ms", 0, inf, F_NAN);
        for (int k = 0; k < HX_MAX_TARGETS && !c->e.bad; k++) {
            char name[3][32];
            snprintf(name[0], sizeof name[0], "target%d", k + 1);
            snprintf(name[1], sizeof name[1], "steps_to_target%d", k + 1);
            snprintf(name[2], sizeof name[2], "reached_target%d", k + 1);
            if (isnan(col_f64(c, name[0], 0, 1, F_NAN)))
                continue; /* no k-th target: its columns are empty, its fields 0 */
            x.steps_to[k] = (long)col_i64(c, name[1], 0, total + 1);
            x.reached[k] = (int)col_i64(c, name[2], 0, 1);
            snprintf(name[1], sizeof name[1], "seconds_to_target%d", k + 1);
            x.seconds_to[k] = col_f64(c, name[1], 0, inf, F_NAN);
        }
    }
    const int bad = c->e.bad;
    free(c);
    if (bad)
        return AMO_EFORMAT;
    *out = x;
    return AMO_OK;
}

void hx_summary_load(const char *path, const char *run_id, int64_t total_steps,
                     HxTrainResult *res)
{
    size_t len;
    unsigned char *d;
    char err[4400];
    if (amo_read_file(path, &d, &len, err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "the finished run's result: %s", err);
    const AmoStatus st = hx_summary_parse((const char *)d, len, run_id, total_steps, res, err,
                                         sizeof err);
    free(d);
    if (st != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s: %s", path, err);
}

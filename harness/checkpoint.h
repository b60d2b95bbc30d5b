/* What a training run (harness/train.c) reads back from its directory:
 * checkpoint.bin, its progress at an evaluation, and a finished run's result
 * from its summary.csv, for the invocations that skip it.  The optimizer's
 * moments sit beside the checkpoint in optim-STEP.state (opt_save, tagged
 * with hx_run_tag).
 *
 * The checkpoint is written field by field, little-endian, with a magic, a
 * version, the run id and an FNV-1a 64 checksum (common/hash.h) of every
 * byte before it.  Reading checks the checksum first, then every field
 * against the run that reads it and against the fields before it, and names
 * the first one that is wrong by byte offset, name and value: "offset 268:
 * in-epoch position -5 outside [0, 224]".  Layout in checkpoint.c.
 *
 * hx_checkpoint_parse and hx_summary_parse are pure (no I/O, no global
 * state, no exit), for the cmocka tests and fuzz targets; the file
 * functions below them are the harness's and exit through hx_fail, the file
 * name before the parser's message. */
#ifndef AMO_HARNESS_CHECKPOINT_H
#define AMO_HARNESS_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "harness/train.h"
#include "common/status.h"

/* A reader's first error, "offset N: [TABLE ROW ]...": the checkpoint's and
 * the summary's parsers report through it (harness error texts name the
 * byte offset, the field and the value). */
typedef struct HxFieldErr {
    char *err;
    size_t errlen;
    const char *table;  /* "step row", ... or NULL */
    size_t row;         /* 1-based, with table     */
    int bad;
} HxFieldErr;
void hx_field_fail(HxFieldErr *e, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One row of steps.csv, kept in memory until the run writes it whole. */
typedef struct HxStepRow {
    double step, epoch, wall, data_ms, fwd_ms, bwd_ms, opt_ms, loss, lr, gnorm, clipped,
        skipped, ips;
    double update_norm; /* ||theta_after - theta_before||_2, fp64, outside the timings */
    double at_bound;    /* parameters equal to a finite bound after the step          */
    double comm_ms;     /* data-parallel: waiting for the gradient sums after backward */
} HxStepRow;

/* One row of convergence.csv (one per evaluation). */
typedef struct HxConvRow {
    double step, epoch, wall, train_loss, train_acc, val_loss, val_acc, test_loss, test_acc;
} HxConvRow;

/* The run a checkpoint belongs to: written into it, and on reading what it
 * must match.  Every size is the caller's, never the file's: parsing
 * allocates at most total_steps rows and nparams + nstats floats. */
typedef struct HxCkptRun {
    const char *run_id;       /* hx_train_run_id's, shorter than HX_RUN_ID_MAX */
    int64_t total_steps;      /* >= 1                                           */
    int64_t steps_per_epoch;  /* training batches per epoch, >= 1               */
    int64_t eval_every;       /* steps between evaluations, >= 1                */
    int64_t batch;            /* >= 1                                           */
    int64_t ntrain, nval, ntest; /* examples in the three splits                */
    uint64_t nparams, nstats; /* the model's parameters, batch-norm statistics  */
    int64_t ranks;            /* data-parallel ranks (1: one process); >= 1     */
} HxCkptRun;

/* A run's progress after an evaluation. */
typedef struct HxCheckpoint {
    int64_t step;             /* steps taken                                    */
    int64_t epoch, pos;       /* the training batcher: epoch, next example      */
    double wall, train_s;     /* seconds of wall clock, inside training steps   */
    double run_loss;          /* since the last evaluation: loss x batch summed, */
    double run_correct, run_seen; /* training examples right and seen           */
    HxTrainResult res;        /* so far; already_done is not stored             */
    HxStepRow *steps;         /* (nsteps) one per step: nsteps == step          */
    HxConvRow *conv;          /* (nconv) one per evaluation                     */
    size_t nsteps, nconv;
    float *params;            /* (nparams) fp32                                 */
    float *stats;             /* (nstats) batch-norm running mean and variance  */
} HxCheckpoint;

/* Serialises ck of run into a new buffer (*buf, *len; free() it), as it is:
 * the checks are the reader's.  AMO_ENOMEM, or AMO_EINVAL for a run id too
 * long. */
AmoStatus hx_checkpoint_serialise(const HxCkptRun *run, const HxCheckpoint *ck,
                                 unsigned char **buf, size_t *len);

/* Parses a whole checkpoint file (buf, len) that must belong to want.
 * Returns AMO_OK and fills out (release with hx_checkpoint_free), or
 * AMO_EFORMAT with "offset N: FIELD VALUE ..." in err (out then holds
 * nothing to free), AMO_ENOMEM, or AMO_EINVAL for a NULL buf or a want with
 * a count below 1.  err may be NULL.  The checksum is checked before any
 * field: a fuzz target that wants to reach the fields rewrites the last 8
 * bytes with amo_fnv1a64 (common/hash.h) of the ones before. */
AmoStatus hx_checkpoint_parse(const void *buf, size_t len, const HxCkptRun *want,
                             HxCheckpoint *out, char *err, size_t errlen);

/* Frees what hx_checkpoint_parse allocated; ck may be zeroed. */
void hx_checkpoint_free(HxCheckpoint *ck);

/* A finished run's result from its summary.csv (buf, len: the whole file,
 * a header and one row as train.c writes them), which must be run_id's and,
 * if total_steps > 0, within that budget.  Columns are found by name, so
 * summaries of earlier builds with fewer configuration columns read too.
 * Numbers come back with the CSV's 6 significant digits; already_done is 0.
 * AMO_OK, or AMO_EFORMAT with "offset N: COLUMN VALUE ..." in err (AMO_EINVAL
 * for a NULL buf or run_id, AMO_ENOMEM). */
AmoStatus hx_summary_parse(const char *buf, size_t len, const char *run_id, int64_t total_steps,
                          HxTrainResult *out, char *err, size_t errlen);

/* The optimizer state's tag for a run: FNV-1a 64 of the run id. */
uint64_t hx_run_tag(const char *run_id);

/* ---- files (the harness's: errors exit through hx_fail naming the file) ---- */

void hx_checkpoint_save(const char *path, const HxCkptRun *run, const HxCheckpoint *ck);
/* 0: there is no file at path; 1: ck holds it (hx_checkpoint_free). */
int hx_checkpoint_load(const char *path, const HxCkptRun *want, HxCheckpoint *ck);

void hx_summary_load(const char *path, const char *run_id, int64_t total_steps,
                     HxTrainResult *res);

#endif

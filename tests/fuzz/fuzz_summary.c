/* hx_summary_parse (harness/checkpoint.c), which reads a finished run's
 * result back from its summary.csv, on any bytes: for the run of
 * fuzz_ckpt_run (tests/fuzz/fuzz.h) with its budget of steps, and without
 * one (a budget in epochs, total_steps 0).
 *
 * A refusal must be AMO_EFORMAT and name its cause as "offset N: ..." with
 * N within the file.  A success must hold what harness/checkpoint.h
 * promises: counts within the steps, the steps within the budget, fractions
 * in [0, 1] or NaN, times >= 0 or NaN, already_done 0. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness/checkpoint.h"
#include "tests/fuzz/fuzz.h"

static int fraction(double x) { return isnan(x) || (x >= 0 && x <= 1); }
static int duration(double x) { return isnan(x) || x >= 0; }

static void accepted(const HxTrainResult *x, int64_t total)
{
    const long n = x->steps;
    if (n < 1 || (total > 0 && n > total) || x->best_val_step < -1 || x->best_val_step > n
        || x->clipped > (uint64_t)n || x->skipped > (uint64_t)n
        || (x->diverged != 0 && x->diverged != 1) || x->already_done)
        abort();
    if (!isfinite(x->seconds) || x->seconds < 0 || !duration(x->images_per_s)
        || !fraction(x->final_val_acc) || !fraction(x->best_val_acc)
        || !fraction(x->final_test_acc) || !duration(x->ms_data) || !duration(x->ms_forward)
        || !duration(x->ms_backward) || !duration(x->ms_optim))
        abort();
    for (int k = 0; k < HX_MAX_TARGETS; k++)
        if (x->steps_to[k] < 0 || (total > 0 && x->steps_to[k] > total + 1)
            || (x->reached[k] != 0 && x->reached[k] != 1) || !duration(x->seconds_to[k]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!data)
        data = (const uint8_t *)""; /* a NULL buffer is a caller's error, not a file's */
    const HxCkptRun run = fuzz_ckpt_run();
    const int64_t totals[2] = { run.total_steps, 0 };
    for (int i = 0; i < 2; i++) {
        HxTrainResult x;
        char err[512] = "";
        const AmoStatus st = hx_summary_parse((const char *)data, size, run.run_id, totals[i],
                                             &x, err, sizeof err);
        if (st != AMO_OK) {
            if (st != AMO_EFORMAT || !fuzz_err_at_offset(err, size))
                abort();
        } else if (err[0]) {
            abort();
        } else {
            accepted(&x, totals[i]);
        }
    }
    return 0;
}

/* hx_checkpoint_parse (harness/checkpoint.c), the checkpoint reader of
 * amo-bench train, on any bytes, for the run of fuzz_ckpt_run
 * (tests/fuzz/fuzz.h).  Each input is parsed as given, then with its last 8
 * bytes resealed with the checksum of the others, so that the field checks
 * behind the checksum are fuzzed as well as the checksum.
 *
 * A refusal must be AMO_EFORMAT, name its cause as "offset N: ..." with N
 * within the file, in printable bytes, and leave out holding nothing.  A
 * success must hold what harness/checkpoint.h promises (a step the run has
 * an evaluation at, one row per step and per evaluation, finite
 * parameters), and serialise back to the very bytes it was read from: the
 * writer stores each field as it is, and the reader accepts only what the
 * writer could have stored. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "harness/checkpoint.h"
#include "tests/fuzz/fuzz.h"

static void refused(AmoStatus st, const HxCheckpoint *ck, const char *err, size_t size)
{
    if (st != AMO_EFORMAT || !fuzz_err_at_offset(err, size))
        abort();
    for (const char *c = err; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            abort();
    if (ck->steps || ck->conv || ck->params || ck->stats || ck->nsteps || ck->nconv)
        abort();
}

static int finite_all(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static void accepted(const HxCkptRun *run, const HxCheckpoint *ck, const uint8_t *data,
                     size_t size)
{
    const int64_t step = ck->step;
    if (step < 0 || step >= run->total_steps || step % run->eval_every
        || ck->nsteps != (size_t)step || ck->nconv != (size_t)(step / run->eval_every)
        || ck->epoch < 0 || ck->epoch > (run->total_steps - 1) / run->steps_per_epoch
        || ck->pos < 0 || ck->pos > run->ntrain || !(ck->run_correct <= ck->run_seen)
        || ck->res.steps > step || ck->res.clipped > (uint64_t)step
        || ck->res.skipped > (uint64_t)step || ck->res.already_done)
        abort();
    if (!ck->steps || !ck->conv || !ck->params || !ck->stats
        || !finite_all(ck->params, run->nparams) || !finite_all(ck->stats, run->nstats))
        abort();
    for (size_t i = 0; i < ck->nsteps; i++)
        if (ck->steps[i].step != (double)(i + 1))
            abort();
    for (size_t i = 0; i < ck->nconv; i++)
        if (ck->conv[i].step != (double)((int64_t)(i + 1) * run->eval_every))
            abort();
    unsigned char *buf;
    size_t len;
    if (hx_checkpoint_serialise(run, ck, &buf, &len) != AMO_OK)
        abort();
    if (len != size || memcmp(buf, data, size))
        abort();
    free(buf);
}

static void parse(const HxCkptRun *run, const uint8_t *data, size_t size)
{
    HxCheckpoint ck;
    char err[512] = "";
    const AmoStatus st = hx_checkpoint_parse(data, size, run, &ck, err, sizeof err);
    if (st != AMO_OK) {
        refused(st, &ck, err, size);
        return;
    }
    if (err[0])
        abort();
    accepted(run, &ck, data, size);
    hx_checkpoint_free(&ck);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!data)
        data = (const uint8_t *)""; /* a NULL buffer is a caller's error, not a file's */
    const HxCkptRun run = fuzz_ckpt_run();
    parse(&run, data, size);
    if (size < 8)
        return 0;
    uint8_t *sealed = malloc(size);
    if (!sealed)
        exit(3);
    memcpy(sealed, data, size);
    const uint64_t sum = amo_fnv1a64(sealed, size - 8);
    memcpy(sealed + size - 8, &sum, 8);
    parse(&run, sealed, size);
    free(sealed);
    return 0;
}

/* NOT BUILT YET: waits for harness/checkpoint.h (branch i14-resume).
 *
 * The checkpoint loader of amo-bench train on any bytes, through the pure
 * parser that branch adds:
 *
 *     int hx_checkpoint_parse(const void *buf, size_t len, const HxCkptExpect *want,
 *                             HxCheckpoint *out, char *err, size_t errlen);
 *
 * To wire it after the merge:
 *   1. check the three places marked WIRING below against the real header
 *      (what an HxCkptExpect holds, whether an HxCheckpoint owns memory);
 *   2. in tests/fuzz/meson.build add 'checkpoint' to fuzz_targets, with
 *      harness/checkpoint.c (and what it needs from harness/) as sources;
 *   3. add corpus/checkpoint/ with a valid checkpoint or two (seeds.c,
 *      which the seeds test then keeps current) and run the fuzzer once.
 *
 * The parser must return a status, name the cause of a refusal, and not
 * leak; a success must hold what want expects. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness/checkpoint.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* WIRING 1: the run a checkpoint must belong to; it must match what
     * seeds.c writes into corpus/checkpoint/, or every input is refused at
     * the first field. */
    HxCkptExpect want;
    memset(&want, 0, sizeof want);
    HxCheckpoint ck;
    memset(&ck, 0, sizeof ck);
    char err[512] = "";
    /* WIRING 2: the success value (0 or AMO_OK). */
    if (hx_checkpoint_parse(data, size, &want, &ck, err, sizeof err) == 0) {
        /* WIRING 3: free what ck owns, if anything (hx_checkpoint_free?) and
         * check its fields against want. */
    } else if (!err[0]) {
        abort(); /* a refusal names its cause */
    }
    return 0;
}

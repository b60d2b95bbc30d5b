/* opt_load (optim/state.c) on any file, offered to five optimizers
 * (tests/fuzz/fuzz.h: every algorithm, 0 to 2 state buffers, fp32 and bf16
 * state).  opt_load must return a status, and a refusal must name its
 * cause and leave the step counters as they were (it copies the counters
 * and the moments together, after every check). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>

#include "optim/optim.h"
#include "tests/fuzz/fuzz.h"

static FuzzOpt g_opt[FUZZ_NOPT];
static char g_in[200];

static void teardown(void)
{
    for (int i = 0; i < FUZZ_NOPT; i++)
        opt_destroy(g_opt[i].opt);
}

static void setup(void)
{
    if (g_in[0])
        return;
    fuzz_dir_make("state");
    snprintf(g_in, sizeof g_in, "%s/in.state", fuzz_dir);
    for (int i = 0; i < FUZZ_NOPT; i++)
        if (!fuzz_opt_create(&g_opt[i], i))
            exit(3);
    atexit(teardown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    fuzz_write(g_in, data, size);
    for (int i = 0; i < FUZZ_NOPT; i++) {
        Opt *o = g_opt[i].opt;
        const uint64_t steps = opt_steps(o), skipped = opt_skipped(o), clipped = opt_clipped(o);
        char err[512] = "";
        if (opt_load(o, g_in, FUZZ_STATE_TAG, err, sizeof err) != AMO_OK
            && (!err[0] || opt_steps(o) != steps || opt_skipped(o) != skipped
                || opt_clipped(o) != clipped))
            abort();
    }
    return 0;
}

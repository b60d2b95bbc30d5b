/* The C figure the python binding is measured against: opt_step in a C loop
 * on the configuration and tensor sizes python/bench/bench_step.py uses (the
 * same passes: the global norm's read of every gradient, then the update),
 * through libamo's public API as the binding calls it.
 *
 *     bench_opt_step --algo amo|adam [--state fp32|bf16] --threads N
 *                    --steps S --sizes N1,N2,... [--serve]
 *
 * Prints one line per timed step, "step SECONDS", then
 * "median SECONDS gparam_per_s X" for the whole.  With --serve it prints
 * "ready" after the untimed first step, then for each line "N" read from
 * stdin takes N timed steps, printing "step SECONDS" for each and "done":
 * the caller alternates these steps with its own, so that both see the
 * same load on a shared machine. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/rng.h"
#include "optim/optim.h"

static void usage(void)
{
    fprintf(stderr, "usage: bench_opt_step --algo amo|adam [--state fp32|bf16] --threads N "
                    "--steps S --sizes N1,N2,...\n");
    exit(2);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *algo = "amo", *state = "fp32", *sizes = NULL;
    int threads = 1, steps = 10, serve = 0;
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--serve")) { serve = 1; i--; continue; }
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--algo")) algo = argv[i + 1];
        else if (!strcmp(argv[i], "--state")) state = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sizes")) sizes = argv[i + 1];
        else usage();
    }
    const int a = opt_algo_parse(algo);
    if (!sizes || a < 0 || threads < 1 || steps < 1)
        usage();
    int count = 1;
    for (const char *c = sizes; *c; c++)
        count += *c == ',';
    OptTensor *t = calloc((size_t)count, sizeof(*t));
    size_t total = 0;
    const char *c = sizes;
    for (int i = 0; i < count; i++) {
        char *end;
        t[i].n = strtoull(c, &end, 10);
        total += t[i].n;
        c = *end ? end + 1 : end;
    }
    /* one buffer per tensor and role, as PyTorch allocates them */
    AmoRng r = amo_rng(1);
    for (int i = 0; i < count; i++) {
        t[i].param = malloc(t[i].n * sizeof(float) + 1);
        t[i].grad = malloc(t[i].n * sizeof(float) + 1);
        if (!t[i].param || !t[i].grad) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        for (size_t k = 0; k < t[i].n; k++) {
            t[i].param[k] = (float)(amo_rng_uniform(&r) - 0.5);
            t[i].grad[k] = (float)(1e-3 * (amo_rng_uniform(&r) - 0.5));
        }
    }
    OptConfig cfg = opt_config_default((OptAlgo)a);
    cfg.threads = threads;
    cfg.state = !strcmp(state, "bf16") ? OPT_STATE_BF16 : OPT_STATE_FP32;
    Opt *o;
    char err[256];
    if (opt_create(&o, &cfg, t, count, err, sizeof err) != AMO_OK) {
        fprintf(stderr, "opt_create: %s\n", err);
        return 1;
    }
    double *sec = malloc((size_t)steps * sizeof(double));
    OptStepInfo info;
    opt_step(o, &info); /* first touch of the moments, outside the timing */
    if (serve) {
        printf("ready\n");
        fflush(stdout);
        char line[64];
        while (fgets(line, sizeof line, stdin)) {
            for (int k = atoi(line); k > 0; k--) {
                const double t0 = amo_now();
                if (opt_step(o, &info) != AMO_OK)
                    return 1;
                printf("step %.6f\n", amo_now() - t0);
            }
            printf("done\n");
            fflush(stdout);
        }
        opt_destroy(o);
        return 0;
    }
    for (int s = 0; s < steps; s++) {
        const double t0 = amo_now();
        if (opt_step(o, &info) != AMO_OK)
            return 1;
        sec[s] = amo_now() - t0;
        printf("step %.6f\n", sec[s]);
    }
    qsort(sec, (size_t)steps, sizeof(double), cmp_double);
    const double med = steps % 2 ? sec[steps / 2] : 0.5 * (sec[steps / 2 - 1] + sec[steps / 2]);
    printf("median %.6f gparam_per_s %.4f level %s tensors %d params %zu threads %d\n", med,
           (double)total / med / 1e9, info.level, count, total, opt_threads(o));
    opt_destroy(o);
    return 0;
}

/* amo-bench kernels: its options (ours through getopt_long, Google
 * Benchmark's passed through) and the CPU levels they ask for; the command
 * is in harness/bench_kernels.c. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/bench_kernels.h"
#include "harness/common.h"
#include "harness/dist.h"
#include "harness/error.h"
#include "harness/parse.h"
#include "kernels/cpu.h"

#define MAX_THREADS 1024 /* a sanity bound for --threads */

/* ---- options -------------------------------------------------------------- */

static const char *const arch_choices[] = { "all", "auto", "scalar", "avx2", "avx512", "neon",
                                            NULL };

static void usage(FILE *f)
{
    fputs(
"Usage: amo-bench kernels [OPTIONS] [--benchmark_FLAG=VALUE ...]\n"
"\n"
"Benchmarks each update kernel (amo, amo_bf16, amo_bf16_rne, adam, adam_bf16,\n"
"sgd_momentum, rmsprop, rmsprop_momentum, sumsq) at each CPU level, at sizes\n"
"that fit in L1, L2, L3 and main memory (from the hwloc topology), and right\n"
"after each one a loop with the same memory traffic and no arithmetic: its\n"
"limit.  amo_bf16_rne rounds the bf16 moments to nearest, which training does\n"
"not (it freezes v): beside amo_bf16 it shows what stochastic rounding costs.\n"
"\n"
"Options:\n"
"  --arch LEVEL   all (every level this CPU has; the default unless AMO_ARCH\n"
"                 is set), auto (the highest), scalar, avx2, avx512 or neon\n"
"  --threads N    OpenMP threads, pinned one per core (default: one per core)\n"
"  --out DIR      directory for the results (default: results/kernels)\n"
"  --max-n N      largest size benchmarked, in parameters (e.g. 4096, 64K, 64M)\n"
"  --help         this text\n"
"\n"
"Google Benchmark's flags pass through, among them:\n"
"  --benchmark_filter=REGEX          e.g. '^amo/avx512/' (names are\n"
"                                    KERNEL/LEVEL/kernel|limit|limit_late/n:N)\n"
"  --benchmark_format=console|json|csv       what goes to stdout\n"
"  --benchmark_out=FILE --benchmark_out_format=json|csv|console\n"
"  --benchmark_repetitions=N         the CSV then holds the median\n"
"  --benchmark_min_time=SECONDS      (default 0.5)\n"
"  --benchmark_list_tests=true\n"
"\n"
"Writes into DIR (NAME = kernels_tN, or kernels_LEVEL_tN with --arch):\n"
"  NAME.csv       kernel,isa,threads,n,bytes_per_param,seconds_per_step,\n"
"                 gparam_per_s,gb_per_s,limit_gb_per_s,fraction_of_limit,\n"
"                 flops_per_param,gflops,fma_peak_gflops,fraction_of_fma_peak,\n"
"                 limit_loop (the limit: the faster of the plain loop and the\n"
"                 one whose stores wait, late; plain-only or late-only when the\n"
"                 other did not run)\n"
"  NAME.json      Google Benchmark's JSON (unless --benchmark_out is given)\n"
"  NAME_meta.csv  topology, sizes, command line, date, commit, kernel levels,\n"
"                 each level's FMA peak\n", f);
}

static int is_gb_flag(const char *a)
{
    return !strncmp(a, "--benchmark_", 12) || !strncmp(a, "--v=", 4);
}

/* "--name=value" -> value if a starts with "--name=", else NULL. */
static const char *flag_value(const char *a, const char *name)
{
    const size_t len = strlen(name);
    return !strncmp(a, name, len) && a[len] == '=' ? a + len + 1 : NULL;
}

/* Splits argv (left as it was): Google Benchmark's flags to o->gb_argv,
 * ours to *ours (a value given to one of our options as a separate word
 * stays ours).  Returns the count of ours. */
static int split_args(int argc, char **argv, Options *o, char ***ours)
{
    static const char *const takes_value[] = { "--arch", "--threads", "--out", "--max-n" };
    char **mine = hx_malloc((size_t)(argc + 1) * sizeof(char *));
    o->gb_argv = hx_malloc((size_t)(argc + 3) * sizeof(char *));
    o->gb_argc = 1;
    o->gb_argv[0] = argv[0];
    mine[0] = argv[0];
    int k = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) { /* the rest is positional: ours to refuse */
            while (i < argc)
                mine[k++] = argv[i++];
            break;
        }
        if (!is_gb_flag(a)) {
            mine[k++] = argv[i];
            for (size_t t = 0; t < sizeof takes_value / sizeof *takes_value; t++)
                if (!strcmp(a, takes_value[t]) && i + 1 < argc)
                    mine[k++] = argv[++i];
            continue;
        }
        const char *v;
        if ((v = flag_value(a, "--benchmark_format")))
            hx_parse_choice("--benchmark_format", v,
                            (const char *const[]){ "console", "json", "csv", NULL });
        if ((v = flag_value(a, "--benchmark_out_format"))) {
            hx_parse_choice("--benchmark_out_format", v,
                            (const char *const[]){ "console", "json", "csv", NULL });
            o->gb_out_format = v;
        }
        if ((v = flag_value(a, "--benchmark_out")))
            o->gb_out = v;
        if (!strncmp(a, "--benchmark_list_tests", 22))
            o->gb_list = strcmp(a, "--benchmark_list_tests=false") != 0;
        o->gb_argv[o->gb_argc++] = argv[i];
    }
    mine[k] = NULL;
    *ours = mine;
    return k;
}

void bk_parse_options(int argc, char **argv, Options *o)
{
    static const struct option opts[] = {
        { "arch", required_argument, NULL, 'a' },
        { "threads", required_argument, NULL, 't' },
        { "out", required_argument, NULL, 'o' },
        { "max-n", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    memset(o, 0, sizeof *o);
    o->out = "results/kernels";
    o->max_n = (size_t)1 << 40;
    argc = split_args(argc, argv, o, &argv);
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            o->arch = arch_choices[hx_parse_choice("--arch", optarg, arch_choices)];
            break;
        case 't':
            o->threads = (int)hx_parse_long("--threads", optarg, 1, MAX_THREADS);
            break;
        case 'o':
            if (!*optarg)
                hx_fail(HX_EXIT_USAGE, "--out: expected a directory, got ''");
            o->out = optarg;
            break;
        case 'n':
            o->max_n = hx_parse_count("--max-n", optarg, 64, (size_t)1 << 40);
            break;
        case 'h':
            if (hx_dist_root()) /* under mpirun: once, not once per rank */
                usage(stdout);
            hx_dist_exit(HX_EXIT_OK);
        default:
            hx_getopt_fail(c, argv);
        }
    }
    if (optind < argc)
        hx_fail(HX_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
    free(argv); /* split_args' array; the strings are the caller's */
}

/* ---- CPU levels -------------------------------------------------------- */

/* The kn_cpu_set_arch names of the levels to run, in ascending order;
 * *single: one level was asked for (not "all").  Bad or missing levels exit
 * 2 through hx_apply_arch (harness/common.h). */
int bk_resolve_arches(const Options *o, const char *list[MAX_ARCHES], int *single)
{
    const unsigned det = kn_cpu_detected();
    const char *ask = o->arch ? o->arch : hx_arch_default();
    if (!ask) {
        hx_apply_arch(NULL); /* checks AMO_ARCH */
        const char *e = getenv("AMO_ARCH");
        ask = e && *e ? e : "all";
    }
    *single = strcmp(ask, "all") != 0;
    int k = 0;
    if (!*single) {
        list[k++] = "scalar";
        if (det & KN_CPU_AVX2)
            list[k++] = "avx2";
        if (det & KN_CPU_AVX512)
            list[k++] = "avx512";
        if (det & KN_CPU_NEON)
            list[k++] = "neon";
        return k;
    }
    if (!strcmp(ask, "auto")) /* the level's own name, for the results */
        ask = det & KN_CPU_AVX512 ? "avx512" : det & KN_CPU_AVX2 ? "avx2"
            : det & KN_CPU_NEON ? "neon" : "scalar";
    hx_apply_arch(ask);
    list[k++] = ask;
    return k;
}

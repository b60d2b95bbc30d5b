/* amo-bench kernels: every update kernel at every CPU level, each followed
 * by its limit (harness/limit.h: the same memory traffic with no
 * arithmetic), at sizes chosen from the cache sizes hwloc reports, on
 * Google Benchmark (harness/gbench.h).  Writes into --out DIR:
 *   kernels[_ARCH]_tN.csv       one row per kernel, level and size (COLUMNS)
 *   kernels[_ARCH]_tN.json      Google Benchmark's JSON (every run)
 *   kernels[_ARCH]_tN_meta.csv  topology, command line, date, levels */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "harness/commands.h"
#include "harness/common.h"
#include "harness/csv.h"
#include "harness/error.h"
#include "harness/gbench.h"
#include "harness/limit.h"
#include "harness/parse.h"
#include "harness/timer.h"
#include "kernels/cpu.h"
#include "common/rng.h"
#include "kernels/update.h"
#include "harness/threads.h"

#define MAX_THREADS 1024 /* a sanity bound for --threads */
#define MAX_ARCHES 4     /* scalar, avx2, avx512 or neon */

/* ---- what is benchmarked ------------------------------------------------ */

enum {
    KB_AMO, KB_AMO_BF16, KB_AMO_BF16_RNE, KB_ADAM, KB_ADAM_BF16, KB_SGD_MOM, KB_RMSPROP,
    KB_RMSPROP_MOM, KB_SUMSQ, KB_COUNT
};

typedef struct KernelSpec {
    const char *name;
    HxLimitKind limit; /* the loop with the same traffic */
    int flops;         /* per parameter: see below */
} KernelSpec;

/* flops: the arithmetic the update needs per parameter in the configuration
 * benchmarked (step_args: no l2, no decay, grad_scale 1, infinite bounds),
 * each add, multiply, divide and square root one flop, as the reference
 * writes it; not the kernels' own instruction count (an estimate and its
 * Newton step, conversions, the rounding stream, compares are not flops).
 *   amo:  m = b m + (1-b) g  3;  v = c v + (1-c) g g  4;  sqrt(v) + eps  2;
 *         lr m / den  2;  theta - step  1                              = 12
 *   adam: amo's, and sqrt(v) times v_scale (the bias correction)       = 13
 *         (adam_bf16 the same, with bf16 moments as amo_bf16)
 *   sgd_momentum: buf = mu buf + g  2;  theta - lr buf  2              =  4
 *   rmsprop: v  4;  sqrt(v) + eps  2;  g / den  1;  theta - lr d  2    =  9
 *   rmsprop_momentum: and buf = mu buf + d  2                          = 11
 *   sumsq: a multiply and an add (in fp64: against the fp32 peak it can
 *          reach at most half)                                        =  2 */
static const KernelSpec kernels[KB_COUNT] = {
    [KB_AMO] = { "amo", HX_LIMIT_F3, 12 },                  /* theta m v rw, g r     */
    [KB_AMO_BF16] = { "amo_bf16", HX_LIMIT_F1H2, 12 },      /* theta rw, m v bf16 rw */
    [KB_AMO_BF16_RNE] = { "amo_bf16_rne", HX_LIMIT_F1H2, 12 }, /* as amo_bf16       */
    [KB_ADAM] = { "adam", HX_LIMIT_F3, 13 },                /* as amo                */
    [KB_ADAM_BF16] = { "adam_bf16", HX_LIMIT_F1H2, 13 },    /* as amo_bf16           */
    [KB_SGD_MOM] = { "sgd_momentum", HX_LIMIT_F2, 4 },      /* theta buf rw, g r     */
    [KB_RMSPROP] = { "rmsprop", HX_LIMIT_F2, 9 },           /* theta v rw, g r       */
    [KB_RMSPROP_MOM] = { "rmsprop_momentum", HX_LIMIT_F3, 11 }, /* theta v buf rw, g r */
    [KB_SUMSQ] = { "sumsq", HX_LIMIT_R1, 2 },               /* g r                   */
};

static const char *const csv_columns[] = {
    "kernel", "isa", "threads", "n", "bytes_per_param", "seconds_per_step",
    "gparam_per_s", "gb_per_s", "limit_gb_per_s", "fraction_of_limit",
    "flops_per_param", "gflops", "fma_peak_gflops", "fraction_of_fma_peak",
};
#define NCOLUMNS (int)(sizeof(csv_columns) / sizeof(csv_columns[0]))

/* ---- sizes ---------------------------------------------------------------
 * One set of sizes for all kernels, so that rows compare at equal n, chosen
 * for the largest update (AMO fp32: theta, m, v and g, 16 bytes resident
 * per parameter) to fill half of a cache: the smaller kernels fit too. */

#define RESIDENT_BYTES 16
#define ARENA_BYTES 24       /* theta m v g b (fp32) + m v (bf16) per param */
#define DRAM_N ((size_t)1 << 26) /* 64M: the size of the PyTorch anchor    */

typedef struct Size {
    const char *regime; /* "L1", "L2", "L3", "DRAM" */
    size_t n;
} Size;

static size_t round64(size_t n)
{
    return n < 64 ? 64 : n / 64 * 64;
}

/* Returns the count of sizes written to out (at most 5), ascending, after
 * the caps (max_n: --max-n; mem_n: what memory holds). */
static int choose_sizes(const HxTopology *t, size_t max_n, size_t mem_n, Size out[5])
{
    Size s[5];
    int k = 0;
    if (t->l1d)
        s[k++] = (Size){ "L1", round64(t->l1d / 2 / RESIDENT_BYTES) };
    if (t->l2)
        s[k++] = (Size){ "L2", round64(t->l2 / 2 / RESIDENT_BYTES) };
    if (t->l3)
        s[k++] = (Size){ "L3", round64(t->l3 / 2 / RESIDENT_BYTES) };
    s[k++] = (Size){ "DRAM", DRAM_N };
    /* 64M must be well past L3 (twice its size at least); if not, also four
     * times L3, in whole millions. */
    if (DRAM_N * RESIDENT_BYTES < 2 * t->l3) {
        const size_t big = 4 * t->l3 / RESIDENT_BYTES;
        s[k++] = (Size){ "DRAM", (big + (1u << 20) - 1) >> 20 << 20 };
    }
    int m = 0;
    for (int i = 0; i < k; i++) {
        size_t n = s[i].n;
        if (n > max_n)
            n = max_n;
        if (n > mem_n)
            n = mem_n;
        if (m > 0 && n <= out[m - 1].n)
            continue;
        out[m++] = (Size){ s[i].regime, n };
    }
    return m;
}

/* ---- the shared buffers -------------------------------------------------- */

typedef struct Arena {
    float *theta, *m, *v, *g, *b; /* (nmax) fp32 each           */
    uint16_t *mh, *vh;            /* (nmax) bf16 moments         */
    void *block;
    size_t nmax;
} Arena;

/* Each array in its own page-aligned slot, shifted by a different number of
 * cache lines, so element i of the seven arrays does not share a 4 KiB
 * offset (loads would falsely wait on stores: "4K aliasing"). */
static void *slot(char *base, size_t slot_bytes, int k)
{
    return base + (size_t)k * slot_bytes + (size_t)k * 5 * 64;
}

static float uniform(uint64_t r) /* [-1, 1) */
{
    return (float)(r >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static void arena_init(Arena *a, size_t nmax, int nthreads)
{
    const size_t f_slot = ((nmax * 4 + 4095) / 4096 + 1) * 4096;
    const size_t h_slot = ((nmax * 2 + 4095) / 4096 + 1) * 4096;
    a->nmax = nmax;
    a->block = aligned_alloc(4096, 5 * f_slot + 2 * h_slot);
    if (!a->block)
        hx_fail(HX_EXIT_FAIL, "out of memory: %zu MiB of buffers for n = %zu",
                (5 * f_slot + 2 * h_slot) >> 20, nmax);
    char *base = a->block;
    a->theta = slot(base, f_slot, 0);
    a->m = slot(base, f_slot, 1);
    a->v = slot(base, f_slot, 2);
    a->g = slot(base, f_slot, 3);
    a->b = slot(base, f_slot, 4);
    char *hbase = base + 5 * f_slot; /* the bf16 slots, shifted on from 5 */
    a->mh = (uint16_t *)(void *)(hbase + 5 * 5 * 64);
    a->vh = (uint16_t *)(void *)(hbase + h_slot + 6 * 5 * 64);
    /* Values from the project's one generator (common/rng.h), by
     * position; moments at their steady state for a constant gradient
     * (m = g, v = g^2): no denormals. */
    const long nt = nthreads, per = (long)((nmax + (size_t)nt - 1) / (size_t)nt);
    /* First touch spread over the threads (NUMA placement). */
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long c = 0; c < nt; c++) {
        const size_t lo = (size_t)(c * per);
        const size_t hi = lo + (size_t)per < nmax ? lo + (size_t)per : nmax;
        for (size_t i = lo; i < hi; i++) {
            const float g = 1e-3f * uniform(amo_rng_at(2, i));
            a->theta[i] = uniform(amo_rng_at(1, i));
            a->g[i] = g;
            a->m[i] = g;
            a->v[i] = g * g;
            a->b[i] = g;
            a->mh[i] = kn_f32_to_bf16_rne(g);
            a->vh[i] = kn_f32_to_bf16_rne(g * g);
        }
    }
}

static void arena_free(Arena *a)
{
    free(a->block);
    *a = (Arena){ 0 };
}

/* ---- one benchmark ------------------------------------------------------- */

typedef struct Bench Bench;

typedef struct Job {
    int kernel;        /* KB_* */
    int is_limit;      /* 0: the kernel; 1: its limit loop */
    const char *arch;  /* kn_cpu_set_arch name */
    const char *regime;
    size_t n;
    int id;            /* gb_register's */
    const Bench *bench;
    int arch_index;    /* into Bench.peak */
} Job;

typedef struct Measured {
    int runs;          /* measured runs (repetitions) */
    double sum_s;      /* their seconds per step, added */
    double median_s;   /* Google Benchmark's median; NaN without repetitions */
    int error;
    char message[160];
} Measured;

struct Bench {
    Arena arena;
    int nthreads;
    Job *jobs;
    Measured *meas;    /* by job index == gb id */
    int njobs;
    double peak[MAX_ARCHES]; /* FMA peak GFLOP/s per level, measured after the run */
};

static volatile double g_sink; /* keeps sum-of-squares results alive */

/* Per-step scalars are hoisted: in a training step they are computed once
 * for all tensors (Adam's bias corrections at a fixed step t here). */
typedef struct StepArgs {
    KnAmoArgs amo, adam;
    KnSgdArgs sgd;
    KnRmspropArgs rms, rms_mom;
} StepArgs;

static StepArgs step_args(void)
{
    StepArgs s;
    s.amo = kn_amo_args_default();
    s.adam = kn_adam_args(1e-3f, 0.9f, 0.999f, 1e-8f, 1000);
    s.sgd = (KnSgdArgs){ .lr = 1e-2f, .momentum = 0.9f, .dampening = 0.0f, .nesterov = 0,
                         .first = 0, .grad_scale = 1.0f, .l2 = 0.0f, .decay = 0.0f,
                         .lo = -INFINITY, .hi = INFINITY };
    s.rms = (KnRmspropArgs){ .lr = 1e-2f, .alpha = 0.99f, .eps = 1e-8f, .momentum = 0.0f,
                             .grad_scale = 1.0f, .l2 = 0.0f, .decay = 0.0f,
                             .lo = -INFINITY, .hi = INFINITY };
    s.rms_mom = s.rms;
    s.rms_mom.momentum = 0.9f;
    return s;
}

static AmoStatus run_kernel(const Job *j, const StepArgs *s, uint64_t step)
{
    const Arena *a = &j->bench->arena;
    const int nt = j->bench->nthreads;
    const size_t n = j->n;
    switch (j->kernel) {
    case KB_AMO:
        return kn_amo_update(a->theta, a->m, a->v, a->g, n, &s->amo, nt);
    case KB_AMO_BF16:
    case KB_AMO_BF16_RNE: {
        /* _rne: rounding to nearest, which training never uses (it freezes v
         * when gamma is near 1): beside amo_bf16 it prices stochastic
         * rounding */
        const KnBf16Round r = { .seed = 1, .step = step, .index0 = 0,
                                .nearest = j->kernel == KB_AMO_BF16_RNE };
        return kn_amo_update_bf16(a->theta, a->mh, a->vh, a->g, n, &s->amo, &r, nt);
    }
    case KB_ADAM:
        return kn_amo_update(a->theta, a->m, a->v, a->g, n, &s->adam, nt);
    case KB_ADAM_BF16: {
        const KnBf16Round r = { .seed = 1, .step = step, .index0 = 0, .nearest = 0 };
        return kn_amo_update_bf16(a->theta, a->mh, a->vh, a->g, n, &s->adam, &r, nt);
    }
    case KB_SGD_MOM:
        return kn_sgd_update(a->theta, a->b, a->g, n, &s->sgd, nt);
    case KB_RMSPROP:
        return kn_rmsprop_update(a->theta, a->v, NULL, a->g, n, &s->rms, nt);
    case KB_RMSPROP_MOM:
        return kn_rmsprop_update(a->theta, a->v, a->b, a->g, n, &s->rms_mom, nt);
    case KB_SUMSQ: {
        double out;
        const AmoStatus st = kn_sumsq(a->g, n, nt, &out);
        g_sink = out;
        return st;
    }
    default:
        return AMO_EINVAL;
    }
}

/* The limit loop on the arrays its kernel uses. */
static void run_limit(const Job *j)
{
    const Arena *a = &j->bench->arena;
    float *f[3] = { a->theta, a->m, a->v };
    uint16_t *h[2] = { a->mh, a->vh };
    switch (j->kernel) {
    case KB_SGD_MOM: f[1] = a->b; break;
    case KB_RMSPROP: f[1] = a->v; break;
    case KB_RMSPROP_MOM: f[1] = a->v; f[2] = a->b; break;
    case KB_SUMSQ: f[0] = a->g; break;
    default: break;
    }
    g_sink = hx_limit_run(kernels[j->kernel].limit, f, h, a->g, j->n, j->bench->nthreads);
}

static void bm_job(GbState *st, void *ctx)
{
    const Job *j = ctx;
    const AmoStatus sa = kn_cpu_set_arch(j->arch);
    if (sa != AMO_OK) {
        gb_skip_with_error(st, amo_status_str(sa));
        return;
    }
    const StepArgs s = step_args();
    uint64_t step = 1;
    /* One untimed step: checks the arguments and warms caches and TLB. */
    if (j->is_limit) {
        run_limit(j);
    } else {
        const AmoStatus k = run_kernel(j, &s, step++);
        if (k != AMO_OK) {
            gb_skip_with_error(st, amo_status_str(k));
            return;
        }
    }
    int failed = 0;
    if (j->is_limit) {
        while (gb_keep_running(st))
            run_limit(j);
    } else {
        while (gb_keep_running(st))
            failed |= run_kernel(j, &s, step++) != AMO_OK;
    }
    if (failed) {
        gb_skip_with_error(st, "a kernel call failed during the run");
        return;
    }
    const double it = (double)gb_iterations(st), n = (double)j->n;
    gb_set_counter(st, "bytes_per_second", it * n * hx_limit_bytes(kernels[j->kernel].limit),
                   GB_RATE);
    gb_set_counter(st, "items_per_second", it * n, GB_RATE);
}

static void on_result(const GbResult *r, void *ctx)
{
    Bench *b = ctx;
    if (r->id < 0 || r->id >= b->njobs)
        return;
    Measured *m = &b->meas[r->id];
    if (r->error) {
        m->error = 1;
        snprintf(m->message, sizeof m->message, "%s", r->error_message);
    } else if (!r->aggregate[0]) {
        m->runs++;
        m->sum_s += r->real_seconds;
    } else if (!strcmp(r->aggregate, "median")) {
        m->median_s = r->real_seconds;
    }
}

/* Seconds per step: the median of the repetitions when there were several
 * (with --benchmark_display_aggregates_only the runs themselves never reach
 * us), else the one measurement; NaN if it did not run (filtered out). */
static double seconds_of(const Measured *m)
{
    if (m->error)
        return NAN;
    if (!isnan(m->median_s))
        return m->median_s;
    return m->runs ? m->sum_s / m->runs : NAN;
}

/* ---- options -------------------------------------------------------------- */

static const char *const arch_choices[] = { "all", "auto", "scalar", "avx2", "avx512", "neon",
                                            NULL };

typedef struct Options {
    const char *arch;      /* NULL: AMO_ARCH if set, else "all" */
    int threads;           /* 0: one per core */
    const char *out;
    size_t max_n;
    /* Google Benchmark's flags, passed through (argv[0] first). */
    char **gb_argv;
    int gb_argc;
    const char *gb_out;        /* the user's --benchmark_out, or NULL */
    const char *gb_out_format; /* the user's --benchmark_out_format, or NULL */
    int gb_list;               /* --benchmark_list_tests given */
} Options;

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
"                                    KERNEL/LEVEL/kernel|limit/n:N)\n"
"  --benchmark_format=console|json|csv       what goes to stdout\n"
"  --benchmark_out=FILE --benchmark_out_format=json|csv|console\n"
"  --benchmark_repetitions=N         the CSV then holds the median\n"
"  --benchmark_min_time=SECONDS      (default 0.5)\n"
"  --benchmark_list_tests=true\n"
"\n"
"Writes into DIR (NAME = kernels_tN, or kernels_LEVEL_tN with --arch):\n"
"  NAME.csv       kernel,isa,threads,n,bytes_per_param,seconds_per_step,\n"
"                 gparam_per_s,gb_per_s,limit_gb_per_s,fraction_of_limit,\n"
"                 flops_per_param,gflops,fma_peak_gflops,fraction_of_fma_peak\n"
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

static void parse_options(int argc, char **argv, Options *o)
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
            usage(stdout);
            exit(HX_EXIT_OK);
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
static int resolve_arches(const Options *o, const char *list[MAX_ARCHES], int *single)
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

/* ---- the output directory ----------------------------------------------- */

/* Google Benchmark exits (status 1) if it cannot open --benchmark_out:
 * find out first, and say so as a usage error.  A file that did not exist
 * is removed again. */
static void check_out_file(const char *path)
{
    struct stat sb;
    const int existed = stat(path, &sb) == 0;
    FILE *f = fopen(path, "a");
    if (!f)
        hx_fail(HX_EXIT_USAGE, "--benchmark_out=%s: cannot write it: %s", path, strerror(errno));
    fclose(f);
    if (!existed)
        unlink(path);
}

static char *path_join(const char *dir, const char *name, const char *suffix)
{
    const size_t len = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = hx_malloc(len);
    snprintf(p, len, "%s/%s%s", dir, name, suffix);
    return p;
}

/* ---- facts for the metadata --------------------------------------------- */

/* The value after "key" and ':' on the first such line of a /proc-style
 * file, trimmed; "" if none. */
static void read_keyed(const char *file, const char *key, char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen(file, "r");
    if (!f)
        return;
    char line[512];
    const size_t kl = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) || !strchr(line + kl, ':'))
            continue;
        const char *v = strchr(line + kl, ':') + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(out, len, "%s", v);
        out[strcspn(out, "\n")] = '\0';
        break;
    }
    fclose(f);
}

static size_t mem_available(void)
{
    char v[64];
    read_keyed("/proc/meminfo", "MemAvailable", v, sizeof v);
    if (v[0])
        return (size_t)strtoull(v, NULL, 10) * 1024;
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
}

/* Key/value facts: into Google Benchmark's JSON "context" at once, into
 * NAME_meta.csv at the end. */
#define META_MAX 96
typedef struct Meta {
    char *key[META_MAX], *value[META_MAX];
    int n;
} Meta;

static char *dup_str(const char *s)
{
    char *d = hx_malloc(strlen(s) + 1);
    strcpy(d, s);
    return d;
}

static void meta_str(Meta *m, const char *key, const char *value)
{
    if (m->n == META_MAX)
        hx_fail(HX_EXIT_FAIL, "internal: too many metadata entries (%s:%d)", __FILE__, __LINE__);
    m->key[m->n] = dup_str(key);
    m->value[m->n] = dup_str(value ? value : "");
    m->n++;
    gb_add_context(key, value ? value : "");
}

static void meta_free(Meta *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->key[i]);
        free(m->value[i]);
    }
    m->n = 0;
}

static void meta_int(Meta *m, const char *key, long long value)
{
    char v[32];
    snprintf(v, sizeof v, "%lld", value);
    meta_str(m, key, v);
}

/* ---- the command ---------------------------------------------------------- */

static void write_rows(HxCsv *w, const Bench *b)
{
    for (int i = 0; i < b->njobs; i++) {
        const Job *j = &b->jobs[i];
        if (j->is_limit)
            continue;
        const double s = seconds_of(&b->meas[i]);
        if (isnan(s))
            continue;
        /* its limit is the next job */
        const double ls = i + 1 < b->njobs ? seconds_of(&b->meas[i + 1]) : NAN;
        const int bytes = hx_limit_bytes(kernels[j->kernel].limit);
        const double n = (double)j->n, gb = bytes * n / s * 1e-9, lgb = bytes * n / ls * 1e-9;
        const int flops = kernels[j->kernel].flops;
        const double gflops = flops * n / s * 1e-9, peak = b->peak[j->arch_index];
        hx_csv_str(w, kernels[j->kernel].name);
        hx_csv_str(w, j->arch);
        hx_csv_int(w, b->nthreads);
        hx_csv_int(w, (int64_t)j->n);
        hx_csv_int(w, bytes);
        hx_csv_num(w, s);
        hx_csv_num(w, n / s * 1e-9);
        hx_csv_num(w, gb);
        hx_csv_num(w, lgb);
        hx_csv_num(w, gb / lgb);
        hx_csv_int(w, flops);
        hx_csv_num(w, gflops);
        hx_csv_num(w, peak);
        hx_csv_num(w, gflops / peak);
        hx_csv_end_row(w);
    }
}

static void write_csv(const char *path, const Bench *b)
{
    HxCsv *w;
    if (hx_csv_open(&w, path, csv_columns, NCOLUMNS) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s: cannot create: %s", path, strerror(errno));
    write_rows(w, b);
    if (hx_csv_close(w) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s: cannot write: %s", path, strerror(errno));
}

static void write_meta(const char *path, const Meta *m)
{
    static const char *const cols[] = { "key", "value" };
    HxCsv *w;
    if (hx_csv_open(&w, path, cols, 2) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s: cannot create: %s", path, strerror(errno));
    for (int i = 0; i < m->n; i++) {
        hx_csv_str(w, m->key[i]);
        hx_csv_str(w, m->value[i]);
        hx_csv_end_row(w);
    }
    if (hx_csv_close(w) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s: cannot write: %s", path, strerror(errno));
}

static void describe_run(Meta *m, const HxInvocation *whole, const Options *o,
                         const HxTopology *t, int have_topo, int threads, int pinned,
                         const Size *sizes, int nsz, const char *const *arches, int narch)
{
    char buf[512], ts[32];
    struct utsname un;
    hx_utc_timestamp(ts, sizeof ts);
    meta_str(m, "amo_version", hx_version());
    meta_str(m, "git_commit", hx_git_commit());
    meta_str(m, "google_benchmark_version", gb_version());
    meta_str(m, "date_utc", ts);
    char *cmd = hx_command_line(whole);
    meta_str(m, "command", cmd);
    free(cmd);
    if (uname(&un) == 0) {
        snprintf(buf, sizeof buf, "%s %s %s", un.sysname, un.release, un.machine);
        meta_str(m, "system", buf);
    }
    read_keyed("/proc/cpuinfo", "model name", buf, sizeof buf);
    meta_str(m, "cpu_model", buf);
    meta_str(m, "cpu_detected_level", kn_cpu_level_name(kn_cpu_detected()));
    /* which rounds the bf16-state kernels' random stream runs on (bf16.h) */
    meta_str(m, "cpu_aes", (kn_cpu_detected() & KN_CPU_VAES) ? "aes vaes"
                           : (kn_cpu_detected() & KN_CPU_AES) ? "aes" : "none");
    meta_str(m, "topology", have_topo ? t->summary : "unknown (hwloc failed; defaults used)");
    meta_int(m, "packages", t->packages);
    meta_int(m, "cores", t->cores);
    meta_int(m, "pus", t->pus);
    meta_int(m, "l1d_bytes", (long long)t->l1d);
    meta_int(m, "l2_bytes", (long long)t->l2);
    meta_int(m, "l2_shared_by_cores", t->l2_shared_by);
    meta_int(m, "l3_bytes", (long long)t->l3);
    meta_int(m, "mem_available_bytes", (long long)mem_available());
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (fgets(buf, sizeof buf, f)) {
            buf[strcspn(buf, "\n")] = '\0';
            meta_str(m, "transparent_hugepages", buf);
        }
        fclose(f);
    }
    meta_int(m, "threads", threads);
    meta_str(m, "threads_pinned", !pinned ? "no (hwloc could not bind them)"
                                  : threads > 1 ? "yes (OpenMP thread i on core i, hwloc)"
                                                : "no (one thread: hx_set_threads leaves it "
                                                  "where the OS puts it)");
    buf[0] = '\0';
    for (int i = 0; i < nsz; i++) {
        const size_t used = strlen(buf);
        snprintf(buf + used, sizeof buf - used, "%s%s:%zu", i ? " " : "", sizes[i].regime,
                 sizes[i].n);
    }
    meta_str(m, "sizes", buf);
    meta_str(m, "sizes_rule", "n fills half of each cache at 16 B/param resident (AMO fp32: "
             "theta, m, v, g); DRAM: 64M params, capped by --max-n and half of available "
             "memory");
    if (o->max_n < ((size_t)1 << 40))
        meta_int(m, "max_n", (long long)o->max_n);
    meta_str(m, "limit_rule", "per kernel, a loop moving the same bytes (plain vector loads "
             "and stores, x += 0*g, bf16 x ^= 0) at the same level, threads and split, run "
             "right after the kernel on the same buffers");
    meta_str(m, "adam_args", "kn_adam_args(1e-3, 0.9, 0.999, 1e-8, t=1000), hoisted");
    for (int a = 0; a < narch; a++) {
        if (kn_cpu_set_arch(arches[a]) != AMO_OK)
            continue;
        for (int k = 0; k < KN_K_COUNT; k++) {
            snprintf(buf, sizeof buf, "level.%s.%s", arches[a], kn_kernel_name((KnKernel)k));
            meta_str(m, buf, kn_kernel_level((KnKernel)k));
        }
        snprintf(buf, sizeof buf, "level.%s.limit", arches[a]);
        meta_str(m, buf, hx_limit_level());
    }
}

/* Where the results go: DIR/NAME.csv, DIR/NAME_meta.csv and Google
 * Benchmark's file, which it writes to a hidden temporary renamed when the
 * run is complete (unless the user chose the file with --benchmark_out).
 * Adds the --benchmark_out flags to o->gb_argv ahead of the user's, so the
 * user's win. */
typedef struct Outputs {
    char *csv, *meta, *gb, *gb_tmp; /* gb_tmp: NULL when the user chose gb */
    char *gb_flag;                  /* the --benchmark_out flag we add, or NULL */
} Outputs;

static Outputs plan_outputs(Options *o, const char *name, char *argv0)
{
    Outputs out = { path_join(o->out, name, ".csv"), path_join(o->out, name, "_meta.csv"),
                    NULL, NULL, NULL };
    o->gb_argv[0] = argv0; /* Google Benchmark's "executable" */
    if (o->gb_out) {
        check_out_file(o->gb_out);
        out.gb = dup_str(o->gb_out);
        return out;
    }
    const char *fmt = o->gb_out_format ? o->gb_out_format : "json";
    const char *ext = !strcmp(fmt, "json") ? ".json" : !strcmp(fmt, "csv") ? "_gbench.csv"
                                                                             : ".txt";
    out.gb = path_join(o->out, name, ext);
    const size_t len = strlen(o->out) + strlen(name) + strlen(ext) + 8;
    out.gb_tmp = hx_malloc(len);
    snprintf(out.gb_tmp, len, "%s/.%s%s.tmp", o->out, name, ext);
    char *flag = out.gb_flag = hx_malloc(len + 16);
    snprintf(flag, len + 16, "--benchmark_out=%s", out.gb_tmp);
    const int add = o->gb_out_format ? 1 : 2;
    memmove(o->gb_argv + 1 + add, o->gb_argv + 1, (size_t)(o->gb_argc - 1) * sizeof(char *));
    o->gb_argv[1] = flag;
    if (add == 2)
        o->gb_argv[2] = "--benchmark_out_format=json";
    o->gb_argc += add;
    o->gb_argv[o->gb_argc] = NULL;
    return out;
}

static void outputs_free(Outputs *out)
{
    free(out->csv);
    free(out->meta);
    free(out->gb);
    free(out->gb_tmp);
    free(out->gb_flag);
    *out = (Outputs){ 0 };
}

/* For each level and size, each kernel and then its limit: Google Benchmark
 * runs them in this order, so each limit is measured right after its
 * kernel, on the same buffers. */
static void register_jobs(Bench *b, const char *const *arches, int narch, const Size *sizes,
                          int nsz)
{
    b->njobs = narch * nsz * KB_COUNT * 2;
    b->jobs = hx_malloc((size_t)b->njobs * sizeof(Job));
    b->meas = hx_malloc((size_t)b->njobs * sizeof(Measured));
    int k = 0;
    for (int a = 0; a < narch; a++)
        for (int z = 0; z < nsz; z++)
            for (int kb = 0; kb < KB_COUNT; kb++)
                for (int lim = 0; lim < 2; lim++, k++) {
                    Job *j = &b->jobs[k];
                    *j = (Job){ kb, lim, arches[a], sizes[z].regime, sizes[z].n, -1, b, a };
                    b->meas[k] = (Measured){ .median_s = NAN };
                    char name[96];
                    snprintf(name, sizeof name, "%s/%s/%s", kernels[kb].name, arches[a],
                             lim ? "limit" : "kernel");
                    const GbArg arg = { "n", (int64_t)sizes[z].n };
                    j->id = gb_register(name, bm_job, j, &arg, 1);
                    if (j->id != k)
                        hx_fail(HX_EXIT_FAIL, "internal: cannot register %s (%s:%d)", name,
                                __FILE__, __LINE__);
                }
}

static void announce(const char *const *arches, int narch, int threads, const Size *sizes,
                     int nsz, const HxTopology *t)
{
    fprintf(stderr, "amo-bench: kernels: levels");
    for (int a = 0; a < narch; a++)
        fprintf(stderr, " %s", arches[a]);
    fprintf(stderr, "; %d thread(s); n =", threads);
    for (int z = 0; z < nsz; z++)
        fprintf(stderr, " %zu (%s)", sizes[z].n, sizes[z].regime);
    fprintf(stderr, "; %s\n", t->summary[0] ? t->summary : "topology unknown");
}

/* The topology, or a guess when hwloc cannot read it. */
static int read_topology(HxTopology *t)
{
    if (hx_topology(t) == AMO_OK)
        return 1;
    hx_warn("hwloc could not read the topology; assuming L1d 32K, L2 1M, L3 32M");
    *t = (HxTopology){ .packages = 1, .cores = 1, .pus = 1, .l1d = 32u << 10, .l2 = 1u << 20,
                        .l3 = 32u << 20, .l2_shared_by = 1 };
    return 0;
}

/* The FMA peak of each level that ran, on the same threads, right after
 * the benchmarks (registers only: a second or so per level). */
static void measure_peaks(Bench *b, const char *const *arches, int narch, Meta *meta)
{
    for (int a = 0; a < narch; a++) {
        b->peak[a] = NAN;
        int ran = 0;
        for (int i = 0; i < b->njobs && !ran; i++)
            ran = b->jobs[i].arch_index == a && !b->jobs[i].is_limit &&
                  !isnan(seconds_of(&b->meas[i]));
        if (!ran || kn_cpu_set_arch(arches[a]) != AMO_OK)
            continue;
        b->peak[a] = hx_fma_peak_gflops(b->nthreads);
        char key[64], value[32];
        snprintf(key, sizeof key, "fma_peak_gflops.%s", arches[a]);
        snprintf(value, sizeof value, "%.1f", b->peak[a]);
        meta_str(meta, key, value);
    }
}

/* After the run: the CSV, Google Benchmark's file in place, the metadata;
 * then the exit status (1 if any benchmark failed). */
static int finish(const Bench *b, const Outputs *out, Meta *meta, double t0)
{
    write_csv(out->csv, b);
    if (out->gb_tmp && rename(out->gb_tmp, out->gb) != 0)
        hx_fail(HX_EXIT_FAIL, "%s: cannot rename to %s: %s", out->gb_tmp, out->gb,
                strerror(errno));
    char secs[32];
    snprintf(secs, sizeof secs, "%.1f", hx_now() - t0);
    meta_str(meta, "wall_seconds", secs);
    meta_str(meta, "google_benchmark_file", out->gb);
    write_meta(out->meta, meta);
    fprintf(stderr, "amo-bench: wrote %s, %s and %s\n", out->csv, out->meta, out->gb);
    for (int i = 0; i < b->njobs; i++) {
        const Job *j = &b->jobs[i];
        if (b->meas[i].error)
            hx_fail(HX_EXIT_FAIL, "benchmark %s/%s/%s n=%zu failed: %s",
                    kernels[j->kernel].name, j->arch, j->is_limit ? "limit" : "kernel", j->n,
                    b->meas[i].message);
    }
    return HX_EXIT_OK;
}

int hx_cmd_kernels(int argc, char **argv, const HxInvocation *whole)
{
    const double t0 = hx_now();
    Options o;
    parse_options(argc, argv, &o);
    const char *arches[MAX_ARCHES];
    int single;
    const int narch = resolve_arches(&o, arches, &single);
    hx_out_dir("--out", o.out);
    const int threads = o.threads ? o.threads : hx_default_threads();
    char name[64];
    if (single)
        snprintf(name, sizeof name, "kernels_%s_t%d", arches[0], threads);
    else
        snprintf(name, sizeof name, "kernels_t%d", threads);
    Outputs out = plan_outputs(&o, name, whole->argv[0]);
    if (gb_init(&o.gb_argc, o.gb_argv) != 0)
        hx_fail(HX_EXIT_USAGE, "unknown Google Benchmark flag or value '%s' (its flags take "
                "the form --benchmark_NAME=VALUE)", o.gb_argv[1]);
    /* Google Benchmark has copied its flags (it keeps argv[0], the caller's) */
    free(o.gb_argv);
    o.gb_argv = NULL;

    const AmoStatus pin = hx_set_threads(threads, NULL);
    if (pin != AMO_OK)
        hx_warn("could not pin the threads to cores (%s); running unpinned", amo_status_str(pin));
    HxTopology topo;
    const int have_topo = read_topology(&topo);
    const size_t mem_n = round64(mem_available() / 2 / ARENA_BYTES);
    Size sizes[5];
    const int nsz = choose_sizes(&topo, o.max_n, mem_n, sizes);
    if (sizes[nsz - 1].n == mem_n && mem_n < o.max_n)
        hx_warn("largest size capped at %zu parameters by available memory", mem_n);

    Bench b = { .nthreads = threads };
    register_jobs(&b, arches, narch, sizes, nsz);
    Meta meta = { .n = 0 };
    describe_run(&meta, whole, &o, &topo, have_topo, threads, pin == AMO_OK, sizes, nsz,
                 arches, narch);
    announce(arches, narch, threads, sizes, nsz, &topo);
    if (!o.gb_list)
        arena_init(&b.arena, sizes[nsz - 1].n, threads);

    const long matched = gb_run(on_result, &b);
    if (out.gb_tmp && (matched <= 0 || o.gb_list))
        unlink(out.gb_tmp);
    if (matched < 0)
        hx_fail(HX_EXIT_FAIL, "Google Benchmark failed (internal error)");
    if (matched == 0)
        hx_fail(HX_EXIT_USAGE, "no benchmark matches the --benchmark_filter given");
    int rc = HX_EXIT_OK;
    if (!o.gb_list) {
        measure_peaks(&b, arches, narch, &meta);
        rc = finish(&b, &out, &meta, t0);
    }
    arena_free(&b.arena);
    free(b.jobs);
    free(b.meas);
    meta_free(&meta);
    outputs_free(&out);
    return rc;
}

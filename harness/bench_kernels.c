/* amo-bench kernels: every update kernel at every CPU level, each followed
 * by its limit (harness/limit.h: the same memory traffic with no
 * arithmetic), at sizes chosen from the cache sizes hwloc reports, on
 * Google Benchmark (harness/gbench.h).  Writes into --out DIR:
 *   kernels[_ARCH]_tN.csv       one row per kernel, level and size (bench_kernels_out.c)
 *   kernels[_ARCH]_tN.json      Google Benchmark's JSON (every run)
 *   kernels[_ARCH]_tN_meta.csv  topology, command line, date, levels
 * This file holds what is benchmarked and the command; its options are in
 * harness/bench_kernels_opts.c, its result files and metadata in
 * harness/bench_kernels_out.c, what they share in harness/bench_kernels.h. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/bench_kernels.h"
#include "harness/common.h"
#include "harness/error.h"
#include "harness/gbench.h"
#include "harness/timer.h"
#include "kernels/cpu.h"
#include "common/rng.h"
#include "kernels/update.h"

/* ---- what is benchmarked ------------------------------------------------ */

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
const KernelSpec bk_kernels[KB_COUNT] = {
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

/* ---- sizes ---------------------------------------------------------------
 * One set of sizes for all kernels, so that rows compare at equal n, chosen
 * for the largest update (AMO fp32: theta, m, v and g, 16 bytes resident
 * per parameter) to fill half of a cache: the smaller kernels fit too. */

#define RESIDENT_BYTES 16
#define ARENA_BYTES 24       /* theta m v g b (fp32) + m v (bf16) per param */
#define DRAM_N ((size_t)1 << 26) /* 64M: the size of the PyTorch anchor    */

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
    g_sink = hx_limit_run(bk_kernels[j->kernel].limit, f, h, a->g, j->n, j->bench->nthreads,
                          j->is_limit == 2);
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
    gb_set_counter(st, "bytes_per_second", it * n * hx_limit_bytes(bk_kernels[j->kernel].limit),
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
double bk_seconds_of(const Measured *m)
{
    if (m->error)
        return NAN;
    if (!isnan(m->median_s))
        return m->median_s;
    return m->runs ? m->sum_s / m->runs : NAN;
}

const char *bk_job_kind(const Job *j)
{
    return j->is_limit == 2 ? "limit_late" : j->is_limit ? "limit" : "kernel";
}

/* ---- the command ---------------------------------------------------------- */

/* For each level and size, each kernel and then its limit loops (plain,
 * then with late stores, except for sumsq, which stores nothing): Google
 * Benchmark runs them in this order unless told to interleave at random,
 * so each limit is measured right after its kernel, on the same buffers. */
static void register_jobs(Bench *b, const char *const *arches, int narch, const Size *sizes,
                          int nsz)
{
    b->njobs = narch * nsz * KB_COUNT * 3;
    b->jobs = hx_malloc((size_t)b->njobs * sizeof(Job));
    b->meas = hx_malloc((size_t)b->njobs * sizeof(Measured));
    int k = 0;
    for (int a = 0; a < narch; a++)
        for (int z = 0; z < nsz; z++)
            for (int kb = 0; kb < KB_COUNT; kb++)
                for (int lim = 0; lim < 3; lim++) {
                    if (lim == 2 && bk_kernels[kb].limit == HX_LIMIT_R1)
                        continue;
                    Job *j = &b->jobs[k];
                    *j = (Job){ kb, lim, arches[a], sizes[z].regime, sizes[z].n, -1, b, a };
                    b->meas[k] = (Measured){ .median_s = NAN };
                    char name[96];
                    snprintf(name, sizeof name, "%s/%s/%s", bk_kernels[kb].name, arches[a],
                             bk_job_kind(j));
                    const GbArg arg = { "n", (int64_t)sizes[z].n };
                    j->id = gb_register(name, bm_job, j, &arg, 1);
                    if (j->id != k)
                        hx_fail(HX_EXIT_FAIL, "internal: cannot register %s (%s:%d)", name,
                                __FILE__, __LINE__);
                    k++;
                }
    b->njobs = k;
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
                  !isnan(bk_seconds_of(&b->meas[i]));
        if (!ran || kn_cpu_set_arch(arches[a]) != AMO_OK)
            continue;
        b->peak[a] = hx_fma_peak_gflops(b->nthreads);
        char key[64], value[32];
        snprintf(key, sizeof key, "fma_peak_gflops.%s", arches[a]);
        snprintf(value, sizeof value, "%.1f", b->peak[a]);
        bk_meta_str(meta, key, value);
    }
}

int hx_cmd_kernels(int argc, char **argv, const HxInvocation *whole)
{
    const double t0 = hx_now();
    Options o;
    bk_parse_options(argc, argv, &o);
    hx_one_process("kernels");
    const char *arches[MAX_ARCHES];
    int single;
    const int narch = bk_resolve_arches(&o, arches, &single);
    hx_out_dir("--out", o.out);
    const int threads = o.threads ? o.threads : hx_default_threads();
    char name[64];
    if (single)
        snprintf(name, sizeof name, "kernels_%s_t%d", arches[0], threads);
    else
        snprintf(name, sizeof name, "kernels_t%d", threads);
    Outputs out = bk_plan_outputs(&o, name, whole->argv[0]);
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
    const size_t mem_n = round64(bk_mem_available() / 2 / ARENA_BYTES);
    Size sizes[5];
    const int nsz = choose_sizes(&topo, o.max_n, mem_n, sizes);
    if (sizes[nsz - 1].n == mem_n && mem_n < o.max_n)
        hx_warn("largest size capped at %zu parameters by available memory", mem_n);

    Bench b = { .nthreads = threads };
    register_jobs(&b, arches, narch, sizes, nsz);
    Meta meta = { .n = 0 };
    bk_describe_run(&meta, whole, &o, &topo, have_topo, threads, pin == AMO_OK, sizes, nsz,
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
        rc = bk_finish(&b, &out, &meta, t0);
    }
    arena_free(&b.arena);
    free(b.jobs);
    free(b.meas);
    bk_meta_free(&meta);
    bk_outputs_free(&out);
    return rc;
}

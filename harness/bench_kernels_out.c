/* amo-bench kernels: where its results go and what they say (the CSV, the
 * metadata: topology, command line, date, levels); the command is in
 * harness/bench_kernels.c. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/version.h"
#include "common/file.h"
#include "harness/bench_kernels.h"
#include "harness/common.h"
#include "harness/csv.h"
#include "harness/error.h"
#include "harness/gbench.h"
#include "harness/timer.h"
#include "kernels/cpu.h"
#include "kernels/update.h"

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

size_t bk_mem_available(void)
{
    char v[64];
    read_keyed("/proc/meminfo", "MemAvailable", v, sizeof v);
    if (v[0])
        return (size_t)strtoull(v, NULL, 10) * 1024;
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
}


static char *dup_str(const char *s)
{
    char *d = hx_malloc(strlen(s) + 1);
    strcpy(d, s);
    return d;
}

void bk_meta_str(Meta *m, const char *key, const char *value)
{
    if (m->n == META_MAX)
        hx_fail(HX_EXIT_FAIL, "internal: too many metadata entries (%s:%d)", __FILE__, __LINE__);
    m->key[m->n] = dup_str(key);
    m->value[m->n] = dup_str(value ? value : "");
    m->n++;
    gb_add_context(key, value ? value : "");
}

void bk_meta_free(Meta *m)
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
    bk_meta_str(m, key, v);
}

/* ---- the result files ----------------------------------------------------- */

static const char *const csv_columns[] = {
    "kernel", "isa", "threads", "n", "bytes_per_param", "seconds_per_step",
    "gparam_per_s", "gb_per_s", "limit_gb_per_s", "fraction_of_limit",
    "flops_per_param", "gflops", "fma_peak_gflops", "fraction_of_fma_peak", "limit_loop",
};
#define NCOLUMNS (int)(sizeof(csv_columns) / sizeof(csv_columns[0]))

static void write_rows(HxCsv *w, const Bench *b)
{
    for (int i = 0; i < b->njobs; i++) {
        const Job *j = &b->jobs[i];
        if (j->is_limit)
            continue;
        const double s = bk_seconds_of(&b->meas[i]);
        if (isnan(s))
            continue;
        /* its limit loops are the next jobs registered: the faster one that
         * ran is the limit ("-only" when the other did not run, filtered out
         * or failed; empty when none ran) */
        double ls = NAN;
        const char *form = "";
        int ran = 0;
        for (int l = i + 1; l < b->njobs && b->jobs[l].is_limit; l++) {
            const double t = bk_seconds_of(&b->meas[l]);
            ran += !isnan(t);
            if (!isnan(t) && (isnan(ls) || t < ls))
                ls = t, form = b->jobs[l].is_limit == 2 ? "late" : "plain";
        }
        if (ran == 1 && bk_kernels[j->kernel].limit != HX_LIMIT_R1)
            form = !strcmp(form, "late") ? "late-only" : "plain-only";
        const int bytes = hx_limit_bytes(bk_kernels[j->kernel].limit);
        const double n = (double)j->n, gb = bytes * n / s * 1e-9, lgb = bytes * n / ls * 1e-9;
        const int flops = bk_kernels[j->kernel].flops;
        const double gflops = flops * n / s * 1e-9, peak = b->peak[j->arch_index];
        hx_csv_str(w, bk_kernels[j->kernel].name);
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
        hx_csv_str(w, form);
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

void bk_describe_run(Meta *m, const HxInvocation *whole, const Options *o,
                     const HxTopology *t, int have_topo, int threads, int pinned,
                     const Size *sizes, int nsz, const char *const *arches, int narch)
{
    char buf[512], ts[32];
    struct utsname un;
    hx_utc_timestamp(ts, sizeof ts);
    bk_meta_str(m, "amo_version", amo_version());
    bk_meta_str(m, "git_commit", amo_build_commit());
    bk_meta_str(m, "google_benchmark_version", gb_version());
    bk_meta_str(m, "date_utc", ts);
    char *cmd = hx_command_line(whole);
    bk_meta_str(m, "command", cmd);
    free(cmd);
    if (uname(&un) == 0) {
        snprintf(buf, sizeof buf, "%s %s %s", un.sysname, un.release, un.machine);
        bk_meta_str(m, "system", buf);
    }
    read_keyed("/proc/cpuinfo", "model name", buf, sizeof buf);
    bk_meta_str(m, "cpu_model", buf);
    bk_meta_str(m, "cpu_detected_level", kn_cpu_level_name(kn_cpu_detected()));
    /* which rounds the bf16-state kernels' random stream runs on (bf16.h) */
    bk_meta_str(m, "cpu_aes", (kn_cpu_detected() & KN_CPU_VAES) ? "aes vaes"
                              : (kn_cpu_detected() & KN_CPU_AES) ? "aes" : "none");
    bk_meta_str(m, "topology", have_topo ? t->summary : "unknown (hwloc failed; defaults used)");
    meta_int(m, "packages", t->packages);
    meta_int(m, "cores", t->cores);
    meta_int(m, "pus", t->pus);
    meta_int(m, "l1d_bytes", (long long)t->l1d);
    meta_int(m, "l2_bytes", (long long)t->l2);
    meta_int(m, "l2_shared_by_cores", t->l2_shared_by);
    meta_int(m, "l3_bytes", (long long)t->l3);
    meta_int(m, "mem_available_bytes", (long long)bk_mem_available());
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (fgets(buf, sizeof buf, f)) {
            buf[strcspn(buf, "\n")] = '\0';
            bk_meta_str(m, "transparent_hugepages", buf);
        }
        fclose(f);
    }
    meta_int(m, "threads", threads);
    bk_meta_str(m, "threads_pinned", !pinned ? "no (hwloc could not bind them)"
                                     : threads > 1 ? "yes (OpenMP thread i on core i, hwloc)"
                                                   : "no (one thread: hx_set_threads leaves it "
                                                     "where the OS puts it)");
    buf[0] = '\0';
    for (int i = 0; i < nsz; i++) {
        const size_t used = strlen(buf);
        snprintf(buf + used, sizeof buf - used, "%s%s:%zu", i ? " " : "", sizes[i].regime,
                 sizes[i].n);
    }
    bk_meta_str(m, "sizes", buf);
    bk_meta_str(m, "sizes_rule", "n fills half of each cache at 16 B/param resident (AMO fp32: "
                "theta, m, v, g); DRAM: 64M params, capped by --max-n and half of available "
                "memory");
    if (o->max_n < ((size_t)1 << 40))
        meta_int(m, "max_n", (long long)o->max_n);
    char rule[512];
    snprintf(rule, sizeof rule, "per kernel, the faster of two loops moving the same bytes "
             "(plain vector loads and stores, x += 0*g, bf16 x ^= 0; and the same with every "
             "store behind %d dependent multiply-adds, limit_loop late) at the same level, "
             "threads and split, on the same buffers in the same run (right after the kernel "
             "unless the run interleaves at random)", HX_LIMIT_LATE_DEPTH);
    bk_meta_str(m, "limit_rule", rule);
    bk_meta_str(m, "adam_args", "kn_adam_args(1e-3, 0.9, 0.999, 1e-8, t=1000), hoisted");
    for (int a = 0; a < narch; a++) {
        if (kn_cpu_set_arch(arches[a]) != AMO_OK)
            continue;
        for (int k = 0; k < KN_K_COUNT; k++) {
            snprintf(buf, sizeof buf, "level.%s.%s", arches[a], kn_kernel_name((KnKernel)k));
            bk_meta_str(m, buf, kn_kernel_level((KnKernel)k));
        }
        snprintf(buf, sizeof buf, "level.%s.limit", arches[a]);
        bk_meta_str(m, buf, hx_limit_level());
    }
}

/* The paths of the results (Outputs, harness/bench_kernels.h).  Adds the
 * --benchmark_out flags to o->gb_argv ahead of the user's, so the user's
 * win. */
Outputs bk_plan_outputs(Options *o, const char *name, char *argv0)
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

void bk_outputs_free(Outputs *out)
{
    free(out->csv);
    free(out->meta);
    free(out->gb);
    free(out->gb_tmp);
    free(out->gb_flag);
    *out = (Outputs){ 0 };
}

/* After the run: the CSV, Google Benchmark's file in place, the metadata;
 * then the exit status (1 if any benchmark failed). */
int bk_finish(const Bench *b, const Outputs *out, Meta *meta, double t0)
{
    write_csv(out->csv, b);
    if (out->gb_tmp) {
        /* Google Benchmark wrote its file under a temporary name; it goes in
         * place through the one atomic writer (fsync, rename, directory fsync) */
        unsigned char *data;
        size_t len;
        char err[4400];
        const int ok = amo_read_file(out->gb_tmp, &data, &len, err, sizeof err) == AMO_OK
                       && amo_write_atomic(out->gb, data, len, err, sizeof err) == AMO_OK;
        unlink(out->gb_tmp);
        if (!ok)
            hx_fail(HX_EXIT_FAIL, "%s", err);
        free(data);
    }
    char secs[32];
    snprintf(secs, sizeof secs, "%.1f", hx_now() - t0);
    bk_meta_str(meta, "wall_seconds", secs);
    bk_meta_str(meta, "google_benchmark_file", out->gb);
    write_meta(out->meta, meta);
    fprintf(stderr, "amo-bench: wrote %s, %s and %s\n", out->csv, out->meta, out->gb);
    for (int i = 0; i < b->njobs; i++) {
        const Job *j = &b->jobs[i];
        if (b->meas[i].error)
            hx_fail(HX_EXIT_FAIL, "benchmark %s/%s/%s n=%zu failed: %s",
                    bk_kernels[j->kernel].name, j->arch, bk_job_kind(j), j->n,
                    b->meas[i].message);
    }
    return HX_EXIT_OK;
}

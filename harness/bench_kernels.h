/* What the three files of amo-bench kernels share: harness/bench_kernels.c
 * (what is benchmarked, and the command), harness/bench_kernels_opts.c (its
 * options) and harness/bench_kernels_out.c (its result files and metadata).
 * Internal to the harness. */
#ifndef AMO_HARNESS_BENCH_KERNELS_H
#define AMO_HARNESS_BENCH_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "harness/commands.h"
#include "harness/limit.h"
#include "harness/threads.h"

#define MAX_ARCHES 4     /* scalar, avx2, avx512 or neon */

enum {
    KB_AMO, KB_AMO_BF16, KB_AMO_BF16_RNE, KB_ADAM, KB_ADAM_BF16, KB_SGD_MOM, KB_RMSPROP,
    KB_RMSPROP_MOM, KB_SUMSQ, KB_COUNT
};

typedef struct KernelSpec {
    const char *name;
    HxLimitKind limit; /* the loop with the same traffic */
    int flops;         /* per parameter: see bk_kernels */
} KernelSpec;

/* Indexed by KB_*; harness/bench_kernels.c, where its flops are explained. */
extern const KernelSpec bk_kernels[KB_COUNT];

typedef struct Size {
    const char *regime; /* "L1", "L2", "L3", "DRAM" */
    size_t n;
} Size;

typedef struct Arena {
    float *theta, *m, *v, *g, *b; /* (nmax) fp32 each           */
    uint16_t *mh, *vh;            /* (nmax) bf16 moments         */
    void *block;
    size_t nmax;
} Arena;

typedef struct Bench Bench;

typedef struct Job {
    int kernel;        /* KB_* */
    int is_limit;      /* 0: the kernel; 1: its limit loop; 2: the same, late stores
                          (hx_limit_run) */
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

/* Key/value facts: into Google Benchmark's JSON "context" at once, into
 * NAME_meta.csv at the end. */
#define META_MAX 96
typedef struct Meta {
    char *key[META_MAX], *value[META_MAX];
    int n;
} Meta;

/* Where the results go: DIR/NAME.csv, DIR/NAME_meta.csv and Google
 * Benchmark's file, which it writes to a hidden temporary renamed when the
 * run is complete (unless the user chose the file with --benchmark_out). */
typedef struct Outputs {
    char *csv, *meta, *gb, *gb_tmp; /* gb_tmp: NULL when the user chose gb */
    char *gb_flag;                  /* the --benchmark_out flag we add, or NULL */
} Outputs;

/* harness/bench_kernels.c */
double bk_seconds_of(const Measured *m);
/* "kernel", "limit" or "limit_late": the last part of a job's name */
const char *bk_job_kind(const Job *j);

/* harness/bench_kernels_opts.c */
void bk_parse_options(int argc, char **argv, Options *o);
int bk_resolve_arches(const Options *o, const char *list[MAX_ARCHES], int *single);

/* harness/bench_kernels_out.c */
size_t bk_mem_available(void);
void bk_meta_str(Meta *m, const char *key, const char *value);
void bk_meta_free(Meta *m);
void bk_describe_run(Meta *m, const HxInvocation *whole, const Options *o,
                     const HxTopology *t, int have_topo, int threads, int pinned,
                     const Size *sizes, int nsz, const char *const *arches, int narch);
Outputs bk_plan_outputs(Options *o, const char *name, char *argv0);
void bk_outputs_free(Outputs *out);
int bk_finish(const Bench *b, const Outputs *out, Meta *meta, double t0);

#endif

/* Google Benchmark (https://github.com/google/benchmark, Debian's 1.7.1)
 * seen from C.  The one C++ file of the project, gbench_shim.cc, implements
 * this; the benchmarks themselves are C functions:
 *
 *     static void bm(GbState *st, void *ctx)
 *     {
 *         ... set-up: not timed ...
 *         while (gb_keep_running(st))
 *             kernel(...);
 *         gb_set_counter(st, "bytes_per_second", bytes * gb_iterations(st), GB_RATE);
 *     }
 *     gb_register("amo/avx512/kernel", bm, ctx, (GbArg[]){ { "n", 65536 } }, 1);
 *
 * Benchmarks run in the order registered, timed by wall clock (the update
 * kernels run on several OpenMP threads, so the calling thread's CPU time
 * would under-count).  Results come back to C through a callback; Google
 * Benchmark's own console/JSON/CSV output and --benchmark_out file are
 * written as usual beside it.
 *
 * None of these functions throws or exits, except that Google Benchmark
 * itself exits (status 1) when --benchmark_out names a file it cannot open
 * or --benchmark_format names no format: callers check those first. */
#ifndef AMO_HARNESS_GBENCH_H
#define AMO_HARNESS_GBENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct GbState GbState; /* a benchmark::State */
typedef void (*GbFn)(GbState *st, void *ctx);

/* One integer argument; it appears in the benchmark's name as "name:value"
 * (or just "value" when name is NULL). */
typedef struct GbArg {
    const char *name;
    int64_t value;
} GbArg;

/* Hands argv to benchmark::Initialize, which takes out the flags it knows
 * (--benchmark_filter, --benchmark_format, --benchmark_out, ...) and leaves
 * the rest.  Returns 0, or -1 if arguments other than argv[0] remain (then
 * *argc and argv hold them). */
int gb_init(int *argc, char **argv);

/* Adds a key/value pair to the "context" of the reports. 0 or -1. */
int gb_add_context(const char *key, const char *value);

/* Registers fn(st, ctx) under name plus its arguments.  Returns the id
 * (0, 1, ... in registration order) that its results carry, or -1. */
int gb_register(const char *name, GbFn fn, void *ctx, const GbArg *args, int nargs);

/* The state loop.  gb_keep_running() is true once per iteration; the batch
 * form runs the caller's loop in batches of n iterations (it may overshoot by
 * up to n, which gb_iterations() then counts). */
int gb_keep_running(GbState *st);
int gb_keep_running_batch(GbState *st, int64_t n);
int64_t gb_iterations(const GbState *st);
int64_t gb_arg(const GbState *st, int i);

void gb_pause_timing(GbState *st);
void gb_resume_timing(GbState *st);
/* Marks the run failed; the loop then ends at once.  The message is copied. */
void gb_skip_with_error(GbState *st, const char *msg);

/* Counters.  GB_RATE divides the value by the elapsed time (Google
 * Benchmark's Counter::kIsRate): set the total over all iterations, e.g.
 * bytes per iteration * gb_iterations(st).  GB_1024 shows it with binary
 * prefixes (Ki, Mi) instead of decimal ones (k, M). */
enum { GB_PLAIN = 0, GB_RATE = 1, GB_1024 = 2 };
void gb_set_counter(GbState *st, const char *name, double value, int flags);

/* One report of one benchmark. */
typedef struct GbResult {
    int id;                  /* from gb_register; -1 if not recognised     */
    const char *name;        /* full name, as Google Benchmark prints it  */
    const char *aggregate;   /* "" for a measured run; with repetitions
                                also "mean", "median", "stddev", "cv"     */
    int64_t repetition;      /* index of this repetition (measured runs) */
    int64_t iterations;
    double real_seconds;     /* wall time per iteration ("cv": a ratio)   */
    double cpu_seconds;      /* calling thread's CPU time per iteration   */
    int error;               /* gb_skip_with_error was called             */
    const char *error_message;
    int ncounters;
    const char *const *counter_names; /* counters, rates already divided */
    const double *counter_values;
} GbResult;

typedef void (*GbResultFn)(const GbResult *r, void *ctx);

/* Runs the registered benchmarks that match --benchmark_filter, reporting
 * each result to on_result (the pointers live for the call only) and to
 * Google Benchmark's display and --benchmark_out reporters.  Returns the
 * number of benchmarks that matched (0: none did, or -1 on an internal
 * error).  With --benchmark_list_tests it lists them and runs nothing. */
long gb_run(GbResultFn on_result, void *ctx);

/* Google Benchmark's version ("1.7.1"), as this program was built with. */
const char *gb_version(void);

#ifdef __cplusplus
}
#endif

#endif

/* The subcommands of amo-bench.  Each parses its own options (getopt_long,
 * argv[0] is the command's name), returns an exit status or calls hx_fail,
 * and is listed in the table in harness/main.c. */
#ifndef AMO_HARNESS_COMMANDS_H
#define AMO_HARNESS_COMMANDS_H

/* The whole command line, as typed, for the metadata written with results. */
typedef struct HxInvocation {
    int argc;
    char **argv;
} HxInvocation;

typedef int (*HxCommandFn)(int argc, char **argv, const HxInvocation *whole);

/* amo-bench kernels: harness/bench_kernels.c */
int hx_cmd_kernels(int argc, char **argv, const HxInvocation *whole);

/* amo-bench train and ablation, and the default job: harness/train_cmd.c */
int hx_cmd_train(int argc, char **argv, const HxInvocation *whole);
int hx_cmd_ablation(int argc, char **argv, const HxInvocation *whole);
int hx_cmd_combine(int argc, char **argv, const HxInvocation *whole);
int hx_cmd_default(const HxInvocation *whole);

/* amo-bench convex: Theorem 1 on Reddi et al.'s 1-D problem, harness/convex.c */
int hx_cmd_convex(int argc, char **argv, const HxInvocation *whole);

/* amo-bench throughput: harness/throughput.c */
int hx_cmd_throughput(int argc, char **argv, const HxInvocation *whole);

/* amo-bench loader: harness/loader_bench.c */
int hx_cmd_loader(int argc, char **argv, const HxInvocation *whole);

#endif

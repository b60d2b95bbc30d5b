/* amo-bench: the benchmark and training harness of amo.
 *
 *     amo-bench [--help] [--version] [--arch LEVEL] COMMAND [OPTIONS]
 *
 * main() parses the global options, then hands the rest of the command line
 * to the command named (its own getopt_long, argv[0] = its name).  A new
 * command is a function in harness/commands.h and a row in `commands`. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/version.h"
#include "harness/commands.h"
#include "harness/common.h"
#include "harness/dist.h"
#include "harness/error.h"
#include "harness/parse.h"

typedef struct HxCommand {
    const char *name;
    HxCommandFn run;
    const char *summary;
} HxCommand;

static const HxCommand commands[] = {
    { "kernels", hx_cmd_kernels,
      "microbenchmarks of the update kernels beside the measured memory-bandwidth limit" },
    { "train", hx_cmd_train, "trains a ResNet end to end: per-step timings, convergence CSVs" },
    { "throughput", hx_cmd_throughput,
      "training steps of a ResNet on random data: images/s and where the time goes" },
    { "loader", hx_cmd_loader,
      "decoding and augmenting an image folder (--dataset folder): images/s per thread" },
    { "ablation", hx_cmd_ablation,
      "a grid of training runs appended to the same CSVs, resumable" },
    { "combine", hx_cmd_combine, "rewrites OUT's combined CSVs from its runs (after parallel runs)" },
    { "convex", hx_cmd_convex,
      "Theorem 1 on Reddi et al.'s 1-D stochastic convex problem: where each optimizer ends" },
};
#define NCOMMANDS (int)(sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
    fputs("Usage: amo-bench [--help] [--version] [--arch LEVEL] [COMMAND [OPTIONS]]\n"
          "\n"
          "Without a command: the main job, AMO against Adam on Fashion-MNIST with a\n"
          "narrow ResNet-18 (about 6 minutes on 2 idle cores), into amo-runs/default-DATE/.\n"
          "\n"
          "  --arch LEVEL  the kernels' CPU level (auto, scalar, avx2, avx512, neon) for\n"
          "                whatever follows, unless the command is given its own --arch\n"
          "\n"
          "Commands:\n", f);
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Run 'amo-bench COMMAND --help' for the options of a command.\n"
          "Exit status: 0 success, 1 the run failed, 2 usage error.\n", f);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "arch", required_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 },
    };
    hx_dist_init(&argc, &argv); /* first: mpirun's ranks (harness/dist.h) */
    const HxInvocation whole = { argc, argv };
    opterr = 0; /* our messages, not getopt's */
    int c;
    /* '+': stop at the command name; what follows is the command's. */
    while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            hx_set_arch_default(optarg);
            break;
        case 'h': /* under mpirun: printed once, not once per rank */
            if (hx_dist_root())
                usage(stdout);
            hx_dist_exit(HX_EXIT_OK);
        case 'V':
            if (hx_dist_root())
                printf("amo-bench %s\n", amo_version());
            hx_dist_exit(HX_EXIT_OK);
        default:
            hx_getopt_fail(c, argv);
        }
    }
    if (optind == argc) {
        const int rc = hx_cmd_default(&whole); /* the main job (README) */
        hx_dist_finalize();
        return rc;
    }
    const char *name = argv[optind];
    for (int i = 0; i < NCOMMANDS; i++) {
        if (strcmp(name, commands[i].name))
            continue;
        hx_set_command(name);
        char **sub = argv + optind;
        const int subc = argc - optind;
        optind = 0; /* glibc: start afresh on the command's argv */
        const int rc = commands[i].run(subc, sub, &whole);
        hx_dist_finalize();
        return rc;
    }
    hx_fail(HX_EXIT_USAGE, "unknown command '%s'", name);
}

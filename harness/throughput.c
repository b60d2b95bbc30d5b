/* amo-bench throughput: full training steps (forward, backward, AMO update)
 * of a ResNet on random data, for images/s and where the time goes. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/common.h"
#include "harness/dist.h"
#include "harness/error.h"
#include "harness/limit.h"
#include "harness/model.h"
#include "harness/parse.h"
#include "harness/timer.h"
#include "common/rng.h"
#include "kernels/update.h"
#include "nn/resnet.h"
#include "optim/optim.h"

static void usage(void)
{
    printf("Usage: amo-bench throughput [OPTIONS]\n\n"
           "Full training steps (forward, backward, AMO update) on random data; prints\n"
           "images/s, the forward / backward / optimizer split, and the convolutions'\n"
           "GFLOP/s beside the machine's measured FMA peak.\n\n"
           "  --model NAME     resnet18 (default), resnet34, resnet50\n"
           "  --batch N        (128)\n"
           "  --hw H           input height and width (32)\n"
           "  --in-ch C        input channels (3)\n"
           "  --classes K      (10)\n"
           "  --stem S         cifar (default) or imagenet\n"
           "  --width W        width multiplier (1)\n"
           "  --bf16           bf16 convolutions, fp32 master weights\n"
           "  --conv-gemm M    weight gradients by im2col + matmul: auto (default: bf16\n"
           "                   layers with small or strided outputs), off, all\n"
           "  --conv-algo A    fp32 3x3 stride-1 convolutions: auto (default: Winograd\n"
           "                   where they have 64 or more channels), direct, winograd\n"
           "  --threads N      (0: one per core)\n"
           "  --steps N        timed steps after 2 warm-up steps (10)\n"
           "  --arch LEVEL     auto, scalar, avx2, avx512\n");
}

/* Multiply-adds of every convolution's forward pass, from its weight shape
 * (OC, IC, KH, KW) and its output's spatial size (the layer of the same
 * name). */
static double conv_macs(const NnResNet *net, double *first)
{
    int nt, nl;
    const NnParamInfo *t = nn_resnet_tensors(net, &nt);
    const NnLayerInfo *l = nn_resnet_layers(net, &nl);
    double macs = 0;
    *first = 0;
    for (int i = 0; i < nt; i++) {
        if (t[i].kind != NN_CONV_WEIGHT)
            continue;
        const size_t len = strlen(t[i].name) - strlen(".weight");
        for (int j = 0; j < nl; j++) {
            if (strncmp(l[j].name, t[i].name, len) || l[j].name[len])
                continue;
            const double m = (double)l[j].dims[0] * l[j].dims[2] * l[j].dims[3] *
                             (double)t[i].count;
            if (macs == 0)
                *first = m;
            macs += m;
            break;
        }
    }
    return macs;
}

/* What a sitting measures: the model, its threads and steps. */
typedef struct Options {
    NnResNetConfig cfg;
    int threads;
    long steps;
    const char *arch;
} Options;

static void parse(int argc, char **argv, Options *o)
{
    static const struct option opts[] = {
        { "model", 1, 0, 'm' }, { "batch", 1, 0, 'b' }, { "hw", 1, 0, 'H' },
        { "in-ch", 1, 0, 'c' }, { "classes", 1, 0, 'k' }, { "stem", 1, 0, 'S' },
        { "width", 1, 0, 'w' }, { "bf16", 0, 0, 'f' }, { "threads", 1, 0, 't' },
        { "conv-gemm", 1, 0, 'G' }, { "conv-algo", 1, 0, 'A' },
        { "steps", 1, 0, 'n' }, { "arch", 1, 0, 'a' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
    };
    static const char *const models[] = { "resnet18", "resnet34", "resnet50", NULL };
    static const char *const stems[] = { "cifar", "imagenet", NULL };
    static const char *const gemms[] = { "auto", "off", "all", NULL }; /* NN_CONV_GEMM_* */
    NnResNetConfig *cfg = &o->cfg;
    *o = (Options){ .cfg = { .depth = 18, .stem = NN_STEM_CIFAR, .width = 1.0, .in_ch = 3,
                             .classes = 10, .batch = 128, .h = 32, .w = 32, .seed = 1 },
                    .steps = 10 };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'm': cfg->depth = (int[]){ 18, 34, 50 }[hx_parse_choice("--model", optarg, models)]; break;
        case 'b': cfg->batch = (int)hx_parse_long("--batch", optarg, 1, 1 << 14); break;
        case 'H': cfg->h = cfg->w = (int)hx_parse_long("--hw", optarg, 1, 4096); break;
        case 'c': cfg->in_ch = (int)hx_parse_long("--in-ch", optarg, 1, 64); break;
        case 'k': cfg->classes = (int)hx_parse_long("--classes", optarg, 1, 100000); break;
        case 'S': cfg->stem = (NnStem)hx_parse_choice("--stem", optarg, stems); break;
        case 'w': {
            char *end;
            cfg->width = strtod(optarg, &end);
            if (*end || !(cfg->width >= 1.0 / 64 && cfg->width <= 8))
                hx_fail(HX_EXIT_USAGE, "--width '%s': expected a number in [1/64, 8]", optarg);
            break;
        }
        case 'f': cfg->bf16 = 1; break;
        case 'G': cfg->conv_gemm = hx_parse_choice("--conv-gemm", optarg, gemms); break;
        case 'A': cfg->conv_algo = hx_parse_choice("--conv-algo", optarg, hx_conv_algo_names); break;
        case 't': o->threads = (int)hx_parse_long("--threads", optarg, 0, 1024); break;
        case 'n': o->steps = hx_parse_long("--steps", optarg, 1, 1L << 30); break;
        case 'a': o->arch = optarg; break;
        case 'h':
            if (hx_dist_root()) /* under mpirun: once, not once per rank */
                usage();
            hx_dist_exit(HX_EXIT_OK);
        default: hx_getopt_fail(c, argv);
        }
    }
    if (optind < argc)
        hx_fail(HX_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
}

/* Seconds summed over the timed steps. */
typedef struct Times {
    double forward, backward, optimizer, sync, grads;
} Times;

/* Two warm-up steps (first touch, oneDNN's caches), then the timed ones on
 * one random batch. */
static Times run(HxModel *m, const NnResNetConfig *cfg, long steps)
{
    const size_t img = (size_t)cfg->in_ch * cfg->h * cfg->w;
    float *x = hx_malloc((size_t)cfg->batch * img * sizeof(float));
    int *y = hx_malloc((size_t)cfg->batch * sizeof(int));
    AmoRng r = amo_rng(7);
    for (size_t i = 0; i < (size_t)cfg->batch * img; i++)
        x[i] = (float)amo_rng_normal(&r);
    for (int i = 0; i < cfg->batch; i++)
        y[i] = (int)amo_rng_below(&r, (uint64_t)cfg->classes);
    Times t = { 0 };
    for (long s = -2; s < steps; s++) {
        float loss;
        OptStepInfo info;
        HxStepTimes st;
        hx_model_step(m, x, y, 0.1f, s + 3, &loss, &info, &st);
        if (s < 0)
            continue;
        NnTiming tm;
        nn_resnet_timing(m->net, &tm);
        t.forward += st.forward;
        t.backward += st.backward;
        t.optimizer += st.optimizer;
        t.sync += tm.sync_ms * 1e-3;
        t.grads += tm.grads_ms * 1e-3;
    }
    free(x);
    free(y);
    return t;
}

static void report(const HxModel *m, const NnResNetConfig *cfg, long steps, const Times *t)
{
    double first;
    const double macs = conv_macs(m->net, &first);
    /* forward, backward data (not for the first convolution: the input
     * needs no gradient) and backward weights: 2 flops per multiply-add */
    const double conv_flops = 2.0 * (3.0 * macs - first) * (double)steps;
    const double peak = hx_fma_peak_gflops(opt_threads(m->opt));
    const double tf = t->forward, tb = t->backward, to = t->optimizer, total = tf + tb + to;
    NnResNetInfo ni;
    nn_resnet_info(m->net, &ni);
    printf("model        resnet%d %s stem, width %g, %d x %d x %d x %d, %s, %zu parameters\n",
           cfg->depth, cfg->stem == NN_STEM_CIFAR ? "cifar" : "imagenet", cfg->width, cfg->batch,
           cfg->in_ch, cfg->h, cfg->w, ni.dtype, ni.nparams);
    printf("threads      %d; oneDNN ISA %s; update kernel %s\n", opt_threads(m->opt), ni.isa,
           kn_kernel_level(KN_K_AMO));
    printf("convolutions %d by Winograd (%d of their passes), %d with weight gradients by\n"
           "             im2col + matmul, the rest direct\n", ni.wino_convs, ni.wino_passes,
           ni.gemm_convs);
    printf("images/s     %.1f  (%ld steps, %.3f s per step)\n",
           (double)cfg->batch * (double)steps / total, steps, total / (double)steps);
    printf("split        forward %.1f%% (weight sync %.1f%%), backward %.1f%% (gradient "
           "reorders %.1f%%), optimizer %.1f%%\n",
           100 * tf / total, 100 * t->sync / total, 100 * tb / total, 100 * t->grads / total,
           100 * to / total);
    printf("per step     forward %.1f ms, backward %.1f ms, optimizer %.2f ms\n",
           1e3 * tf / (double)steps, 1e3 * tb / (double)steps, 1e3 * to / (double)steps);
    const double gflops = conv_flops / (tf + tb) * 1e-9;
    const double per_step = conv_flops / (double)steps * 1e-9;
    /* bf16 on AMX or AVX512_BF16 dot products is not bounded by the fp32 FMA
     * peak; on plain avx512_core oneDNN converts to fp32 and is */
    const int bf16_native = cfg->bf16 && (strstr(ni.isa, "amx") || strstr(ni.isa, "bf16"));
    if (bf16_native)
        printf("conv         %.1f GFLOP per step; over the whole forward + backward time "
               "%.1f GFLOP/s in bf16\n             (no fraction of the fp32 FMA peak "
               "%.1f GFLOP/s: bf16 runs on %s)\n",
               per_step, gflops, peak, ni.isa);
    else if (ni.wino_convs == 0)
        printf("conv         %.1f GFLOP per step; over the whole forward + backward time "
               "%.1f GFLOP/s = %.0f%% of the FMA peak %.1f GFLOP/s (a lower bound: the\n"
               "             time includes batch norm, ReLU, pooling and reorders)\n",
               per_step, gflops, 100 * gflops / peak, peak);
    else /* Winograd does fewer flops than the direct sum: no fraction of the peak */
        printf("conv         %.1f GFLOP per step as direct sums; over the whole forward +\n"
               "             backward time %.1f GFLOP/s of direct sums, Winograd and direct\n"
               "             layers together: %.2fx the FMA peak %.1f GFLOP/s, not a\n"
               "             fraction of it (Winograd does fewer multiplies; --conv-algo\n"
               "             direct gives one)\n",
               per_step, gflops, gflops / peak, peak);
}

int hx_cmd_throughput(int argc, char **argv, const HxInvocation *whole)
{
    (void)whole;
    Options o;
    parse(argc, argv, &o);
    hx_one_process("throughput");
    hx_apply_arch(o.arch);
    HxModel m;
    hx_model_create(&m, &o.cfg, opt_config_default(OPT_AMO), o.threads, 0);
    const Times t = run(&m, &o.cfg, o.steps);
    report(&m, &o.cfg, o.steps, &t);
    hx_model_destroy(&m);
    return HX_EXIT_OK;
}

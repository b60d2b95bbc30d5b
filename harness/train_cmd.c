/* amo-bench train, amo-bench ablation, and the default job (amo-bench with
 * no command): option parsing around harness/train.c. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness/common.h"
#include "harness/dist.h"
#include "harness/error.h"
#include "harness/parse.h"
#include "harness/timer.h"
#include "harness/train.h"
#include "nn/data.h"

/* The main job (amo-bench with no command): sized to take about five minutes
 * on 2 cores (README). */
#define HX_DEFAULT_WIDTH 0.25
#define HX_DEFAULT_EPOCHS 3.0
#define HX_DEFAULT_EVAL_EVERY 100

/* Optimizer settings given on the command line; NAN / -1: not given, so the
 * algorithm's default (opt_config_default) stays. */
typedef struct Overrides {
    double lr, beta, gamma, eps, tau, momentum, dampening, alpha, wd, lo, hi, min_lr, step_gamma;
    int clip, nesterov, bias_correction, decay_mode, schedule, state;
    long warmup, step_size;
} Overrides;

#define MAX_LIST 16
typedef struct Grid {
    int algos[MAX_LIST], nalgos;
    double betas[MAX_LIST], gammas[MAX_LIST], lrs[MAX_LIST];
    int nbetas, ngammas, nlrs;
    unsigned long long seeds[MAX_LIST];
    int nseeds;
    int shard_k, shard_n; /* --shard K/N (1-based); 0/0: not given */
} Grid;

static const char *const datasets[] = { "fashion", "mnist", "cifar10", "synthetic", "folder",
                                        NULL };
static const char *const models[] = { "resnet18", "resnet34", "resnet50", NULL };
static const char *const algos[] = { "amo", "adam", "sgd", "rmsprop", NULL };
static const char *const onoff[] = { "off", "on", NULL };
static const char *const decays[] = { "l2", "decoupled", NULL };
static const char *const scheds[] = { "constant", "step", "cosine", "invsqrt", NULL };
static const char *const states[] = { "fp32", "bf16", NULL };
static const char *const inits[] = { "he", "torch", NULL }; /* NnInit's order */

/* --preset imagenet-resnet50, the paper's ImageNet setting as far as it is
 * known here: ResNet-50 (the ImageNet stem comes with --dataset folder),
 * AMO with clipping at tau 0.5 (the paper).  Batch 256 and 90 epochs are
 * PyTorch's ImageNet example's, the cosine schedule ours: the paper's are
 * not in this repository (results/imagenet/README.md).  Options after it
 * override it. */
static const char *const presets[] = { "imagenet-resnet50", NULL };

static void preset(int which, HxTrainSpec *s, int *algo, Overrides *ov)
{
    (void)which; /* one so far */
    s->dataset = "folder";
    s->depth = 50;
    s->width = 1.0;
    s->batch = 256;
    s->epochs = 90;
    *algo = OPT_AMO;
    ov->clip = 1;
    ov->tau = 0.5;
    ov->schedule = OPT_SCHED_COSINE;
}

static double parse_double(const char *opt, const char *s, double min, double max)
{
    char *end;
    const double x = strtod(s, &end);
    if (!*s || *end || !isfinite(x) || x < min || x > max)
        hx_fail(HX_EXIT_USAGE, "%s '%s': expected a number in [%g, %g]", opt, s, min, max);
    return x;
}

/* "a,b,c" -> values; each through parse_double. */
static int parse_list(const char *opt, const char *s, double *out, int max, double lo, double hi)
{
    char *copy = hx_malloc(strlen(s) + 1), *save = NULL;
    strcpy(copy, s);
    int n = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max)
            hx_fail(HX_EXIT_USAGE, "%s: at most %d values", opt, max);
        out[n++] = parse_double(opt, t, lo, hi);
    }
    free(copy);
    if (!n)
        hx_fail(HX_EXIT_USAGE, "%s '%s': expected a comma-separated list", opt, s);
    return n;
}

/* A Slurm job array's task as a share: K = SLURM_ARRAY_TASK_ID -
 * SLURM_ARRAY_TASK_MIN + 1 of SLURM_ARRAY_TASK_COUNT (arrays with a step or
 * gaps need --shard K/N). */
static void shard_from_slurm(int *k, int *n)
{
    const char *id = getenv("SLURM_ARRAY_TASK_ID"), *cnt = getenv("SLURM_ARRAY_TASK_COUNT");
    const char *min = getenv("SLURM_ARRAY_TASK_MIN"), *max = getenv("SLURM_ARRAY_TASK_MAX");
    if (!id || !cnt)
        hx_fail(HX_EXIT_USAGE, "--shard slurm: SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT "
                "are not set (not a Slurm job array task)");
    const long i = hx_parse_long("SLURM_ARRAY_TASK_ID", id, 0, 1L << 30);
    const long c = hx_parse_long("SLURM_ARRAY_TASK_COUNT", cnt, 1, 1 << 20);
    const long lo = min ? hx_parse_long("SLURM_ARRAY_TASK_MIN", min, 0, 1L << 30) : 0;
    const long hi = max ? hx_parse_long("SLURM_ARRAY_TASK_MAX", max, 0, 1L << 30) : lo + c - 1;
    if (hi - lo + 1 != c || i < lo || i > hi)
        hx_fail(HX_EXIT_USAGE, "Slurm job array %ld-%ld with %ld tasks (task %ld) is not a "
                "contiguous range: give --shard K/N", lo, hi, c, i);
    *k = (int)(i - lo + 1);
    *n = (int)c;
}

/* "K/N" with 1 <= K <= N, or "slurm": one share of a grid. */
static void parse_shard(const char *what, const char *s, int *k, int *n)
{
    if (!strcmp(s, "slurm")) {
        shard_from_slurm(k, n);
        return;
    }
    char tail;
    long a, b;
    if (sscanf(s, "%ld/%ld%c", &a, &b, &tail) != 2 || b < 1 || b > 1 << 20 || a < 1 || a > b)
        hx_fail(HX_EXIT_USAGE, "%s '%s': expected K/N with 1 <= K <= N <= %d, or slurm", what,
                s, 1 << 20);
    *k = (int)a;
    *n = (int)b;
}

static OptConfig make_opt(int algo, const Overrides *o)
{
    OptConfig c = opt_config_default((OptAlgo)algo);
#define SETF(f, v) if (!isnan(o->v)) c.f = (float)o->v
    SETF(lr, lr); SETF(beta, beta); SETF(gamma, gamma); SETF(eps, eps); SETF(tau, tau);
    SETF(momentum, momentum); SETF(dampening, dampening); SETF(alpha, alpha);
    SETF(weight_decay, wd); SETF(lo, lo); SETF(hi, hi); SETF(min_lr, min_lr);
    SETF(step_gamma, step_gamma);
#undef SETF
    if (o->clip >= 0) c.clip = o->clip;
    if (o->nesterov >= 0) c.nesterov = o->nesterov;
    if (o->bias_correction >= 0) c.bias_correction = o->bias_correction;
    if (o->decay_mode >= 0) c.decay_mode = (OptDecay)o->decay_mode;
    if (o->schedule >= 0) c.schedule = (OptSchedule)o->schedule;
    if (o->state >= 0) c.state = (OptStateType)o->state;
    if (o->warmup >= 0) c.warmup = (uint64_t)o->warmup;
    if (o->step_size >= 0) c.step_size = (uint64_t)o->step_size;
    return c;
}

static void usage(const char *cmd)
{
    printf("Usage: amo-bench %s [OPTIONS]\n\n", cmd);
    if (!strcmp(cmd, "ablation"))
        printf("Runs a grid of training runs one after the other, appending each to the same\n"
               "CSVs in --out and skipping (or resuming) runs already there.  Grid lists:\n"
               "  --optimizers LIST   amo,adam,sgd,rmsprop            (default: amo)\n"
               "  --betas LIST        e.g. 0.8,0.9,0.95               (default: the optimizer's)\n"
               "  --gammas LIST       e.g. 0.99,0.999,0.9999\n"
               "  --lrs LIST          learning rates\n"
               "  --seeds LIST        e.g. 1,2,3                      (default: 1)\n"
               "  --shard K/N         run only the K-th of N shares of the grid (run i, in the\n"
               "                      grid's order from 0, belongs to share i %% N + 1), then\n"
               "                      'combine'; --shard slurm: K/N from a Slurm job array's\n"
               "                      SLURM_ARRAY_TASK_ID and _COUNT; under mpirun: the rank\n"
               "Every option of 'train' sets the rest.\n\n");
    else
        printf("Trains a ResNet end to end and writes, under OUT/runs/RUN_ID/, steps.csv (one\n"
               "row per step), convergence.csv (one row per evaluation), summary.csv and\n"
               "metadata.json; OUT/*.csv combine every run in OUT.\n\n");
    printf("Data:\n"
           "  --dataset NAME        fashion (default), mnist, cifar10, synthetic, folder\n"
           "  --data DIR            data directory (default for fashion: %s); folder:\n"
           "                        DIR/train/CLASS/*.JPEG, DIR/val/CLASS/*.JPEG (ImageFolder)\n"
           "  --val N               validation examples from the training set (default 5000;\n"
           "                        folder: only when there is no DIR/val)\n"
           "  --no-augment          no random crop / flip\n"
           "  --syn-n N, --in-ch C, --hw H, --classes K   synthetic geometry (2048, 3, 32, 10)\n"
           "  --loader-threads N    folder: decoding threads (default 2; 0: in the loop)\n"
           "  --full-decode         folder: training JPEGs at full size too, never the\n"
           "                        reduced-scale IDCT (evaluations always decode at full size)\n"
           "  --preset NAME         imagenet-resnet50: --dataset folder --model resnet50\n"
           "                        --width 1 --batch 256 --epochs 90 --optimizer amo --clip on\n"
           "                        --tau 0.5 --schedule cosine (options after it override)\n"
           "  --image-size N        folder: crop side (224; evaluation: resize to N*256/224)\n"
           "Model:\n"
           "  --model NAME          resnet18 (default), resnet34, resnet50\n"
           "  --width W             width multiplier (default 0.25)\n"
           "  --bf16                bf16 convolutions, fp32 master weights\n"
           "  --conv-algo A         fp32 3x3/1 convolutions: auto (Winograd at 64+ channels),\n"
           "                        direct, winograd\n"
           "  --init he|torch       convolution weights: he (default; torchvision's ResNet,\n"
           "                        N(0, 2/fan_out)) or torch (nn.Conv2d's default,\n"
           "                        U(+-1/sqrt(fan_in)))\n"
           "Optimizer (defaults: the algorithm's, see README):\n"
           "  --optimizer NAME      amo (default), adam, sgd, rmsprop\n"
           "  --lr X  --beta X  --gamma X  --eps X  --momentum X  --dampening X  --alpha X\n"
           "  --nesterov            SGD Nesterov momentum\n"
           "  --bias-correction on|off   AMO only: on makes it Adam\n"
           "  --clip on|off  --tau X      global-norm gradient clipping (AMO: on, tau 1)\n"
           "  --bounds LO,HI        parameter bounds (default none)\n"
           "  --weight-decay X  --decay l2|decoupled\n"
           "  --state fp32|bf16     moment storage (bf16: AMO and Adam)\n"
           "  --schedule NAME       constant (default), step, cosine, invsqrt\n"
           "  --warmup N  --step-size N  --step-gamma X  --min-lr X\n"
           "  --label-smoothing X   (default 0.1)\n"
           "Budget and run:\n"
           "  --batch N (128)  --epochs X (1)  --steps N (overrides --epochs)\n"
           "  --eval-every N        steps between evaluations (default: one epoch)\n"
           "  --test-every-eval     test set at every evaluation, not only the last\n"
           "  --test-at-best        test set also at each new best validation accuracy\n"
           "  --targets LIST        validation accuracies to time (default 0.85,0.88,0.90)\n"
           "  --seed N (1)  --threads N (0: one per core)  --arch LEVEL\n"
           "  --out DIR (amo-runs)  --checkpoint-every N  --resume  --quiet\n"
           "  --save-params FILE    the final parameters, raw little-endian fp32 in the\n"
           "                        network's tensor order\n"
           "Data-parallel (train under mpirun -np N; --batch stays the whole batch):\n"
           "  --sync-bn             batch norm over the whole batch, as one process computes\n"
           "                        it (default: each rank's share, as PyTorch DDP)\n",
           NN_FASHION_DIR);
}

enum {
    O_DATASET = 256, O_DATA, O_VAL, O_NOAUG, O_SYN_N, O_INCH, O_HW, O_CLASSES, O_MODEL, O_WIDTH,
    O_BF16, O_CONV_ALGO, O_OPT, O_LR, O_BETA, O_GAMMA, O_EPS, O_MOM, O_DAMP, O_ALPHA, O_NEST, O_BC,
    O_CLIP,
    O_TAU, O_BOUNDS, O_WD, O_DECAY, O_STATE, O_SCHED, O_WARMUP, O_STEPSIZE, O_STEPGAMMA,
    O_MINLR, O_LS, O_BATCH, O_EPOCHS, O_STEPS, O_EVAL, O_TESTEVERY, O_TESTBEST, O_TARGETS,
    O_SEED, O_INIT,
    O_THREADS, O_ARCH, O_OUT, O_CKPT, O_RESUME, O_QUIET, O_HELP, O_LOADER_THREADS, O_FULL_DECODE,
    O_IMAGE_SIZE, O_PRESET, O_SYNC_BN, O_SAVE_PARAMS,
    O_G_OPTS, O_G_BETAS, O_G_GAMMAS, O_G_LRS, O_G_SEEDS, O_G_SHARD,
};

static const struct option long_opts[] = {
    { "dataset", 1, 0, O_DATASET }, { "data", 1, 0, O_DATA }, { "val", 1, 0, O_VAL },
    { "no-augment", 0, 0, O_NOAUG }, { "syn-n", 1, 0, O_SYN_N }, { "in-ch", 1, 0, O_INCH },
    { "hw", 1, 0, O_HW }, { "classes", 1, 0, O_CLASSES }, { "model", 1, 0, O_MODEL },
    { "width", 1, 0, O_WIDTH }, { "bf16", 0, 0, O_BF16 },
    { "conv-algo", 1, 0, O_CONV_ALGO }, { "optimizer", 1, 0, O_OPT },
    { "lr", 1, 0, O_LR }, { "beta", 1, 0, O_BETA }, { "gamma", 1, 0, O_GAMMA },
    { "eps", 1, 0, O_EPS }, { "momentum", 1, 0, O_MOM }, { "dampening", 1, 0, O_DAMP },
    { "alpha", 1, 0, O_ALPHA }, { "nesterov", 0, 0, O_NEST }, { "bias-correction", 1, 0, O_BC },
    { "clip", 1, 0, O_CLIP }, { "tau", 1, 0, O_TAU }, { "bounds", 1, 0, O_BOUNDS },
    { "weight-decay", 1, 0, O_WD }, { "decay", 1, 0, O_DECAY }, { "state", 1, 0, O_STATE },
    { "schedule", 1, 0, O_SCHED }, { "warmup", 1, 0, O_WARMUP }, { "step-size", 1, 0, O_STEPSIZE },
    { "step-gamma", 1, 0, O_STEPGAMMA }, { "min-lr", 1, 0, O_MINLR },
    { "label-smoothing", 1, 0, O_LS }, { "batch", 1, 0, O_BATCH }, { "epochs", 1, 0, O_EPOCHS },
    { "steps", 1, 0, O_STEPS }, { "eval-every", 1, 0, O_EVAL },
    { "test-every-eval", 0, 0, O_TESTEVERY }, { "test-at-best", 0, 0, O_TESTBEST },
    { "targets", 1, 0, O_TARGETS }, { "init", 1, 0, O_INIT },
    { "seed", 1, 0, O_SEED }, { "threads", 1, 0, O_THREADS }, { "arch", 1, 0, O_ARCH },
    { "out", 1, 0, O_OUT }, { "checkpoint-every", 1, 0, O_CKPT }, { "resume", 0, 0, O_RESUME },
    { "quiet", 0, 0, O_QUIET }, { "help", 0, 0, O_HELP },
    { "loader-threads", 1, 0, O_LOADER_THREADS }, { "full-decode", 0, 0, O_FULL_DECODE },
    { "image-size", 1, 0, O_IMAGE_SIZE }, { "preset", 1, 0, O_PRESET },
    { "sync-bn", 0, 0, O_SYNC_BN }, { "save-params", 1, 0, O_SAVE_PARAMS },
    { "optimizers", 1, 0, O_G_OPTS }, { "betas", 1, 0, O_G_BETAS }, { "gammas", 1, 0, O_G_GAMMAS },
    { "lrs", 1, 0, O_G_LRS }, { "seeds", 1, 0, O_G_SEEDS }, { "shard", 1, 0, O_G_SHARD },
    { 0, 0, 0, 0 },
};

/* Parses argv into spec (with algo and overrides kept apart) and grid. */
static void parse(int argc, char **argv, const char *cmd, HxTrainSpec *s, int *algo,
                  Overrides *ov, Grid *g, const char **arch)
{
    const int grid_ok = !strcmp(cmd, "ablation");
    opterr = 0;
    int c, li = 0;
    while ((c = getopt_long(argc, argv, ":", long_opts, &li)) != -1) {
        const char *a = optarg;
        if (c >= O_G_OPTS && !grid_ok) /* (argv[optind - 1] may be the option's value) */
            hx_fail(HX_EXIT_USAGE, "--%s: only 'ablation' takes grid lists", long_opts[li].name);
        switch (c) {
        case O_DATASET: s->dataset = datasets[hx_parse_choice("--dataset", a, datasets)]; break;
        case O_DATA: s->data_dir = a; break;
        case O_VAL: s->nval = (int)hx_parse_long("--val", a, 1, 1 << 24); break;
        case O_NOAUG: s->augment = 0; break;
        case O_SYN_N: s->syn_n = (int)hx_parse_long("--syn-n", a, 1, 1 << 24); break;
        case O_INCH: s->syn_ch = (int)hx_parse_long("--in-ch", a, 1, 64); break;
        case O_HW: s->syn_hw = (int)hx_parse_long("--hw", a, 1, 1024); break;
        case O_CLASSES: s->syn_classes = (int)hx_parse_long("--classes", a, 1, 256); break;
        case O_MODEL: s->depth = (int[]){ 18, 34, 50 }[hx_parse_choice("--model", a, models)]; break;
        case O_WIDTH: s->width = parse_double("--width", a, 1.0 / 64, 8); break;
        case O_BF16: s->bf16 = 1; break;
        case O_CONV_ALGO:
            s->conv_algo = hx_parse_choice("--conv-algo", a, hx_conv_algo_names);
            break;
        case O_OPT: *algo = hx_parse_choice("--optimizer", a, algos); break;
        case O_LR: ov->lr = parse_double("--lr", a, 0, 1e6); break;
        case O_BETA: ov->beta = parse_double("--beta", a, 0, 0.999999); break;
        case O_GAMMA: ov->gamma = parse_double("--gamma", a, 0, 0.9999999); break;
        case O_EPS: ov->eps = parse_double("--eps", a, 1e-30, 1); break;
        case O_MOM: ov->momentum = parse_double("--momentum", a, 0, 0.999999); break;
        case O_DAMP: ov->dampening = parse_double("--dampening", a, 0, 1); break;
        case O_ALPHA: ov->alpha = parse_double("--alpha", a, 0, 0.999999); break;
        case O_NEST: ov->nesterov = 1; break;
        case O_BC: ov->bias_correction = hx_parse_choice("--bias-correction", a, onoff); break;
        case O_CLIP: ov->clip = hx_parse_choice("--clip", a, onoff); break;
        case O_TAU: ov->tau = parse_double("--tau", a, 1e-12, 1e12); break;
        case O_BOUNDS: {
            double b[2];
            if (parse_list("--bounds", a, b, 2, -1e30, 1e30) != 2 || b[0] > b[1])
                hx_fail(HX_EXIT_USAGE, "--bounds '%s': expected LO,HI with LO <= HI", a);
            ov->lo = b[0];
            ov->hi = b[1];
            break;
        }
        case O_WD: ov->wd = parse_double("--weight-decay", a, 0, 1); break;
        case O_DECAY: ov->decay_mode = hx_parse_choice("--decay", a, decays); break;
        case O_STATE: ov->state = hx_parse_choice("--state", a, states); break;
        case O_SCHED: ov->schedule = hx_parse_choice("--schedule", a, scheds); break;
        case O_WARMUP: ov->warmup = hx_parse_long("--warmup", a, 0, 1L << 40); break;
        case O_STEPSIZE: ov->step_size = hx_parse_long("--step-size", a, 1, 1L << 40); break;
        case O_STEPGAMMA: ov->step_gamma = parse_double("--step-gamma", a, 1e-6, 1); break;
        case O_MINLR: ov->min_lr = parse_double("--min-lr", a, 0, 1e6); break;
        case O_LS: s->smoothing = (float)parse_double("--label-smoothing", a, 0, 1); break;
        case O_BATCH: s->batch = (int)hx_parse_long("--batch", a, 1, 1 << 16); break;
        case O_EPOCHS: s->epochs = parse_double("--epochs", a, 1e-6, 1e6); break;
        case O_STEPS: s->steps = hx_parse_long("--steps", a, 1, 1L << 40); break;
        case O_EVAL: s->eval_every = hx_parse_long("--eval-every", a, 1, 1L << 40); break;
        case O_TESTEVERY: s->test_every_eval = 1; break;
        case O_TESTBEST: s->test_at_best = 1; break;
        case O_INIT: s->init = hx_parse_choice("--init", a, inits); break;
        case O_TARGETS:
            s->ntargets = parse_list("--targets", a, s->targets, HX_MAX_TARGETS, 0, 1);
            break;
        case O_SEED: s->seed = (uint64_t)hx_parse_long("--seed", a, 0, 1L << 62); break;
        case O_THREADS: s->threads = (int)hx_parse_long("--threads", a, 0, 1024); break;
        case O_ARCH: *arch = a; break;
        case O_OUT: s->out = a; break;
        case O_CKPT: s->ckpt_every = hx_parse_long("--checkpoint-every", a, 1, 1L << 40); break;
        case O_RESUME: s->resume = 1; break;
        case O_QUIET: s->quiet = 1; break;
        case O_LOADER_THREADS:
            s->loader_threads = (int)hx_parse_long("--loader-threads", a, 0, 256);
            break;
        case O_FULL_DECODE: s->full_decode = 1; break;
        case O_SYNC_BN: s->sync_bn = 1; break;
        case O_SAVE_PARAMS: s->save_params = a; break;
        case O_PRESET: preset(hx_parse_choice("--preset", a, presets), s, algo, ov); break;
        case O_IMAGE_SIZE: s->image_size = (int)hx_parse_long("--image-size", a, 8, 1024); break;
        case O_HELP:
            if (hx_dist_root()) /* under mpirun: once, not once per rank */
                usage(cmd);
            hx_dist_exit(HX_EXIT_OK);
        case O_G_OPTS: {
            char *copy = hx_malloc(strlen(a) + 1), *save = NULL;
            strcpy(copy, a);
            g->nalgos = 0;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (g->nalgos == MAX_LIST)
                    hx_fail(HX_EXIT_USAGE, "--optimizers: at most %d", MAX_LIST);
                g->algos[g->nalgos++] = hx_parse_choice("--optimizers", t, algos);
            }
            free(copy);
            break;
        }
        case O_G_BETAS: g->nbetas = parse_list("--betas", a, g->betas, MAX_LIST, 0, 0.999999); break;
        case O_G_GAMMAS: g->ngammas = parse_list("--gammas", a, g->gammas, MAX_LIST, 0, 0.9999999); break;
        case O_G_LRS: g->nlrs = parse_list("--lrs", a, g->lrs, MAX_LIST, 0, 1e6); break;
        case O_G_SEEDS: {
            double v[MAX_LIST];
            g->nseeds = parse_list("--seeds", a, v, MAX_LIST, 0, 4503599627370496.0);
            for (int i = 0; i < g->nseeds; i++) {
                if (v[i] != floor(v[i]))
                    hx_fail(HX_EXIT_USAGE, "--seeds '%s': seeds are whole numbers", a);
                g->seeds[i] = (unsigned long long)v[i];
            }
            break;
        }
        case O_G_SHARD: parse_shard("--shard", a, &g->shard_k, &g->shard_n); break;
        default: hx_getopt_fail(c, argv);
        }
    }
    if (optind < argc)
        hx_fail(HX_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
}

static Overrides no_overrides(void)
{
    return (Overrides){ NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN,
                        -1, -1, -1, -1, -1, -1, -1, -1 };
}

/* Everything before the first run: arch, threads, output directory. */
static void prepare(const HxTrainSpec *s, const char *arch)
{
    hx_apply_arch(arch);
    hx_out_dir("--out", s->out);
}

int hx_cmd_train(int argc, char **argv, const HxInvocation *whole)
{
    HxTrainSpec s;
    hx_train_defaults(&s);
    int algo = OPT_AMO;
    Overrides ov = no_overrides();
    Grid g = { 0 };
    const char *arch = NULL;
    parse(argc, argv, "train", &s, &algo, &ov, &g, &arch);
    s.opt = make_opt(algo, &ov);
    s.data_parallel = 1; /* under mpirun -np N, N ranks share each batch */
    if (s.sync_bn && s.bf16)
        hx_fail(HX_EXIT_USAGE, "--sync-bn with --bf16: synchronised batch norm is fp32 only");
    hx_train_run_id(&s);
    prepare(&s, arch);
    HxTrainResult r;
    hx_train_run(&s, whole, &r);
    if (hx_dist_root()) {
        hx_train_combine(s.out);
        if (!s.quiet)
            hx_train_print_table(&s, &r, 1);
    }
    return r.diverged ? HX_EXIT_FAIL : HX_EXIT_OK;
}

int hx_cmd_combine(int argc, char **argv, const HxInvocation *whole)
{
    (void)whole;
    static const struct option opts[] = {
        { "out", 1, 0, 'o' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *out = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'h':
            if (hx_dist_root()) /* under mpirun: once, not once per rank */
                printf("Usage: amo-bench combine --out DIR\n\n"
                       "Rewrites DIR/summary.csv, convergence.csv and steps.csv from every run\n"
                       "under DIR/runs/ (after runs made in parallel into one DIR).\n");
            return HX_EXIT_OK;
        default: hx_getopt_fail(c, argv);
        }
    }
    if (optind < argc)
        hx_fail(HX_EXIT_USAGE, "combine: unexpected argument '%s'", argv[optind]);
    hx_one_process("combine");
    if (!out)
        hx_fail(HX_EXIT_USAGE, "combine: --out DIR is required");
    char runs[4200];
    struct stat sb;
    if ((size_t)snprintf(runs, sizeof runs, "%s/runs", out) >= sizeof runs || stat(runs, &sb) != 0
        || !S_ISDIR(sb.st_mode))
        hx_fail(HX_EXIT_USAGE, "--out %s: no runs/ directory there", out);
    hx_train_combine(out);
    return HX_EXIT_OK;
}

int hx_cmd_ablation(int argc, char **argv, const HxInvocation *whole)
{
    HxTrainSpec base;
    hx_train_defaults(&base);
    base.resume = 1; /* a grid picks up where it stopped */
    int algo = OPT_AMO;
    Overrides ov = no_overrides();
    Grid g = { 0 };
    const char *arch = NULL;
    parse(argc, argv, "ablation", &base, &algo, &ov, &g, &arch);
    if (!g.nalgos)
        g.algos[g.nalgos++] = algo;
    if (!g.nseeds)
        g.seeds[g.nseeds++] = base.seed;
    const int nb = g.nbetas ? g.nbetas : 1, ng = g.ngammas ? g.ngammas : 1,
              nl = g.nlrs ? g.nlrs : 1;
    const int total = g.nalgos * nb * ng * nl * g.nseeds;
    HxTrainSpec *specs = hx_malloc((size_t)total * sizeof(*specs));
    HxTrainResult *res = hx_malloc((size_t)total * sizeof(*res));
    int k = 0;
    for (int a = 0; a < g.nalgos; a++)
        for (int l = 0; l < nl; l++)
            for (int b = 0; b < nb; b++)
                for (int c = 0; c < ng; c++)
                    for (int sd = 0; sd < g.nseeds; sd++) {
                        Overrides o = ov;
                        if (g.nbetas) o.beta = g.betas[b];
                        if (g.ngammas) o.gamma = g.gammas[c];
                        if (g.nlrs) o.lr = g.lrs[l];
                        HxTrainSpec s = base;
                        s.opt = make_opt(g.algos[a], &o);
                        s.seed = g.seeds[sd];
                        s.run_id[0] = '\0';
                        hx_train_run_id(&s);
                        specs[k++] = s;
                    }
    /* under mpirun each rank runs a share of its own, alone (no data parallelism) */
    const int ranks = hx_dist_size();
    if (ranks > 1 && g.shard_n)
        hx_fail(HX_EXIT_USAGE, "--shard under mpirun: each of the %d ranks takes its share of the "
                "grid by itself; drop --shard", ranks);
    if (!g.shard_n) {
        g.shard_k = hx_dist_rank() + 1;
        g.shard_n = ranks;
    }

    /* this share's runs, moved to the front (grid order kept) */
    int mine = 0;
    for (int i = 0; i < total; i++)
        if (i % g.shard_n == g.shard_k - 1)
            specs[mine++] = specs[i];
    if (g.shard_n > 1 && !base.quiet)
        fprintf(stderr, "ablation: share %d/%d of the grid, %d of its %d runs\n", g.shard_k,
                g.shard_n, mine, total);
    prepare(&base, arch);
    if (ranks > 1) /* from here on each rank's failures are its own runs' */
        hx_error_local(1);
    int failed = 0;
    for (int i = 0; i < mine; i++) {
        if (!base.quiet)
            fprintf(stderr, "[%d/%d] %s\n", i + 1, mine, specs[i].run_id);
        hx_train_run(&specs[i], whole, &res[i]);
        hx_train_combine(base.out);
        failed |= res[i].diverged;
    }
    if (ranks > 1) { /* every rank's runs are in: rank 0 combines them once */
        hx_dist_barrier();
        if (hx_dist_root()) {
            hx_train_combine(base.out);
            if (!base.quiet)
                printf("ablation: %d runs on %d ranks; %s/summary.csv, convergence.csv and "
                       "steps.csv combine them all\n", total, ranks, base.out);
        }
    } else {
        if (!base.quiet)
            hx_train_print_table(specs, res, mine);
        if (g.shard_n > 1 && !base.quiet)
            printf("\nshare %d/%d: %s's combined CSVs list the runs finished so far; after the "
                   "last share, 'amo-bench combine --out %s' lists them all\n", g.shard_k,
                   g.shard_n, base.out, base.out);
    }
    free(specs);
    free(res);
    (void)failed; /* a diverged run is a result in a grid, not a failure */
    return HX_EXIT_OK;
}

/* amo-bench with no command: AMO against Adam on Fashion-MNIST with a
 * narrow ResNet-18, about five minutes on 2 cores, in a new directory. */
int hx_cmd_default(const HxInvocation *whole)
{
    char ts[32], out[96];
    hx_utc_timestamp(ts, sizeof ts);
    hx_dist_bcast_bytes(ts, sizeof ts, 0); /* under mpirun: rank 0's second */
    for (char *p = ts; *p; p++)
        if (*p == ':')
            *p = '-';
    snprintf(out, sizeof out, "amo-runs/default-%s", ts);
    HxTrainSpec s[2];
    HxTrainResult r[2];
    for (int i = 0; i < 2; i++) {
        hx_train_defaults(&s[i]);
        s[i].out = out;
        s[i].width = HX_DEFAULT_WIDTH;
        s[i].epochs = HX_DEFAULT_EPOCHS;
        s[i].eval_every = HX_DEFAULT_EVAL_EVERY;
        s[i].opt = opt_config_default(i == 0 ? OPT_AMO : OPT_ADAM);
        s[i].data_parallel = 1; /* under mpirun, as train */
        hx_train_run_id(&s[i]);
    }
    prepare(&s[0], NULL);
    const int root = hx_dist_root();
    if (root)
        fprintf(stderr, "amo-bench: the main job: AMO against Adam, Fashion-MNIST, ResNet-18 at width "
            "%g, %g epochs each; results in %s\n", HX_DEFAULT_WIDTH, HX_DEFAULT_EPOCHS, out);
    for (int i = 0; i < 2; i++) {
        hx_train_run(&s[i], whole, &r[i]);
        if (root)
            hx_train_combine(out);
    }
    if (!root)
        return HX_EXIT_OK;
    hx_train_print_table(s, r, 2);
    printf("\nCSVs: %s/summary.csv, convergence.csv, steps.csv\n", out);
    return HX_EXIT_OK;
}

/* One training run of a ResNet on a data set with one optimizer, as
 * `amo-bench train`, `amo-bench ablation` and the default job run it.
 *
 * A run lives in OUT/runs/RUN_ID/: steps.csv (one row per step),
 * convergence.csv (one row per evaluation), summary.csv (one row),
 * metadata.json, and while it runs checkpoint.bin + optim-STEP.state
 * (harness/checkpoint.h).  The
 * combined OUT/steps.csv, convergence.csv and summary.csv are rebuilt from
 * every run directory after each run, so a grid appends to them and a run
 * that was interrupted resumes from its last checkpoint. */
#ifndef AMO_HARNESS_TRAIN_H
#define AMO_HARNESS_TRAIN_H

#include <stdint.h>

#include "harness/commands.h"
#include "optim/optim.h"

#define HX_MAX_TARGETS 4
#define HX_RUN_ID_MAX 160 /* bytes of a run id, its NUL included */

typedef struct HxTrainSpec {
    /* data */
    const char *dataset;     /* fashion, mnist, cifar10, synthetic, folder       */
    const char *data_dir;    /* NULL: the dataset's default                      */
    int nval;                /* validation examples taken from the training set  */
    int augment;             /* random crop (pad 2 at 28x28, 4 at 32x32) + flip  */
    int syn_n, syn_ch, syn_hw, syn_classes; /* synthetic geometry                */
    int loader_threads;      /* folder: decoding threads (0: in the loop)        */
    int full_decode;         /* folder: training JPEGs at full size too          */
    int image_size;          /* folder: the crop's side (224); evaluation resizes */
                             /* the shorter side to image_size * 256 / 224       */
    /* model */
    int depth;               /* 18, 34, 50                                        */
    double width;
    int bf16;
    int conv_algo;           /* NN_CONV_ALGO_* (0: auto): hx_conv_algo_names     */
    int init;                /* NN_INIT_HE (0) or NN_INIT_TORCH (nn/resnet.h)    */
    /* optimizer: algorithm and every hyperparameter */
    OptConfig opt;
    float smoothing;         /* label smoothing of the training loss             */
    /* budget */
    int batch;
    double epochs;           /* used when steps == 0                              */
    long steps;
    long eval_every;         /* steps; 0: once per epoch                          */
    int test_every_eval;     /* 0: the test set only at the final evaluation     */
    int test_at_best;        /* 1: also at each new best validation accuracy, so */
                             /* convergence.csv has the test accuracy at the     */
                             /* best-validation point without keeping a copy     */
    double targets[HX_MAX_TARGETS];
    int ntargets;
    /* run */
    uint64_t seed;           /* initialisation, data order, augmentation         */
    int threads;
    const char *out;
    long ckpt_every;         /* steps, rounded up to an evaluation; 0: at evals  */
    int resume;              /* 1: continue from a checkpoint if there is one    */
    int quiet;
    int data_parallel;       /* 1: split over the ranks of harness/dist.h     */
    int sync_bn;             /* data-parallel: batch norm over the whole batch */
    const char *save_params; /* the final parameters, raw fp32, or NULL      */
    char run_id[HX_RUN_ID_MAX]; /* filled by hx_train_run_id if empty            */
} HxTrainSpec;

typedef struct HxTrainResult {
    long steps;
    double seconds, images_per_s;
    double final_val_acc, best_val_acc, final_test_acc, final_val_loss;
    long best_val_step;
    long steps_to[HX_MAX_TARGETS];
    double seconds_to[HX_MAX_TARGETS];
    int reached[HX_MAX_TARGETS];
    uint64_t clipped, skipped;
    int diverged;
    int ranks;               /* data-parallel ranks the run was trained on        */
    double ms_data, ms_forward, ms_backward, ms_optim; /* means per step          */
    int already_done;        /* the run had finished before: nothing was run,    */
                             /* the rest is read back from its summary.csv       */
} HxTrainResult;

/* The defaults of `amo-bench train` (README): Fashion-MNIST, ResNet-18 at
 * width 0.25, AMO with the paper's defaults, batch 128, 1 epoch. */
void hx_train_defaults(HxTrainSpec *s);

/* A readable id from the settings that vary in studies, e.g.
 * "fashion-r18w0.25-amo-lr0.001-b0.9-g0.999-clip1-s1". */
void hx_train_run_id(HxTrainSpec *s);

/* Runs (or resumes, or skips when finished) one run.  Exits through hx_fail
 * on errors, naming what failed. */
void hx_train_run(const HxTrainSpec *s, const HxInvocation *whole, HxTrainResult *r);

/* Rebuilds OUT/steps.csv, convergence.csv and summary.csv from every
 * OUT/runs/x/ (sorted by name). */
void hx_train_combine(const char *out);

/* Prints one line per result, a table. */
void hx_train_print_table(const HxTrainSpec *specs, const HxTrainResult *res, int n);

#endif

/* One training run's state and its files, shared by the loop
 * (harness/train.c) and the files it writes (harness/run_files.c): the
 * CSVs, metadata.json, the checkpoint and optimizer state (their format:
 * harness/checkpoint.c), the combined CSVs.  Internal to the harness. */
#ifndef AMO_HARNESS_RUN_H
#define AMO_HARNESS_RUN_H

#include <stddef.h>

#include "harness/checkpoint.h"
#include "harness/commands.h"
#include "harness/model.h"
#include "harness/source.h"
#include "harness/train.h"
#include "nn/data.h"
#include "nn/folder.h"
#include "nn/loader.h"

/* The rows kept in memory, written whole at checkpoints. */
typedef struct Rows {
    HxStepRow *s;
    HxConvRow *c;
    size_t ns, nc, caps, capc;
} Rows;

typedef struct Run {
    const HxTrainSpec *s;
    char dir[4096];
    /* the data: in memory (IDX, CIFAR-10, synthetic) or an image folder */
    NnDataset train, test;
    NnSplit split;
    int *test_idx;          /* 0 .. test.n - 1, the test batcher's list */
    NnBatcher tb, vb, eb;
    NnFolder ftrain, fval, ftest; /* DIR/train, DIR/val, DIR/test         */
    NnLoader *tl, *vl, *el;
    HxSource tsrc, vsrc, esrc; /* training, validation, test batches     */
    int test_is_val;        /* no test set of its own: the final test     */
                            /* figures are the validation set's           */
    int in_ch, in_h, in_w, classes;
    int stem;               /* NnStem                                     */
    long ntrain, nval, ntest;
    HxModel m;              /* the network and its optimizer */
    /* data-parallel (s->data_parallel): this rank's share of each batch */
    int dp, rank, ranks;    /* dp 0: one process, rank 0 of 1              */
    int root;               /* the process that prints and writes files    */
    int bl;                 /* examples per rank: batch / ranks            */
    double sums_ms;         /* the gradient sums alone (hx_model_time_sums) */
    char hosts[1024];       /* every rank's host, in rank order            */
    float *x;
    int *y;
    float *prev;            /* the parameters before the step (update size)   */
    long total_steps, steps_per_epoch, eval_every;
    /* progress, all in the checkpoint */
    long step;
    double wall0;           /* wall seconds before this process (resumed runs) */
    double train_s;         /* seconds inside training steps                   */
    double run_loss;        /* running training loss and accuracy since the   */
    double run_correct, run_seen; /* last evaluation                           */
    Rows rows;
    HxTrainResult res;
    double last_progress;   /* wall time of the last progress line         */
} Run;

/* --dataset folder: DIR/train, DIR/val (or --val images of train/), DIR/test
 * (or the validation set) scanned, their loaders started, the geometry set
 * (harness/data_folder.c). */
void hx_load_folder(Run *r);

/* dir/name into buf; a path too long for it is a usage error (--out). */
void hx_path_in(char *buf, size_t len, const char *dir, const char *name);
int hx_file_exists(const char *path);
void hx_rows_push_step(Rows *r, const HxStepRow *x);
void hx_rows_push_conv(Rows *r, const HxConvRow *x);

/* RUN_DIR/steps.csv, convergence.csv; summary.csv last (its presence marks
 * the run finished); metadata.json. */
void hx_run_write_steps(const Run *r);
void hx_run_write_conv(const Run *r);
void hx_run_write_summary(const Run *r, double wall);
void hx_run_write_metadata(const Run *r, const HxInvocation *whole);

/* checkpoint.bin + optim-STEP.state, and the CSVs so far.  Load returns 1
 * if a checkpoint was there (and was loaded). */
void hx_run_save_checkpoint(Run *r, double wall);
int hx_run_load_checkpoint(Run *r);

/* A finished run keeps its results only: optimizer states, the checkpoint
 * and the temporaries a killed process left behind go. */
void hx_run_remove_leftovers(const char *dir);

#endif

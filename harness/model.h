/* A ResNet and its optimizer wired together, as `train` and `throughput`
 * use them: the threads set first (oneDNN fixes a primitive's thread count
 * when it creates it), the network's tensors as the optimizer's list, and
 * one timed training step. */
#ifndef AMO_HARNESS_MODEL_H
#define AMO_HARNESS_MODEL_H

#include "nn/resnet.h"
#include "optim/optim.h"

/* Data-parallel gradients (harness/dist.h): fixed buckets of the flat
 * gradient buffer, summed over ranks as soon as backward has written them
 * (the last bucket first), then scaled by 1/ranks.  Fixed boundaries give
 * every sum the same size and so the same reduction order each run. */
typedef struct HxGradSync {
    float *grads;        /* (n) the network's flat gradients            */
    size_t n;
    size_t bucket;       /* floats per bucket; the first is the one cut  */
    long next;           /* the highest bucket not started; -1: none     */
    float scale;         /* 1 / ranks                                    */
} HxGradSync;

enum { HX_DP = 1, HX_DP_SYNC_BN = 2 }; /* hx_model_create's dp flags */

typedef struct HxModel {
    NnResNet *net;
    Opt *opt;
    OptTensor *tensors;  /* (ntensors) views into the network's flat buffers */
    int ntensors;
    int threads;         /* what the thread count resolved to (0: one per core) */
    int dp;              /* HX_DP: gradients averaged over the ranks        */
    HxGradSync sync;
} HxModel;

/* Sets and pins the threads (hx_set_threads), builds the network and the
 * optimizer (oc.threads is set here).  dp: 0, or HX_DP (each rank computes
 * a share of the batch, gradients averaged over ranks), and HX_DP_SYNC_BN
 * (batch norm over the whole batch: over the ranks with HX_DP, else this
 * process's, by the same arithmetic).  m must stay where it is (the
 * network's callbacks point into it).  Exits through hx_fail: a setting the
 * model, the CPU or the optimizer cannot take as a usage error, anything
 * else as a failure. */
void hx_model_create(HxModel *m, const NnResNetConfig *cfg, OptConfig oc, int threads, int dp);

/* HX_DP: milliseconds to sum every bucket over the ranks with nothing else
 * running (the median of reps), for the share of it that hides behind
 * backward.  Collective; clobbers the gradients. */
double hx_model_time_sums(HxModel *m, int reps);
void hx_model_destroy(HxModel *m);

/* Seconds of one step's parts. */
typedef struct HxStepTimes {
    double forward, backward, optimizer;
    double comm;         /* HX_DP: waiting for the gradient sums after backward */
} HxStepTimes;

/* Forward (training mode), the label-smoothed loss, backward, opt_step.  A
 * non-finite loss is returned, not an error: its gradients make the
 * optimizer skip the step.  Other failures exit naming the step. */
void hx_model_step(HxModel *m, const float *x, const int *y, float smoothing, long step,
                   float *loss, OptStepInfo *info, HxStepTimes *t);

#endif

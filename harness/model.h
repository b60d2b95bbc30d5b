/* A ResNet and its optimizer wired together, as `train` and `throughput`
 * use them: the threads set first (oneDNN fixes a primitive's thread count
 * when it creates it), the network's tensors as the optimizer's list, and
 * one timed training step. */
#ifndef AMO_HARNESS_MODEL_H
#define AMO_HARNESS_MODEL_H

#include "nn/resnet.h"
#include "optim/optim.h"

typedef struct HxModel {
    NnResNet *net;
    Opt *opt;
    OptTensor *tensors;  /* (ntensors) views into the network's flat buffers */
    int ntensors;
    int threads;         /* what the thread count resolved to (0: one per core) */
} HxModel;

/* Sets and pins the threads (hx_set_threads), builds the network and the
 * optimizer (oc.threads is set here).  Exits through hx_fail: a setting the
 * model, the CPU or the optimizer cannot take as a usage error, anything
 * else as a failure. */
void hx_model_create(HxModel *m, const NnResNetConfig *cfg, OptConfig oc, int threads);
void hx_model_destroy(HxModel *m);

/* Seconds of one step's parts. */
typedef struct HxStepTimes {
    double forward, backward, optimizer;
} HxStepTimes;

/* Forward (training mode), the label-smoothed loss, backward, opt_step.  A
 * non-finite loss is returned, not an error: its gradients make the
 * optimizer skip the step.  Other failures exit naming the step. */
void hx_model_step(HxModel *m, const float *x, const int *y, float smoothing, long step,
                   float *loss, OptStepInfo *info, HxStepTimes *t);

#endif

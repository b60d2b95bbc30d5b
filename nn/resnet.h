/* ResNet-18/34/50 training and inference on oneDNN.
 *
 * The networks are torchvision's (He et al. 2016; v1.5: the stride of a
 * bottleneck is on its 3x3 convolution), with projection shortcuts (1x1 conv
 * + BN) wherever the stride or the channel count changes, and two stems:
 *   NN_STEM_CIFAR     3x3/1 conv, BN, ReLU (no max-pool), as in the anchor
 *                     ../shared/anchors/torch_resnet18.py;
 *   NN_STEM_IMAGENET  7x7/2 conv, BN, ReLU, 3x3/2 max-pool.
 *
 * All trainable parameters live in one flat fp32 buffer in plain layout (conv
 * weights oihw, FC weights (K, C) row-major), in torchvision's state_dict
 * order and names; the gradients in a second buffer of the same layout.  A
 * training step is
 *
 *     nn_resnet_forward(net, x, 1);
 *     nn_resnet_loss(net, labels, smoothing, &loss);
 *     nn_resnet_backward(net);          // fills nn_resnet_grads()
 *     optimizer(nn_resnet_params(), nn_resnet_grads(), n);
 *
 * The forward first reorders the fp32 master weights into the working copies
 * oneDNN wants (blocked layouts; bf16 in mixed precision), and the backward
 * ends by reordering blocked weight gradients into the flat buffer; those
 * reorders are timed separately (NnTiming.sync_ms, grads_ms) and cost one
 * read and one write of the parameters each.
 *
 * Initialisation (torchvision's): conv weights Kaiming normal, fan_out, gain
 * sqrt(2); BN gamma 1, beta 0; FC weight and bias uniform(-1/sqrt(fan_in),
 * 1/sqrt(fan_in)) (torch.nn.Linear's default); running mean 0, var 1. */
#ifndef AMO_NN_RESNET_H
#define AMO_NN_RESNET_H

#include <stddef.h>

#include "common/status.h"
#include "nn/types.h"

typedef enum NnStem { NN_STEM_CIFAR, NN_STEM_IMAGENET } NnStem;

/* Convolution weights at creation (the classifier is PyTorch's nn.Linear
 * default either way, batch norm weight 1 and bias 0):
 *   NN_INIT_HE     kaiming_normal_(mode="fan_out", nonlinearity="relu"), what
 *                  torchvision's ResNet does: N(0, 2 / (out_ch kh kw))
 *   NN_INIT_TORCH  nn.Conv2d's own default, kaiming_uniform_(a=sqrt(5)):
 *                  U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_ch kh kw */
typedef enum NnInit { NN_INIT_HE, NN_INIT_TORCH } NnInit;

typedef struct NnResNetConfig {
    int depth;       /* 18, 34 (basic blocks) or 50 (bottleneck)                  */
    NnStem stem;
    double width;    /* stage widths round(64 w), round(128 w), ... (half to even,
                      * as Python's round), at least 1; 1.0 is the standard net  */
    int in_ch;       /* input channels, >= 1                                      */
    int classes;     /* >= 1                                                      */
    int batch, h, w; /* input (batch, in_ch, h, w), fixed at creation             */
    int bf16;        /* bf16 activations and working weights (needs AVX-512)      */
    int conv_gemm;   /* weight gradients: NN_CONV_GEMM_AUTO (0), _OFF, _ALL       */
    int conv_algo;   /* fp32 3x3/1: NN_CONV_ALGO_AUTO (0), _DIRECT, _WINOGRAD     */
    NnInit init;     /* NN_INIT_HE (0) or NN_INIT_TORCH                           */
    unsigned long long seed; /* initialisation                                    */
    /* Data-parallel (nn/types.h); NULL: one replica, as before.             */
    NnReadyFn grads_ready;   /* gradients ready: per layer of backward        */
    NnReduceFn bn_reduce;    /* sync-BN: batch statistics over every replica  */
    void *ctx;               /* both callbacks' first argument                */
} NnResNetConfig;

typedef struct NnResNet NnResNet;

/* Milliseconds of the last call of each kind. */
typedef struct NnTiming {
    double forward_ms;  /* includes sync_ms                                       */
    double sync_ms;     /* fp32 master weights -> working copies                  */
    double loss_ms;
    double backward_ms; /* includes grads_ms                                      */
    double grads_ms;    /* blocked weight gradients -> flat grads                 */
} NnTiming;

typedef struct NnResNetInfo {
    size_t nparams;       /* trainable parameters                                 */
    size_t nstats;        /* BN running statistics                                */
    int ntensors, nlayers;
    size_t act_bytes;     /* activations, their gradients, workspaces             */
    size_t work_bytes;    /* blocked / bf16 working copies of weights and grads   */
    size_t scratch_bytes; /* the one scratchpad all primitives share              */
    int sync_reorders;    /* weight tensors whose working copy is reordered       */
    int grad_reorders;    /* gradient tensors reordered into the flat buffer      */
    int ref_prims;        /* primitives oneDNN runs on reference (slow) kernels   */
    int gemm_convs;       /* convolutions whose dW is im2col + matmul (types.h)   */
    int wino_convs;       /* convolutions with a pass by Winograd (types.h)       */
    int wino_passes;      /* their forward / backward passes by Winograd          */
    const char *isa;      /* what oneDNN dispatches to (dnnl_get_effective_cpu_isa) */
    const char *dtype;    /* "f32" or "bf16"                                      */
} NnResNetInfo;

/* Builds the network: validates cfg, caps oneDNN's ISA at the kernels' level
 * (see nn_isa_init), creates every primitive, allocates every buffer and
 * initialises the parameters.  On failure *out is NULL and err (if not NULL)
 * names the layer and shape that failed. */
AMO_API AmoStatus nn_resnet_create(NnResNet **out, const NnResNetConfig *cfg, char *err,
                                   size_t errlen);
AMO_API void nn_resnet_destroy(NnResNet *net);

/* x: (batch, in_ch, h, w) fp32 NCHW.  train: batch statistics and running
 * averages updated (and backward possible afterwards); else the running
 * statistics.  The logits are then at nn_resnet_logits. */
AMO_API AmoStatus nn_resnet_forward(NnResNet *net, const float *x, int train);

/* Label-smoothed cross-entropy on the last logits (nn/loss.h); writes the
 * logits' gradient for nn_resnet_backward.  labels: (batch). */
AMO_API AmoStatus nn_resnet_loss(NnResNet *net, const int *labels, float smoothing, float *loss);

/* Backward from nn_resnet_dlogits after a training forward: writes every
 * parameter's gradient (overwriting) into nn_resnet_grads. */
AMO_API AmoStatus nn_resnet_backward(NnResNet *net);

AMO_API const float *nn_resnet_logits(const NnResNet *net);  /* (batch, classes)         */
AMO_API float *nn_resnet_dlogits(NnResNet *net);             /* (batch, classes)         */
AMO_API float *nn_resnet_params(NnResNet *net, size_t *n);   /* (n) fp32                  */
AMO_API float *nn_resnet_grads(NnResNet *net);               /* (n) fp32                  */
/* Running statistics: for each BN in tensor order, mean (C) then var (C). */
AMO_API float *nn_resnet_stats(NnResNet *net, size_t *n);
AMO_API const NnParamInfo *nn_resnet_tensors(const NnResNet *net, int *n);
AMO_API const NnLayerInfo *nn_resnet_layers(const NnResNet *net, int *n);
AMO_API const char *nn_resnet_isa(const NnResNet *net);
AMO_API const char *nn_resnet_error(const NnResNet *net);    /* the last failure          */
AMO_API void nn_resnet_timing(const NnResNet *net, NnTiming *t);
AMO_API void nn_resnet_info(const NnResNet *net, NnResNetInfo *info);

/* Channel count for base channels c at width w: round half to even, >= 1. */
AMO_API int nn_resnet_channels(int c, double w);

#endif

/* The nn/ types that the public API (nn/resnet.h) shares with the layers
 * inside (nn/graph.h): what a parameter tensor is, a layer's output, and
 * the convolution algorithm choices. */
#ifndef AMO_NN_TYPES_H
#define AMO_NN_TYPES_H

#include <stddef.h>

/* What a trainable tensor is, so the optimizer can (for example) skip weight
 * decay on biases and batch-norm parameters. */
typedef enum NnParamKind {
    NN_CONV_WEIGHT, /* (OC, IC, KH, KW), oihw                              */
    NN_BN_GAMMA,    /* (C)                                                  */
    NN_BN_BETA,     /* (C)                                                  */
    NN_FC_WEIGHT,   /* (K, C), row-major like torch.nn.Linear.weight        */
    NN_FC_BIAS,     /* (K)                                                  */
} NnParamKind;

/* One parameter tensor in the flat buffers.  Names follow torchvision's
 * state_dict ("layer2.0.downsample.0.weight"), and so does the order. */
typedef struct NnParamInfo {
    char name[48];
    size_t offset, count; /* in floats, into params and grads              */
    NnParamKind kind;
    int ndims;
    long dims[4];         /* plain (row-major) shape                       */
} NnParamInfo;

/* One layer's output, for printing the architecture and checking shapes. */
typedef struct NnLayerInfo {
    char name[48];
    char op[48];          /* "conv 3x3/2 pad 1", "bn+relu", ...            */
    long dims[4];         /* dst (N, C, H, W); FC: (N, K, 1, 1)            */
} NnLayerInfo;

/* Data-parallel training (NnResNetConfig): nn/ calls these and knows
 * nothing of how the replicas talk (amo-bench: MPI, harness/dist.h).
 * NnReadyFn: during backward, after each layer, every gradient at a flat
 * offset >= from is final (parameters are laid out in forward order and
 * backward runs in reverse, so `from` only falls).  NnReduceFn: v[0..n) is
 * replaced by its sum over every replica, the same on each. */
typedef void (*NnReadyFn)(void *ctx, size_t from);
typedef void (*NnReduceFn)(void *ctx, double *v, int n);

/* How a convolution computes its weight gradient (NnGraph.conv_gemm).
 * oneDNN 2.6's direct AMX backward-weights kernels are slow on small outputs
 * and 1x1 convolutions, where im2col + one oneDNN matmul is 2-5x faster
 * (results/nn/README.md).  AUTO takes it for bf16 1x1s and outputs up to
 * 14x14; ALL for every bf16 convolution whose activations are NHWC (tests,
 * comparisons); OFF never.  fp32 never (fast direct kernels, blocked
 * layouts). */
enum { NN_CONV_GEMM_AUTO, NN_CONV_GEMM_OFF, NN_CONV_GEMM_ALL };

/* How an fp32 3x3 stride-1 convolution computes (NnGraph.conv_algo).
 * oneDNN 2.6's Winograd F(4x4, 3x3) does 4x fewer multiplies than the direct
 * kernel (results/nn/README.md has the per-layer gains).  AUTO takes it for
 * layers with at least 64 channels in and out; WINOGRAD wherever oneDNN has
 * it (tests, comparisons); DIRECT never (PyTorch's choice).  Its rounding
 * differs from the direct sum's (tests/nn: test_conv_winograd bounds it).
 * oneDNN has no bf16 Winograd. */
enum { NN_CONV_ALGO_AUTO, NN_CONV_ALGO_DIRECT, NN_CONV_ALGO_WINOGRAD };

#endif

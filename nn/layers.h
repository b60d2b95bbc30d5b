/* Layer builders on oneDNN primitives.
 *
 * Each builder appends a layer's primitives to the graph's passes (forward
 * training, forward inference, backward; see nn/graph.h) and creates its
 * output activation in the layout the primitive prefers.  Arguments follow
 * llm.c: the graph, the layer's name, outputs, inputs, then sizes.  Shapes
 * are NCHW in the oneDNN sense (dims order, not memory order).
 *
 * Gradients: backward writes dst->diff's contribution into src->diff.
 * diff_src says how: NN_DIFF_NONE (the input needs no gradient: the first
 * convolution), NN_DIFF_WRITE (overwrite), NN_DIFF_ACCUM (add to what a
 * layer built later, hence run earlier in backward, wrote: the second
 * consumer of a residual block's input).  Weight gradients are written, not
 * accumulated, into the flat grads buffer.
 */
#ifndef AMO_NN_LAYERS_H
#define AMO_NN_LAYERS_H

#include "nn/graph.h"

enum { NN_DIFF_NONE, NN_DIFF_WRITE, NN_DIFF_ACCUM };

#define NN_BN_EPS 1e-5f      /* torch.nn.BatchNorm2d defaults */
#define NN_BN_MOMENTUM 0.1f

/* An input tensor in plain fp32 NCHW (the caller writes it). */
AmoStatus nn_input(NnGraph *g, NnAct *dst, long n, long c, long h, long w);

/* dst = conv(src, w): w (oc, C, k, k) oihw in the flat buffer as
 * "<name>.weight", no bias, square kernel, stride and zero padding. */
AmoStatus nn_conv(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int oc,
                 int k, int stride, int pad, int diff_src);

/* dst = gamma * (src - mean) / sqrt(var + eps) + beta, then ReLU if relu.
 * Training: batch statistics, and the running averages (stats buffer:
 * mean (C) then var (C)) move by momentum 0.1 toward the batch mean and the
 * unbiased batch variance, as torch.nn.BatchNorm2d does.  Inference: the
 * running statistics.  gamma, beta: "<name>.weight", "<name>.bias". */
AmoStatus nn_bn(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int relu);

/* dst = max(src, 0). */
AmoStatus nn_relu(NnGraph *g, const char *name, NnAct *dst, const NnAct *src);

/* dst = max(src0 + src1, 0): the end of a residual block.  Backward gives
 * both inputs the same gradient; when their layouts match, src1->diff
 * becomes the same buffer as src0->diff (no copy). */
AmoStatus nn_add_relu(NnGraph *g, const char *name, NnAct *dst, const NnAct *src0,
                     const NnAct *src1);

/* Max (max = 1) or average pooling, kernel kh x kw, stride, zero padding
 * (average excludes padding).  Global average pooling: kh = H, kw = W. */
AmoStatus nn_pool(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int max,
                 int kh, int kw, int stride, int pad, int diff_src);

/* dst (N, K) = flatten(src) (N, C*H*W) . W^T + b, like torch.nn.Linear:
 * W (K, C*H*W) "<name>.weight", b (K) "<name>.bias". */
AmoStatus nn_fc(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int k,
               int diff_src);

#endif

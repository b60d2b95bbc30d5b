/* What the layer builders share (nn/layers.c, nn/conv.c): primitive
 * queries and the views of weights, gradients and activations in the
 * layouts a primitive chose.  Internal to nn/. */
#ifndef AMO_NN_LAYERS_IMPL_H
#define AMO_NN_LAYERS_IMPL_H

#include "nn/layers.h"

const dnnl_memory_desc_t *nn_query(const_dnnl_primitive_desc_t pd, dnnl_query_t what);

const dnnl_memory_desc_t *nn_query_arg(const_dnnl_primitive_desc_t pd, int arg);

int nn_md_equal(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b);

void nn_dims_of(const NnAct *a, long *n, long *c, long *h, long *w);

void nn_layer_done(NnGraph *g, const char *op, const NnAct *dst);

/* The working copy, in the layout md a primitive chose, of the plain fp32
 * tensor at off in the flat parameters (kind NN_BUF_PARAMS: NN_PASS_SYNC
 * refreshes it after each optimizer step) or gradients (NN_BUF_GRADS:
 * NN_PASS_GRADS reorders it into them); the flat buffer itself when the
 * layouts agree. */
AmoStatus nn_flat_view(NnGraph *g, dnnl_memory_t *out, const dnnl_memory_desc_t *md, int kind,
                       size_t off, int ndims, const long *dims);

/* AMO_EINVAL naming what (kernel, window) if it is larger than the input
 * (h x w) padded by pad. */
AmoStatus nn_window_fits(NnGraph *g, const char *what, int kh, int kw, int pad, long h, long w);

/* m (layout md) as a backward primitive wants it (layout want): m itself, or
 * a copy the backward pass reorders into just before the primitive. */
AmoStatus nn_bwd_view(NnGraph *g, dnnl_memory_t *out, dnnl_memory_t m,
                      const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *want);

/* Backward: the gradient a primitive computed into a memory of layout md
 * reaches src->diff, overwritten or accumulated.  Returns the memory the
 * primitive should write (src->diff itself when that is possible). */
AmoStatus nn_diff_target(NnGraph *g, dnnl_memory_t *out, const dnnl_memory_desc_t *md,
                         const NnAct *src, int mode);

/* Runs, in the current backward group after the primitive, what moves the
 * TMP gradient into src->diff. */
AmoStatus nn_diff_finish(NnGraph *g, dnnl_memory_t tmp, const dnnl_memory_desc_t *md,
                         const NnAct *src, int mode);

#endif

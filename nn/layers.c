/* Layer builders: convolution, batch normalization, ReLU, residual add,
 * pooling, fully connected.
 *
 * Layouts: every output is created with dnnl_format_tag_any and the next
 * layer takes it as it is, so no activation is reordered between layers;
 * backward primitive descriptors take the forward one as their hint
 * (oneDNN's rule) and the same layouts.  The exception is a narrow
 * convolution (fewer than 16 input channels, which exists only at small
 * widths) where oneDNN 2.6's avx512 kernels want plain nchw forward and
 * blocked backward: there the convolution reorders its own input, because
 * the alternative is a reference kernel ~100 times slower.  Fusions:
 * batch norm + ReLU (dnnl_fuse_norm_relu, training and inference) and the
 * residual add + ReLU (binary add with a ReLU post-op); a convolution is
 * always followed by batch norm here, so nothing fuses into it. */
#include <stdio.h>
#include <string.h>

#include "nn/layers.h"

static const dnnl_memory_desc_t *query(const_dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

static const dnnl_memory_desc_t *query_arg(const_dnnl_primitive_desc_t pd, int arg)
{
    return dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
}

static int md_equal(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b)
{
    return dnnl_memory_desc_equal(a, b);
}

static void dims_of(const NnAct *a, long *n, long *c, long *h, long *w)
{
    *n = (long)a->md.dims[0];
    *c = (long)a->md.dims[1];
    *h = a->md.ndims > 2 ? (long)a->md.dims[2] : 1;
    *w = a->md.ndims > 3 ? (long)a->md.dims[3] : 1;
}

static void done(NnGraph *g, const char *op, const NnAct *dst)
{
    nn_graph_layer_done(g, op, &dst->md);
}

/* The working copy, in the layout md a primitive chose, of the plain fp32
 * tensor at params + off: the flat buffer itself when the layouts agree,
 * otherwise a copy that NN_PASS_SYNC refreshes (once per step, after the
 * optimizer; the cost is one read and one write of the tensor). */
static AmoStatus weights_view(NnGraph *g, dnnl_memory_t *out, const dnnl_memory_desc_t *md,
                             size_t off, int ndims, const long *dims)
{
    const dnnl_memory_desc_t plain = nn_md_plain(ndims, dims, dnnl_f32);
    if (md_equal(md, &plain))
        return nn_graph_mem(g, out, md, NN_BUF_PARAMS, off);
    dnnl_memory_t pm;
    NN_TRY(nn_graph_mem(g, &pm, &plain, NN_BUF_PARAMS, off));
    NN_TRY(nn_graph_mem(g, out, md, NN_BUF_WORK, 0));
    return nn_graph_reorder(g, NN_IN(NN_PASS_SYNC), pm, &plain, *out, md);
}

/* Same for a gradient: NN_PASS_GRADS reorders it into grads + off. */
static AmoStatus grads_view(NnGraph *g, dnnl_memory_t *out, const dnnl_memory_desc_t *md,
                           size_t off, int ndims, const long *dims)
{
    const dnnl_memory_desc_t plain = nn_md_plain(ndims, dims, dnnl_f32);
    if (md_equal(md, &plain))
        return nn_graph_mem(g, out, md, NN_BUF_GRADS, off);
    dnnl_memory_t pm;
    NN_TRY(nn_graph_mem(g, &pm, &plain, NN_BUF_GRADS, off));
    NN_TRY(nn_graph_mem(g, out, md, NN_BUF_WORK, 0));
    return nn_graph_reorder(g, NN_IN(NN_PASS_GRADS), *out, md, pm, &plain);
}

/* m (layout md) as a backward primitive wants it (layout want): m itself, or
 * a copy the backward pass reorders into just before the primitive. */
static AmoStatus bwd_view(NnGraph *g, dnnl_memory_t *out, dnnl_memory_t m,
                         const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *want)
{
    *out = m;
    if (md_equal(md, want))
        return AMO_OK;
    NN_TRY(nn_graph_mem(g, out, want, NN_BUF_OWN, 0));
    return nn_graph_reorder(g, NN_IN(NN_PASS_BWD), m, md, *out, want);
}

/* Backward: the gradient a primitive computed into a memory of layout md
 * reaches src->diff, overwritten or accumulated.  Returns the memory the
 * primitive should write (src->diff itself when that is possible). */
static AmoStatus diff_target(NnGraph *g, dnnl_memory_t *out, const dnnl_memory_desc_t *md,
                            const NnAct *src, int mode)
{
    if (mode == NN_DIFF_WRITE && md_equal(md, &src->md)) {
        *out = src->diff;
        return AMO_OK;
    }
    NN_TRY(nn_graph_mem(g, out, md, NN_BUF_TMP, 0));
    return AMO_OK;
}

/* Runs, in the current backward group after the primitive, what moves the
 * TMP gradient into src->diff. */
static AmoStatus diff_finish(NnGraph *g, dnnl_memory_t tmp, const dnnl_memory_desc_t *md,
                            const NnAct *src, int mode)
{
    if (tmp == src->diff)
        return AMO_OK;
    if (mode == NN_DIFF_WRITE)
        return nn_graph_reorder(g, NN_IN(NN_PASS_BWD), tmp, md, src->diff, &src->md);
    dnnl_binary_desc_t bd;
    dnnl_primitive_desc_t pd;
    NN_DNNL(g, dnnl_binary_desc_init(&bd, dnnl_binary_add, &src->md, md, &src->md));
    NN_TRY(nn_graph_pd(g, &pd, &bd, NULL, NULL));
    const dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC_0, src->diff}, {DNNL_ARG_SRC_1, tmp}, {DNNL_ARG_DST, src->diff}};
    return nn_graph_prim(g, NN_IN(NN_PASS_BWD), pd, 3, args);
}

/* ------------------------------------ weight gradient by im2col + matmul -- */

/* The patches of a bf16 NHWC input as rows: col (N*OH*OW, KH*KW*C), row
 * (n, oy, ox), column (ky, kx, c); zeros where the window covers padding. */
typedef struct Im2col {
    dnnl_memory_t x, col;
    long n, c, h, w, oh, ow;
    int k, stride, pad;
} Im2col;

static void im2col_run(void *arg)
{
    const Im2col *a = arg;
    void *xp = NULL, *cp = NULL;
    dnnl_memory_get_data_handle(a->x, &xp);
    dnnl_memory_get_data_handle(a->col, &cp);
    const char *x = xp;
    char *col = cp;
    const size_t pix = (size_t)a->c * sizeof(uint16_t), row = pix * (size_t)(a->k * a->k);
#pragma omp parallel for collapse(2) schedule(static)
    for (long n = 0; n < a->n; n++)
        for (long oy = 0; oy < a->oh; oy++) {
            char *o = col + (size_t)((n * a->oh + oy) * a->ow) * row;
            for (long ox = 0; ox < a->ow; ox++)
                for (int ky = 0; ky < a->k; ky++) {
                    const long iy = oy * a->stride - a->pad + ky;
                    for (int kx = 0; kx < a->k; kx++, o += pix) {
                        const long ix = ox * a->stride - a->pad + kx;
                        if (iy < 0 || iy >= a->h || ix < 0 || ix >= a->w)
                            memset(o, 0, pix);
                        else
                            memcpy(o, x + (size_t)((n * a->h + iy) * a->w + ix) * pix, pix);
                    }
                }
        }
}

/* acdb: NHWC for activations, ohwi for weights. */
static dnnl_memory_desc_t md_nhwc(const long *d, dnnl_data_type_t dt)
{
    dnnl_memory_desc_t md;
    const dnnl_dims_t dims = {d[0], d[1], d[2], d[3]};
    dnnl_memory_desc_init_by_tag(&md, 4, dims, dt, dnnl_acdb);
    return md;
}

static dnnl_memory_desc_t md_strided2(long rows, long cols, long rs, long cs,
                                      dnnl_data_type_t dt)
{
    dnnl_memory_desc_t md;
    const dnnl_dims_t dims = {rows, cols}, strides = {rs, cs};
    dnnl_memory_desc_init_by_strides(&md, 2, dims, dt, strides);
    return md;
}

/* dW (OC, KH*KW*C) = dY^T (OC, N*OH*OW) . col (N*OH*OW, KH*KW*C): dY in
 * NHWC is already (N*OH*OW, OC) row-major, so the matmul reads it through a
 * transposed view, and dW comes out ohwi (oihw itself for 1x1), which
 * NN_PASS_GRADS reorders into the flat buffer.  *used is 0 (and nothing is
 * appended) when src or dst is not NHWC or oneDNN has no fast matmul. */
static AmoStatus conv_bww_gemm(NnGraph *g, int *used, dnnl_memory_t xsrc,
                              const dnnl_memory_desc_t *csrc, const NnAct *dst, size_t off,
                              const long *sd, const long *wd, const long *dd, int k, int stride,
                              int pad)
{
    *used = 0;
    const dnnl_memory_desc_t sx = md_nhwc(sd, g->dt), sy = md_nhwc(dd, g->dt);
    if (!md_equal(csrc, &sx) || !md_equal(&dst->md, &sy))
        return AMO_OK;
    const long p = dd[0] * dd[2] * dd[3], oc = wd[0], kk = wd[1] * k * k;
    const dnnl_memory_desc_t amd = md_strided2(oc, p, 1, oc, g->dt),
                             bmd = md_strided2(p, kk, kk, 1, g->dt),
                             cmd = md_strided2(oc, kk, kk, 1, dnnl_f32);
    dnnl_matmul_desc_t mmd;
    dnnl_primitive_desc_t pd;
    NN_DNNL(g, dnnl_matmul_desc_init(&mmd, &amd, &bmd, NULL, &cmd));
    NN_TRY(nn_graph_pd_fast(g, &pd, &mmd, NULL));
    if (!pd)
        return AMO_OK;

    /* a 1x1/1 convolution's patches are its NHWC input itself: no im2col */
    const int col_is_x = k == 1 && stride == 1 && pad == 0;
    dnnl_memory_t amem, col, cmem;
    NN_TRY(nn_graph_mem(g, &amem, &amd, NN_BUF_OWN, 0));
    NN_TRY(nn_graph_alias(g, dst->diff, amem));
    NN_TRY(nn_graph_mem(g, &col, &bmd, col_is_x ? NN_BUF_OWN : NN_BUF_TMP, 0));
    if (col_is_x)
        NN_TRY(nn_graph_alias(g, xsrc, col));
    if (k == 1) {
        NN_TRY(nn_graph_mem(g, &cmem, &cmd, NN_BUF_GRADS, off));
    } else {
        /* the same bytes as a 4-D ohwi tensor, for the reorder */
        const dnnl_memory_desc_t w4 = md_nhwc(wd, dnnl_f32);
        const dnnl_memory_desc_t plain = nn_md_plain(4, wd, dnnl_f32);
        dnnl_memory_t w4mem, pm;
        NN_TRY(nn_graph_mem(g, &cmem, &cmd, NN_BUF_WORK, 0));
        NN_TRY(nn_graph_mem(g, &w4mem, &w4, NN_BUF_WORK, 0));
        NN_TRY(nn_graph_alias(g, cmem, w4mem));
        NN_TRY(nn_graph_mem(g, &pm, &plain, NN_BUF_GRADS, off));
        NN_TRY(nn_graph_reorder(g, NN_IN(NN_PASS_GRADS), w4mem, &w4, pm, &plain));
    }
    if (!col_is_x) {
        Im2col *a = nn_graph_alloc(g, sizeof *a);
        if (!a)
            return nn_fail(g, AMO_ENOMEM, "out of memory");
        *a = (Im2col){.x = xsrc, .col = col, .n = sd[0], .c = sd[1], .h = sd[2], .w = sd[3],
                      .oh = dd[2], .ow = dd[3], .k = k, .stride = stride, .pad = pad};
        NN_TRY(nn_graph_step(g, NN_IN(NN_PASS_BWD), im2col_run, a));
    }
    const dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC, amem}, {DNNL_ARG_WEIGHTS, col}, {DNNL_ARG_DST, cmem}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), pd, 3, args));
    g->gemm_convs++;
    *used = 1;
    return AMO_OK;
}

/* NN_CONV_GEMM_AUTO: bf16 1x1 convolutions and outputs up to 14x14, where
 * im2col + matmul beat oneDNN 2.6's direct AMX kernel per layer
 * (results/nn/README.md, "Why the code chooses what it does"). */
static int conv_gemm_wanted(const NnGraph *g, int k, long oh, long ow)
{
    if (g->dt != dnnl_bf16 || g->conv_gemm == NN_CONV_GEMM_OFF)
        return 0;
    if (g->conv_gemm == NN_CONV_GEMM_ALL)
        return 1;
    return k == 1 || oh * ow <= 14 * 14;
}

/* --------------------------------------------------- Winograd (fp32) ---- */

/* NN_CONV_ALGO_AUTO: Winograd for fp32 3x3/1 layers with at least 64
 * channels in and out, where it beat the direct kernel on every layer
 * measured and lost on narrower ones (results/nn/README.md, "Why the code
 * chooses what it does"). */
static int conv_wino_wanted(const NnGraph *g, int k, int stride, long c, long oc)
{
    if (g->dt != dnnl_f32 || k != 3 || stride != 1 || g->conv_algo == NN_CONV_ALGO_DIRECT)
        return 0;
    return g->conv_algo == NN_CONV_ALGO_WINOGRAD || (c >= 64 && oc >= 64);
}

/* Whether oneDNN runs pd by Winograd (its implementation name says so). */
static int pd_is_wino(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success
           && impl && strstr(impl, "wino");
}

/* The forward primitive of algorithm alg taking src in the producer's layout,
 * when oneDNN has a real kernel for that: with format_tag_any it picks plain
 * nchw for narrow inputs (C < 16), which costs a reorder every step and
 * leaves only reference kernels for the backward.  *pd NULL otherwise. */
static AmoStatus conv_fwd_pd(NnGraph *g, dnnl_primitive_desc_t *pd, dnnl_alg_kind_t alg,
                            const NnAct *src, const dnnl_memory_desc_t *src_any,
                            const dnnl_memory_desc_t *w_any, const dnnl_memory_desc_t *dst_any,
                            const dnnl_dims_t strides, const dnnl_dims_t padding)
{
    dnnl_convolution_desc_t cd;
    *pd = NULL;
    if (src->md.data_type == g->dt
        && dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, alg, &src->md, w_any,
                                              NULL, dst_any, strides, padding, padding)
               == dnnl_success)
        NN_TRY(nn_graph_pd_fast(g, pd, &cd, NULL));
    /* Winograd in its own layouts (the direct kernel's fallback is below) */
    if (!*pd && alg == dnnl_convolution_winograd
        && dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, alg, src_any, w_any,
                                              NULL, dst_any, strides, padding, padding)
               == dnnl_success)
        NN_TRY(nn_graph_pd_fast(g, pd, &cd, NULL));
    return AMO_OK;
}

/* ---------------------------------------------------------------- input -- */

AmoStatus nn_input(NnGraph *g, NnAct *dst, long n, long c, long h, long w)
{
    NN_TRY(nn_graph_layer(g, "input", "%ldx%ldx%ldx%ld", n, c, h, w));
    if (n < 1 || c < 1 || h < 1 || w < 1)
        return nn_fail(g, AMO_EINVAL, "batch, channels, height and width must all be >= 1");
    const long d[4] = {n, c, h, w};
    const dnnl_memory_desc_t md = nn_md_plain(4, d, dnnl_f32);
    NN_TRY(nn_graph_act(g, dst, &md));
    done(g, "input", dst);
    return AMO_OK;
}

/* --------------------------------------------------------- convolution -- */

/* One convolution's shapes and what its forward pass chose, for the three
 * builders below. */
typedef struct Conv {
    long sd[4], wd[4], dd[4];     /* src (N, C, H, W), weights (OC, C, K, K), dst */
    dnnl_dims_t strides, padding;
    int k, stride, pad;
    size_t off;                   /* the weights' offset in the parameters     */
    dnnl_alg_kind_t alg;          /* the forward's algorithm                   */
    dnnl_primitive_desc_t fwd;    /* hint for the backward passes              */
    const dnnl_memory_desc_t *csrc, *cw; /* the forward's src and weights layouts */
    dnnl_memory_t xsrc, wmem;     /* src and weights in those layouts          */
    int npass, nwino;             /* passes built, and those by Winograd       */
} Conv;

/* The forward pass: Winograd where wanted and oneDNN has it, else direct. */
static AmoStatus conv_forward(NnGraph *g, Conv *cv, NnAct *dst, const NnAct *src)
{
    const long c = cv->sd[1], oc = cv->wd[0];
    dnnl_memory_desc_t src_any = nn_md_any(4, cv->sd, g->dt), w_any = nn_md_any(4, cv->wd, g->dt),
                       dst_any = nn_md_any(4, cv->dd, g->dt);
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t fwd = NULL;
    cv->alg = dnnl_convolution_direct;
    if (conv_wino_wanted(g, cv->k, cv->stride, c, oc))
        NN_TRY(conv_fwd_pd(g, &fwd, dnnl_convolution_winograd, src, &src_any, &w_any, &dst_any,
                           cv->strides, cv->padding));
    if (fwd)
        cv->alg = dnnl_convolution_winograd;
    else
        NN_TRY(conv_fwd_pd(g, &fwd, cv->alg, src, &src_any, &w_any, &dst_any, cv->strides,
                           cv->padding));
    if (!fwd) {
        NN_DNNL(g, dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, cv->alg,
                                                      &src_any, &w_any, NULL, &dst_any,
                                                      cv->strides, cv->padding, cv->padding));
        NN_TRY(nn_graph_pd(g, &fwd, &cd, NULL, NULL));
    }
    cv->fwd = fwd;
    cv->csrc = query(fwd, dnnl_query_src_md);
    cv->cw = query(fwd, dnnl_query_weights_md);

    /* The convolution's own view of src: a reorder only where the producer
     * chose another layout (in a ResNet: the network input). */
    cv->xsrc = src->mem;
    if (!md_equal(cv->csrc, &src->md)) {
        NN_TRY(nn_graph_mem(g, &cv->xsrc, cv->csrc, NN_BUF_OWN, 0));
        NN_TRY(nn_graph_reorder(g, NN_FWD, src->mem, &src->md, cv->xsrc, cv->csrc));
    }
    NN_TRY(weights_view(g, &cv->wmem, cv->cw, cv->off, 4, cv->wd));
    NN_TRY(nn_graph_act(g, dst, query(fwd, dnnl_query_dst_md)));
    const dnnl_exec_arg_t fa[] = {
        {DNNL_ARG_SRC, cv->xsrc}, {DNNL_ARG_WEIGHTS, cv->wmem}, {DNNL_ARG_DST, dst->mem}};
    NN_TRY(nn_graph_prim(g, NN_FWD, fwd, 3, fa));
    cv->npass = 1;
    cv->nwino = pd_is_wino(fwd);
    return AMO_OK;
}

/* A backward pass's descriptor: in the forward's layouts and algorithm when
 * oneDNN has a real kernel for them (no reorder), then direct in them; else
 * direct in the layouts oneDNN picks, reordering the activations in the
 * backward pass (narrow layers, C < 16).  init(cd, alg, any) fills cd,
 * any: 0 the forward's layouts, 1 format_tag_any. */
typedef dnnl_status_t (*ConvBwdInit)(const Conv *cv, const NnAct *dst, dnnl_convolution_desc_t *cd,
                                     dnnl_alg_kind_t alg, int any, dnnl_data_type_t dt);

static AmoStatus conv_bwd_pd(NnGraph *g, const Conv *cv, const NnAct *dst, ConvBwdInit init,
                            dnnl_primitive_desc_t *pd)
{
    const dnnl_alg_kind_t algs[2] = {cv->alg, dnnl_convolution_direct};
    const int nalg = cv->alg == dnnl_convolution_direct ? 1 : 2;
    dnnl_convolution_desc_t cd;
    *pd = NULL;
    for (int i = 0; i < nalg && !*pd; i++)
        if (init(cv, dst, &cd, algs[i], 0, g->dt) == dnnl_success)
            NN_TRY(nn_graph_pd_fast(g, pd, &cd, cv->fwd));
    if (!*pd) {
        NN_DNNL(g, init(cv, dst, &cd, dnnl_convolution_direct, 1, g->dt));
        NN_TRY(nn_graph_pd(g, pd, &cd, NULL, cv->fwd));
    }
    return AMO_OK;
}

static dnnl_status_t bww_init(const Conv *cv, const NnAct *dst, dnnl_convolution_desc_t *cd,
                              dnnl_alg_kind_t alg, int any, dnnl_data_type_t dt)
{
    const dnnl_memory_desc_t dw_any = nn_md_any(4, cv->wd, dnnl_f32),
                             src_any = nn_md_any(4, cv->sd, dt), dst_any = nn_md_any(4, cv->dd, dt);
    return dnnl_convolution_backward_weights_desc_init(cd, alg, any ? &src_any : cv->csrc,
                                                       &dw_any, NULL, any ? &dst_any : &dst->md,
                                                       cv->strides, cv->padding, cv->padding);
}

static dnnl_status_t bwd_init(const Conv *cv, const NnAct *dst, dnnl_convolution_desc_t *cd,
                              dnnl_alg_kind_t alg, int any, dnnl_data_type_t dt)
{
    const dnnl_memory_desc_t w_any = nn_md_any(4, cv->wd, dt), src_any = nn_md_any(4, cv->sd, dt),
                             dst_any = nn_md_any(4, cv->dd, dt);
    return dnnl_convolution_backward_data_desc_init(cd, alg, any ? &src_any : cv->csrc, &w_any,
                                                    any ? &dst_any : &dst->md, cv->strides,
                                                    cv->padding, cv->padding);
}

/* The weight gradient: im2col + matmul where wanted and possible, else a
 * oneDNN backward-weights primitive.  *gemm: 1 if the matmul took it. */
static AmoStatus conv_backward_weights(NnGraph *g, Conv *cv, const NnAct *dst, int *gemm)
{
    *gemm = 0;
    if (conv_gemm_wanted(g, cv->k, cv->dd[2], cv->dd[3]))
        NN_TRY(conv_bww_gemm(g, gemm, cv->xsrc, cv->csrc, dst, cv->off, cv->sd, cv->wd, cv->dd,
                             cv->k, cv->stride, cv->pad));
    if (*gemm)
        return AMO_OK;
    dnnl_primitive_desc_t bww;
    NN_TRY(conv_bwd_pd(g, cv, dst, bww_init, &bww));
    cv->npass++;
    cv->nwino += pd_is_wino(bww);
    dnnl_memory_t dwmem, bsrc, bddst;
    NN_TRY(grads_view(g, &dwmem, query(bww, dnnl_query_diff_weights_md), cv->off, 4, cv->wd));
    NN_TRY(bwd_view(g, &bsrc, cv->xsrc, cv->csrc, query(bww, dnnl_query_src_md)));
    NN_TRY(bwd_view(g, &bddst, dst->diff, &dst->md, query(bww, dnnl_query_diff_dst_md)));
    const dnnl_exec_arg_t wa[] = {
        {DNNL_ARG_SRC, bsrc}, {DNNL_ARG_DIFF_DST, bddst}, {DNNL_ARG_DIFF_WEIGHTS, dwmem}};
    return nn_graph_prim(g, NN_IN(NN_PASS_BWD), bww, 3, wa);
}

/* The gradient of src, written or accumulated as diff_src says. */
static AmoStatus conv_backward_data(NnGraph *g, Conv *cv, const NnAct *dst, const NnAct *src,
                                   int diff_src)
{
    dnnl_primitive_desc_t bwd;
    NN_TRY(conv_bwd_pd(g, cv, dst, bwd_init, &bwd));
    cv->npass++;
    cv->nwino += pd_is_wino(bwd);
    const dnnl_memory_desc_t *bw = query(bwd, dnnl_query_weights_md);
    dnnl_memory_t bwmem = cv->wmem, dsrc, bddst;
    if (!md_equal(bw, cv->cw))
        NN_TRY(weights_view(g, &bwmem, bw, cv->off, 4, cv->wd));
    NN_TRY(bwd_view(g, &bddst, dst->diff, &dst->md, query(bwd, dnnl_query_diff_dst_md)));
    const dnnl_memory_desc_t *dsmd = query(bwd, dnnl_query_diff_src_md);
    NN_TRY(diff_target(g, &dsrc, dsmd, src, diff_src));
    const dnnl_exec_arg_t da[] = {
        {DNNL_ARG_DIFF_DST, bddst}, {DNNL_ARG_WEIGHTS, bwmem}, {DNNL_ARG_DIFF_SRC, dsrc}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bwd, 3, da));
    return diff_finish(g, dsrc, dsmd, src, diff_src);
}

AmoStatus nn_conv(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int oc,
                 int k, int stride, int pad, int diff_src)
{
    long n, c, h, w;
    dims_of(src, &n, &c, &h, &w);
    NN_TRY(nn_graph_layer(g, name, "conv %dx%d/%d pad %d, src %ldx%ldx%ldx%ld, %d out channels",
                          k, k, stride, pad, n, c, h, w, oc));
    if (oc < 1 || k < 1 || stride < 1 || pad < 0)
        return nn_fail(g, AMO_EINVAL, "out channels, kernel and stride must be >= 1, pad >= 0");
    if (h + 2 * pad < k || w + 2 * pad < k)
        return nn_fail(g, AMO_EINVAL, "the %dx%d kernel is larger than the padded %ldx%ld "
                       "input: the output would be smaller than 1x1", k, k, h + 2 * pad,
                       w + 2 * pad);
    const long oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    Conv cv = {.sd = {n, c, h, w}, .wd = {oc, c, k, k}, .dd = {n, oc, oh, ow},
               .strides = {stride, stride}, .padding = {pad, pad},
               .k = k, .stride = stride, .pad = pad};
    cv.off = nn_graph_param(g, "weight", NN_CONV_WEIGHT, 4, cv.wd);
    int gemm;
    NN_TRY(conv_forward(g, &cv, dst, src));
    NN_TRY(conv_backward_weights(g, &cv, dst, &gemm));
    if (diff_src != NN_DIFF_NONE)
        NN_TRY(conv_backward_data(g, &cv, dst, src, diff_src));
    g->wino_passes += cv.nwino;
    g->wino_convs += cv.nwino > 0;
    const char *how = cv.nwino == 0           ? ""
                    : cv.nwino == cv.npass ? " winograd"
                                           : " winograd (some passes)";
    char op[80];
    snprintf(op, sizeof op, "conv %dx%d/%d%s%s", k, k, stride, how, gemm ? ", dW gemm" : "");
    done(g, op, dst);
    return AMO_OK;
}

/* ------------------------------------------------- batch normalization -- */

typedef struct NnBnRun {
    NnGraph *g;
    size_t off;            /* running mean (C), then running var (C)        */
    long c;
    double unbias;         /* n / (n - 1), n = N*H*W                        */
    dnnl_memory_t mean, var; /* this batch's statistics, (C) f32           */
} NnBnRun;

/* torch.nn.BatchNorm2d: running = (1 - momentum) running + momentum batch,
 * with the unbiased variance (the primitive reports the biased one). */
static void bn_update_running(void *arg)
{
    NnBnRun *r = arg;
    float *rm = r->g->stats + r->off, *rv = rm + r->c;
    void *pm = NULL, *pv = NULL;
    dnnl_memory_get_data_handle(r->mean, &pm);
    dnnl_memory_get_data_handle(r->var, &pv);
    const float *m = pm, *v = pv, mo = NN_BN_MOMENTUM;
    for (long i = 0; i < r->c; i++) {
        rm[i] = (1 - mo) * rm[i] + mo * m[i];
        rv[i] = (1 - mo) * rv[i] + mo * (float)(v[i] * r->unbias);
    }
}

AmoStatus nn_bn(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int relu)
{
    long n, c, h, w;
    dims_of(src, &n, &c, &h, &w);
    NN_TRY(nn_graph_layer(g, name, "batchnorm%s, src %ldx%ldx%ldx%ld", relu ? "+relu" : "", n,
                          c, h, w));
    const size_t og = nn_graph_param(g, "weight", NN_BN_GAMMA, 1, &c);
    const size_t ob = nn_graph_param(g, "bias", NN_BN_BETA, 1, &c);
    const size_t os = nn_graph_stats(g, 2 * (size_t)c);
    const long values = n * h * w;
    if (!g->bn_min_values || values < g->bn_min_values) {
        g->bn_min_values = values;
        snprintf(g->bn_min_layer, sizeof g->bn_min_layer, "%s", name);
    }
    const unsigned flags = dnnl_use_scale | dnnl_use_shift | (relu ? dnnl_fuse_norm_relu : 0);
    dnnl_batch_normalization_desc_t bd;
    dnnl_primitive_desc_t ft, fi, bw;
    NN_DNNL(g, dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training, &src->md,
                                                          NN_BN_EPS, flags));
    NN_TRY(nn_graph_pd(g, &ft, &bd, NULL, NULL));
    NN_DNNL(g, dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_inference, &src->md,
                                                          NN_BN_EPS,
                                                          flags | dnnl_use_global_stats));
    NN_TRY(nn_graph_pd(g, &fi, &bd, NULL, NULL));
    NN_TRY(nn_graph_act(g, dst, query(ft, dnnl_query_dst_md)));

    const dnnl_memory_desc_t *cmd = query_arg(ft, DNNL_ARG_SCALE);
    const dnnl_memory_desc_t *smd = query_arg(ft, DNNL_ARG_MEAN);
    const dnnl_memory_desc_t *wsmd = query(ft, dnnl_query_workspace_md);
    dnnl_memory_t gamma, beta, dgamma, dbeta, mean, var, rmean, rvar, ws = NULL;
    NN_TRY(nn_graph_mem(g, &gamma, cmd, NN_BUF_PARAMS, og));
    NN_TRY(nn_graph_mem(g, &beta, cmd, NN_BUF_PARAMS, ob));
    NN_TRY(nn_graph_mem(g, &dgamma, cmd, NN_BUF_GRADS, og));
    NN_TRY(nn_graph_mem(g, &dbeta, cmd, NN_BUF_GRADS, ob));
    NN_TRY(nn_graph_mem(g, &mean, smd, NN_BUF_OWN, 0));
    NN_TRY(nn_graph_mem(g, &var, smd, NN_BUF_OWN, 0));
    NN_TRY(nn_graph_mem(g, &rmean, smd, NN_BUF_STATS, os));
    NN_TRY(nn_graph_mem(g, &rvar, smd, NN_BUF_STATS, os + (size_t)c));
    if (wsmd && dnnl_memory_desc_get_size(wsmd) > 0)
        NN_TRY(nn_graph_mem(g, &ws, wsmd, NN_BUF_OWN, 0));

    const dnnl_exec_arg_t ta[] = {{DNNL_ARG_SRC, src->mem}, {DNNL_ARG_DST, dst->mem},
                                  {DNNL_ARG_SCALE, gamma},  {DNNL_ARG_SHIFT, beta},
                                  {DNNL_ARG_MEAN, mean},    {DNNL_ARG_VARIANCE, var},
                                  {DNNL_ARG_WORKSPACE, ws}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_TRAIN), ft, ws ? 7 : 6, ta));
    NnBnRun *run = nn_graph_alloc(g, sizeof *run);
    if (!run)
        return nn_fail(g, AMO_ENOMEM, "out of memory");
    *run = (NnBnRun){.g = g, .off = os, .c = c, .mean = mean, .var = var,
                     .unbias = values > 1 ? (double)values / (double)(values - 1) : 1.0};
    NN_TRY(nn_graph_step(g, NN_IN(NN_PASS_TRAIN), bn_update_running, run));
    const dnnl_exec_arg_t ia[] = {{DNNL_ARG_SRC, src->mem}, {DNNL_ARG_DST, dst->mem},
                                  {DNNL_ARG_SCALE, gamma},  {DNNL_ARG_SHIFT, beta},
                                  {DNNL_ARG_MEAN, rmean},   {DNNL_ARG_VARIANCE, rvar}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_INFER), fi, 6, ia));

    NN_DNNL(g, dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &dst->md,
                                                           &src->md, NN_BN_EPS, flags));
    NN_TRY(nn_graph_pd(g, &bw, &bd, NULL, ft));
    /* SHIFT is unused by the math but oneDNN 2.6 rejects the execution
     * (invalid_arguments) without it whenever dnnl_use_shift is set. */
    const dnnl_exec_arg_t ba[] = {
        {DNNL_ARG_SRC, src->mem},        {DNNL_ARG_MEAN, mean},
        {DNNL_ARG_VARIANCE, var},        {DNNL_ARG_DIFF_DST, dst->diff},
        {DNNL_ARG_SCALE, gamma},         {DNNL_ARG_SHIFT, beta},
        {DNNL_ARG_DIFF_SRC, src->diff},  {DNNL_ARG_DIFF_SCALE, dgamma},
        {DNNL_ARG_DIFF_SHIFT, dbeta},    {DNNL_ARG_WORKSPACE, ws}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bw, ws ? 10 : 9, ba));
    done(g, relu ? "bn+relu" : "bn", dst);
    return AMO_OK;
}

/* ---------------------------------------------------------------- relu -- */

AmoStatus nn_relu(NnGraph *g, const char *name, NnAct *dst, const NnAct *src)
{
    long n, c, h, w;
    dims_of(src, &n, &c, &h, &w);
    NN_TRY(nn_graph_layer(g, name, "relu, src %ldx%ldx%ldx%ld", n, c, h, w));
    dnnl_eltwise_desc_t ed;
    dnnl_primitive_desc_t fwd, bwd;
    NN_DNNL(g, dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_training, dnnl_eltwise_relu,
                                              &src->md, 0.f, 0.f));
    NN_TRY(nn_graph_pd(g, &fwd, &ed, NULL, NULL));
    NN_TRY(nn_graph_act(g, dst, query(fwd, dnnl_query_dst_md)));
    const dnnl_exec_arg_t fa[] = {{DNNL_ARG_SRC, src->mem}, {DNNL_ARG_DST, dst->mem}};
    NN_TRY(nn_graph_prim(g, NN_FWD, fwd, 2, fa));
    NN_DNNL(g, dnnl_eltwise_backward_desc_init(&ed, dnnl_eltwise_relu, &dst->md, &src->md, 0.f,
                                               0.f));
    NN_TRY(nn_graph_pd(g, &bwd, &ed, NULL, fwd));
    const dnnl_exec_arg_t ba[] = {
        {DNNL_ARG_SRC, src->mem}, {DNNL_ARG_DIFF_DST, dst->diff}, {DNNL_ARG_DIFF_SRC, src->diff}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bwd, 3, ba));
    done(g, "relu", dst);
    return AMO_OK;
}

/* ------------------------------------------------------ residual add ---- */

AmoStatus nn_add_relu(NnGraph *g, const char *name, NnAct *dst, const NnAct *src0,
                     const NnAct *src1)
{
    long n, c, h, w, n1, c1, h1, w1;
    dims_of(src0, &n, &c, &h, &w);
    dims_of(src1, &n1, &c1, &h1, &w1);
    NN_TRY(nn_graph_layer(g, name, "add+relu, src0 %ldx%ldx%ldx%ld, src1 %ldx%ldx%ldx%ld", n, c,
                          h, w, n1, c1, h1, w1));
    if (n != n1 || c != c1 || h != h1 || w != w1)
        return nn_fail(g, AMO_EINVAL, "the two inputs differ in shape");
    const long d[4] = {n, c, h, w};
    const dnnl_memory_desc_t dst_any = nn_md_any(4, d, g->dt);
    dnnl_post_ops_t po;
    dnnl_primitive_attr_t attr;
    NN_DNNL(g, dnnl_primitive_attr_clone(&attr, g->attr));
    NN_DNNL(g, dnnl_post_ops_create(&po));
    dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_relu, 0.f, 0.f);
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    dnnl_binary_desc_t bd;
    dnnl_eltwise_desc_t ed;
    dnnl_primitive_desc_t fwd, hint, bwd;
    NN_DNNL(g, dnnl_binary_desc_init(&bd, dnnl_binary_add, &src0->md, &src1->md, &dst_any));
    const AmoStatus s = nn_graph_pd(g, &fwd, &bd, attr, NULL);
    dnnl_primitive_attr_destroy(attr);
    NN_TRY(s);
    NN_TRY(nn_graph_act(g, dst, query(fwd, dnnl_query_dst_md)));
    const dnnl_exec_arg_t fa[] = {
        {DNNL_ARG_SRC_0, src0->mem}, {DNNL_ARG_SRC_1, src1->mem}, {DNNL_ARG_DST, dst->mem}};
    NN_TRY(nn_graph_prim(g, NN_FWD, fwd, 3, fa));

    /* ReLU backward from its output (relu(x) > 0 iff x > 0), so the sum
     * itself is never stored. */
    NN_DNNL(g, dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_training,
                                              dnnl_eltwise_relu_use_dst_for_bwd, &dst->md, 0.f,
                                              0.f));
    NN_TRY(nn_graph_pd(g, &hint, &ed, NULL, NULL));
    NN_DNNL(g, dnnl_eltwise_backward_desc_init(&ed, dnnl_eltwise_relu_use_dst_for_bwd, &dst->md,
                                               &dst->md, 0.f, 0.f));
    NN_TRY(nn_graph_pd(g, &bwd, &ed, NULL, hint));
    dnnl_memory_t dsum;
    NN_TRY(diff_target(g, &dsum, &dst->md, src0, NN_DIFF_WRITE));
    const dnnl_exec_arg_t ba[] = {
        {DNNL_ARG_DST, dst->mem}, {DNNL_ARG_DIFF_DST, dst->diff}, {DNNL_ARG_DIFF_SRC, dsum}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bwd, 3, ba));
    if (dsum == src0->diff && md_equal(&src0->md, &src1->md)) {
        NN_TRY(nn_graph_alias(g, src0->diff, src1->diff));
    } else {
        NN_TRY(diff_finish(g, dsum, &dst->md, src0, NN_DIFF_WRITE));
        NN_TRY(nn_graph_reorder(g, NN_IN(NN_PASS_BWD), dsum, &dst->md, src1->diff, &src1->md));
    }
    done(g, "add+relu", dst);
    return AMO_OK;
}

/* ------------------------------------------------------------- pooling -- */

AmoStatus nn_pool(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int max,
                 int kh, int kw, int stride, int pad, int diff_src)
{
    long n, c, h, w;
    dims_of(src, &n, &c, &h, &w);
    NN_TRY(nn_graph_layer(g, name, "%s pool %dx%d/%d pad %d, src %ldx%ldx%ldx%ld",
                          max ? "max" : "avg", kh, kw, stride, pad, n, c, h, w));
    if (kh < 1 || kw < 1 || stride < 1 || pad < 0 || pad >= kh || pad >= kw)
        return nn_fail(g, AMO_EINVAL, "kernel and stride must be >= 1, 0 <= pad < kernel");
    if (h + 2 * pad < kh || w + 2 * pad < kw)
        return nn_fail(g, AMO_EINVAL, "the %dx%d window is larger than the padded %ldx%ld "
                       "input: the output would be smaller than 1x1", kh, kw, h + 2 * pad,
                       w + 2 * pad);
    const long oh = (h + 2 * pad - kh) / stride + 1, ow = (w + 2 * pad - kw) / stride + 1;
    const long dd[4] = {n, c, oh, ow};
    const dnnl_memory_desc_t dst_any = nn_md_any(4, dd, g->dt);
    const dnnl_dims_t strides = {stride, stride}, kernel = {kh, kw}, dil = {0, 0},
                      padding = {pad, pad};
    const dnnl_alg_kind_t alg = max ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding;
    dnnl_pooling_v2_desc_t pd_;
    dnnl_primitive_desc_t ft, fi, bwd;
    NN_DNNL(g, dnnl_pooling_v2_forward_desc_init(&pd_, dnnl_forward_training, alg, &src->md,
                                                 &dst_any, strides, kernel, dil, padding,
                                                 padding));
    NN_TRY(nn_graph_pd(g, &ft, &pd_, NULL, NULL));
    NN_TRY(nn_graph_act(g, dst, query(ft, dnnl_query_dst_md)));
    NN_DNNL(g, dnnl_pooling_v2_forward_desc_init(&pd_, dnnl_forward_inference, alg, &src->md,
                                                 &dst->md, strides, kernel, dil, padding,
                                                 padding));
    NN_TRY(nn_graph_pd(g, &fi, &pd_, NULL, NULL));
    const dnnl_memory_desc_t *wsmd = query(ft, dnnl_query_workspace_md);
    dnnl_memory_t ws = NULL;
    if (wsmd && dnnl_memory_desc_get_size(wsmd) > 0)
        NN_TRY(nn_graph_mem(g, &ws, wsmd, NN_BUF_OWN, 0));
    const dnnl_exec_arg_t fa[] = {
        {DNNL_ARG_SRC, src->mem}, {DNNL_ARG_DST, dst->mem}, {DNNL_ARG_WORKSPACE, ws}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_TRAIN), ft, ws ? 3 : 2, fa));
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_INFER), fi, 2, fa));

    if (diff_src != NN_DIFF_NONE) {
        NN_DNNL(g, dnnl_pooling_v2_backward_desc_init(&pd_, alg, &src->md, &dst->md, strides,
                                                      kernel, dil, padding, padding));
        NN_TRY(nn_graph_pd(g, &bwd, &pd_, NULL, ft));
        const dnnl_memory_desc_t *dsmd = query(bwd, dnnl_query_diff_src_md);
        dnnl_memory_t dsrc;
        NN_TRY(diff_target(g, &dsrc, dsmd, src, diff_src));
        const dnnl_exec_arg_t ba[] = {
            {DNNL_ARG_DIFF_DST, dst->diff}, {DNNL_ARG_DIFF_SRC, dsrc}, {DNNL_ARG_WORKSPACE, ws}};
        NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bwd, ws ? 3 : 2, ba));
        NN_TRY(diff_finish(g, dsrc, dsmd, src, diff_src));
    }
    char op[48];
    snprintf(op, sizeof op, "%s pool %dx%d/%d", max ? "max" : "avg", kh, kw, stride);
    done(g, op, dst);
    return AMO_OK;
}

/* ----------------------------------------------------- fully connected -- */

AmoStatus nn_fc(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int k,
               int diff_src)
{
    long n, c, h, w;
    dims_of(src, &n, &c, &h, &w);
    NN_TRY(nn_graph_layer(g, name, "fully connected, src %ldx%ldx%ldx%ld, %d outputs", n, c, h,
                          w, k));
    if (k < 1)
        return nn_fail(g, AMO_EINVAL, "the number of outputs must be >= 1");
    const long wd4[4] = {k, c, h, w}, wd2[2] = {k, c * h * w}, bd_[1] = {k}, dd[2] = {n, k};
    const size_t ow = nn_graph_param(g, "weight", NN_FC_WEIGHT, 2, wd2);
    const size_t ob = nn_graph_param(g, "bias", NN_FC_BIAS, 1, bd_);
    const dnnl_memory_desc_t w_any = nn_md_any(4, wd4, g->dt), dw_any = nn_md_any(4, wd4, dnnl_f32),
                             b_md = nn_md_plain(1, bd_, dnnl_f32),
                             dst_any = nn_md_any(2, dd, g->dt);
    dnnl_inner_product_desc_t ip;
    dnnl_primitive_desc_t fwd, bww, bwd;
    NN_DNNL(g, dnnl_inner_product_forward_desc_init(&ip, dnnl_forward_training, &src->md, &w_any,
                                                    &b_md, &dst_any));
    NN_TRY(nn_graph_pd(g, &fwd, &ip, NULL, NULL));
    const dnnl_memory_desc_t *cw = query(fwd, dnnl_query_weights_md);
    dnnl_memory_t wmem, bmem, dwmem, dbmem;
    NN_TRY(weights_view(g, &wmem, cw, ow, 4, wd4));
    NN_TRY(weights_view(g, &bmem, dnnl_primitive_desc_query_md(fwd, dnnl_query_weights_md, 1),
                        ob, 1, bd_));
    NN_TRY(nn_graph_act(g, dst, query(fwd, dnnl_query_dst_md)));
    const dnnl_exec_arg_t fa[] = {{DNNL_ARG_SRC, src->mem},
                                  {DNNL_ARG_WEIGHTS, wmem},
                                  {DNNL_ARG_BIAS, bmem},
                                  {DNNL_ARG_DST, dst->mem}};
    NN_TRY(nn_graph_prim(g, NN_FWD, fwd, 4, fa));

    NN_DNNL(g, dnnl_inner_product_backward_weights_desc_init(&ip, &src->md, &dw_any, &b_md,
                                                             &dst->md));
    NN_TRY(nn_graph_pd(g, &bww, &ip, NULL, fwd));
    NN_TRY(grads_view(g, &dwmem, query(bww, dnnl_query_diff_weights_md), ow, 4, wd4));
    NN_TRY(grads_view(g, &dbmem, dnnl_primitive_desc_query_md(bww, dnnl_query_diff_weights_md, 1),
                      ob, 1, bd_));
    const dnnl_exec_arg_t wa[] = {{DNNL_ARG_SRC, src->mem},
                                  {DNNL_ARG_DIFF_DST, dst->diff},
                                  {DNNL_ARG_DIFF_WEIGHTS, dwmem},
                                  {DNNL_ARG_DIFF_BIAS, dbmem}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bww, 4, wa));

    if (diff_src != NN_DIFF_NONE) {
        NN_DNNL(g, dnnl_inner_product_backward_data_desc_init(&ip, &src->md, &w_any, &dst->md));
        NN_TRY(nn_graph_pd(g, &bwd, &ip, NULL, fwd));
        const dnnl_memory_desc_t *bw = query(bwd, dnnl_query_weights_md);
        const dnnl_memory_desc_t *dsmd = query(bwd, dnnl_query_diff_src_md);
        dnnl_memory_t bwmem = wmem, dsrc;
        if (!md_equal(bw, cw))
            NN_TRY(weights_view(g, &bwmem, bw, ow, 4, wd4));
        NN_TRY(diff_target(g, &dsrc, dsmd, src, diff_src));
        const dnnl_exec_arg_t da[] = {
            {DNNL_ARG_DIFF_DST, dst->diff}, {DNNL_ARG_WEIGHTS, bwmem}, {DNNL_ARG_DIFF_SRC, dsrc}};
        NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bwd, 3, da));
        NN_TRY(diff_finish(g, dsrc, dsmd, src, diff_src));
    }
    done(g, "fc", dst);
    return AMO_OK;
}

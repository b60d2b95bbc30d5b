/* The convolution builder: forward, backward weights (oneDNN's kernel or
 * im2col + matmul) and backward data, direct or Winograd.  Layout rules as
 * in nn/layers.c. */
#include <stdio.h>
#include <string.h>

#include "nn/layers_impl.h"

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
    if (!nn_md_equal(csrc, &sx) || !nn_md_equal(&dst->md, &sy))
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
    cv->csrc = nn_query(fwd, dnnl_query_src_md);
    cv->cw = nn_query(fwd, dnnl_query_weights_md);

    /* The convolution's own view of src: a reorder only where the producer
     * chose another layout (in a ResNet: the network input). */
    cv->xsrc = src->mem;
    if (!nn_md_equal(cv->csrc, &src->md)) {
        NN_TRY(nn_graph_mem(g, &cv->xsrc, cv->csrc, NN_BUF_OWN, 0));
        NN_TRY(nn_graph_reorder(g, NN_FWD, src->mem, &src->md, cv->xsrc, cv->csrc));
    }
    NN_TRY(nn_flat_view(g, &cv->wmem, cv->cw, NN_BUF_PARAMS, cv->off, 4, cv->wd));
    NN_TRY(nn_graph_act(g, dst, nn_query(fwd, dnnl_query_dst_md)));
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
    NN_TRY(nn_flat_view(g, &dwmem, nn_query(bww, dnnl_query_diff_weights_md), NN_BUF_GRADS,
                        cv->off, 4, cv->wd));
    NN_TRY(nn_bwd_view(g, &bsrc, cv->xsrc, cv->csrc, nn_query(bww, dnnl_query_src_md)));
    NN_TRY(nn_bwd_view(g, &bddst, dst->diff, &dst->md, nn_query(bww, dnnl_query_diff_dst_md)));
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
    const dnnl_memory_desc_t *bw = nn_query(bwd, dnnl_query_weights_md);
    dnnl_memory_t bwmem = cv->wmem, dsrc, bddst;
    if (!nn_md_equal(bw, cv->cw))
        NN_TRY(nn_flat_view(g, &bwmem, bw, NN_BUF_PARAMS, cv->off, 4, cv->wd));
    NN_TRY(nn_bwd_view(g, &bddst, dst->diff, &dst->md, nn_query(bwd, dnnl_query_diff_dst_md)));
    const dnnl_memory_desc_t *dsmd = nn_query(bwd, dnnl_query_diff_src_md);
    NN_TRY(nn_diff_target(g, &dsrc, dsmd, src, diff_src));
    const dnnl_exec_arg_t da[] = {
        {DNNL_ARG_DIFF_DST, bddst}, {DNNL_ARG_WEIGHTS, bwmem}, {DNNL_ARG_DIFF_SRC, dsrc}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bwd, 3, da));
    return nn_diff_finish(g, dsrc, dsmd, src, diff_src);
}

AmoStatus nn_conv(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int oc,
                  int k, int stride, int pad, int diff_src)
{
    long n, c, h, w;
    nn_dims_of(src, &n, &c, &h, &w);
    NN_TRY(nn_graph_layer(g, name, "conv %dx%d/%d pad %d, src %ldx%ldx%ldx%ld, %d out channels",
                          k, k, stride, pad, n, c, h, w, oc));
    if (oc < 1 || k < 1 || stride < 1 || pad < 0)
        return nn_fail(g, AMO_EINVAL, "out channels, kernel and stride must be >= 1, pad >= 0");
    NN_TRY(nn_window_fits(g, "kernel", k, k, pad, h, w));
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
    nn_layer_done(g, op, dst);
    return AMO_OK;
}

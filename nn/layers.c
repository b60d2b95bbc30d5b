/* Layer builders: batch normalization, ReLU, residual add, pooling, fully
 * connected (convolution: nn/conv.c), and what they share.
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
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/layers_impl.h"

const dnnl_memory_desc_t *nn_query(const_dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

const dnnl_memory_desc_t *nn_query_arg(const_dnnl_primitive_desc_t pd, int arg)
{
    return dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
}

int nn_md_equal(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b)
{
    return dnnl_memory_desc_equal(a, b);
}

void nn_dims_of(const NnAct *a, long *n, long *c, long *h, long *w)
{
    *n = (long)a->md.dims[0];
    *c = (long)a->md.dims[1];
    *h = a->md.ndims > 2 ? (long)a->md.dims[2] : 1;
    *w = a->md.ndims > 3 ? (long)a->md.dims[3] : 1;
}

void nn_layer_done(NnGraph *g, const char *op, const NnAct *dst)
{
    nn_graph_layer_done(g, op, &dst->md);
}

/* The working copy, in the layout md a primitive chose, of the plain fp32
 * tensor at off in the flat parameters (kind NN_BUF_PARAMS) or gradients
 * (NN_BUF_GRADS): the flat buffer itself when the layouts agree, otherwise a
 * copy that NN_PASS_SYNC refreshes from the parameters (once per step, after
 * the optimizer: one read and one write of the tensor) or that
 * NN_PASS_GRADS reorders into the gradients. */
AmoStatus nn_flat_view(NnGraph *g, dnnl_memory_t *out, const dnnl_memory_desc_t *md, int kind,
                       size_t off, int ndims, const long *dims)
{
    const dnnl_memory_desc_t plain = nn_md_plain(ndims, dims, dnnl_f32);
    if (nn_md_equal(md, &plain))
        return nn_graph_mem(g, out, md, kind, off);
    dnnl_memory_t pm;
    NN_TRY(nn_graph_mem(g, &pm, &plain, kind, off));
    NN_TRY(nn_graph_mem(g, out, md, NN_BUF_WORK, 0));
    return kind == NN_BUF_PARAMS
               ? nn_graph_reorder(g, NN_IN(NN_PASS_SYNC), pm, &plain, *out, md)
               : nn_graph_reorder(g, NN_IN(NN_PASS_GRADS), *out, md, pm, &plain);
}

/* A window (kernel) of kh x kw must fit the input padded by pad. */
AmoStatus nn_window_fits(NnGraph *g, const char *what, int kh, int kw, int pad, long h, long w)
{
    if (h + 2 * pad < kh || w + 2 * pad < kw)
        return nn_fail(g, AMO_EINVAL, "the %dx%d %s is larger than the padded %ldx%ld "
                       "input: the output would be smaller than 1x1", kh, kw, what,
                       h + 2 * pad, w + 2 * pad);
    return AMO_OK;
}

/* m (layout md) as a backward primitive wants it (layout want): m itself, or
 * a copy the backward pass reorders into just before the primitive. */
AmoStatus nn_bwd_view(NnGraph *g, dnnl_memory_t *out, dnnl_memory_t m,
                      const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *want)
{
    *out = m;
    if (nn_md_equal(md, want))
        return AMO_OK;
    NN_TRY(nn_graph_mem(g, out, want, NN_BUF_OWN, 0));
    return nn_graph_reorder(g, NN_IN(NN_PASS_BWD), m, md, *out, want);
}

/* Backward: the gradient a primitive computed into a memory of layout md
 * reaches src->diff, overwritten or accumulated.  Returns the memory the
 * primitive should write (src->diff itself when that is possible). */
AmoStatus nn_diff_target(NnGraph *g, dnnl_memory_t *out, const dnnl_memory_desc_t *md,
                         const NnAct *src, int mode)
{
    if (mode == NN_DIFF_WRITE && nn_md_equal(md, &src->md)) {
        *out = src->diff;
        return AMO_OK;
    }
    NN_TRY(nn_graph_mem(g, out, md, NN_BUF_TMP, 0));
    return AMO_OK;
}

/* Runs, in the current backward group after the primitive, what moves the
 * TMP gradient into src->diff. */
AmoStatus nn_diff_finish(NnGraph *g, dnnl_memory_t tmp, const dnnl_memory_desc_t *md,
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

/* ---------------------------------------------------------------- input -- */

AmoStatus nn_input(NnGraph *g, NnAct *dst, long n, long c, long h, long w)
{
    NN_TRY(nn_graph_layer(g, "input", "%ldx%ldx%ldx%ld", n, c, h, w));
    if (n < 1 || c < 1 || h < 1 || w < 1)
        return nn_fail(g, AMO_EINVAL, "batch, channels, height and width must all be >= 1");
    const long d[4] = {n, c, h, w};
    const dnnl_memory_desc_t md = nn_md_plain(4, d, dnnl_f32);
    NN_TRY(nn_graph_act(g, dst, &md));
    nn_layer_done(g, "input", dst);
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

/* Synchronised batch norm (g->bn_reduce, torch.nn.SyncBatchNorm): the
 * statistics of the whole batch over every replica, so that N replicas
 * compute what one computes with all N shares.  Forward: this replica's mean
 * and biased variance from the training primitive, summed over replicas as
 * n mean and n (var + mean^2) with the counts n (in double), then a second
 * primitive with use_global_stats normalises with the global ones.
 * Backward with use_global_stats takes mean and variance as constants,
 * diff_src = gamma/sigma dy (dy after the fused ReLU's mask), and writes
 * diff_scale = sum(dy xhat), diff_shift = sum(dy); summed over replicas
 * (S2, S1, global count Ng) they give the missing terms,
 *     diff_src -= gamma/sigma (S1/Ng + xhat S2/Ng),
 * added as diff_src += A x + B per channel by one binary primitive.  The
 * replica's own diff_scale and diff_shift stay as they are: the harness
 * averages every gradient over replicas afterwards. */
typedef struct NnBnSync {
    NnBnRun *run;
    size_t og;               /* gamma's offset; beta's follows at og + c        */
    double n, ng;            /* values per channel here and over every replica */
    dnnl_memory_t lmean, lvar; /* this replica's statistics, (C) f32            */
    dnnl_memory_t a, b;      /* the correction's factor and offset, (1, C, 1, 1) */
    double *buf;             /* (2C + 1)                                        */
} NnBnSync;

static float *handle(dnnl_memory_t m)
{
    void *p = NULL;
    dnnl_memory_get_data_handle(m, &p);
    return p;
}

static void bn_sync_stats(void *arg)
{
    NnBnSync *s = arg;
    const long c = s->run->c;
    const float *lm = handle(s->lmean), *lv = handle(s->lvar);
    float *gm = handle(s->run->mean), *gv = handle(s->run->var);
    for (long i = 0; i < c; i++) {
        s->buf[i] = s->n * lm[i];
        s->buf[c + i] = s->n * ((double)lv[i] + (double)lm[i] * lm[i]);
    }
    s->buf[2 * c] = s->n;
    s->run->g->bn_reduce(s->run->g->bn_ctx, s->buf, (int)(2 * c + 1));
    s->ng = s->buf[2 * c];
    for (long i = 0; i < c; i++) {
        const double m = s->buf[i] / s->ng, v = s->buf[c + i] / s->ng - m * m;
        gm[i] = (float)m;
        gv[i] = (float)(v > 0 ? v : 0);
    }
    s->run->unbias = s->ng > 1 ? s->ng / (s->ng - 1) : 1.0;
}

static void bn_sync_grads(void *arg)
{
    NnBnSync *s = arg;
    NnGraph *g = s->run->g;
    const long c = s->run->c;
    const float *gamma = g->params + s->og, *dgamma = g->grads + s->og, *dbeta = dgamma + c;
    const float *gm = handle(s->run->mean), *gv = handle(s->run->var);
    float *a = handle(s->a), *b = handle(s->b);
    for (long i = 0; i < c; i++) {
        s->buf[i] = dgamma[i];
        s->buf[c + i] = dbeta[i];
    }
    g->bn_reduce(g->bn_ctx, s->buf, (int)(2 * c));
    for (long i = 0; i < c; i++) {
        const double sigma = sqrt((double)gv[i] + NN_BN_EPS), k = gamma[i] / sigma;
        const double ai = -k * s->buf[i] / (s->ng * sigma);
        a[i] = (float)ai;
        b[i] = (float)(-k * s->buf[c + i] / s->ng - ai * gm[i]);
    }
}

/* Forward of a synchronised batch norm: the statistics (ft, this replica's),
 * their sum over replicas, then the normalisation (fg, global statistics)
 * that writes dst and the ReLU's workspace. */
static AmoStatus bn_sync_forward(NnGraph *g, NnBnSync *s, const_dnnl_primitive_desc_t ft,
                                 const_dnnl_primitive_desc_t fg, const dnnl_exec_arg_t *ta,
                                 int nta)
{
    const dnnl_memory_desc_t *smd = nn_query_arg(ft, DNNL_ARG_MEAN);
    NN_TRY(nn_graph_mem(g, &s->lmean, smd, NN_BUF_OWN, 0));
    NN_TRY(nn_graph_mem(g, &s->lvar, smd, NN_BUF_OWN, 0));
    dnnl_exec_arg_t la[8];
    memcpy(la, ta, (size_t)nta * sizeof *ta);
    la[4].memory = s->lmean; /* ta: src, dst, scale, shift, mean, variance[, ws] */
    la[5].memory = s->lvar;
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_TRAIN), ft, nta, la));
    NN_TRY(nn_graph_step(g, NN_IN(NN_PASS_TRAIN), bn_sync_stats, s));
    return nn_graph_prim(g, NN_IN(NN_PASS_TRAIN), fg, nta, ta);
}

/* Backward's correction after the primitive: diff_src += A x + B. */
static AmoStatus bn_sync_backward(NnGraph *g, NnBnSync *s, const NnAct *src)
{
    const long c = s->run->c, d[4] = {1, c, 1, 1};
    const dnnl_memory_desc_t cmd = nn_md_plain(4, d, dnnl_f32);
    NN_TRY(nn_graph_mem(g, &s->a, &cmd, NN_BUF_OWN, 0));
    NN_TRY(nn_graph_mem(g, &s->b, &cmd, NN_BUF_OWN, 0));
    NN_TRY(nn_graph_step(g, NN_IN(NN_PASS_BWD), bn_sync_grads, s));
    dnnl_post_ops_t po;
    dnnl_primitive_attr_t attr;
    NN_DNNL(g, dnnl_primitive_attr_clone(&attr, g->attr));
    NN_DNNL(g, dnnl_post_ops_create(&po));
    dnnl_post_ops_append_binary(po, dnnl_binary_add, &cmd);
    dnnl_post_ops_append_sum(po, 1.f); /* + what diff_src holds */
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    dnnl_binary_desc_t bd;
    dnnl_primitive_desc_t pd;
    NN_DNNL(g, dnnl_binary_desc_init(&bd, dnnl_binary_mul, &src->md, &cmd, &src->md));
    const AmoStatus st = nn_graph_pd(g, &pd, &bd, attr, NULL);
    dnnl_primitive_attr_destroy(attr);
    NN_TRY(st);
    const dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC_0, src->mem}, {DNNL_ARG_SRC_1, s->a}, {DNNL_ARG_DST, src->diff},
        {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, s->b}};
    return nn_graph_prim(g, NN_IN(NN_PASS_BWD), pd, 4, args);
}

AmoStatus nn_bn(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int relu)
{
    long n, c, h, w;
    nn_dims_of(src, &n, &c, &h, &w);
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
    /* sync-BN: backward and the normalising forward take the global statistics */
    const unsigned sflags = g->bn_reduce ? flags | dnnl_use_global_stats : flags;
    dnnl_batch_normalization_desc_t bd;
    dnnl_primitive_desc_t ft, fg, fi, bw;
    NN_DNNL(g, dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training, &src->md,
                                                          NN_BN_EPS, flags));
    NN_TRY(nn_graph_pd(g, &ft, &bd, NULL, NULL));
    fg = ft;
    if (g->bn_reduce) {
        NN_DNNL(g, dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training,
                                                              &src->md, NN_BN_EPS, sflags));
        NN_TRY(nn_graph_pd(g, &fg, &bd, NULL, NULL));
    }
    NN_DNNL(g, dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_inference, &src->md,
                                                          NN_BN_EPS,
                                                          flags | dnnl_use_global_stats));
    NN_TRY(nn_graph_pd(g, &fi, &bd, NULL, NULL));
    NN_TRY(nn_graph_act(g, dst, nn_query(ft, dnnl_query_dst_md)));

    const dnnl_memory_desc_t *cmd = nn_query_arg(ft, DNNL_ARG_SCALE);
    const dnnl_memory_desc_t *smd = nn_query_arg(ft, DNNL_ARG_MEAN);
    const dnnl_memory_desc_t *wsmd = nn_query(fg, dnnl_query_workspace_md);
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
    NnBnRun *run = nn_graph_alloc(g, sizeof *run);
    NnBnSync *sync = g->bn_reduce ? nn_graph_alloc(g, sizeof *sync) : NULL;
    double *sbuf = sync ? nn_graph_alloc(g, (2 * (size_t)c + 1) * sizeof(double)) : NULL;
    if (!run || (g->bn_reduce && (!sync || !sbuf)))
        return nn_fail(g, AMO_ENOMEM, "out of memory");
    *run = (NnBnRun){.g = g, .off = os, .c = c, .mean = mean, .var = var,
                     .unbias = values > 1 ? (double)values / (double)(values - 1) : 1.0};
    if (sync) {
        *sync = (NnBnSync){.run = run, .og = og, .n = (double)values, .buf = sbuf};
        NN_TRY(bn_sync_forward(g, sync, ft, fg, ta, ws ? 7 : 6));
    } else {
        NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_TRAIN), ft, ws ? 7 : 6, ta));
    }
    NN_TRY(nn_graph_step(g, NN_IN(NN_PASS_TRAIN), bn_update_running, run));
    const dnnl_exec_arg_t ia[] = {{DNNL_ARG_SRC, src->mem}, {DNNL_ARG_DST, dst->mem},
                                  {DNNL_ARG_SCALE, gamma},  {DNNL_ARG_SHIFT, beta},
                                  {DNNL_ARG_MEAN, rmean},   {DNNL_ARG_VARIANCE, rvar}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_INFER), fi, 6, ia));

    NN_DNNL(g, dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &dst->md,
                                                           &src->md, NN_BN_EPS, sflags));
    NN_TRY(nn_graph_pd(g, &bw, &bd, NULL, fg));
    /* SHIFT is unused by the math but oneDNN 2.6 rejects the execution
     * (invalid_arguments) without it whenever dnnl_use_shift is set. */
    const dnnl_exec_arg_t ba[] = {
        {DNNL_ARG_SRC, src->mem},        {DNNL_ARG_MEAN, mean},
        {DNNL_ARG_VARIANCE, var},        {DNNL_ARG_DIFF_DST, dst->diff},
        {DNNL_ARG_SCALE, gamma},         {DNNL_ARG_SHIFT, beta},
        {DNNL_ARG_DIFF_SRC, src->diff},  {DNNL_ARG_DIFF_SCALE, dgamma},
        {DNNL_ARG_DIFF_SHIFT, dbeta},    {DNNL_ARG_WORKSPACE, ws}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bw, ws ? 10 : 9, ba));
    if (sync)
        NN_TRY(bn_sync_backward(g, sync, src));
    nn_layer_done(g, relu ? "bn+relu" : "bn", dst);
    return AMO_OK;
}

/* ---------------------------------------------------------------- relu -- */

AmoStatus nn_relu(NnGraph *g, const char *name, NnAct *dst, const NnAct *src)
{
    long n, c, h, w;
    nn_dims_of(src, &n, &c, &h, &w);
    NN_TRY(nn_graph_layer(g, name, "relu, src %ldx%ldx%ldx%ld", n, c, h, w));
    dnnl_eltwise_desc_t ed;
    dnnl_primitive_desc_t fwd, bwd;
    NN_DNNL(g, dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_training, dnnl_eltwise_relu,
                                              &src->md, 0.f, 0.f));
    NN_TRY(nn_graph_pd(g, &fwd, &ed, NULL, NULL));
    NN_TRY(nn_graph_act(g, dst, nn_query(fwd, dnnl_query_dst_md)));
    const dnnl_exec_arg_t fa[] = {{DNNL_ARG_SRC, src->mem}, {DNNL_ARG_DST, dst->mem}};
    NN_TRY(nn_graph_prim(g, NN_FWD, fwd, 2, fa));
    NN_DNNL(g, dnnl_eltwise_backward_desc_init(&ed, dnnl_eltwise_relu, &dst->md, &src->md, 0.f,
                                               0.f));
    NN_TRY(nn_graph_pd(g, &bwd, &ed, NULL, fwd));
    const dnnl_exec_arg_t ba[] = {
        {DNNL_ARG_SRC, src->mem}, {DNNL_ARG_DIFF_DST, dst->diff}, {DNNL_ARG_DIFF_SRC, src->diff}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bwd, 3, ba));
    nn_layer_done(g, "relu", dst);
    return AMO_OK;
}

/* ------------------------------------------------------ residual add ---- */

AmoStatus nn_add_relu(NnGraph *g, const char *name, NnAct *dst, const NnAct *src0,
                      const NnAct *src1)
{
    long n, c, h, w, n1, c1, h1, w1;
    nn_dims_of(src0, &n, &c, &h, &w);
    nn_dims_of(src1, &n1, &c1, &h1, &w1);
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
    NN_TRY(nn_graph_act(g, dst, nn_query(fwd, dnnl_query_dst_md)));
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
    NN_TRY(nn_diff_target(g, &dsum, &dst->md, src0, NN_DIFF_WRITE));
    const dnnl_exec_arg_t ba[] = {
        {DNNL_ARG_DST, dst->mem}, {DNNL_ARG_DIFF_DST, dst->diff}, {DNNL_ARG_DIFF_SRC, dsum}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bwd, 3, ba));
    if (dsum == src0->diff && nn_md_equal(&src0->md, &src1->md)) {
        NN_TRY(nn_graph_alias(g, src0->diff, src1->diff));
    } else {
        NN_TRY(nn_diff_finish(g, dsum, &dst->md, src0, NN_DIFF_WRITE));
        NN_TRY(nn_graph_reorder(g, NN_IN(NN_PASS_BWD), dsum, &dst->md, src1->diff, &src1->md));
    }
    nn_layer_done(g, "add+relu", dst);
    return AMO_OK;
}

/* ------------------------------------------------------------- pooling -- */

AmoStatus nn_pool(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int max,
                  int kh, int kw, int stride, int pad, int diff_src)
{
    long n, c, h, w;
    nn_dims_of(src, &n, &c, &h, &w);
    NN_TRY(nn_graph_layer(g, name, "%s pool %dx%d/%d pad %d, src %ldx%ldx%ldx%ld",
                          max ? "max" : "avg", kh, kw, stride, pad, n, c, h, w));
    if (kh < 1 || kw < 1 || stride < 1 || pad < 0 || pad >= kh || pad >= kw)
        return nn_fail(g, AMO_EINVAL, "kernel and stride must be >= 1, 0 <= pad < kernel");
    NN_TRY(nn_window_fits(g, "window", kh, kw, pad, h, w));
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
    NN_TRY(nn_graph_act(g, dst, nn_query(ft, dnnl_query_dst_md)));
    NN_DNNL(g, dnnl_pooling_v2_forward_desc_init(&pd_, dnnl_forward_inference, alg, &src->md,
                                                 &dst->md, strides, kernel, dil, padding,
                                                 padding));
    NN_TRY(nn_graph_pd(g, &fi, &pd_, NULL, NULL));
    const dnnl_memory_desc_t *wsmd = nn_query(ft, dnnl_query_workspace_md);
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
        const dnnl_memory_desc_t *dsmd = nn_query(bwd, dnnl_query_diff_src_md);
        dnnl_memory_t dsrc;
        NN_TRY(nn_diff_target(g, &dsrc, dsmd, src, diff_src));
        const dnnl_exec_arg_t ba[] = {
            {DNNL_ARG_DIFF_DST, dst->diff}, {DNNL_ARG_DIFF_SRC, dsrc}, {DNNL_ARG_WORKSPACE, ws}};
        NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bwd, ws ? 3 : 2, ba));
        NN_TRY(nn_diff_finish(g, dsrc, dsmd, src, diff_src));
    }
    char op[48];
    snprintf(op, sizeof op, "%s pool %dx%d/%d", max ? "max" : "avg", kh, kw, stride);
    nn_layer_done(g, op, dst);
    return AMO_OK;
}

/* ----------------------------------------------------- fully connected -- */

AmoStatus nn_fc(NnGraph *g, const char *name, NnAct *dst, const NnAct *src, int k,
                int diff_src)
{
    long n, c, h, w;
    nn_dims_of(src, &n, &c, &h, &w);
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
    const dnnl_memory_desc_t *cw = nn_query(fwd, dnnl_query_weights_md);
    dnnl_memory_t wmem, bmem, dwmem, dbmem;
    NN_TRY(nn_flat_view(g, &wmem, cw, NN_BUF_PARAMS, ow, 4, wd4));
    NN_TRY(nn_flat_view(g, &bmem, dnnl_primitive_desc_query_md(fwd, dnnl_query_weights_md, 1),
                        NN_BUF_PARAMS, ob, 1, bd_));
    NN_TRY(nn_graph_act(g, dst, nn_query(fwd, dnnl_query_dst_md)));
    const dnnl_exec_arg_t fa[] = {{DNNL_ARG_SRC, src->mem},
                                  {DNNL_ARG_WEIGHTS, wmem},
                                  {DNNL_ARG_BIAS, bmem},
                                  {DNNL_ARG_DST, dst->mem}};
    NN_TRY(nn_graph_prim(g, NN_FWD, fwd, 4, fa));

    NN_DNNL(g, dnnl_inner_product_backward_weights_desc_init(&ip, &src->md, &dw_any, &b_md,
                                                             &dst->md));
    NN_TRY(nn_graph_pd(g, &bww, &ip, NULL, fwd));
    NN_TRY(nn_flat_view(g, &dwmem, nn_query(bww, dnnl_query_diff_weights_md), NN_BUF_GRADS, ow, 4,
                        wd4));
    NN_TRY(nn_flat_view(g, &dbmem, dnnl_primitive_desc_query_md(bww, dnnl_query_diff_weights_md, 1),
                        NN_BUF_GRADS, ob, 1, bd_));
    const dnnl_exec_arg_t wa[] = {{DNNL_ARG_SRC, src->mem},
                                  {DNNL_ARG_DIFF_DST, dst->diff},
                                  {DNNL_ARG_DIFF_WEIGHTS, dwmem},
                                  {DNNL_ARG_DIFF_BIAS, dbmem}};
    NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bww, 4, wa));

    if (diff_src != NN_DIFF_NONE) {
        NN_DNNL(g, dnnl_inner_product_backward_data_desc_init(&ip, &src->md, &w_any, &dst->md));
        NN_TRY(nn_graph_pd(g, &bwd, &ip, NULL, fwd));
        const dnnl_memory_desc_t *bw = nn_query(bwd, dnnl_query_weights_md);
        const dnnl_memory_desc_t *dsmd = nn_query(bwd, dnnl_query_diff_src_md);
        dnnl_memory_t bwmem = wmem, dsrc;
        if (!nn_md_equal(bw, cw))
            NN_TRY(nn_flat_view(g, &bwmem, bw, NN_BUF_PARAMS, ow, 4, wd4));
        NN_TRY(nn_diff_target(g, &dsrc, dsmd, src, diff_src));
        const dnnl_exec_arg_t da[] = {
            {DNNL_ARG_DIFF_DST, dst->diff}, {DNNL_ARG_WEIGHTS, bwmem}, {DNNL_ARG_DIFF_SRC, dsrc}};
        NN_TRY(nn_graph_prim(g, NN_IN(NN_PASS_BWD), bwd, 3, da));
        NN_TRY(nn_diff_finish(g, dsrc, dsmd, src, diff_src));
    }
    nn_layer_done(g, "fc", dst);
    return AMO_OK;
}

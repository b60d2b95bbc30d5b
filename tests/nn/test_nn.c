/* Tests of nn/: every layer's backward against central differences of its
 * forward, a narrow ResNet-18 and ResNet-50 end to end, batch-norm running
 * statistics and inference, the label-smoothed loss against its formula,
 * torchvision's parameter counts, output shapes, error messages, and a short
 * SGD run that must fit a small batch.
 *
 * Gradient checks: the objective is L = sum_i r_i dst_i with fixed random r
 * (so dL/ddst = r), accumulated in double; oneDNN computes in fp32, so the
 * differences use a step of 1e-2 (linear layers, exact up to rounding) or
 * 1e-3 (nonlinear) and inputs kept away from the kinks of ReLU and max.
 * The pass criterion is ||fd - analytic|| <= 1e-2 ||analytic|| over the
 * tensor, plus a per-coordinate bound; a gradient that is wrong anywhere
 * (a dropped term, a transposed or mis-reordered layout, a factor) misses it
 * by an order of magnitude (test_fd_catches_wrong_gradient checks a 5%
 * error is caught). */
#define _POSIX_C_SOURCE 200809L /* strcasecmp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels/cpu.h"
#include "common/rng.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/resnet.h"

/* ---- a tiny seeded RNG (splitmix64) -------------------------------------- */

/* the project's one RNG (common/rng.h): the test draws its data from it */
typedef AmoRng Rng;

static uint64_t rng_u64(Rng *r) { return amo_rng_u64(r); }

static double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1p-53; }

static double rng_normal(Rng *r)
{
    const double u1 = 1.0 - rng_uniform(r), u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Values in +-[0.1, 1.1]: never within 0.1 of a ReLU kink. */
static void fill_away_from_zero(Rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((rng_uniform(r) < 0.5 ? -1 : 1) * (0.1 + rng_uniform(r)));
}

static void fill_normal(Rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rng_normal(r);
}

static size_t act_count(const NnAct *a)
{
    size_t n = 1;
    for (int i = 0; i < a->md.ndims; i++)
        n *= (size_t)a->md.dims[i];
    return n;
}

#define OK(expr) assert_int_equal((expr), AMO_OK)
#define GOK(g, expr)                                                           \
    do {                                                                       \
        AmoStatus s_ = (expr);                                                  \
        if (s_ != AMO_OK)                                                       \
            fail_msg("%s: %s", #expr, (g)->msg);                               \
    } while (0)

/* ---- gradient check of one layer ------------------------------------------ */

typedef struct Fd {
    NnGraph g;
    NnAct in[2];
    float *x[2];  /* plain copies of the inputs            */
    int nin;
    NnAct out;
    float *r;     /* dL/dout, plain                        */
    size_t nout;
} Fd;

static void fd_begin(Fd *f)
{
    const char *isa;
    char msg[256];
    memset(f, 0, sizeof *f);
    if (nn_isa_init(msg, sizeof msg, &isa) != AMO_OK)
        fail_msg("%s", msg);
    GOK(&f->g, nn_graph_init(&f->g, dnnl_f32));
}

/* What oneDNN itself says it runs at (after nn_isa_init, which fixes it),
 * not the kernels' level: a user's ONEDNN_MAX_CPU_ISA may cap it lower, and
 * bf16 and Winograd depend on oneDNN's ISA alone. */
static int onednn_has(dnnl_cpu_isa_t isa)
{
    char msg[256];
    if (nn_isa_init(msg, sizeof msg, NULL) != AMO_OK)
        fail_msg("%s", msg);
    return ((unsigned)dnnl_get_effective_cpu_isa() & (unsigned)isa) == (unsigned)isa;
}

/* Whether oneDNN has a non-reference bf16 matmul for dW (oc, kk) = dY^T (oc,
 * p) . col (p, kk): the only condition under which the im2col path is taken
 * (oneDNN 2.6 offers none on CPUs without AMX). */
static int onednn_fast_bf16_matmul(long oc, long p, long kk, const char **impl)
{
    dnnl_engine_t eng;
    dnnl_memory_desc_t a, b, c;
    const dnnl_dims_t da = {oc, p}, sa = {1, oc}, db = {p, kk}, sb = {kk, 1}, dc = {oc, kk},
                      sc = {kk, 1};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    int fast = 0;
    *impl = "none";
    assert_int_equal(dnnl_engine_create(&eng, dnnl_cpu, 0), dnnl_success);
    assert_int_equal(dnnl_memory_desc_init_by_strides(&a, 2, da, dnnl_bf16, sa), dnnl_success);
    assert_int_equal(dnnl_memory_desc_init_by_strides(&b, 2, db, dnnl_bf16, sb), dnnl_success);
    assert_int_equal(dnnl_memory_desc_init_by_strides(&c, 2, dc, dnnl_f32, sc), dnnl_success);
    assert_int_equal(dnnl_matmul_desc_init(&md, &a, &b, NULL, &c), dnnl_success);
    if (dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) == dnnl_success) {
        static char name[64];
        const char *s = NULL;
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
        snprintf(name, sizeof name, "%s", s ? s : "?");
        *impl = name;
        fast = strncmp(name, "ref", 3) != 0;
        dnnl_primitive_desc_destroy(pd);
    }
    dnnl_engine_destroy(eng);
    return fast;
}

static int md_is_nhwc(const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t nhwc;
    assert_int_equal(dnnl_memory_desc_init_by_tag(&nhwc, 4, md->dims, md->data_type, dnnl_acdb),
                     dnnl_success);
    return dnnl_memory_desc_equal(md, &nhwc);
}

/* Whether oneDNN, left to choose (format_tag_any), lays a bf16 convolution's
 * src and dst out as NHWC, which the im2col path needs (it does with AMX;
 * without, it picks blocked layouts for 16 channels and more). */
static int onednn_bf16_conv_nhwc(long n, long c, long hw, long oc, long k, long stride)
{
    dnnl_engine_t eng;
    dnnl_memory_desc_t src, w, dst;
    const long o = (hw + 2 * (k / 2) - k) / stride + 1;
    const dnnl_dims_t ds = {n, c, hw, hw}, dw = {oc, c, k, k}, dd = {n, oc, o, o},
                      st = {stride, stride}, pad = {k / 2, k / 2};
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd;
    int nhwc = 0;
    assert_int_equal(dnnl_engine_create(&eng, dnnl_cpu, 0), dnnl_success);
    dnnl_memory_desc_init_by_tag(&src, 4, ds, dnnl_bf16, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&w, 4, dw, dnnl_bf16, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_bf16, dnnl_format_tag_any);
    assert_int_equal(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training,
                                                        dnnl_convolution_direct, &src, &w, NULL,
                                                        &dst, st, pad, pad),
                     dnnl_success);
    if (dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL) == dnnl_success) {
        nhwc = md_is_nhwc(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0))
               && md_is_nhwc(dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
        dnnl_primitive_desc_destroy(pd);
    }
    dnnl_engine_destroy(eng);
    return nhwc;
}

static void fd_input(Fd *f, long n, long c, long h, long w)
{
    NnAct *a = &f->in[f->nin];
    GOK(&f->g, nn_input(&f->g, a, n, c, h, w));
    f->x[f->nin++] = calloc(act_count(a), sizeof(float));
}

/* After the layer is built: finalize, random r, write the inputs. */
static void fd_ready(Fd *f, Rng *rng)
{
    GOK(&f->g, nn_graph_finalize(&f->g));
    f->nout = act_count(&f->out);
    f->r = malloc(f->nout * sizeof *f->r);
    fill_normal(rng, f->r, f->nout);
}

static double fd_objective(Fd *f)
{
    for (int k = 0; k < f->nin; k++)
        GOK(&f->g, nn_act_write(&f->g, f->in[k].mem, &f->in[k].md, f->x[k]));
    GOK(&f->g, nn_graph_run(&f->g, NN_PASS_SYNC));
    GOK(&f->g, nn_graph_run(&f->g, NN_PASS_TRAIN));
    float *y = malloc(f->nout * sizeof *y);
    GOK(&f->g, nn_act_read(&f->g, f->out.mem, &f->out.md, y));
    double l = 0;
    for (size_t i = 0; i < f->nout; i++)
        l += (double)f->r[i] * y[i];
    free(y);
    return l;
}

static void fd_backward(Fd *f)
{
    fd_objective(f);
    GOK(&f->g, nn_act_write(&f->g, f->out.diff, &f->out.md, f->r));
    GOK(&f->g, nn_graph_run(&f->g, NN_PASS_BWD));
    GOK(&f->g, nn_graph_run(&f->g, NN_PASS_GRADS));
}

static void fd_end(Fd *f)
{
    for (int k = 0; k < f->nin; k++)
        free(f->x[k]);
    free(f->r);
    nn_graph_free(&f->g);
}

/* Relative error of an analytic gradient against central differences. */
static double grad_error(const double *fd, const float *an, size_t n, double *worst)
{
    double num = 0, den = 0, amax = 0;
    for (size_t i = 0; i < n; i++)
        amax = fmax(amax, fabs(an[i]));
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fd[i] - an[i];
        num += d * d;
        den += (double)an[i] * an[i];
        *worst = fmax(*worst, fabs(d) / (1e-2 * fabs(an[i]) + 1e-3 * amax + 1e-12));
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void check_grad(const char *what, const double *fd, const float *an, size_t n)
{
    double worst;
    const double rel = grad_error(fd, an, n, &worst);
    if (!(rel <= 1e-2) || !(worst <= 1.0)) {
        for (size_t i = 0; i < n && i < 12; i++)
            print_message("  %s[%zu] fd %.6g analytic %.6g\n", what, i, fd[i], (double)an[i]);
        fail_msg("%s: relative error %.3g (limit 1e-2), worst coordinate %.3g x its bound",
                 what, rel, worst);
    }
}

/* Central differences of the objective along every coordinate of p. */
static double *fd_along(Fd *f, float *p, size_t n, double eps)
{
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) {
        const float keep = p[i];
        p[i] = (float)(keep + eps);
        const double hi = fd_objective(f);
        p[i] = (float)(keep - eps);
        const double lo = fd_objective(f);
        p[i] = keep;
        d[i] = (hi - lo) / (2 * eps);
    }
    return d;
}

/* Checks the gradient of every input and of every parameter tensor. */
static void fd_check_all(Fd *f, double eps)
{
    fd_backward(f);
    for (int k = 0; k < f->nin; k++) {
        const size_t n = act_count(&f->in[k]);
        float *an = malloc(n * sizeof *an);
        GOK(&f->g, nn_act_read(&f->g, f->in[k].diff, &f->in[k].md, an));
        double *d = fd_along(f, f->x[k], n, eps);
        check_grad(k ? "d src1" : "d src", d, an, n);
        free(d);
        free(an);
    }
    float *grads = malloc(f->g.nparams * sizeof *grads);
    memcpy(grads, f->g.grads, f->g.nparams * sizeof *grads);
    for (int t = 0; t < f->g.ntensors; t++) {
        const NnParamInfo *ti = &f->g.tensors[t];
        double *d = fd_along(f, f->g.params + ti->offset, ti->count, eps);
        check_grad(ti->name, d, grads + ti->offset, ti->count);
        free(d);
    }
    free(grads);
}

static void randomize_params(Fd *f, Rng *rng, double scale)
{
    for (size_t i = 0; i < f->g.nparams; i++)
        f->g.params[i] = (float)(scale * rng_normal(rng));
}

/* ---- the checker itself ---------------------------------------------------- */

static void test_fd_catches_wrong_gradient(void **state)
{
    (void)state;
    double fd[64], worst;
    float an[64];
    Rng rng = {1};
    for (int i = 0; i < 64; i++) {
        fd[i] = rng_normal(&rng);
        an[i] = (float)fd[i];
    }
    assert_true(grad_error(fd, an, 64, &worst) <= 1e-2 && worst <= 1);
    an[17] *= 1.05f; /* one coordinate 5% off */
    grad_error(fd, an, 64, &worst);
    assert_true(worst > 1);
    for (int i = 0; i < 64; i++)
        an[i] = (float)(fd[i] * 1.05); /* all 5% off */
    assert_true(grad_error(fd, an, 64, &worst) > 1e-2);
}

/* ---- layers ---------------------------------------------------------------- */

static void conv_case(int k, int stride, int pad)
{
    Fd f;
    Rng rng = {100u + (unsigned)(k * 10 + stride)};
    fd_begin(&f);
    fd_input(&f, 2, 3, 7, 6);
    GOK(&f.g, nn_conv(&f.g, "conv", &f.out, &f.in[0], 5, k, stride, pad, NN_DIFF_WRITE));
    fd_ready(&f, &rng);
    fill_normal(&rng, f.x[0], act_count(&f.in[0]));
    randomize_params(&f, &rng, 0.5);
    fd_check_all(&f, 1e-2);
    fd_end(&f);
}

static void test_conv3x3_stride2(void **state) { (void)state; conv_case(3, 2, 1); }
static void test_conv3x3_stride1(void **state) { (void)state; conv_case(3, 1, 1); }
static void test_conv1x1_stride2(void **state) { (void)state; conv_case(1, 2, 0); }
static void test_conv7x7_stride2(void **state) { (void)state; conv_case(7, 2, 3); }

/* ---- weight gradients by im2col + matmul (NN_CONV_GEMM_ALL) ---------------- */

static float bf16_round(double v) /* to nearest even, as an fp32 */
{
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* A bf16 convolution on an NHWC input (the layout the im2col path needs),
 * its weight gradient taken by im2col + matmul, against an fp64 sum over the
 * same bf16 inputs and output gradient: within 1e-5 of the sum of |terms|
 * (fp32 accumulation of exact bf16 products; a wrong tap, channel or
 * padding is off by whole terms). */
static void gemm_conv_case(int k, int stride, int pad)
{
    const dnnl_data_type_t dt = dnnl_bf16;
    enum { N = 2, C = 16, H = 7, W = 6, OC = 8 };
    Fd f;
    Rng rng = {300u + (unsigned)(k * 10 + stride)};
    fd_begin(&f);
    nn_graph_free(&f.g);
    GOK(&f.g, nn_graph_init(&f.g, dt));
    f.g.conv_gemm = NN_CONV_GEMM_ALL;
    dnnl_memory_desc_t md;
    const dnnl_dims_t d = {N, C, H, W};
    assert_int_equal(dnnl_memory_desc_init_by_tag(&md, 4, d, dt, dnnl_acdb), dnnl_success);
    GOK(&f.g, nn_graph_act(&f.g, &f.in[0], &md));
    f.x[0] = calloc(N * C * H * W, sizeof(float));
    f.nin = 1;
    GOK(&f.g, nn_conv(&f.g, "conv", &f.out, &f.in[0], OC, k, stride, pad, NN_DIFF_WRITE));
    const long oh = (H + 2 * pad - k) / stride + 1, ow = (W + 2 * pad - k) / stride + 1;
    /* the path needs an NHWC dst (oneDNN's choice for this CPU) and a fast
     * bf16 matmul; where oneDNN gives neither it must not be taken */
    const char *impl;
    const int fast = onednn_fast_bf16_matmul(OC, N * oh * ow, (long)C * k * k, &impl);
    if (!fast || !md_is_nhwc(&f.out.md)) {
        print_message("  bf16 %dx%d/%d: oneDNN gives %s dst and a %s bf16 matmul: im2col + "
                      "matmul not taken, skipped\n", k, k, stride,
                      md_is_nhwc(&f.out.md) ? "an NHWC" : "a blocked", impl);
        assert_int_equal(f.g.gemm_convs, 0);
        fd_end(&f);
        skip();
    }
    assert_int_equal(f.g.gemm_convs, 1); /* the path under test was taken */
    fd_ready(&f, &rng);
    fill_normal(&rng, f.x[0], N * C * H * W);
    randomize_params(&f, &rng, 0.5);
    for (int i = 0; i < N * C * H * W; i++)
        f.x[0][i] = bf16_round(f.x[0][i]);
    for (size_t i = 0; i < f.nout; i++)
        f.r[i] = bf16_round(f.r[i]);
    fd_backward(&f);
    double worst = 0;
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    double sum = 0, mag = 0;
                    for (int n = 0; n < N; n++)
                        for (long y = 0; y < oh; y++)
                            for (long x = 0; x < ow; x++) {
                                const long iy = y * stride - pad + ky, ix = x * stride - pad + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                const double t = (double)f.r[((n * OC + o) * oh + y) * ow + x]
                                                 * f.x[0][((n * C + c) * H + iy) * W + ix];
                                sum += t;
                                mag += fabs(t);
                            }
                    const float got = f.g.grads[((o * C + c) * k + ky) * k + kx];
                    worst = fmax(worst, fabs(got - sum) / (1e-5 * mag + 1e-30));
                }
    print_message("  bf16 %dx%d/%d: weight gradient within %.3g x its bound of the fp64 sum\n",
                  k, k, stride, worst);
    assert_true(worst <= 1.0);
    fd_end(&f);
}

/* Skips, saying why, where oneDNN as capped has no bf16 convolutions. */
static void need_onednn_bf16(void)
{
    if (!onednn_has(dnnl_cpu_isa_avx512_core)) {
        print_message("  oneDNN runs below avx512_core here: no bf16 convolutions, skipped\n");
        skip();
    }
}

static void test_conv_gemm_bf16(void **state)
{
    (void)state;
    need_onednn_bf16();
    gemm_conv_case(3, 1, 1);
    gemm_conv_case(3, 2, 1);
    gemm_conv_case(1, 2, 0);
    gemm_conv_case(1, 1, 0); /* no im2col: the input is the patch matrix */
}

/* ---- fp32 Winograd (NN_CONV_ALGO_WINOGRAD) -------------------------------- */

/* Worst |got - exact| / (tol * sum |terms|) of one convolution's output,
 * input gradient and weight gradient against fp64 sums over the same fp32
 * values. */
static double wino_case(int algo, double tol, int *passes)
{
    enum { N = 2, C = 32, H = 9, W = 7, OC = 16, K = 3 }; /* 9x7: partial 4x4 tiles */
    Fd f;
    Rng rng = {400u + (unsigned)algo};
    fd_begin(&f);
    f.g.conv_algo = algo;
    fd_input(&f, N, C, H, W);
    GOK(&f.g, nn_conv(&f.g, "conv", &f.out, &f.in[0], OC, K, 1, 1, NN_DIFF_WRITE));
    *passes = f.g.wino_passes;
    fd_ready(&f, &rng);
    fill_normal(&rng, f.x[0], act_count(&f.in[0]));
    randomize_params(&f, &rng, 0.5);
    fd_backward(&f);
    float *y = malloc(f.nout * sizeof *y), *dx = malloc(N * C * H * W * sizeof *dx);
    GOK(&f.g, nn_act_read(&f.g, f.out.mem, &f.out.md, y));
    GOK(&f.g, nn_act_read(&f.g, f.in[0].diff, &f.in[0].md, dx));
    const float *x = f.x[0], *w = f.g.params, *dw = f.g.grads, *r = f.r;
    double *ey = calloc(f.nout, sizeof *ey), *my = calloc(f.nout, sizeof *my);
    double *ex = calloc(N * C * H * W, sizeof *ex), *mx = calloc(N * C * H * W, sizeof *mx);
    double *ew = calloc(OC * C * K * K, sizeof *ew), *mw = calloc(OC * C * K * K, sizeof *mw);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            for (int oy = 0; oy < H; oy++)
                for (int ox = 0; ox < W; ox++) {
                    const int yi = ((n * OC + o) * H + oy) * W + ox;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < K; ky++)
                            for (int kx = 0; kx < K; kx++) {
                                const int iy = oy - 1 + ky, ix = ox - 1 + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                const int xi = ((n * C + c) * H + iy) * W + ix;
                                const int wi = ((o * C + c) * K + ky) * K + kx;
                                const double fy = (double)w[wi] * x[xi];
                                const double fx = (double)w[wi] * r[yi];
                                const double fw = (double)r[yi] * x[xi];
                                ey[yi] += fy, my[yi] += fabs(fy);
                                ex[xi] += fx, mx[xi] += fabs(fx);
                                ew[wi] += fw, mw[wi] += fabs(fw);
                            }
                }
    double worst = 0;
    for (size_t i = 0; i < f.nout; i++)
        worst = fmax(worst, fabs(y[i] - ey[i]) / (tol * my[i] + 1e-30));
    for (int i = 0; i < N * C * H * W; i++)
        worst = fmax(worst, fabs(dx[i] - ex[i]) / (tol * mx[i] + 1e-30));
    for (int i = 0; i < OC * C * K * K; i++)
        worst = fmax(worst, fabs(dw[i] - ew[i]) / (tol * mw[i] + 1e-30));
    free(ey), free(my), free(ex), free(mx), free(ew), free(mw), free(y), free(dx);
    fd_end(&f);
    return worst;
}

/* Winograd's forward, backward data and backward weights against the fp64
 * sums, within 1e-5 of the sum of |terms| (measured: 8e-7; the direct
 * kernel 2e-7): a wrong tap, channel or tile edge is off by whole terms,
 * ~1/300 of that sum. */
static void test_conv_winograd(void **state)
{
    (void)state;
    char msg[256];
    const char *isa;
    if (nn_isa_init(msg, sizeof msg, &isa) != AMO_OK)
        fail_msg("%s", msg);
    int passes;
    const double direct = wino_case(NN_CONV_ALGO_DIRECT, 1e-5, &passes);
    assert_int_equal(passes, 0);
    assert_true(direct <= 1.0);
    const double w = wino_case(NN_CONV_ALGO_WINOGRAD, 1e-5, &passes);
    print_message("  direct within %.3g, Winograd (%d passes) within %.3g x 1e-5 of "
                  "sum|terms|\n", direct, passes, w);
    assert_true(w <= 1.0); /* whichever algorithm ran */
    if (!onednn_has(dnnl_cpu_isa_avx512_core))
        skip(); /* oneDNN has Winograd for avx512_core only: direct ran */
    assert_int_equal(passes, 3); /* forward, backward data, backward weights */
}

/* NN_DIFF_ACCUM adds to src->diff instead of overwriting it. */
static void test_conv_accumulates(void **state)
{
    (void)state;
    Fd a, b;
    Rng rng = {7};
    fd_begin(&a);
    fd_input(&a, 2, 4, 5, 5);
    GOK(&a.g, nn_conv(&a.g, "conv", &a.out, &a.in[0], 6, 3, 1, 1, NN_DIFF_WRITE));
    fd_ready(&a, &rng);
    fd_begin(&b);
    fd_input(&b, 2, 4, 5, 5);
    GOK(&b.g, nn_conv(&b.g, "conv", &b.out, &b.in[0], 6, 3, 1, 1, NN_DIFF_ACCUM));
    fd_ready(&b, &rng);
    memcpy(b.r, a.r, a.nout * sizeof *a.r);
    fill_normal(&rng, a.x[0], act_count(&a.in[0]));
    memcpy(b.x[0], a.x[0], act_count(&a.in[0]) * sizeof(float));
    randomize_params(&a, &rng, 0.5);
    memcpy(b.g.params, a.g.params, a.g.nparams * sizeof(float));
    const size_t n = act_count(&a.in[0]);
    float *prior = malloc(n * sizeof *prior), *da = malloc(n * sizeof *da),
          *db = malloc(n * sizeof *db);
    fill_normal(&rng, prior, n);
    fd_backward(&a);
    GOK(&a.g, nn_act_read(&a.g, a.in[0].diff, &a.in[0].md, da));
    fd_objective(&b);
    GOK(&b.g, nn_act_write(&b.g, b.in[0].diff, &b.in[0].md, prior));
    GOK(&b.g, nn_act_write(&b.g, b.out.diff, &b.out.md, b.r));
    GOK(&b.g, nn_graph_run(&b.g, NN_PASS_BWD));
    GOK(&b.g, nn_act_read(&b.g, b.in[0].diff, &b.in[0].md, db));
    for (size_t i = 0; i < n; i++)
        assert_float_equal(db[i], prior[i] + da[i], 1e-5 * (1 + fabsf(da[i])));
    free(prior);
    free(da);
    free(db);
    fd_end(&a);
    fd_end(&b);
}

static void bn_case(int relu)
{
    Fd f;
    Rng rng = {200u + (unsigned)relu};
    fd_begin(&f);
    fd_input(&f, 4, 3, 3, 3);
    GOK(&f.g, nn_bn(&f.g, "bn", &f.out, &f.in[0], relu));
    fd_ready(&f, &rng);
    fill_normal(&rng, f.x[0], act_count(&f.in[0]));
    for (int c = 0; c < 3; c++) { /* gamma, beta: not 1 and 0 */
        f.g.params[c] = (float)(0.5 + rng_uniform(&rng));
        f.g.params[3 + c] = (float)(0.6 * rng_normal(&rng));
    }
    fd_check_all(&f, 1e-3);
    fd_end(&f);
}

static void test_bn_train(void **state) { (void)state; bn_case(0); }
static void test_bn_relu_train(void **state) { (void)state; bn_case(1); }

static void test_relu(void **state)
{
    (void)state;
    Fd f;
    Rng rng = {300};
    fd_begin(&f);
    fd_input(&f, 2, 5, 3, 3);
    GOK(&f.g, nn_relu(&f.g, "relu", &f.out, &f.in[0]));
    fd_ready(&f, &rng);
    fill_away_from_zero(&rng, f.x[0], act_count(&f.in[0]));
    fd_check_all(&f, 1e-2);
    fd_end(&f);
}

static void test_add_relu(void **state)
{
    (void)state;
    Fd f;
    Rng rng = {400};
    fd_begin(&f);
    fd_input(&f, 2, 5, 3, 3);
    fd_input(&f, 2, 5, 3, 3);
    GOK(&f.g, nn_add_relu(&f.g, "add", &f.out, &f.in[0], &f.in[1]));
    fd_ready(&f, &rng);
    const size_t n = act_count(&f.in[0]);
    fill_away_from_zero(&rng, f.x[0], n);
    for (size_t i = 0; i < n; i++) /* |x1| < 0.05 < 0.1 <= |x0|: the sum keeps x0's sign */
        f.x[1][i] = (float)(0.05 * (2 * rng_uniform(&rng) - 1));
    fd_check_all(&f, 1e-2);
    fd_end(&f);
}

/* Inputs a shuffled ramp with steps of 0.01 >> 2 eps: no ties in a window. */
static void fill_ramp(Rng *rng, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.01 * (double)i - 0.005 * (double)n);
    for (size_t i = n - 1; i > 0; i--) {
        const size_t j = (size_t)(rng_u64(rng) % (i + 1));
        const float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

static void pool_case(int max, int kh, int kw, int stride, int pad, long h, long w)
{
    Fd f;
    Rng rng = {500u + (unsigned)(max * 7 + kh)};
    fd_begin(&f);
    fd_input(&f, 2, 3, h, w);
    GOK(&f.g, nn_pool(&f.g, "pool", &f.out, &f.in[0], max, kh, kw, stride, pad,
                      NN_DIFF_WRITE));
    fd_ready(&f, &rng);
    fill_ramp(&rng, f.x[0], act_count(&f.in[0]));
    fd_check_all(&f, max ? 1e-3 : 1e-2);
    fd_end(&f);
}

static void test_maxpool(void **state) { (void)state; pool_case(1, 3, 3, 2, 1, 7, 6); }
static void test_avgpool(void **state) { (void)state; pool_case(0, 3, 3, 2, 1, 7, 6); }
static void test_global_avgpool(void **state) { (void)state; pool_case(0, 4, 3, 1, 0, 4, 3); }

static void test_fc(void **state)
{
    (void)state;
    Fd f;
    Rng rng = {600};
    fd_begin(&f);
    fd_input(&f, 3, 4, 2, 2);
    GOK(&f.g, nn_fc(&f.g, "fc", &f.out, &f.in[0], 5, NN_DIFF_WRITE));
    fd_ready(&f, &rng);
    fill_normal(&rng, f.x[0], act_count(&f.in[0]));
    randomize_params(&f, &rng, 0.5);
    fd_check_all(&f, 1e-2);
    assert_int_equal(f.g.tensors[0].kind, NN_FC_WEIGHT);
    assert_int_equal(f.g.tensors[0].dims[1], 16);
    /* torch.nn.Linear on the flattened NCHW input: y = W x + b */
    float *y = malloc(15 * sizeof *y);
    fd_objective(&f);
    GOK(&f.g, nn_act_read(&f.g, f.out.mem, &f.out.md, y));
    for (int b = 0; b < 3; b++)
        for (int k = 0; k < 5; k++) {
            double s = f.g.params[80 + k];
            for (int i = 0; i < 16; i++)
                s += (double)f.g.params[k * 16 + i] * f.x[0][b * 16 + i];
            assert_float_equal(y[b * 5 + k], s, 1e-5);
        }
    free(y);
    fd_end(&f);
}

/* ---- batch normalization statistics ---------------------------------------- */

static void test_bn_statistics(void **state)
{
    (void)state;
    Fd f;
    Rng rng = {700};
    enum { N = 4, C = 3, H = 5, W = 5, M = N * H * W };
    fd_begin(&f);
    fd_input(&f, N, C, H, W);
    GOK(&f.g, nn_bn(&f.g, "bn", &f.out, &f.in[0], 0));
    fd_ready(&f, &rng);
    for (size_t i = 0; i < (size_t)N * C * H * W; i++)
        f.x[0][i] = (float)(2.0 + 3.0 * rng_normal(&rng));
    for (int c = 0; c < C; c++) {
        f.g.params[c] = (float)(0.5 + c);   /* gamma */
        f.g.params[C + c] = (float)(c - 1); /* beta  */
        f.g.stats[c] = 0.f;                 /* running mean */
        f.g.stats[C + c] = 1.f;             /* running var  */
    }
    float y[N * C * H * W];
    double mean[C] = {0}, var[C] = {0};
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H * W; i++)
                mean[c] += f.x[0][(n * C + c) * H * W + i] / (double)M;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H * W; i++) {
                const double d = f.x[0][(n * C + c) * H * W + i] - mean[c];
                var[c] += d * d / M;
            }
    /* training: batch statistics (biased variance) normalize */
    fd_objective(&f);
    GOK(&f.g, nn_act_read(&f.g, f.out.mem, &f.out.md, y));
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H * W; i++) {
                const int j = (n * C + c) * H * W + i;
                const double want = (0.5 + c) * (f.x[0][j] - mean[c]) / sqrt(var[c] + 1e-5) + (c - 1);
                assert_float_equal(y[j], want, 1e-4 * (1 + fabs(want)));
            }
    /* running averages after that one step: momentum 0.1, unbiased variance */
    for (int c = 0; c < C; c++) {
        assert_float_equal(f.g.stats[c], 0.1 * mean[c], 1e-5);
        assert_float_equal(f.g.stats[C + c], 0.9 + 0.1 * var[c] * M / (M - 1), 1e-4);
    }
    /* inference: the running statistics normalize */
    GOK(&f.g, nn_graph_run(&f.g, NN_PASS_INFER));
    GOK(&f.g, nn_act_read(&f.g, f.out.mem, &f.out.md, y));
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H * W; i++) {
                const int j = (n * C + c) * H * W + i;
                const double want = (0.5 + c) * (f.x[0][j] - f.g.stats[c])
                                        / sqrt(f.g.stats[C + c] + 1e-5) + (c - 1);
                assert_float_equal(y[j], want, 1e-4 * (1 + fabs(want)));
            }
    fd_end(&f);
}

/* ---- loss -------------------------------------------------------------------- */

static void test_loss_formula(void **state)
{
    (void)state;
    enum { B = 5, K = 7 };
    Rng rng = {800};
    float z[B * K], dz[B * K];
    int y[B] = {0, 6, 3, 3, 1};
    fill_normal(&rng, z, B * K);
    const float smoothing[] = {0.f, 0.1f, 1.f};
    for (size_t t = 0; t < sizeof smoothing / sizeof *smoothing; t++) {
        const double s = smoothing[t];
        double loss, want = 0;
        OK(nn_xent_smooth(&loss, dz, z, y, B, K, smoothing[t]));
        for (int b = 0; b < B; b++) {
            double sum = 0;
            for (int k = 0; k < K; k++)
                sum += exp(z[b * K + k]);
            for (int k = 0; k < K; k++) {
                const double q = (k == y[b] ? 1 - s : 0) + s / K, p = exp(z[b * K + k]) / sum;
                want -= q * log(p) / B;
                assert_float_equal(dz[b * K + k], (p - q) / B, 1e-7);
            }
        }
        assert_float_equal(loss, want, 1e-12 * (1 + want));
    }
    /* a huge logit does not overflow */
    z[0] = 1e4f;
    double loss;
    OK(nn_xent_smooth(&loss, dz, z, y, B, K, 0.1f));
    assert_true(isfinite(loss));
    z[1] = NAN;
    assert_int_equal(nn_xent_smooth(&loss, dz, z, y, B, K, 0.1f), AMO_ENONFINITE);
    y[2] = K;
    assert_int_equal(nn_xent_smooth(&loss, dz, z, y, B, K, 0.1f), AMO_EINVAL);
    y[2] = 0;
    assert_int_equal(nn_xent_smooth(&loss, dz, z, y, B, K, 1.5f), AMO_EINVAL);
}

/* ---- whole networks ---------------------------------------------------------- */

static NnResNet *make_net(const NnResNetConfig *c)
{
    NnResNet *net = NULL;
    char err[512];
    if (nn_resnet_create(&net, c, err, sizeof err) != AMO_OK)
        fail_msg("nn_resnet_create: %s", err);
    return net;
}

/* The loss of a training forward, in double from the fp32 logits. */
static double net_loss(NnResNet *net, const NnResNetConfig *c, const float *x, const int *y)
{
    double loss;
    if (nn_resnet_forward(net, x, 1) != AMO_OK)
        fail_msg("%s", nn_resnet_error(net));
    OK(nn_xent_smooth(&loss, NULL, nn_resnet_logits(net), y, c->batch, c->classes, 0.1f));
    return loss;
}

/* Every parameter tensor against central differences of the loss along
 * that tensor's own gradient direction u = g / |g|: the difference quotient
 * must equal |g|.  The step moves the loss by about step_loss, so that it is
 * far above fp32 noise yet small against the curvature (a narrow ResNet-50
 * has |g| in the thousands at its first convolution).  A scrambled layout
 * gives a quotient near 0, a wrong factor a quotient off by that factor. */
static void net_gradcheck(const NnResNetConfig *c, double step_loss, double median_tol,
                          double max_tol)
{
    NnResNet *net = make_net(c);
    Rng rng = {c->seed};
    const size_t nx = (size_t)c->batch * c->in_ch * c->h * c->w;
    float *x = malloc(nx * sizeof *x), loss;
    int y[16];
    fill_normal(&rng, x, nx);
    for (int b = 0; b < c->batch; b++)
        y[b] = (int)(rng_u64(&rng) % (uint64_t)c->classes);
    size_t np;
    float *p = nn_resnet_params(net, &np);
    if (nn_resnet_forward(net, x, 1) != AMO_OK || nn_resnet_loss(net, y, 0.1f, &loss) != AMO_OK
        || nn_resnet_backward(net) != AMO_OK)
        fail_msg("%s", nn_resnet_error(net));
    float *g = malloc(np * sizeof *g), *keep = malloc(np * sizeof *keep);
    memcpy(g, nn_resnet_grads(net), np * sizeof *g);
    memcpy(keep, p, np * sizeof *keep);
    int nt;
    const NnParamInfo *t = nn_resnet_tensors(net, &nt);
    double *err = malloc((size_t)nt * sizeof *err);
    for (int k = 0; k < nt; k++) {
        const float *gk = g + t[k].offset, *pk = keep + t[k].offset;
        float *q = p + t[k].offset;
        double norm = 0;
        for (size_t i = 0; i < t[k].count; i++)
            norm += (double)gk[i] * gk[i];
        norm = sqrt(norm);
        assert_true(norm > 0);
        const double h = step_loss / norm;
        for (size_t i = 0; i < t[k].count; i++)
            q[i] = (float)(pk[i] + h * gk[i] / norm);
        const double hi = net_loss(net, c, x, y);
        for (size_t i = 0; i < t[k].count; i++)
            q[i] = (float)(pk[i] - h * gk[i] / norm);
        const double lo = net_loss(net, c, x, y);
        memcpy(q, pk, t[k].count * sizeof *q);
        err[k] = fabs((hi - lo) / (2 * h) / norm - 1);
        if (err[k] > 0.05)
            print_message("  %s: |g| %.4g, difference quotient off by %.1f%%\n", t[k].name,
                          norm, 100 * err[k]);
    }
    double worst = 0;
    int above = 0;
    for (int k = 0; k < nt; k++) {
        worst = fmax(worst, err[k]);
        above += err[k] > median_tol;
    }
    print_message("  %d tensors: %d off by more than %.0f%%, worst %.1f%%\n", nt, above,
                  100 * median_tol, 100 * worst);
    assert_true(worst <= max_tol);
    assert_true(above <= nt / 2); /* the median is within median_tol */
    free(err);
    free(keep);
    free(g);
    free(x);
    nn_resnet_destroy(net);
}

static void test_resnet18_gradcheck(void **state)
{
    (void)state;
    const NnResNetConfig c = {.depth = 18, .stem = NN_STEM_CIFAR, .width = 0.125,
                              .in_ch = 3, .classes = 10, .batch = 8, .h = 8, .w = 8,
                              .seed = 11};
    net_gradcheck(&c, 1e-3, 0.01, 0.10);
}

/* The same with every 3x3/1 convolution by Winograd (the stem's too). */
static void test_resnet18_gradcheck_winograd(void **state)
{
    (void)state;
    const NnResNetConfig c = {.depth = 18, .stem = NN_STEM_CIFAR, .width = 0.125,
                              .in_ch = 3, .classes = 10, .batch = 8, .h = 8, .w = 8,
                              .conv_algo = NN_CONV_ALGO_WINOGRAD, .seed = 11};
    if (!onednn_has(dnnl_cpu_isa_avx512_core))
        skip(); /* oneDNN has Winograd for avx512_core only */
    NnResNet *net = make_net(&c);
    NnResNetInfo info;
    nn_resnet_info(net, &info);
    nn_resnet_destroy(net);
    print_message("  %d convolutions, %d passes by Winograd\n", info.wino_convs,
                  info.wino_passes);
    assert_int_equal(info.wino_convs, 14); /* the stem and 4 + 3 + 3 + 3 in the stages */
    assert_int_equal(info.wino_passes, 3 * 14 - 1); /* the stem has no backward data */
    net_gradcheck(&c, 1e-3, 0.01, 0.10);
}

/* Bottlenecks, the ImageNet stem and its max-pool. */
static void test_resnet50_gradcheck(void **state)
{
    (void)state;
    const NnResNetConfig c = {.depth = 50, .stem = NN_STEM_IMAGENET, .width = 0.125,
                              .in_ch = 3, .classes = 10, .batch = 8, .h = 32, .w = 32,
                              .seed = 12};
    net_gradcheck(&c, 1e-3, 0.01, 0.15);
}

static size_t param_count(int depth, NnStem stem, int in_ch, int classes)
{
    const NnResNetConfig c = {.depth = depth, .stem = stem, .width = 1, .in_ch = in_ch,
                              .classes = classes, .batch = 1, .h = 8, .w = 8, .seed = 1};
    NnResNet *net = make_net(&c);
    size_t n;
    nn_resnet_params(net, &n);
    /* the tensors tile the buffer, in order, with torchvision's names */
    int nt;
    const NnParamInfo *t = nn_resnet_tensors(net, &nt);
    size_t off = 0;
    for (int k = 0; k < nt; k++) {
        assert_int_equal(t[k].offset, off);
        off += t[k].count;
    }
    assert_int_equal(off, n);
    assert_string_equal(t[0].name, "conv1.weight");
    assert_int_equal(t[0].kind, NN_CONV_WEIGHT);
    assert_string_equal(t[1].name, "bn1.weight");
    assert_int_equal(t[1].kind, NN_BN_GAMMA);
    assert_string_equal(t[2].name, "bn1.bias");
    assert_int_equal(t[2].kind, NN_BN_BETA);
    assert_string_equal(t[3].name, "layer1.0.conv1.weight");
    assert_string_equal(t[nt - 2].name, "fc.weight");
    assert_int_equal(t[nt - 2].kind, NN_FC_WEIGHT);
    assert_string_equal(t[nt - 1].name, "fc.bias");
    assert_int_equal(t[nt - 1].kind, NN_FC_BIAS);
    nn_resnet_destroy(net);
    return n;
}

static void test_param_counts(void **state)
{
    (void)state;
    /* torchvision.models.resnet18() / resnet50(): sum of p.numel() */
    assert_int_equal(param_count(18, NN_STEM_IMAGENET, 3, 1000), 11689512);
    assert_int_equal(param_count(50, NN_STEM_IMAGENET, 3, 1000), 25557032);
    /* the anchor's CIFAR ResNet-18, 10 classes */
    assert_int_equal(param_count(18, NN_STEM_CIFAR, 3, 10), 11173962);
}

/* Each initialised tensor against its formula (nn/resnet.h, NnInit): every
 * value inside a uniform's bound, and the sample variance within 5 standard
 * errors of the formula's (var(x^2) / E[x^2]^2 is 0.8 for a uniform, 2 for a
 * normal), so the test tells He's N(0, 2 / fan_out) from torch's
 * U(+-1/sqrt(fan_in)) at every tensor, conv1's 144 values included. */
static void check_init(NnInit init)
{
    NnResNetConfig c = {.depth = 18, .stem = NN_STEM_CIFAR, .width = 0.25, .in_ch = 1,
                        .classes = 10, .batch = 2, .h = 28, .w = 28, .init = init,
                        .seed = 7};
    NnResNet *net = make_net(&c);
    size_t np;
    const float *p = nn_resnet_params(net, &np);
    int nt, convs = 0;
    const NnParamInfo *t = nn_resnet_tensors(net, &nt);
    long fc_fan_in = 0;
    for (int i = 0; i < nt; i++)
        if (t[i].kind == NN_FC_WEIGHT)
            fc_fan_in = t[i].dims[1];
    assert_int_equal(fc_fan_in, 128);
    for (int i = 0; i < nt; i++) {
        const float *w = p + t[i].offset;
        const size_t n = t[i].count;
        double var, bound = INFINITY, kurt;
        if (t[i].kind == NN_CONV_WEIGHT) {
            convs++;
            const long khw = t[i].dims[2] * t[i].dims[3];
            if (init == NN_INIT_TORCH) {
                bound = 1.0 / sqrt((double)(t[i].dims[1] * khw));
                var = bound * bound / 3;
                kurt = 0.8;
            } else {
                var = 2.0 / (double)(t[i].dims[0] * khw);
                kurt = 2;
            }
        } else if (t[i].kind == NN_FC_WEIGHT || t[i].kind == NN_FC_BIAS) {
            bound = 1.0 / sqrt((double)fc_fan_in);
            var = bound * bound / 3;
            kurt = 0.8;
        } else {
            continue; /* batch norm: constants, checked by the layer tests */
        }
        double ss = 0, amax = 0;
        for (size_t j = 0; j < n; j++) {
            ss += (double)w[j] * w[j];
            amax = fmax(amax, fabs((double)w[j]));
        }
        const double got = ss / (double)n, tol = 5 * sqrt(kurt / (double)n) * var;
        if (fabs(got - var) > tol || amax > bound)
            fail_msg("%s init %s: mean square %.4g, formula %.4g (+-%.2g); max |w| %.4g, "
                     "bound %.4g", init == NN_INIT_TORCH ? "torch" : "he", t[i].name, got, var,
                     tol, amax, bound);
        if (isfinite(bound) && n >= 100 && amax < 0.9 * bound) /* the whole range is used */
            fail_msg("%s: max |w| %.4g, bound %.4g", t[i].name, amax, bound);
    }
    assert_int_equal(convs, 20); /* conv1, 16 in the blocks, 3 downsamples */
    nn_resnet_destroy(net);
}

static void test_init_formulas(void **state)
{
    (void)state;
    check_init(NN_INIT_HE);
    check_init(NN_INIT_TORCH);
    /* an unknown init is refused, naming it */
    NnResNetConfig c = {.depth = 18, .stem = NN_STEM_CIFAR, .width = 0.25, .in_ch = 1,
                        .classes = 10, .batch = 2, .h = 28, .w = 28, .init = (NnInit)7};
    NnResNet *net = NULL;
    char err[512] = "";
    assert_int_equal(nn_resnet_create(&net, &c, err, sizeof err), AMO_EINVAL);
    assert_non_null(strstr(err, "init 7"));
}

static const NnLayerInfo *find_layer(const NnResNet *net, const char *name)
{
    int n;
    const NnLayerInfo *l = nn_resnet_layers(net, &n);
    for (int i = 0; i < n; i++)
        if (!strcmp(l[i].name, name))
            return &l[i];
    fail_msg("no layer %s", name);
    return NULL;
}

static void expect_dims(const NnResNet *net, const char *name, long n, long c, long h, long w)
{
    const NnLayerInfo *l = find_layer(net, name);
    if (l->dims[0] != n || l->dims[1] != c || l->dims[2] != h || l->dims[3] != w)
        fail_msg("%s: %ldx%ldx%ldx%ld, expected %ldx%ldx%ldx%ld", name, l->dims[0], l->dims[1],
                 l->dims[2], l->dims[3], n, c, h, w);
}

static void test_shapes(void **state)
{
    (void)state;
    /* Fashion-MNIST geometry at width 1/4: 28 -> 28, 14, 7, 4 */
    NnResNetConfig c = {.depth = 18, .stem = NN_STEM_CIFAR, .width = 0.25, .in_ch = 1,
                        .classes = 10, .batch = 2, .h = 28, .w = 28, .seed = 1};
    NnResNet *net = make_net(&c);
    expect_dims(net, "conv1", 2, 16, 28, 28);
    expect_dims(net, "layer2.0.add", 2, 32, 14, 14);
    expect_dims(net, "layer3.1.add", 2, 64, 7, 7);
    expect_dims(net, "layer4.1.add", 2, 128, 4, 4);
    expect_dims(net, "avgpool", 2, 128, 1, 1);
    expect_dims(net, "fc", 2, 10, 1, 1);
    nn_resnet_destroy(net);
    /* CIFAR: 32 -> 32, 16, 8, 4 */
    c = (NnResNetConfig){.depth = 34, .stem = NN_STEM_CIFAR, .width = 0.125, .in_ch = 3,
                         .classes = 100, .batch = 2, .h = 32, .w = 32, .seed = 1};
    net = make_net(&c);
    expect_dims(net, "layer1.2.add", 2, 8, 32, 32);
    expect_dims(net, "layer3.5.add", 2, 32, 8, 8);
    expect_dims(net, "layer4.2.add", 2, 64, 4, 4);
    expect_dims(net, "fc", 2, 100, 1, 1);
    nn_resnet_destroy(net);
    /* ImageNet: 224 -> 112 (conv1), 56 (maxpool), 56, 28, 14, 7; and a
     * batch-1 inference forward */
    c = (NnResNetConfig){.depth = 50, .stem = NN_STEM_IMAGENET, .width = 0.25, .in_ch = 3,
                         .classes = 1000, .batch = 1, .h = 224, .w = 224, .seed = 1};
    net = make_net(&c);
    expect_dims(net, "conv1", 1, 16, 112, 112);
    expect_dims(net, "maxpool", 1, 16, 56, 56);
    expect_dims(net, "layer1.2.add", 1, 64, 56, 56);
    expect_dims(net, "layer2.0.add", 1, 128, 28, 28);
    expect_dims(net, "layer3.5.add", 1, 256, 14, 14);
    expect_dims(net, "layer4.2.add", 1, 512, 7, 7);
    expect_dims(net, "fc", 1, 1000, 1, 1);
    float *x = calloc(3 * 224 * 224, sizeof *x);
    for (int i = 0; i < 3 * 224 * 224; i++)
        x[i] = (float)sin(i * 0.01);
    if (nn_resnet_forward(net, x, 0) != AMO_OK)
        fail_msg("%s", nn_resnet_error(net));
    for (int k = 0; k < 1000; k++)
        assert_true(isfinite(nn_resnet_logits(net)[k]));
    free(x);
    nn_resnet_destroy(net);
    assert_int_equal(nn_resnet_channels(64, 1.0 / 16), 4);
    assert_int_equal(nn_resnet_channels(64, 0.0078125), 1); /* 0.5: half to even */
    assert_int_equal(nn_resnet_channels(64, 0.0234375), 2); /* 1.5 -> 2 */
    assert_int_equal(nn_resnet_channels(64, 0.001), 1);     /* at least 1 */
}

/* ---- errors ------------------------------------------------------------------- */

static void expect_create_error(NnResNetConfig c, const char *needle)
{
    NnResNet *net = (NnResNet *)&c; /* must come back NULL */
    char err[512] = "";
    assert_int_equal(nn_resnet_create(&net, &c, err, sizeof err), AMO_EINVAL);
    assert_null(net);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_errors(void **state)
{
    (void)state;
    const NnResNetConfig ok = {.depth = 18, .stem = NN_STEM_CIFAR, .width = 1.0 / 16,
                               .in_ch = 3, .classes = 10, .batch = 2, .h = 8, .w = 8};
    NnResNetConfig c = ok;
    c.batch = 0;
    expect_create_error(c, "input 0x3x8x8");
    c = ok;
    c.h = 0;
    expect_create_error(c, "input 2x3x0x8");
    c = ok;
    c.in_ch = 0;
    expect_create_error(c, "every size must be >= 1");
    c = ok;
    c.classes = 0;
    expect_create_error(c, "classes 0");
    c = ok;
    c.depth = 20;
    expect_create_error(c, "depth 20");
    c = ok;
    c.width = 0;
    expect_create_error(c, "width 0");
    c = ok;
    c.conv_algo = 7;
    expect_create_error(c, "conv_algo 7");
    c = ok;
    c.bf16 = 1;
    c.conv_algo = NN_CONV_ALGO_WINOGRAD;
    expect_create_error(c, "no bf16 Winograd");

    /* a layer whose output would be empty names itself and its shape */
    NnGraph g;
    NnAct x, y;
    char msg[256];
    OK(nn_isa_init(msg, sizeof msg, NULL));
    OK(nn_graph_init(&g, dnnl_f32));
    OK(nn_input(&g, &x, 2, 3, 3, 4));
    assert_int_equal(nn_conv(&g, "layer9.conv", &y, &x, 8, 5, 1, 0, NN_DIFF_WRITE), AMO_EINVAL);
    assert_non_null(strstr(g.msg, "layer9.conv"));
    assert_non_null(strstr(g.msg, "src 2x3x3x4"));
    assert_non_null(strstr(g.msg, "smaller than 1x1"));
    assert_int_equal(nn_pool(&g, "pool9", &y, &x, 1, 4, 4, 2, 0, NN_DIFF_WRITE), AMO_EINVAL);
    assert_non_null(strstr(g.msg, "pool9"));
    assert_int_equal(nn_conv(&g, "c0", &y, &x, 0, 3, 1, 1, NN_DIFF_WRITE), AMO_EINVAL);
    assert_non_null(strstr(g.msg, "c0"));
    nn_graph_free(&g);

    /* one value per channel cannot train (PyTorch refuses too); inference can */
    c = ok;
    c.batch = 1;
    c.h = c.w = 1;
    NnResNet *net = make_net(&c);
    float xin[3] = {1, 2, 3};
    int label = 0;
    float loss;
    assert_int_equal(nn_resnet_forward(net, xin, 1), AMO_EINVAL);
    assert_non_null(strstr(nn_resnet_error(net), "more than one value per channel"));
    assert_int_equal(nn_resnet_backward(net), AMO_EINVAL);
    assert_non_null(strstr(nn_resnet_error(net), "training forward"));
    OK(nn_resnet_forward(net, xin, 0));
    OK(nn_resnet_loss(net, &label, 0.1f, &loss));
    assert_int_equal(nn_resnet_backward(net), AMO_EINVAL); /* after an inference forward */
    label = 10;
    assert_int_equal(nn_resnet_loss(net, &label, 0.1f, &loss), AMO_EINVAL);
    assert_non_null(strstr(nn_resnet_error(net), "label 10 of sample 0"));
    nn_resnet_destroy(net);
}

/* ---- training ----------------------------------------------------------------- */

static void sgd_steps(NnResNet *net, const float *x, const int *y, int steps, float lr,
                      float *first, float *last)
{
    size_t n;
    float *p = nn_resnet_params(net, &n), *g = nn_resnet_grads(net);
    for (int s = 0; s < steps; s++) {
        float loss;
        if (nn_resnet_forward(net, x, 1) != AMO_OK || nn_resnet_loss(net, y, 0.f, &loss) != AMO_OK
            || nn_resnet_backward(net) != AMO_OK)
            fail_msg("step %d: %s", s, nn_resnet_error(net));
        if (s == 0)
            *first = loss;
        *last = loss;
        for (size_t i = 0; i < n; i++)
            p[i] -= lr * g[i];
    }
}

static void test_training_fits_a_batch(void **state)
{
    (void)state;
    const NnResNetConfig c = {.depth = 18, .stem = NN_STEM_CIFAR, .width = 1.0 / 16,
                              .in_ch = 3, .classes = 10, .batch = 8, .h = 8, .w = 8,
                              .seed = 21};
    NnResNet *net = make_net(&c);
    Rng rng = {22};
    float x[8 * 3 * 8 * 8], first, last;
    int y[8];
    fill_normal(&rng, x, 8 * 3 * 8 * 8);
    for (int b = 0; b < 8; b++)
        y[b] = b % 10;
    sgd_steps(net, x, y, 200, 0.1f, &first, &last);
    print_message("  plain SGD, 200 steps: loss %.4f -> %.5f\n", first, last);
    assert_true(first > 1.5f);
    assert_true(last < 0.02f);
    nn_resnet_destroy(net);
}

/* NnResNetConfig.grads_ready (data-parallel training): backward layer by
 * layer, the gradient reorders of each layer right after it, gives the same
 * bits as the two passes one after the other (the oracle), and reports
 * offsets that only fall, down to 0; at each call every gradient from the
 * offset on is already the final one (what a caller sends then). */
typedef struct Ready {
    size_t from[256];
    int n, early;           /* calls; calls whose gradients were not final */
    size_t total;           /* parameters                                  */
    const float *g, *want;  /* the hooked net's gradients, the oracle's    */
} Ready;

static void ready_log(void *ctx, size_t from)
{
    Ready *r = ctx;
    /* everything from the offset on, not only what this call added: a later
     * write into a range already reported would change what was sent */
    if (r->total > from && memcmp(r->g + from, r->want + from, (r->total - from) * sizeof(float)))
        r->early++;
    if (r->n < 256)
        r->from[r->n] = from;
    r->n++;
}

static void test_backward_per_layer(void **state)
{
    (void)state;
    NnResNetConfig c = {.depth = 18, .stem = NN_STEM_CIFAR, .width = 1.0 / 16,
                        .in_ch = 3, .classes = 10, .batch = 8, .h = 8, .w = 8, .seed = 23};
    NnResNet *plain = make_net(&c);
    Ready log = {.n = 0};
    c.grads_ready = ready_log;
    c.ctx = &log;
    NnResNet *hooked = make_net(&c);
    Rng rng = {24};
    float x[8 * 3 * 8 * 8], l0, l1;
    int y[8];
    fill_normal(&rng, x, 8 * 3 * 8 * 8);
    for (int b = 0; b < 8; b++)
        y[b] = (3 * b) % 10;
    NnResNet *nets[2] = {plain, hooked};
    log.g = nn_resnet_grads(hooked);
    nn_resnet_params(plain, &log.total);
    log.want = nn_resnet_grads(plain);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nn_resnet_forward(nets[i], x, 1), AMO_OK);
        assert_int_equal(nn_resnet_loss(nets[i], y, 0.1f, i ? &l1 : &l0), AMO_OK);
        assert_int_equal(nn_resnet_backward(nets[i]), AMO_OK);
    }
    size_t n;
    nn_resnet_params(plain, &n);
    NnResNetInfo info;
    nn_resnet_info(plain, &info);
    assert_true(info.grad_reorders > 0); /* (else the interleaving is not exercised) */
    assert_memory_equal(nn_resnet_grads(plain), nn_resnet_grads(hooked), n * sizeof(float));
    assert_true(log.n > 20 && log.n <= 256);
    assert_int_equal(log.early, 0);
    assert_true(log.from[0] <= n); /* (the loss layer, last built, has no parameters) */
    for (int i = 1; i < log.n; i++)
        assert_true(log.from[i] <= log.from[i - 1]);
    assert_int_equal(log.from[log.n - 1], 0);
    print_message("  %d calls, %zu parameters, %d gradient reorders interleaved\n", log.n, n,
                  info.grad_reorders);
    nn_resnet_destroy(plain);
    nn_resnet_destroy(hooked);
}

/* bf16 activations and working weights track the fp32 network, and train. */
static void test_bf16(void **state)
{
    (void)state;
    need_onednn_bf16();
    NnResNetConfig c = {.depth = 18, .stem = NN_STEM_CIFAR, .width = 0.125, .in_ch = 3,
                        .classes = 10, .batch = 8, .h = 8, .w = 8, .seed = 31};
    NnResNet *f32 = make_net(&c);
    c.bf16 = 1;
    NnResNet *b16 = make_net(&c);
    NnResNetInfo info;
    nn_resnet_info(b16, &info);
    assert_string_equal(info.dtype, "bf16");
    /* the second stage's 3x3/1 convolutions (16 channels on 4x4) are among
     * the layers the im2col path takes wherever oneDNN lays them out NHWC and
     * has a fast bf16 matmul */
    const char *impl;
    const int fast = onednn_fast_bf16_matmul(16, 8 * 4 * 4, 16 * 9, &impl),
              nhwc = onednn_bf16_conv_nhwc(8, 16, 4, 16, 3, 1);
    print_message("  bf16 net: %d convolutions' weight gradients by im2col + matmul "
                  "(oneDNN's bf16 matmul: %s; bf16 convolutions in %s)\n", info.gemm_convs,
                  impl, nhwc ? "NHWC" : "blocked layouts");
    if (fast && nhwc)
        assert_true(info.gemm_convs > 0); /* the gradients below cover that path too */
    if (!fast)
        assert_int_equal(info.gemm_convs, 0);
    Rng rng = {32};
    float x[8 * 3 * 8 * 8], lf, lb;
    int y[8];
    fill_normal(&rng, x, 8 * 3 * 8 * 8);
    for (int b = 0; b < 8; b++)
        y[b] = b;
    if (nn_resnet_forward(f32, x, 1) != AMO_OK || nn_resnet_loss(f32, y, 0.1f, &lf) != AMO_OK
        || nn_resnet_forward(b16, x, 1) != AMO_OK || nn_resnet_loss(b16, y, 0.1f, &lb) != AMO_OK)
        fail_msg("forward or loss failed");
    assert_float_equal(lb, lf, 0.05 * lf);
    OK(nn_resnet_backward(f32));
    OK(nn_resnet_backward(b16));
    size_t n;
    nn_resnet_params(f32, &n);
    const float *gf = nn_resnet_grads(f32), *gb = nn_resnet_grads(b16);
    double dot = 0, nf = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        dot += (double)gf[i] * gb[i];
        nf += (double)gf[i] * gf[i];
        nb += (double)gb[i] * gb[i];
    }
    const double cosine = dot / sqrt(nf * nb);
    print_message("  bf16 vs fp32: loss %.5f vs %.5f, gradient cosine %.4f\n", lb, lf, cosine);
    /* Not closer: rounding flips some ReLU masks and this narrow net with
     * 8-sample batch norms amplifies that (the layers alone agree to 0.3%,
     * test_bf16_layers). */
    assert_true(cosine > 0.85);
    float first, last;
    sgd_steps(b16, x, y, 60, 0.1f, &first, &last);
    print_message("  bf16 SGD, 60 steps: loss %.4f -> %.4f\n", first, last);
    assert_true(last < 0.1f * first);
    nn_resnet_destroy(f32);
    nn_resnet_destroy(b16);
}

/* One layer in fp32 and in bf16 on the same inputs, parameters and output
 * gradient: outputs and all gradients agree to bf16 precision. */
typedef void (*LayerBuild)(NnGraph *g, NnAct *dst, NnAct *src0, NnAct *src1);

static void build_conv(NnGraph *g, NnAct *d, NnAct *a, NnAct *b)
{
    (void)b;
    GOK(g, nn_conv(g, "conv", d, a, 32, 3, 2, 1, NN_DIFF_WRITE));
}
static void build_bn_relu(NnGraph *g, NnAct *d, NnAct *a, NnAct *b)
{
    (void)b;
    GOK(g, nn_bn(g, "bn", d, a, 1));
}
static void build_add_relu(NnGraph *g, NnAct *d, NnAct *a, NnAct *b)
{
    GOK(g, nn_add_relu(g, "add", d, a, b));
}
static void build_maxpool(NnGraph *g, NnAct *d, NnAct *a, NnAct *b)
{
    (void)b;
    GOK(g, nn_pool(g, "pool", d, a, 1, 3, 3, 2, 1, NN_DIFF_WRITE));
}
static void build_fc(NnGraph *g, NnAct *d, NnAct *a, NnAct *b)
{
    (void)b;
    GOK(g, nn_fc(g, "fc", d, a, 10, NN_DIFF_WRITE));
}

static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static void bf16_layer_case(const char *what, LayerBuild build, int two_inputs)
{
    enum { N = 4, C = 16, H = 6, W = 6, NX = N * C * H * W };
    Rng rng = {900};
    float x0[NX], x1[NX];
    /* Exactly representable in bf16 and all distinct (8 significant bits,
     * one exponent per 128 values), so rounding the inputs neither moves a
     * max-pool winner nor flips the sign of x0 + x1 (|x1| < |x0| / 2). */
    for (int i = 0; i < NX; i++) {
        x0[i] = ldexpf((float)(128 + i % 128), i / 128 - 16) * (i % 3 ? 1.f : -1.f);
        x1[i] = x0[i] * (float)(0.25 * (2 * rng_uniform(&rng) - 1));
        x1[i] = ldexpf(nearbyintf(ldexpf(x1[i], 8 - ilogbf(x1[i] ? x1[i] : 1))),
                       ilogbf(x1[i] ? x1[i] : 1) - 8);
    }
    for (int i = NX - 1; i > 0; i--) {
        const int j = (int)(rng_u64(&rng) % (uint64_t)(i + 1));
        float t = x0[i];
        x0[i] = x0[j];
        x0[j] = t;
        t = x1[i];
        x1[i] = x1[j];
        x1[j] = t;
    }
    Fd f[2];
    float *out[2], *dx[2][2];
    size_t nout = 0;
    for (int k = 0; k < 2; k++) { /* 0: fp32, 1: bf16 */
        Fd *e = &f[k];
        const char *isa;
        char msg[256];
        memset(e, 0, sizeof *e);
        OK(nn_isa_init(msg, sizeof msg, &isa));
        GOK(&e->g, nn_graph_init(&e->g, k ? dnnl_bf16 : dnnl_f32));
        const long d[4] = {N, C, H, W};
        const dnnl_memory_desc_t md = nn_md_plain(4, d, e->g.dt);
        for (int i = 0; i < 1 + two_inputs; i++) {
            GOK(&e->g, nn_graph_act(&e->g, &e->in[i], &md));
            e->x[i] = malloc(NX * sizeof(float));
            memcpy(e->x[i], i ? x1 : x0, sizeof x0);
        }
        e->nin = 1 + two_inputs;
        build(&e->g, &e->out, &e->in[0], &e->in[1]);
        Rng r2 = {901};
        fd_ready(e, &r2);
        Rng r3 = {902};
        for (size_t i = 0; i < e->g.nparams; i++)
            e->g.params[i] = (float)(0.3 * rng_normal(&r3) + (i < C ? 1 : 0));
        fd_backward(e);
        nout = e->nout;
        out[k] = malloc(nout * sizeof(float));
        GOK(&e->g, nn_act_read(&e->g, e->out.mem, &e->out.md, out[k]));
        for (int i = 0; i < e->nin; i++) {
            dx[k][i] = malloc(NX * sizeof(float));
            GOK(&e->g, nn_act_read(&e->g, e->in[i].diff, &e->in[i].md, dx[k][i]));
        }
    }
    const double eo = rel_l2(out[1], out[0], nout), ed = rel_l2(dx[1][0], dx[0][0], NX);
    const double ew = f[0].g.nparams ? rel_l2(f[1].g.grads, f[0].g.grads, f[0].g.nparams) : 0;
    print_message("  %-8s bf16 vs fp32: dst %.2g, d src %.2g, d params %.2g\n", what, eo, ed, ew);
    assert_true(eo < 1e-2 && ed < 1e-2 && ew < 1e-2);
    for (int k = 0; k < 2; k++) {
        free(out[k]);
        for (int i = 0; i < f[k].nin; i++)
            free(dx[k][i]);
        fd_end(&f[k]);
    }
}

static void test_bf16_layers(void **state)
{
    (void)state;
    need_onednn_bf16();
    bf16_layer_case("conv", build_conv, 0);
    bf16_layer_case("bn+relu", build_bn_relu, 0);
    bf16_layer_case("add+relu", build_add_relu, 1);
    bf16_layer_case("maxpool", build_maxpool, 0);
    bf16_layer_case("fc", build_fc, 0);
}

static void test_isa_recorded(void **state)
{
    (void)state;
    const NnResNetConfig c = {.depth = 18, .stem = NN_STEM_CIFAR, .width = 1.0 / 16,
                              .in_ch = 1, .classes = 2, .batch = 2, .h = 4, .w = 4};
    NnResNet *net = make_net(&c);
    const char *isa = nn_resnet_isa(net);
    print_message("  oneDNN ISA: %s (kernel level %s)\n", isa, kn_cpu_level_name(kn_cpu_flags()));
    const unsigned f = kn_cpu_flags();
    /* the ladder, and where a user's ONEDNN_MAX_CPU_ISA names a rung of it,
     * the lower of the two */
    static const char *const rung[] = {"sse41", "avx2", "avx512_core", "avx512_core_bf16",
                                       "avx512_core_amx"};
    int want = (f & KN_CPU_AMX) ? 4 : (f & KN_CPU_AVX512BF16) ? 3 : (f & KN_CPU_AVX512) ? 2
             : (f & KN_CPU_AVX2) ? 1 : 0;
    const char *cap = getenv("ONEDNN_MAX_CPU_ISA");
    for (int i = 0; cap && i < want; i++)
        if (!strcasecmp(cap, rung[i]))
            want = i;
    assert_string_equal(isa, rung[want]);
    nn_resnet_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_catches_wrong_gradient),
        cmocka_unit_test(test_isa_recorded),
        cmocka_unit_test(test_conv3x3_stride2),
        cmocka_unit_test(test_conv3x3_stride1),
        cmocka_unit_test(test_conv1x1_stride2),
        cmocka_unit_test(test_conv7x7_stride2),
        cmocka_unit_test(test_conv_accumulates),
        cmocka_unit_test(test_bn_train),
        cmocka_unit_test(test_bn_relu_train),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_add_relu),
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_global_avgpool),
        cmocka_unit_test(test_fc),
        cmocka_unit_test(test_bn_statistics),
        cmocka_unit_test(test_loss_formula),
        cmocka_unit_test(test_resnet18_gradcheck),
        cmocka_unit_test(test_resnet18_gradcheck_winograd),
        cmocka_unit_test(test_resnet50_gradcheck),
        cmocka_unit_test(test_param_counts),
        cmocka_unit_test(test_init_formulas),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_training_fits_a_batch),
        cmocka_unit_test(test_backward_per_layer),
        cmocka_unit_test(test_conv_gemm_bf16),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_bf16_layers),
        cmocka_unit_test(test_bf16),
    };
    /* AMO_ARCH caps oneDNN's ISA too (nn_isa_init); a level this CPU lacks
     * is a skip (meson's exit code 77), not a failure. */
    const AmoStatus env = kn_cpu_init_from_env();
    if (env == AMO_EUNSUPPORTED) {
        printf("AMO_ARCH=%s is not available on this CPU: skipped\n", getenv("AMO_ARCH"));
        return 77;
    }
    if (env != AMO_OK) {
        printf("AMO_ARCH=%s: %s\n", getenv("AMO_ARCH"), amo_status_str(env));
        return 1;
    }
    /* NN_TEST_FILTER=test_bn* runs a subset */
    if (getenv("NN_TEST_FILTER"))
        cmocka_set_test_filter(getenv("NN_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}

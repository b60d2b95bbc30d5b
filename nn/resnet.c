/* ResNet-18/34/50 on the layer builders of nn/layers.h.  See nn/resnet.h. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "kernels/cpu.h"
#include "common/rng.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/resnet.h"

enum { NN_NONE, NN_FWD_TRAIN, NN_FWD_INFER };

struct NnResNet {
    NnResNetConfig cfg;
    NnGraph g;
    NnAct input;        /* (B, in_ch, h, w) plain fp32                 */
    float *x;           /* input's buffer                              */
    float *logits;      /* (B, classes) plain fp32                     */
    float *dlogits;     /* (B, classes) plain fp32                     */
    dnnl_memory_t logits_mem, dlogits_mem;
    int state;          /* the last forward: NN_FWD_TRAIN / NN_FWD_INFER */
    const char *isa;
    NnTiming t;
};

static double now_ms(void) { return amo_now() * 1e3; }

int nn_resnet_channels(int c, double w)
{
    const double r = nearbyint(c * w); /* default rounding mode: half to even */
    return r < 1 ? 1 : r > 1e9 ? 1000000000 : (int)r;
}

/* ------------------------------------------------------------- blocks --- */

static const char *cat(char *buf, const char *prefix, const char *name)
{
    snprintf(buf, 48, "%s.%s", prefix, name);
    return buf;
}

static AmoStatus shortcut(NnGraph *g, const char *p, NnAct *out, const NnAct **s,
                         const NnAct *x, int channels, int stride)
{
    char n[48];
    NnAct a;
    *s = x;
    if (stride == 1 && (long)x->md.dims[1] == channels)
        return AMO_OK;
    NN_TRY(nn_conv(g, cat(n, p, "downsample.0"), &a, x, channels, 1, stride, 0, NN_DIFF_WRITE));
    NN_TRY(nn_bn(g, cat(n, p, "downsample.1"), out, &a, 0));
    *s = out;
    return AMO_OK;
}

/* torchvision BasicBlock.  conv1 is x's second consumer in backward order
 * (the shortcut, built later, runs first), so it accumulates into x's
 * gradient. */
static AmoStatus basic_block(NnGraph *g, const char *p, NnAct *out, const NnAct *x, int planes,
                            int stride)
{
    char n[48];
    NnAct a1, b1, a2, b2, bs;
    const NnAct *s;
    NN_TRY(nn_conv(g, cat(n, p, "conv1"), &a1, x, planes, 3, stride, 1, NN_DIFF_ACCUM));
    NN_TRY(nn_bn(g, cat(n, p, "bn1"), &b1, &a1, 1));
    NN_TRY(nn_conv(g, cat(n, p, "conv2"), &a2, &b1, planes, 3, 1, 1, NN_DIFF_WRITE));
    NN_TRY(nn_bn(g, cat(n, p, "bn2"), &b2, &a2, 0));
    NN_TRY(shortcut(g, p, &bs, &s, x, planes, stride));
    return nn_add_relu(g, cat(n, p, "add"), out, &b2, s);
}

/* torchvision Bottleneck (ResNet v1.5: stride on the 3x3), expansion 4. */
static AmoStatus bottleneck(NnGraph *g, const char *p, NnAct *out, const NnAct *x, int planes,
                           int stride)
{
    char n[48];
    NnAct a1, b1, a2, b2, a3, b3, bs;
    const NnAct *s;
    NN_TRY(nn_conv(g, cat(n, p, "conv1"), &a1, x, planes, 1, 1, 0, NN_DIFF_ACCUM));
    NN_TRY(nn_bn(g, cat(n, p, "bn1"), &b1, &a1, 1));
    NN_TRY(nn_conv(g, cat(n, p, "conv2"), &a2, &b1, planes, 3, stride, 1, NN_DIFF_WRITE));
    NN_TRY(nn_bn(g, cat(n, p, "bn2"), &b2, &a2, 1));
    NN_TRY(nn_conv(g, cat(n, p, "conv3"), &a3, &b2, 4 * planes, 1, 1, 0, NN_DIFF_WRITE));
    NN_TRY(nn_bn(g, cat(n, p, "bn3"), &b3, &a3, 0));
    NN_TRY(shortcut(g, p, &bs, &s, x, 4 * planes, stride));
    return nn_add_relu(g, cat(n, p, "add"), out, &b3, s);
}

static AmoStatus build(NnResNet *net)
{
    NnGraph *g = &net->g;
    const NnResNetConfig *c = &net->cfg;
    static const int blocks18[4] = {2, 2, 2, 2}, blocks34[4] = {3, 4, 6, 3};
    const int *blocks = c->depth == 18 ? blocks18 : blocks34; /* 50 has 34's counts */
    const int w0 = nn_resnet_channels(64, c->width);
    NnAct a, b, x, y, pooled, fc;

    NN_TRY(nn_input(g, &net->input, c->batch, c->in_ch, c->h, c->w));
    if (c->stem == NN_STEM_CIFAR) {
        NN_TRY(nn_conv(g, "conv1", &a, &net->input, w0, 3, 1, 1, NN_DIFF_NONE));
        NN_TRY(nn_bn(g, "bn1", &x, &a, 1));
    } else {
        NN_TRY(nn_conv(g, "conv1", &a, &net->input, w0, 7, 2, 3, NN_DIFF_NONE));
        NN_TRY(nn_bn(g, "bn1", &b, &a, 1));
        NN_TRY(nn_pool(g, "maxpool", &x, &b, 1, 3, 3, 2, 1, NN_DIFF_WRITE));
    }
    for (int stage = 0; stage < 4; stage++) {
        const int planes = nn_resnet_channels(64 << stage, c->width);
        for (int i = 0; i < blocks[stage]; i++) {
            char p[24];
            snprintf(p, sizeof p, "layer%d.%d", stage + 1, i);
            const int stride = stage > 0 && i == 0 ? 2 : 1;
            NN_TRY(c->depth == 50 ? bottleneck(g, p, &y, &x, planes, stride)
                                  : basic_block(g, p, &y, &x, planes, stride));
            x = y;
        }
    }
    NN_TRY(nn_pool(g, "avgpool", &pooled, &x, 0, (int)x.md.dims[2], (int)x.md.dims[3], 1, 0,
                   NN_DIFF_WRITE));
    NN_TRY(nn_fc(g, "fc", &fc, &pooled, c->classes, NN_DIFF_WRITE));

    /* The loss works on plain fp32 logits: one small reorder each way. */
    const long ld[2] = {c->batch, c->classes};
    const dnnl_memory_desc_t lmd = nn_md_plain(2, ld, dnnl_f32);
    NN_TRY(nn_graph_layer(g, "loss", "logits %dx%d", c->batch, c->classes));
    NN_TRY(nn_graph_mem(g, &net->logits_mem, &lmd, NN_BUF_OWN, 0));
    NN_TRY(nn_graph_mem(g, &net->dlogits_mem, &lmd, NN_BUF_OWN, 0));
    NN_TRY(nn_graph_reorder(g, NN_FWD, fc.mem, &fc.md, net->logits_mem, &lmd));
    NN_TRY(nn_graph_reorder(g, NN_IN(NN_PASS_BWD), net->dlogits_mem, &lmd, fc.diff, &fc.md));
    nn_graph_layer_done(g, "softmax xent", &lmd);
    return AMO_OK;
}

/* -------------------------------------------------------------- init ---- */

/* Convolution weights (out_ch, in_ch, kh, kw).  He: torchvision's ResNet
 * (torchvision/models/resnet.py, ResNet.__init__).  Torch: nn.Conv2d's
 * reset_parameters, kaiming_uniform_(w, a=sqrt(5)) (torch/nn/modules/conv.py),
 * whose bound sqrt(3) * sqrt(2 / (1 + a^2)) / sqrt(fan_in) (torch/nn/init.py)
 * is 1/sqrt(fan_in); the Conv2d docs give the same as U(-sqrt(k), sqrt(k)),
 * k = 1 / (in_ch kh kw): https://pytorch.org/docs/stable/generated/torch.nn.Conv2d.html */
static void init_conv(float *p, const NnParamInfo *t, NnInit init, AmoRng *s)
{
    if (init == NN_INIT_TORCH) {
        const double bound = 1.0 / sqrt((double)(t->dims[1] * t->dims[2] * t->dims[3]));
        for (size_t j = 0; j < t->count; j++)
            p[j] = (float)(bound * (2.0 * amo_rng_uniform(s) - 1.0));
        return;
    }
    const double std = sqrt(2.0 / (double)(t->dims[0] * t->dims[2] * t->dims[3]));
    for (size_t j = 0; j < t->count; j++)
        p[j] = (float)(std * amo_rng_normal(s));
}

static void init_params(NnResNet *net)
{
    NnGraph *g = &net->g;
    AmoRng s = amo_rng(net->cfg.seed); /* the project's one RNG */
    size_t fc_fan_in = 1;
    for (int i = 0; i < g->ntensors; i++)
        if (g->tensors[i].kind == NN_FC_WEIGHT)
            fc_fan_in = (size_t)g->tensors[i].dims[1];
    size_t so = 0;
    for (int i = 0; i < g->ntensors; i++) {
        const NnParamInfo *t = &g->tensors[i];
        float *p = g->params + t->offset;
        switch (t->kind) {
        case NN_CONV_WEIGHT:
            init_conv(p, t, net->cfg.init, &s);
            break;
        case NN_BN_GAMMA: /* running stats of this BN: mean 0, var 1 */
            for (size_t j = 0; j < t->count; j++) {
                p[j] = 1.f;
                g->stats[so + j] = 0.f;
                g->stats[so + t->count + j] = 1.f;
            }
            so += 2 * t->count;
            break;
        case NN_BN_BETA:
            memset(p, 0, t->count * sizeof *p);
            break;
        case NN_FC_WEIGHT:
        case NN_FC_BIAS: {
            const double bound = 1.0 / sqrt((double)fc_fan_in);
            for (size_t j = 0; j < t->count; j++)
                p[j] = (float)(bound * (2.0 * amo_rng_uniform(&s) - 1.0));
            break;
        }
        }
    }
}

/* ------------------------------------------------------------ public ---- */

static AmoStatus check_config(const NnResNetConfig *c, char *msg, size_t len)
{
    if (c->depth != 18 && c->depth != 34 && c->depth != 50)
        snprintf(msg, len, "depth %d: must be 18, 34 or 50", c->depth);
    else if (c->stem != NN_STEM_CIFAR && c->stem != NN_STEM_IMAGENET)
        snprintf(msg, len, "stem %d: must be NN_STEM_CIFAR or NN_STEM_IMAGENET", (int)c->stem);
    else if (!(c->width > 0) || !(c->width <= 64))
        snprintf(msg, len, "width %g: must be in (0, 64]", c->width);
    else if (c->conv_gemm != NN_CONV_GEMM_AUTO && c->conv_gemm != NN_CONV_GEMM_OFF
             && c->conv_gemm != NN_CONV_GEMM_ALL)
        snprintf(msg, len, "conv_gemm %d: must be NN_CONV_GEMM_AUTO, _OFF or _ALL", c->conv_gemm);
    else if (c->conv_algo != NN_CONV_ALGO_AUTO && c->conv_algo != NN_CONV_ALGO_DIRECT
             && c->conv_algo != NN_CONV_ALGO_WINOGRAD)
        snprintf(msg, len, "conv_algo %d: must be NN_CONV_ALGO_AUTO, _DIRECT or _WINOGRAD",
                 c->conv_algo);
    else if (c->bf16 && c->bn_reduce)
        snprintf(msg, len, "synchronised batch norm (bn_reduce) with bf16: not implemented; "
                 "fp32 only");
    else if (c->bf16 && c->conv_algo == NN_CONV_ALGO_WINOGRAD)
        snprintf(msg, len, "conv_algo winograd with bf16: oneDNN 2.6 has no bf16 Winograd "
                 "(bf16 runs direct; use auto or direct)");
    else if (c->init != NN_INIT_HE && c->init != NN_INIT_TORCH)
        snprintf(msg, len, "init %d: must be NN_INIT_HE or NN_INIT_TORCH", (int)c->init);
    else if (c->classes < 1)
        snprintf(msg, len, "classes %d: must be >= 1", c->classes);
    else if (c->batch < 1 || c->in_ch < 1 || c->h < 1 || c->w < 1)
        snprintf(msg, len, "input %dx%dx%dx%d (batch x channels x height x width): every size "
                 "must be >= 1", c->batch, c->in_ch, c->h, c->w);
    else
        return AMO_OK;
    return AMO_EINVAL;
}

AmoStatus nn_resnet_create(NnResNet **out, const NnResNetConfig *cfg, char *err, size_t errlen)
{
    char msg[512] = "";
    AmoStatus s = AMO_OK;
    NnResNet *net = NULL;
    const char *isa = NULL;
    if (!out || !cfg) {
        snprintf(msg, sizeof msg, "nn_resnet_create: NULL argument");
        s = AMO_EINVAL;
    }
    if (s == AMO_OK)
        s = check_config(cfg, msg, sizeof msg);
    if (s == AMO_OK)
        s = nn_isa_init(msg, sizeof msg, &isa);
    if (s == AMO_OK && cfg->bf16 && !nn_isa_has_bf16()) {
        snprintf(msg, sizeof msg, "bf16 needs oneDNN at avx512_core or above (avx512_core_bf16 "
                 "or avx512_core_amx to be fast); it runs at %s (kernel level %s)", isa,
                 kn_cpu_level_name(kn_cpu_flags()));
        s = AMO_EUNSUPPORTED;
    }
    if (s == AMO_OK && !(net = calloc(1, sizeof *net))) {
        snprintf(msg, sizeof msg, "out of memory");
        s = AMO_ENOMEM;
    }
    if (s == AMO_OK) {
        net->cfg = *cfg;
        net->isa = isa;
        s = nn_graph_init(&net->g, cfg->bf16 ? dnnl_bf16 : dnnl_f32);
        net->g.conv_gemm = cfg->conv_gemm;
        net->g.conv_algo = cfg->conv_algo;
        net->g.bn_reduce = cfg->bn_reduce;
        net->g.bn_ctx = cfg->ctx;
        if (s == AMO_OK)
            s = build(net);
        if (s == AMO_OK)
            s = nn_graph_finalize(&net->g);
        if (s != AMO_OK)
            snprintf(msg, sizeof msg, "%s", net->g.msg);
    }
    if (s == AMO_OK) {
        void *h = NULL;
        dnnl_memory_get_data_handle(net->input.mem, &h);
        net->x = h;
        dnnl_memory_get_data_handle(net->logits_mem, &h);
        net->logits = h;
        dnnl_memory_get_data_handle(net->dlogits_mem, &h);
        net->dlogits = h;
        init_params(net);
    }
    if (s != AMO_OK) {
        if (err && errlen)
            snprintf(err, errlen, "%s", msg);
        nn_resnet_destroy(net);
        net = NULL;
    }
    if (out)
        *out = net;
    return s;
}

void nn_resnet_destroy(NnResNet *net)
{
    if (!net)
        return;
    nn_graph_free(&net->g);
    free(net);
}

AmoStatus nn_resnet_forward(NnResNet *net, const float *x, int train)
{
    if (!net || !x)
        return AMO_EINVAL;
    NnGraph *g = &net->g;
    net->state = NN_NONE;
    /* (synchronised batch norm counts every replica's values: each has at
     * least one, and there are at least two replicas) */
    if (train && g->bn_min_values < 2 && !g->bn_reduce)
        return nn_fail(g, AMO_EINVAL, "%s: training needs more than one value per channel "
                       "(batch x height x width = %ld), as in PyTorch", g->bn_min_layer,
                       g->bn_min_values);
    const double t0 = now_ms();
    memcpy(net->x, x, sizeof *x * (size_t)net->cfg.batch * (size_t)net->cfg.in_ch
                          * (size_t)net->cfg.h * (size_t)net->cfg.w);
    NN_TRY(nn_graph_run(g, NN_PASS_SYNC));
    const double t1 = now_ms();
    NN_TRY(nn_graph_run(g, train ? NN_PASS_TRAIN : NN_PASS_INFER));
    const double t2 = now_ms();
    net->t.sync_ms = t1 - t0;
    net->t.forward_ms = t2 - t0;
    net->state = train ? NN_FWD_TRAIN : NN_FWD_INFER;
    return AMO_OK;
}

AmoStatus nn_resnet_loss(NnResNet *net, const int *labels, float smoothing, float *loss)
{
    if (!net || !labels || !loss)
        return AMO_EINVAL;
    NnGraph *g = &net->g;
    if (net->state == NN_NONE)
        return nn_fail(g, AMO_EINVAL, "loss: no forward pass to take the logits from");
    const int B = net->cfg.batch, K = net->cfg.classes;
    for (int b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= K)
            return nn_fail(g, AMO_EINVAL, "loss: label %d of sample %d is outside [0, %d)",
                           labels[b], b, K);
    if (!(smoothing >= 0.f && smoothing <= 1.f))
        return nn_fail(g, AMO_EINVAL, "loss: label smoothing %g is outside [0, 1]",
                       (double)smoothing);
    const double t0 = now_ms();
    double l = 0;
    const AmoStatus s = nn_xent_smooth(&l, net->dlogits, net->logits, labels, B, K, smoothing);
    *loss = (float)l;
    net->t.loss_ms = now_ms() - t0;
    if (s == AMO_ENONFINITE)
        return nn_fail(g, s, "loss: the logits hold a NaN or an Inf");
    return s;
}

AmoStatus nn_resnet_backward(NnResNet *net)
{
    if (!net)
        return AMO_EINVAL;
    NnGraph *g = &net->g;
    if (net->state != NN_FWD_TRAIN)
        return nn_fail(g, AMO_EINVAL, "backward needs a training forward (train = 1) first");
    const double t0 = now_ms();
    if (net->cfg.grads_ready) { /* the reorders inside, interleaved (grads_ms: 0) */
        NN_TRY(nn_graph_run_backward(g, net->cfg.grads_ready, net->cfg.ctx));
        net->t.grads_ms = 0;
        net->t.backward_ms = now_ms() - t0;
        return AMO_OK;
    }
    NN_TRY(nn_graph_run(g, NN_PASS_BWD));
    const double t1 = now_ms();
    NN_TRY(nn_graph_run(g, NN_PASS_GRADS));
    const double t2 = now_ms();
    net->t.grads_ms = t2 - t1;
    net->t.backward_ms = t2 - t0;
    return AMO_OK;
}

const float *nn_resnet_logits(const NnResNet *net) { return net->logits; }
float *nn_resnet_dlogits(NnResNet *net) { return net->dlogits; }
float *nn_resnet_grads(NnResNet *net) { return net->g.grads; }
const char *nn_resnet_isa(const NnResNet *net) { return net->isa; }
const char *nn_resnet_error(const NnResNet *net) { return net->g.msg; }
void nn_resnet_timing(const NnResNet *net, NnTiming *t) { *t = net->t; }

float *nn_resnet_params(NnResNet *net, size_t *n)
{
    if (n)
        *n = net->g.nparams;
    return net->g.params;
}

float *nn_resnet_stats(NnResNet *net, size_t *n)
{
    if (n)
        *n = net->g.nstats;
    return net->g.stats;
}

const NnParamInfo *nn_resnet_tensors(const NnResNet *net, int *n)
{
    if (n)
        *n = net->g.ntensors;
    return net->g.tensors;
}

const NnLayerInfo *nn_resnet_layers(const NnResNet *net, int *n)
{
    if (n)
        *n = net->g.nlayers;
    return net->g.layers;
}

void nn_resnet_info(const NnResNet *net, NnResNetInfo *info)
{
    const NnGraph *g = &net->g;
    *info = (NnResNetInfo){
        .nparams = g->nparams,
        .nstats = g->nstats,
        .ntensors = g->ntensors,
        .nlayers = g->nlayers,
        .act_bytes = g->act_bytes,
        .work_bytes = g->work_bytes,
        .scratch_bytes = g->scratch_bytes,
        .sync_reorders = g->pass[NN_PASS_SYNC].n,
        .grad_reorders = g->pass[NN_PASS_GRADS].n,
        .ref_prims = g->ref_prims,
        .gemm_convs = g->gemm_convs,
        .wino_convs = g->wino_convs,
        .wino_passes = g->wino_passes,
        .isa = net->isa,
        .dtype = net->cfg.bf16 ? "bf16" : "f32",
    };
}

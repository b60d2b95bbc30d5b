/* A ResNet and its optimizer (harness/model.h). */
#include <math.h>
#include <stdlib.h>

#include "harness/dist.h"
#include "harness/error.h"
#include "harness/model.h"
#include "harness/threads.h"
#include "harness/timer.h"

/* At least 256 KiB per bucket (a sum's latency is then small against its
 * transfer) and at most 32 buckets per model (HX_DIST_MAX_PENDING).  The
 * first bucket waits for the whole backward: small buckets keep that tail
 * short (ResNet-18 at width 1/4: 17% of the sums hidden with 1 MiB
 * buckets, 76% with 256 KiB; results/mpi/README.md). */
#define HX_BUCKET_MIN ((size_t)1 << 16)
#define HX_BUCKETS_MAX 32

/* nn's NnReadyFn: start the sum of every bucket backward has finished. */
static void grads_ready(void *ctx, size_t from)
{
    HxGradSync *s = ctx;
    for (; s->next >= 0 && (size_t)s->next * s->bucket >= from; s->next--) {
        const size_t at = (size_t)s->next * s->bucket;
        hx_dist_isum_f32(s->grads + at, s->n - at < s->bucket ? s->n - at : s->bucket);
    }
    hx_dist_progress();
}

static void bn_alone(void *ctx, double *v, int n)
{
    (void)ctx, (void)v, (void)n;
}

void hx_model_create(HxModel *m, const NnResNetConfig *cfg, OptConfig oc, int threads, int dp)
{
    char err[1024] = "";
    *m = (HxModel){ .dp = dp & HX_DP };
    m->threads = 1;
    (void)hx_set_threads(threads, &m->threads); /* (a failed pinning is no error) */
    NnResNetConfig c = *cfg;
    if (dp & HX_DP) {
        c.grads_ready = grads_ready;
        c.ctx = &m->sync;
    }
    /* (--sync-bn alone: the same arithmetic, over one process's batch) */
    if (dp & HX_DP_SYNC_BN)
        c.bn_reduce = dp & HX_DP ? hx_dist_sum_f64_cb : bn_alone;
    const AmoStatus ms = nn_resnet_create(&m->net, &c, err, sizeof err);
    if (ms != AMO_OK) /* a setting this model or CPU cannot take is a usage error */
        hx_fail(ms == AMO_EINVAL || ms == AMO_EUNSUPPORTED ? HX_EXIT_USAGE : HX_EXIT_FAIL,
                "model: %s", err);
    size_t np;
    float *p = nn_resnet_params(m->net, &np);
    float *g = nn_resnet_grads(m->net);
    const size_t per = (np + HX_BUCKETS_MAX - 1) / HX_BUCKETS_MAX;
    m->sync = (HxGradSync){ .grads = g, .n = np, .next = -1,
                            .bucket = per > HX_BUCKET_MIN ? per : HX_BUCKET_MIN,
                            .scale = 1.0f / (float)hx_dist_size() };
    const NnParamInfo *pi = nn_resnet_tensors(m->net, &m->ntensors);
    m->tensors = hx_malloc((size_t)m->ntensors * sizeof(*m->tensors));
    for (int i = 0; i < m->ntensors; i++)
        m->tensors[i] = (OptTensor){
            .param = p + pi[i].offset, .grad = g + pi[i].offset, .n = pi[i].count,
            /* no weight decay on batch-norm affine parameters and biases */
            .no_decay = pi[i].kind != NN_CONV_WEIGHT && pi[i].kind != NN_FC_WEIGHT };
    oc.threads = m->threads;
    const AmoStatus st = opt_create(&m->opt, &oc, m->tensors, m->ntensors, err, sizeof err);
    if (st != AMO_OK)
        hx_fail(st == AMO_EINVAL ? HX_EXIT_USAGE : HX_EXIT_FAIL, "optimizer: %s", err);
}

void hx_model_destroy(HxModel *m)
{
    opt_destroy(m->opt);
    nn_resnet_destroy(m->net);
    free(m->tensors);
    *m = (HxModel){ 0 };
}

/* The sums still running after backward, then the mean.  1/ranks is exact
 * for a power of two; otherwise one rounding, the same on every rank. */
static void average_grads(HxModel *m)
{
    grads_ready(&m->sync, 0); /* (backward has started them all) */
    hx_dist_wait_all();
    const float k = m->sync.scale;
    float *g = m->sync.grads;
    for (size_t i = 0; i < m->sync.n; i++)
        g[i] *= k;
}

void hx_model_step(HxModel *m, const float *x, const int *y, float smoothing, long step,
                   float *loss, OptStepInfo *info, HxStepTimes *t)
{
    const double t0 = hx_now();
    *loss = NAN;
    if (nn_resnet_forward(m->net, x, 1) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "forward at step %ld: %s", step, nn_resnet_error(m->net));
    const AmoStatus ls = nn_resnet_loss(m->net, y, smoothing, loss);
    if (ls != AMO_OK && ls != AMO_ENONFINITE)
        hx_fail(HX_EXIT_FAIL, "loss at step %ld: %s", step, nn_resnet_error(m->net));
    const double t1 = hx_now();
    m->sync.next = (long)((m->sync.n - 1) / m->sync.bucket);
    if (nn_resnet_backward(m->net) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "backward at step %ld: %s", step, nn_resnet_error(m->net));
    const double t2 = hx_now();
    if (m->dp)
        average_grads(m);
    const double t3 = hx_now();
    const AmoStatus st = opt_step(m->opt, info);
    if (st != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "optimizer step %ld: %s", step, amo_status_str(st));
    const double t4 = hx_now();
    *t = (HxStepTimes){ t1 - t0, t2 - t1, t4 - t3, t3 - t2 };
}

double hx_model_time_sums(HxModel *m, int reps)
{
    double ms[16];
    reps = reps < 1 ? 1 : reps > 16 ? 16 : reps;
    for (int i = 0; i < reps; i++) {
        hx_dist_barrier();
        const double t0 = hx_now();
        m->sync.next = (long)((m->sync.n - 1) / m->sync.bucket);
        grads_ready(&m->sync, 0);
        hx_dist_wait_all();
        ms[i] = (hx_now() - t0) * 1e3;
    }
    for (int i = 1; i < reps; i++) /* insertion sort for the median */
        for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
            const double x = ms[j];
            ms[j] = ms[j - 1];
            ms[j - 1] = x;
        }
    return ms[reps / 2];
}

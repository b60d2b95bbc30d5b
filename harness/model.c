/* A ResNet and its optimizer (harness/model.h). */
#include <math.h>
#include <stdlib.h>

#include "harness/error.h"
#include "harness/model.h"
#include "harness/threads.h"
#include "harness/timer.h"

void hx_model_create(HxModel *m, const NnResNetConfig *cfg, OptConfig oc, int threads)
{
    char err[1024] = "";
    *m = (HxModel){ 0 };
    m->threads = 1;
    (void)hx_set_threads(threads, &m->threads); /* (a failed pinning is no error) */
    const AmoStatus ms = nn_resnet_create(&m->net, cfg, err, sizeof err);
    if (ms != AMO_OK) /* a setting this model or CPU cannot take is a usage error */
        hx_fail(ms == AMO_EINVAL || ms == AMO_EUNSUPPORTED ? HX_EXIT_USAGE : HX_EXIT_FAIL,
                "model: %s", err);
    size_t np;
    float *p = nn_resnet_params(m->net, &np);
    float *g = nn_resnet_grads(m->net);
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
    if (nn_resnet_backward(m->net) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "backward at step %ld: %s", step, nn_resnet_error(m->net));
    const double t2 = hx_now();
    const AmoStatus st = opt_step(m->opt, info);
    if (st != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "optimizer step %ld: %s", step, amo_status_str(st));
    const double t3 = hx_now();
    *t = (HxStepTimes){ t1 - t0, t2 - t1, t3 - t2 };
}

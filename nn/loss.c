/* Label-smoothed softmax cross-entropy; see nn/loss.h. */
#include <math.h>
#include <stddef.h>

#include "nn/loss.h"

AmoStatus nn_xent_smooth(double *loss, float *dlogits, const float *logits, const int *labels,
                        int batch, int classes, float smoothing)
{
    if (!loss || !logits || !labels || batch < 1 || classes < 1 || !(smoothing >= 0.f)
        || !(smoothing <= 1.f))
        return AMO_EINVAL;
    for (int b = 0; b < batch; b++)
        if (labels[b] < 0 || labels[b] >= classes)
            return AMO_EINVAL;
    const double off = (double)smoothing / classes, on = 1.0 - smoothing + off;
    double total = 0;
    int finite = 1;
    for (int b = 0; b < batch; b++) {
        const float *z = logits + (size_t)b * classes;
        double zmax = -INFINITY, sum = 0, qz = 0;
        for (int k = 0; k < classes; k++) {
            finite &= isfinite(z[k]) != 0;
            zmax = z[k] > zmax ? z[k] : zmax;
        }
        for (int k = 0; k < classes; k++)
            sum += exp(z[k] - zmax);
        const double lse = zmax + log(sum);
        /* -sum_k q_k (z_k - lse) = lse - sum_k q_k z_k, since sum_k q_k = 1 */
        for (int k = 0; k < classes; k++)
            qz += (k == labels[b] ? on : off) * z[k];
        total += lse - qz;
        if (dlogits)
            for (int k = 0; k < classes; k++)
                dlogits[(size_t)b * classes + k] =
                    (float)((exp(z[k] - lse) - (k == labels[b] ? on : off)) / batch);
    }
    *loss = total / batch;
    return finite ? AMO_OK : AMO_ENONFINITE;
}

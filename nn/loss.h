/* Softmax cross-entropy with label smoothing, in plain C on the logits.
 *
 * The smoothed target is q = (1 - s) onehot(y) + s / K (Szegedy et al.,
 * "Rethinking the Inception Architecture", sec. 7; torch.nn.CrossEntropyLoss
 * with label_smoothing = s computes the same):
 *     loss    = mean over the batch of  -sum_k q_k log softmax(z)_k
 *     dlogits = (softmax(z) - q) / B
 * Accumulated in double; log-sum-exp is shifted by the row maximum. */
#ifndef AMO_NN_LOSS_H
#define AMO_NN_LOSS_H

#include "common/status.h"

/* logits, dlogits: (batch, classes) row-major; labels: (batch) in
 * [0, classes); smoothing in [0, 1].  dlogits may be NULL.  A NaN or Inf
 * logit gives AMO_ENONFINITE (the outputs are still written). */
AMO_API AmoStatus nn_xent_smooth(double *loss, float *dlogits, const float *logits,
                                 const int *labels, int batch, int classes, float smoothing);

#endif

/* nn/'s own use of nn/batch.c (not installed, not exported). */
#ifndef AMO_NN_BATCH_IMPL_H
#define AMO_NN_BATCH_IMPL_H

#include <stdint.h>

/* order[0..n) = idx[0..n), shuffled (Fisher-Yates) from (seed, epoch) when
 * shuffle is set: the epoch order of NnBatcher and of nn/loader.c, so that a
 * folder and an in-memory data set see their examples in the same order. */
void nn_epoch_order(int *order, const int *idx, int n, uint64_t seed, uint64_t epoch,
                    int shuffle);

#endif

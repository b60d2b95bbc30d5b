/* Where the training loop gets its batches: a data set held in memory
 * (NnBatcher, nn/data.h: IDX, CIFAR-10, synthetic) or an image folder
 * streamed by decoding threads (NnLoader, nn/loader.h).  Both keep the
 * same (epoch, pos) state and return 0 at an epoch's end, so the loop,
 * its evaluations and its checkpoints do not know which one they have.
 * Internal to the harness: errors exit through hx_fail. */
#ifndef AMO_HARNESS_SOURCE_H
#define AMO_HARNESS_SOURCE_H

#include <stdint.h>

#include "nn/data.h"
#include "nn/loader.h"

typedef struct HxSource {
    NnBatcher *b;           /* one of the two */
    NnLoader *l;
} HxSource;

/* The next batch into x and y: the number of real examples, 0 at the end
 * of an epoch (the next call starts the next one).  A file that fails to
 * decode ends the run, named. */
int hx_source_next(HxSource *s, float *x, int *y);
void hx_source_seek(HxSource *s, uint64_t epoch, int pos);
void hx_source_position(const HxSource *s, uint64_t *epoch, int *pos);
int hx_source_steps(const HxSource *s);

#endif

/* Batches of an image folder (nn/folder.h) through a transform (nn/image.h),
 * decoded by a pool of threads that runs ahead of the caller: up to `depth`
 * batches are decoded or being decoded while the caller trains on one, so
 * a step waits only when the pool is slower than the step.
 *
 * Batches come in the order and with the semantics of NnBatcher (nn/data.h):
 * a shuffle per epoch from (seed, epoch), drop_last, nn_loader_next returns
 * 0 at the end of an epoch and the next call starts the next one, and the
 * whole state is (epoch, pos), so a run resumes by nn_loader_seek.  An
 * image's pixels depend only on (seed, epoch, its index): the same batches,
 * bit for bit, whatever the number of threads (0: decoded by the caller).
 *
 * A file that cannot be read or decoded stops the batch it is in: next
 * returns its error, naming the file.  Threads are the loader's own
 * (pthreads); it leaves OpenMP and signals alone. */
#ifndef AMO_NN_LOADER_H
#define AMO_NN_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "nn/folder.h"
#include "nn/image.h"

typedef struct NnLoaderConfig {
    const NnFolder *f;        /* kept by the caller while the loader lives   */
    const int *idx;           /* (n) the images of f to serve (copied)       */
    int n, batch;
    int shuffle, drop_last;   /* training: 1, 1; evaluation: 0, 0            */
    uint64_t seed;
    NnImageTf tf;
    int threads;              /* 0: decode in nn_loader_next                 */
    int depth;                /* batches ahead (>= 1; 0: 2)                  */
    /* Decode only positions [part_lo, part_hi) of each batch (a data-parallel
     * rank's share); the other rows of x are zero, every label is given.
     * 0, 0: the whole batch. */
    int part_lo, part_hi;
} NnLoaderConfig;

typedef struct NnLoader NnLoader;

AMO_API AmoStatus nn_loader_create(NnLoader **out, const NnLoaderConfig *c, char *err,
                                   size_t errlen);
/* Stops and joins the threads (an image being decoded is finished first). */
AMO_API void nn_loader_destroy(NnLoader *l);
/* Batches per epoch. */
AMO_API int nn_loader_steps(const NnLoader *l);
/* Moves to (epoch, pos); decoded batches ahead are dropped.  AMO_EINVAL
 * (and nothing moves) for pos outside [0, n]. */
AMO_API AmoStatus nn_loader_seek(NnLoader *l, uint64_t epoch, int pos);
AMO_API void nn_loader_position(const NnLoader *l, uint64_t *epoch, int *pos);
/* The next batch into x (batch, 3, size, size) and y (batch): *cnt real
 * examples (the rest of x is zero and y is -1), 0 at the end of an epoch. */
AMO_API AmoStatus nn_loader_next(NnLoader *l, float *x, int *y, int *cnt, char *err,
                                 size_t errlen);

#endif

/* Data sets and batches: Fashion-MNIST/MNIST (IDX, gzip or raw), CIFAR-10
 * (binary batches), a synthetic source of any geometry; a fixed stratified
 * validation split; per-channel normalisation; augmentation; seeded,
 * resumable batch order.
 *
 * Errors name the file and the byte offset and are written to err; nothing
 * is returned half-loaded.  In a .gz file a broken gzip stream (cut, a bad
 * CRC-32 or length, corrupt deflate data, trailing bytes) is named with its
 * compressed offset, the data inside it with their decompressed offset.
 * Only regular files are read: a FIFO, a directory or a device is refused
 * (AMO_EIO) before anything waits on it. */
#ifndef AMO_NN_DATA_H
#define AMO_NN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define NN_FASHION_DIR "/usr/share/datasets/fashion-mnist"

typedef struct NnDataset {
    int n, c, h, w, classes;
    uint8_t *x;           /* (n, c, h, w) pixels, 0..255 */
    uint8_t *y;           /* (n) labels in [0, classes)  */
} NnDataset;

/* One IDX pair: images (magic 0x00000803, n x rows x cols) and labels
 * (0x00000801, n), each gzip-compressed (one or more members) or not. */
AMO_API AmoStatus nn_data_idx(NnDataset *d, const char *images, const char *labels, char *err,
                             size_t errlen);
/* The same from the two files' bytes in memory (ibuf, lbuf: a fuzzer needs
 * no files); images and labels name them in messages. */
AMO_API AmoStatus nn_data_idx_mem(NnDataset *d, const char *images, const void *ibuf, size_t ilen,
                                 const char *labels, const void *lbuf, size_t llen, char *err,
                                 size_t errlen);
/* Fashion-MNIST or MNIST from dir (train-images-idx3-ubyte[.gz], ...). */
AMO_API AmoStatus nn_data_mnist(NnDataset *train, NnDataset *test, const char *dir, char *err,
                               size_t errlen);
/* CIFAR-10 binary version from dir: data_batch_1.bin .. data_batch_5.bin and
 * test_batch.bin, records of 1 label byte + 3072 pixel bytes (RGB planes). */
AMO_API AmoStatus nn_data_cifar10(NnDataset *train, NnDataset *test, const char *dir, char *err,
                                 size_t errlen);
/* One batch file's bytes in memory, named name in messages. */
AMO_API AmoStatus nn_data_cifar_mem(NnDataset *d, const char *name, const void *buf, size_t len,
                                   char *err, size_t errlen);
/* n examples of c x h x w in `classes` classes: noise plus a class-dependent
 * pattern, so a network can learn it. */
AMO_API AmoStatus nn_data_synthetic(NnDataset *d, int n, int c, int h, int w, int classes,
                                   uint64_t seed);
AMO_API void nn_data_free(NnDataset *d);

/* A fixed split: nval examples, the same number from each class (the
 * remainder from the first classes), chosen by a seeded shuffle; the rest
 * train.  Index lists are sorted. */
typedef struct NnSplit { int *train, *val; int ntrain, nval; } NnSplit;
AMO_API AmoStatus nn_data_split(const NnDataset *d, int nval, uint64_t seed, NnSplit *s, char *err,
                               size_t errlen);
AMO_API void nn_split_free(NnSplit *s);

/* Per-channel mean and standard deviation of pixels / 255 over idx[0..n). */
AMO_API void nn_data_stats(const NnDataset *d, const int *idx, int n, float *mean, float *std);

/* Batches from a list of examples.  Training order: a shuffle per epoch
 * from (seed, epoch); augmentation (random crop from a zero-padded image,
 * horizontal flip) from (seed, epoch, position).  The whole state is
 * (epoch, pos), so a run resumes by nn_batcher_seek. */
typedef struct NnBatcher {
    const NnDataset *d;
    const int *idx;
    int n, batch;
    int shuffle;          /* 0: examples in idx order (evaluation)          */
    int drop_last;        /* 1: an epoch has floor(n / batch) batches       */
    int pad;              /* crop padding in pixels; 0: no crop             */
    int flip;             /* horizontal flips                               */
    uint64_t seed;
    float mean[4], std[4];
    uint64_t epoch;
    int pos;              /* next position in the epoch's order             */
    int *order;
} NnBatcher;

AMO_API AmoStatus nn_batcher_init(NnBatcher *b, const NnDataset *d, const int *idx, int n,
                                  int batch, uint64_t seed, const float *mean, const float *std);
AMO_API void nn_batcher_free(NnBatcher *b);
/* Moves to (epoch, pos), rebuilding that epoch's order. */
AMO_API void nn_batcher_seek(NnBatcher *b, uint64_t epoch, int pos);
/* Batches per epoch. */
AMO_API int nn_batcher_steps(const NnBatcher *b);
/* Fills x (batch, c, h, w) normalised, and y.  Returns the number of real
 * examples (the rest of x is zero and y is -1); 0 at the end of an epoch,
 * after which the next call starts the next epoch. */
AMO_API int nn_batcher_next(NnBatcher *b, float *x, int *y);

#endif

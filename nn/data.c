#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/file.h"
#include "common/rng.h"
#include "nn/data.h"
#include "nn/gzstream.h"

void nn_data_free(NnDataset *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof(*d));
}


/* ---- IDX ------------------------------------------------------------------ */

#define IDX_MAX_N (1u << 26)
#define IDX_MAX_SIDE 4096u

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The magic and the ndim sizes that start an IDX file. */
static AmoStatus idx_header(NnSrc *s, int ndim, uint32_t *dims, char *err, size_t len)
{
    unsigned char h[16];
    AmoStatus st = nn_src_read(s, h, 4, err, len);
    if (st == AMO_OK && (h[0] || h[1] || h[2] != 0x08 || h[3] != ndim))
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: bad magic %02x%02x%02x%02x at offset 0 (expected 000008%02x: IDX, "
                    "unsigned bytes, %d dimensions)",
                    s->name, h[0], h[1], h[2], h[3], ndim, ndim);
    if (st == AMO_OK)
        st = nn_src_read(s, h + 4, 4 * (size_t)ndim, err, len);
    for (int i = 0; st == AMO_OK && i < ndim; i++)
        dims[i] = be32(h + 4 + 4 * i);
    return st;
}

/* The counts agree and the sizes are ones this loader takes. */
static AmoStatus idx_sizes(const char *images, const uint32_t *di, const char *labels,
                          uint32_t nlabels, char *err, size_t len)
{
    if (di[0] != nlabels)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s has %u images and %s %u labels (the counts at offset 4 do not match)",
                    images, di[0], labels, nlabels);
    if (di[0] == 0)
        return amo_err(AMO_EFORMAT, err, len, "%s: 0 images at offset 4", images);
    if (di[0] > IDX_MAX_N)
        return amo_err(AMO_EFORMAT, err, len, "%s: %u images at offset 4: more than the %u allowed",
                    images, di[0], IDX_MAX_N);
    if (di[1] == 0 || di[2] == 0 || di[1] > IDX_MAX_SIDE || di[2] > IDX_MAX_SIDE)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: %u x %u images at offset 8: each side must be in 1..%u", images, di[1],
                    di[2], IDX_MAX_SIDE);
    if ((uint64_t)di[0] * di[1] * di[2] > SIZE_MAX) /* 32-bit machines */
        return amo_err(AMO_EFORMAT, err, len, "%s: %u x %u x %u pixels at offset 4: more than %zu",
                    images, di[0], di[1], di[2], (size_t)SIZE_MAX);
    return AMO_OK;
}

/* Each stream is read to its end and checked before the labels are looked
 * at: a corrupt file is reported as corrupt, not by a symptom. */
AmoStatus nn_data_idx_mem(NnDataset *d, const char *images, const void *ibuf, size_t ilen,
                         const char *labels, const void *lbuf, size_t llen, char *err,
                         size_t errlen)
{
    memset(d, 0, sizeof(*d));
    NnSrc si, sl;
    uint32_t di[3] = { 0 }, dl[1] = { 0 };
    AmoStatus st = nn_src_open(&si, images, ibuf, ilen, err, errlen);
    if (st != AMO_OK)
        return st;
    st = nn_src_open(&sl, labels, lbuf, llen, err, errlen);
    if (st == AMO_OK)
        st = idx_header(&si, 3, di, err, errlen);
    if (st == AMO_OK)
        st = idx_header(&sl, 1, dl, err, errlen);
    if (st == AMO_OK)
        st = idx_sizes(images, di, labels, dl[0], err, errlen);
    const size_t n = di[0], px = (size_t)di[1] * di[2];
    if (st == AMO_OK)
        st = nn_src_can_hold(&si, n * px, err, errlen);
    if (st == AMO_OK)
        st = nn_src_can_hold(&sl, n, err, errlen);
    if (st == AMO_OK && (!(d->x = malloc(n * px)) || !(d->y = malloc(n))))
        st = amo_err(AMO_ENOMEM, err, errlen, "%s: out of memory for %zu images", images, n);
    if (st == AMO_OK)
        st = nn_src_read(&si, d->x, n * px, err, errlen);
    if (st == AMO_OK)
        st = nn_src_end(&si, err, errlen);
    if (st == AMO_OK)
        st = nn_src_read(&sl, d->y, n, err, errlen);
    if (st == AMO_OK)
        st = nn_src_end(&sl, err, errlen);
    for (size_t i = 0; st == AMO_OK && i < n; i++)
        if (d->y[i] > 9)
            st = amo_err(AMO_EFORMAT, err, errlen, "%s: label %u at offset %zu is not in 0..9",
                      labels, d->y[i], 8 + i);
    nn_src_close(&si);
    nn_src_close(&sl);
    if (st != AMO_OK) {
        nn_data_free(d);
        return st;
    }
    *d = (NnDataset){ (int)n, 1, (int)di[1], (int)di[2], 10, d->x, d->y };
    return AMO_OK;
}

AmoStatus nn_data_idx(NnDataset *d, const char *images, const char *labels, char *err,
                     size_t errlen)
{
    memset(d, 0, sizeof(*d));
    unsigned char *bi = NULL, *bl = NULL;
    size_t ni = 0, nl = 0;
    AmoStatus st = amo_read_file(images, &bi, &ni, err, errlen);
    if (st == AMO_OK)
        st = amo_read_file(labels, &bl, &nl, err, errlen);
    if (st == AMO_OK)
        st = nn_data_idx_mem(d, images, bi, ni, labels, bl, nl, err, errlen);
    free(bi);
    free(bl);
    return st;
}

/* dir/name.gz if it exists, else dir/name. */
static void pick(char *out, size_t len, const char *dir, const char *name)
{
    struct stat sb;
    snprintf(out, len, "%s/%s.gz", dir, name);
    if (stat(out, &sb) == 0)
        return;
    snprintf(out, len, "%s/%s", dir, name);
}

AmoStatus nn_data_mnist(NnDataset *train, NnDataset *test, const char *dir, char *err,
                       size_t errlen)
{
    char a[4096], b[4096];
    struct stat sb;
    pick(a, sizeof a, dir, "train-images-idx3-ubyte");
    if (stat(a, &sb) != 0)
        return amo_err(AMO_EIO, err, errlen,
                    "no Fashion-MNIST/MNIST in %s (looked for train-images-idx3-ubyte[.gz]): "
                    "install the Debian package dataset-fashion-mnist, or name the directory",
                    dir);
    pick(b, sizeof b, dir, "train-labels-idx1-ubyte");
    AmoStatus st = nn_data_idx(train, a, b, err, errlen);
    if (st != AMO_OK)
        return st;
    pick(a, sizeof a, dir, "t10k-images-idx3-ubyte");
    pick(b, sizeof b, dir, "t10k-labels-idx1-ubyte");
    st = nn_data_idx(test, a, b, err, errlen);
    if (st == AMO_OK && (test->h != train->h || test->w != train->w)) {
        st = amo_err(AMO_EFORMAT, err, errlen,
                  "%s: %d x %d images at offset 8, the training images are %d x %d", a,
                  test->h, test->w, train->h, train->w);
        nn_data_free(test);
    }
    if (st != AMO_OK)
        nn_data_free(train);
    return st;
}

/* ---- CIFAR-10 ---------------------------------------------------------------- */

#define CIFAR_REC 3073

static AmoStatus cifar_size(const char *name, size_t size, char *err, size_t len)
{
    if (size == 0 || size % CIFAR_REC)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: %zu bytes is not a whole number of %d-byte records "
                    "(truncated record at offset %zu)",
                    name, size, CIFAR_REC, size / CIFAR_REC * CIFAR_REC);
    if (size / CIFAR_REC > INT_MAX)
        return amo_err(AMO_EFORMAT, err, len, "%s: %zu records, more than %d", name,
                    size / CIFAR_REC, INT_MAX);
    return AMO_OK;
}

/* The nrec records of buf into x (3072 pixels each) and y. */
static AmoStatus cifar_records(uint8_t *x, uint8_t *y, const char *name, const unsigned char *buf,
                              size_t nrec, char *err, size_t len)
{
    for (size_t r = 0; r < nrec; r++) {
        const unsigned char *rec = buf + r * CIFAR_REC;
        if (rec[0] > 9)
            return amo_err(AMO_EFORMAT, err, len, "%s: label %u at offset %zu is not in 0..9", name,
                        rec[0], r * CIFAR_REC);
        y[r] = rec[0];
        memcpy(x + r * 3072, rec + 1, 3072);
    }
    return AMO_OK;
}

AmoStatus nn_data_cifar_mem(NnDataset *d, const char *name, const void *buf, size_t len,
                           char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    AmoStatus st = cifar_size(name, len, err, errlen);
    if (st != AMO_OK)
        return st;
    const size_t n = len / CIFAR_REC;
    d->x = malloc(n * 3072);
    d->y = malloc(n);
    st = d->x && d->y ? cifar_records(d->x, d->y, name, buf, n, err, errlen)
                      : amo_err(AMO_ENOMEM, err, errlen, "%s: out of memory for %zu images", name, n);
    if (st != AMO_OK) {
        nn_data_free(d);
        return st;
    }
    *d = (NnDataset){ (int)n, 3, 32, 32, 10, d->x, d->y };
    return AMO_OK;
}

static AmoStatus cifar_files(NnDataset *d, const char *dir, const char *const *names, int count,
                            char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    char path[4096];
    size_t total = 0, sizes[8], size;
    /* every size first, for one allocation (amo_read_file checks again) */
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        AmoStatus st = amo_file_size(path, &size, err, errlen);
        if (st != AMO_OK && errno == ENOENT)
            return amo_err(AMO_EIO, err, errlen,
                           "%s: missing (CIFAR-10 binary version: data_batch_1.bin .. "
                           "data_batch_5.bin and test_batch.bin)",
                           path);
        if (st == AMO_OK)
            st = cifar_size(path, size, err, errlen);
        if (st != AMO_OK)
            return st;
        sizes[i] = size / CIFAR_REC;
        total += sizes[i];
    }
    d->x = malloc(total * 3072);
    d->y = malloc(total);
    AmoStatus st = AMO_OK;
    if (!d->x || !d->y)
        st = amo_err(AMO_ENOMEM, err, errlen, "out of memory for %zu CIFAR-10 images", total);
    size_t k = 0;
    for (int i = 0; i < count && st == AMO_OK; k += sizes[i++]) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unsigned char *buf;
        size_t len;
        st = amo_read_file(path, &buf, &len, err, errlen);
        if (st == AMO_OK && len != sizes[i] * CIFAR_REC)
            st = amo_err(AMO_EIO, err, errlen, "%s: %zu bytes, not %zu: changed while read", path,
                      len, sizes[i] * CIFAR_REC);
        if (st == AMO_OK)
            st = cifar_records(d->x + k * 3072, d->y + k, path, buf, sizes[i], err, errlen);
        free(buf);
    }
    if (st != AMO_OK) {
        nn_data_free(d);
        return st;
    }
    *d = (NnDataset){ (int)total, 3, 32, 32, 10, d->x, d->y };
    return AMO_OK;
}

AmoStatus nn_data_cifar10(NnDataset *train, NnDataset *test, const char *dir, char *err,
                         size_t errlen)
{
    static const char *const tr[] = { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                      "data_batch_4.bin", "data_batch_5.bin" };
    static const char *const te[] = { "test_batch.bin" };
    AmoStatus st = cifar_files(train, dir, tr, 5, err, errlen);
    if (st != AMO_OK)
        return st;
    st = cifar_files(test, dir, te, 1, err, errlen);
    if (st != AMO_OK)
        nn_data_free(train);
    return st;
}

/* ---- synthetic ---------------------------------------------------------------- */

AmoStatus nn_data_synthetic(NnDataset *d, int n, int c, int h, int w, int classes, uint64_t seed)
{
    memset(d, 0, sizeof(*d));
    if (n < 1 || c < 1 || h < 1 || w < 1 || classes < 1 || classes > 256)
        return AMO_EINVAL;
    const size_t px = (size_t)c * h * w;
    d->x = malloc((size_t)n * px);
    d->y = malloc((size_t)n);
    if (!d->x || !d->y) {
        nn_data_free(d);
        return AMO_ENOMEM;
    }
    AmoRng r = amo_rng(seed);
    for (int i = 0; i < n; i++) {
        const int y = (int)amo_rng_below(&r, (uint64_t)classes);
        d->y[i] = (uint8_t)y;
        /* class y brightens the rows r with r % classes == y */
        for (size_t j = 0; j < px; j++) {
            const int row = (int)(j / (size_t)w % (size_t)h);
            const int lit = row % classes == y;
            const double v = 64.0 + (lit ? 96.0 : 0.0) + 32.0 * amo_rng_normal(&r);
            d->x[(size_t)i * px + j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    *d = (NnDataset){ n, c, h, w, classes, d->x, d->y };
    return AMO_OK;
}

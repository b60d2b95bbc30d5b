#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "kernels/rng.h"
#include "nn/data.h"

static KnStatus fail(KnStatus st, char *err, size_t len, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return st;
}

void nn_data_free(NnDataset *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof(*d));
}

/* ---- IDX ------------------------------------------------------------------ */

/* Reads exactly n bytes at decompressed offset *off, or says where it ended. */
static KnStatus gz_read(gzFile f, const char *path, void *dst, size_t n, size_t *off, char *err,
                        size_t len)
{
    unsigned char *p = dst;
    size_t done = 0;
    while (done < n) {
        const unsigned chunk = n - done > (1u << 30) ? (1u << 30) : (unsigned)(n - done);
        const int r = gzread(f, p + done, chunk);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            return fail(KN_EFORMAT, err, len, "%s: corrupted compressed data near offset %zu: %s",
                        path, *off + done, msg);
        }
        if (r == 0)
            return fail(KN_EFORMAT, err, len,
                        "%s: truncated at offset %zu (expected %zu more bytes from offset %zu)",
                        path, *off + done, n - done, *off + done);
        done += (size_t)r;
    }
    *off += n;
    return KN_OK;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Opens one IDX file of ndim dimensions and reads its header. */
static KnStatus idx_open(const char *path, int ndim, uint32_t *dims, gzFile *out, size_t *off,
                         char *err, size_t len)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return fail(KN_EIO, err, len, "%s: cannot open: %s", path, strerror(errno));
    unsigned char h[16];
    *off = 0;
    KnStatus st = gz_read(f, path, h, 4, off, err, len);
    if (st == KN_OK && (h[0] || h[1] || h[2] != 0x08 || h[3] != ndim))
        st = fail(KN_EFORMAT, err, len,
                  "%s: bad magic %02x%02x%02x%02x at offset 0 (expected 000008%02x: IDX, "
                  "unsigned bytes, %d dimensions)",
                  path, h[0], h[1], h[2], h[3], ndim, ndim);
    if (st == KN_OK)
        st = gz_read(f, path, h + 4, 4 * (size_t)ndim, off, err, len);
    if (st != KN_OK) {
        gzclose(f);
        return st;
    }
    for (int i = 0; i < ndim; i++)
        dims[i] = be32(h + 4 + 4 * i);
    *out = f;
    return KN_OK;
}

/* After the payload: anything left is an error too (a wrong or concatenated
 * file would otherwise pass), and so is a broken gzip member after it (its
 * error only shows on this read). */
static KnStatus idx_close(gzFile f, const char *path, size_t off, char *err, size_t len)
{
    unsigned char extra;
    const int r = gzread(f, &extra, 1);
    KnStatus st = KN_OK;
    if (r > 0)
        st = fail(KN_EFORMAT, err, len, "%s: unexpected data after the last item at offset %zu",
                  path, off);
    else if (r < 0) {
        int zerr;
        st = fail(KN_EFORMAT, err, len,
                  "%s: corrupted compressed data after the last item at offset %zu: %s", path,
                  off, gzerror(f, &zerr));
    }
    gzclose(f);
    return st;
}

/* Refuses a header that promises more bytes than the file can hold, before
 * they are allocated (a 26-byte file asked for 2^50: tests/fuzz/corpus/idx/
 * crash-huge-header).  Deflate expands at most 1032:1
 * (https://zlib.net/zlib_tech.html), so s bytes hold at most 1032 s, gzip
 * or not. */
static KnStatus idx_fits(const char *path, size_t need, char *err, size_t len)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fail(KN_EIO, err, len, "%s: cannot stat: %s", path, strerror(errno));
    if ((uint64_t)sb.st_size < (need + 1031) / 1032)
        return fail(KN_EFORMAT, err, len,
                    "%s: the dimensions at offset 4 make %zu bytes, more than a %lld-byte "
                    "file can hold (truncated or corrupted)",
                    path, need, (long long)sb.st_size);
    return KN_OK;
}

KnStatus nn_data_idx(NnDataset *d, const char *images, const char *labels, char *err,
                     size_t errlen)
{
    memset(d, 0, sizeof(*d));
    uint32_t di[3] = { 0 }, dl[1] = { 0 };
    gzFile fi = NULL, fl = NULL;
    size_t oi = 0, ol = 0, n = 0, px = 0;
    KnStatus st = idx_open(images, 3, di, &fi, &oi, err, errlen);
    if (st != KN_OK)
        return st;
    st = idx_open(labels, 1, dl, &fl, &ol, err, errlen);
    if (st != KN_OK) {
        gzclose(fi);
        return st;
    }
    if (di[0] != dl[0] || di[0] == 0 || di[0] > (1u << 26) || di[1] == 0 || di[2] == 0 ||
        di[1] > 4096 || di[2] > 4096) {
        st = fail(KN_EFORMAT, err, errlen,
                  "%s (%u x %u x %u at offset 4) and %s (%u labels at offset 4) do not match",
                  images, di[0], di[1], di[2], labels, dl[0]);
        goto out;
    }
    n = di[0];
    px = (size_t)di[1] * di[2];
    st = idx_fits(images, 16 + n * px, err, errlen);
    if (st == KN_OK)
        st = idx_fits(labels, 8 + n, err, errlen);
    if (st != KN_OK)
        goto out;
    d->x = malloc(n * px);
    d->y = malloc(n);
    if (!d->x || !d->y) {
        st = fail(KN_ENOMEM, err, errlen, "%s: out of memory for %zu images", images, n);
        goto out;
    }
    st = gz_read(fi, images, d->x, n * px, &oi, err, errlen);
    if (st == KN_OK)
        st = gz_read(fl, labels, d->y, n, &ol, err, errlen);
    if (st == KN_OK)
        for (size_t i = 0; i < n; i++)
            if (d->y[i] > 9) {
                st = fail(KN_EFORMAT, err, errlen, "%s: label %u at offset %zu is not in 0..9",
                          labels, d->y[i], 8 + i);
                break;
            }
out:;
    const KnStatus s1 = idx_close(fi, images, oi, st == KN_OK ? err : NULL, errlen);
    const KnStatus s2 = idx_close(fl, labels, ol, st == KN_OK && s1 == KN_OK ? err : NULL, errlen);
    if (st == KN_OK)
        st = s1 != KN_OK ? s1 : s2;
    if (st != KN_OK) {
        nn_data_free(d);
        return st;
    }
    d->n = (int)n;
    d->c = 1;
    d->h = (int)di[1];
    d->w = (int)di[2];
    d->classes = 10;
    return KN_OK;
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

KnStatus nn_data_mnist(NnDataset *train, NnDataset *test, const char *dir, char *err,
                       size_t errlen)
{
    char a[4096], b[4096];
    struct stat sb;
    pick(a, sizeof a, dir, "train-images-idx3-ubyte");
    if (stat(a, &sb) != 0)
        return fail(KN_EIO, err, errlen,
                    "no Fashion-MNIST/MNIST in %s (looked for train-images-idx3-ubyte[.gz]): "
                    "install the Debian package dataset-fashion-mnist, or name the directory",
                    dir);
    pick(b, sizeof b, dir, "train-labels-idx1-ubyte");
    KnStatus st = nn_data_idx(train, a, b, err, errlen);
    if (st != KN_OK)
        return st;
    pick(a, sizeof a, dir, "t10k-images-idx3-ubyte");
    pick(b, sizeof b, dir, "t10k-labels-idx1-ubyte");
    st = nn_data_idx(test, a, b, err, errlen);
    if (st == KN_OK && (test->h != train->h || test->w != train->w)) {
        st = fail(KN_EFORMAT, err, errlen,
                  "%s: %d x %d images at offset 8, the training images are %d x %d", a,
                  test->h, test->w, train->h, train->w);
        nn_data_free(test);
    }
    if (st != KN_OK)
        nn_data_free(train);
    return st;
}

/* ---- CIFAR-10 ---------------------------------------------------------------- */

#define CIFAR_REC 3073

static KnStatus cifar_files(NnDataset *d, const char *dir, const char *const *names, int count,
                            char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    char path[4096];
    size_t total = 0, sizes[8];
    struct stat sb;
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &sb) != 0)
            return fail(KN_EIO, err, errlen,
                        "%s: missing (CIFAR-10 binary version: data_batch_1.bin .. "
                        "data_batch_5.bin and test_batch.bin)",
                        path);
        if (sb.st_size == 0 || sb.st_size % CIFAR_REC)
            return fail(KN_EFORMAT, err, errlen,
                        "%s: %lld bytes is not a whole number of %d-byte records "
                        "(truncated record at offset %lld)",
                        path, (long long)sb.st_size, CIFAR_REC,
                        (long long)(sb.st_size / CIFAR_REC * CIFAR_REC));
        sizes[i] = (size_t)sb.st_size / CIFAR_REC;
        total += sizes[i];
    }
    d->x = malloc(total * 3072);
    d->y = malloc(total);
    unsigned char *rec = malloc(CIFAR_REC);
    KnStatus st = KN_OK;
    if (!d->x || !d->y || !rec)
        st = fail(KN_ENOMEM, err, errlen, "out of memory for %zu CIFAR-10 images", total);
    size_t k = 0;
    for (int i = 0; i < count && st == KN_OK; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            st = fail(KN_EIO, err, errlen, "%s: cannot open: %s", path, strerror(errno));
            break;
        }
        for (size_t r = 0; r < sizes[i] && st == KN_OK; r++, k++) {
            if (fread(rec, 1, CIFAR_REC, f) != CIFAR_REC)
                st = fail(KN_EFORMAT, err, errlen, "%s: truncated at offset %zu", path,
                          r * CIFAR_REC);
            else if (rec[0] > 9)
                st = fail(KN_EFORMAT, err, errlen, "%s: label %u at offset %zu is not in 0..9",
                          path, rec[0], r * CIFAR_REC);
            else {
                d->y[k] = rec[0];
                memcpy(d->x + k * 3072, rec + 1, 3072);
            }
        }
        fclose(f);
    }
    free(rec);
    if (st != KN_OK) {
        nn_data_free(d);
        return st;
    }
    *d = (NnDataset){ (int)total, 3, 32, 32, 10, d->x, d->y };
    return KN_OK;
}

KnStatus nn_data_cifar10(NnDataset *train, NnDataset *test, const char *dir, char *err,
                         size_t errlen)
{
    static const char *const tr[] = { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                      "data_batch_4.bin", "data_batch_5.bin" };
    static const char *const te[] = { "test_batch.bin" };
    KnStatus st = cifar_files(train, dir, tr, 5, err, errlen);
    if (st != KN_OK)
        return st;
    st = cifar_files(test, dir, te, 1, err, errlen);
    if (st != KN_OK)
        nn_data_free(train);
    return st;
}

/* ---- synthetic ---------------------------------------------------------------- */

KnStatus nn_data_synthetic(NnDataset *d, int n, int c, int h, int w, int classes, uint64_t seed)
{
    memset(d, 0, sizeof(*d));
    if (n < 1 || c < 1 || h < 1 || w < 1 || classes < 1 || classes > 256)
        return KN_EINVAL;
    const size_t px = (size_t)c * h * w;
    d->x = malloc((size_t)n * px);
    d->y = malloc((size_t)n);
    if (!d->x || !d->y) {
        nn_data_free(d);
        return KN_ENOMEM;
    }
    KnRng r = kn_rng(seed);
    for (int i = 0; i < n; i++) {
        const int y = (int)kn_rng_below(&r, (uint64_t)classes);
        d->y[i] = (uint8_t)y;
        /* class y brightens the rows r with r % classes == y */
        for (size_t j = 0; j < px; j++) {
            const int row = (int)(j / (size_t)w % (size_t)h);
            const int lit = row % classes == y;
            const double v = 64.0 + (lit ? 96.0 : 0.0) + 32.0 * kn_rng_normal(&r);
            d->x[(size_t)i * px + j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    *d = (NnDataset){ n, c, h, w, classes, d->x, d->y };
    return KN_OK;
}

/* ---- split and statistics --------------------------------------------------------- */

void nn_split_free(NnSplit *s)
{
    if (!s)
        return;
    free(s->train);
    free(s->val);
    memset(s, 0, sizeof(*s));
}

static int cmp_int(const void *a, const void *b)
{
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void shuffle(int *a, int n, KnRng *r)
{
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)kn_rng_below(r, (uint64_t)i + 1);
        const int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

KnStatus nn_data_split(const NnDataset *d, int nval, uint64_t seed, NnSplit *s, char *err,
                       size_t errlen)
{
    memset(s, 0, sizeof(*s));
    if (nval < 0 || nval >= d->n)
        return fail(KN_EINVAL, err, errlen, "validation size %d: must be in [0, %d)", nval, d->n);
    int *perm = malloc((size_t)d->n * sizeof(int));
    int *count = calloc((size_t)d->classes, sizeof(int));
    s->val = malloc((size_t)(nval ? nval : 1) * sizeof(int));
    s->train = malloc((size_t)d->n * sizeof(int));
    if (!perm || !count || !s->val || !s->train) {
        free(perm);
        free(count);
        nn_split_free(s);
        return fail(KN_ENOMEM, err, errlen, "out of memory for the split");
    }
    for (int i = 0; i < d->n; i++)
        perm[i] = i;
    KnRng r = kn_rng(seed);
    shuffle(perm, d->n, &r);
    /* quota per class: nval / classes, the remainder to the first classes */
    for (int i = 0; i < d->n; i++) {
        const int y = d->y[perm[i]];
        const int quota = nval / d->classes + (y < nval % d->classes);
        if (count[y] < quota && s->nval < nval) {
            count[y]++;
            s->val[s->nval++] = perm[i];
        } else {
            s->train[s->ntrain++] = perm[i];
        }
    }
    free(perm);
    free(count);
    qsort(s->val, (size_t)s->nval, sizeof(int), cmp_int);
    qsort(s->train, (size_t)s->ntrain, sizeof(int), cmp_int);
    if (s->nval != nval) {
        const int got = s->nval;
        nn_split_free(s);
        return fail(KN_EINVAL, err, errlen,
                    "validation size %d: the classes are too small for a stratified split "
                    "(got %d)", nval, got);
    }
    return KN_OK;
}

void nn_data_stats(const NnDataset *d, const int *idx, int n, float *mean, float *std)
{
    const size_t hw = (size_t)d->h * d->w;
    for (int c = 0; c < d->c; c++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < n; i++) {
            const uint8_t *p = d->x + ((size_t)idx[i] * d->c + c) * hw;
            uint64_t a = 0, a2 = 0;
            for (size_t j = 0; j < hw; j++) {
                a += p[j];
                a2 += (uint64_t)p[j] * p[j];
            }
            s += (double)a;
            s2 += (double)a2;
        }
        const double cnt = (double)n * hw, m = s / cnt;
        const double var = s2 / cnt - m * m;
        mean[c] = (float)(m / 255.0);
        std[c] = (float)(sqrt(var > 0 ? var : 0) / 255.0);
        if (std[c] <= 0.0f)
            std[c] = 1.0f;
    }
}

/* ---- batches ---------------------------------------------------------------- */

KnStatus nn_batcher_init(NnBatcher *b, const NnDataset *d, const int *idx, int n, int batch,
                         uint64_t seed, const float *mean, const float *std)
{
    memset(b, 0, sizeof(*b));
    if (!d || !idx || n < 1 || batch < 1 || d->c > 4)
        return KN_EINVAL;
    *b = (NnBatcher){ .d = d, .idx = idx, .n = n, .batch = batch, .shuffle = 1, .drop_last = 1,
                      .seed = seed };
    for (int c = 0; c < d->c; c++) {
        b->mean[c] = mean ? mean[c] : 0.0f;
        b->std[c] = std ? std[c] : 1.0f;
    }
    b->order = malloc((size_t)n * sizeof(int));
    if (!b->order)
        return KN_ENOMEM;
    nn_batcher_seek(b, 0, 0);
    return KN_OK;
}

void nn_batcher_free(NnBatcher *b)
{
    if (b)
        free(b->order);
}

void nn_batcher_seek(NnBatcher *b, uint64_t epoch, int pos)
{
    b->epoch = epoch;
    b->pos = pos;
    for (int i = 0; i < b->n; i++)
        b->order[i] = b->idx[i];
    if (b->shuffle) {
        KnRng r = kn_rng(kn_mix64(b->seed) ^ kn_mix64(epoch + 1));
        shuffle(b->order, b->n, &r);
    }
}

int nn_batcher_steps(const NnBatcher *b)
{
    return b->drop_last ? b->n / b->batch : (b->n + b->batch - 1) / b->batch;
}

int nn_batcher_next(NnBatcher *b, float *x, int *y)
{
    const NnDataset *d = b->d;
    const int left = b->n - b->pos;
    if (left <= 0 || (b->drop_last && left < b->batch)) {
        nn_batcher_seek(b, b->epoch + 1, 0);
        return 0;
    }
    const int cnt = left < b->batch ? left : b->batch;
    const int C = d->c, H = d->h, W = d->w;
    const size_t img = (size_t)C * H * W;
    memset(x, 0, (size_t)b->batch * img * sizeof(float));
    for (int i = 0; i < b->batch; i++)
        y[i] = -1;
    for (int i = 0; i < cnt; i++) {
        const int e = b->order[b->pos + i];
        y[i] = d->y[e];
        int dy = 0, dx = 0, flip = 0;
        if (b->pad > 0 || b->flip) {
            /* per position, from (seed, epoch, position): resumable */
            const uint64_t u = kn_rng_at(kn_mix64(b->seed ^ 0x5bd1e995u) ^ b->epoch,
                                         (uint64_t)(b->pos + i));
            if (b->pad > 0) {
                dy = (int)(u % (uint64_t)(2 * b->pad + 1)) - b->pad;
                dx = (int)((u >> 16) % (uint64_t)(2 * b->pad + 1)) - b->pad;
            }
            flip = b->flip && ((u >> 32) & 1);
        }
        const uint8_t *src = d->x + (size_t)e * img;
        float *dst = x + (size_t)i * img;
        for (int c = 0; c < C; c++) {
            const float m = b->mean[c], is = 1.0f / b->std[c];
            for (int r = 0; r < H; r++)
                for (int q = 0; q < W; q++) {
                    const int sr = r + dy, sq = (flip ? W - 1 - q : q) + dx;
                    /* zero padding is zero before normalisation */
                    const float v = sr >= 0 && sr < H && sq >= 0 && sq < W
                                        ? src[((size_t)c * H + sr) * W + sq] / 255.0f
                                        : 0.0f;
                    dst[((size_t)c * H + r) * W + q] = (v - m) * is;
                }
        }
    }
    b->pos += cnt;
    return cnt;
}

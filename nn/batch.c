/* The validation split, per-channel statistics and the batcher
 * (nn/data.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/rng.h"
#include "nn/batch_impl.h"
#include "nn/data.h"

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

static void shuffle(int *a, int n, AmoRng *r)
{
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)amo_rng_below(r, (uint64_t)i + 1);
        const int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

AmoStatus nn_data_split(const NnDataset *d, int nval, uint64_t seed, NnSplit *s, char *err,
                       size_t errlen)
{
    memset(s, 0, sizeof(*s));
    if (nval < 0 || nval >= d->n)
        return amo_err(AMO_EINVAL, err, errlen, "validation size %d: must be in [0, %d)", nval, d->n);
    int *perm = malloc((size_t)d->n * sizeof(int));
    int *count = calloc((size_t)d->classes, sizeof(int));
    s->val = malloc((size_t)(nval ? nval : 1) * sizeof(int));
    s->train = malloc((size_t)d->n * sizeof(int));
    if (!perm || !count || !s->val || !s->train) {
        free(perm);
        free(count);
        nn_split_free(s);
        return amo_err(AMO_ENOMEM, err, errlen, "out of memory for the split");
    }
    for (int i = 0; i < d->n; i++)
        perm[i] = i;
    AmoRng r = amo_rng(seed);
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
        return amo_err(AMO_EINVAL, err, errlen,
                    "validation size %d: the classes are too small for a stratified split "
                    "(got %d)", nval, got);
    }
    return AMO_OK;
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

AmoStatus nn_batcher_init(NnBatcher *b, const NnDataset *d, const int *idx, int n, int batch,
                         uint64_t seed, const float *mean, const float *std)
{
    memset(b, 0, sizeof(*b));
    if (!d || !idx || n < 1 || batch < 1 || d->c > 4)
        return AMO_EINVAL;
    *b = (NnBatcher){ .d = d, .idx = idx, .n = n, .batch = batch, .shuffle = 1, .drop_last = 1,
                      .seed = seed };
    for (int c = 0; c < d->c; c++) {
        b->mean[c] = mean ? mean[c] : 0.0f;
        b->std[c] = std ? std[c] : 1.0f;
    }
    b->order = malloc((size_t)n * sizeof(int));
    if (!b->order)
        return AMO_ENOMEM;
    nn_batcher_seek(b, 0, 0);
    return AMO_OK;
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
    nn_epoch_order(b->order, b->idx, b->n, b->seed, epoch, b->shuffle);
}

void nn_epoch_order(int *order, const int *idx, int n, uint64_t seed, uint64_t epoch,
                    int shuffled)
{
    memcpy(order, idx, (size_t)n * sizeof(int));
    if (shuffled) {
        AmoRng r = amo_rng(amo_mix64(seed) ^ amo_mix64(epoch + 1));
        shuffle(order, n, &r);
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
            const uint64_t u = amo_rng_at(amo_mix64(b->seed ^ 0x5bd1e995u) ^ b->epoch,
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

/* The decoding pool (nn/loader.h).  One mutex guards the queue: a ring of
 * `depth` batch slots filled in stream order.  Workers claim images one at
 * a time from the oldest unfinished batch (so a batch is ready as soon as
 * possible) and open the next batch when a slot is free; the caller takes
 * the oldest batch when it is whole.  Decoding runs outside the lock, into
 * the image's own place in its slot. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "nn/batch_impl.h"
#include "nn/loader.h"

typedef struct Slot {
    float *x;                /* (batch, 3, size, size)                     */
    int *y, *img;            /* (batch) labels, image indices             */
    uint64_t epoch;
    int pos, cnt;            /* where the batch starts, its examples       */
    int claimed, end, left;  /* next image to hand out, the part's end,    */
                             /* images not yet done                        */
    AmoStatus st;            /* the first failure among its images         */
    char err[1024];
} Slot;

typedef struct Worker { NnLoader *l; NnImageCtx *ctx; pthread_t th; int started; } Worker;

struct NnLoader {
    NnLoaderConfig c;
    int *idx, *order;        /* (n) the images; the order of order_epoch    */
    uint64_t order_epoch;
    size_t img;              /* floats per image                           */
    uint64_t epoch;          /* the caller's position, as NnBatcher's      */
    int pos;
    NnImageCtx *ctx;         /* threads == 0                               */
    /* the pool */
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    Worker *w;
    Slot *slots;
    uint64_t issued, consumed; /* batches opened and taken, since the seek */
    uint64_t cur_epoch;      /* where the next batch to open starts        */
    int cur_pos, stopped;    /* stopped: an evaluation pass is all opened,  */
                             /* the next opens when the caller reaches it  */
    int busy, stop;
    uint64_t gen;            /* seeks so far: a decode from before is dropped */
};

/* The part of a batch of cnt examples to decode: [*lo, *hi). */
static void part_of(const NnLoader *l, int cnt, int *lo, int *hi)
{
    *lo = l->c.part_lo < cnt ? l->c.part_lo : cnt;
    *hi = l->c.part_hi < cnt ? l->c.part_hi : cnt;
}

static int epoch_end(const NnLoader *l, int pos)
{
    return pos >= l->c.n || (l->c.drop_last && l->c.n - pos < l->c.batch);
}

/* The epoch's order (nn_epoch_order), kept for the epoch being read. */
static const int *order_of(NnLoader *l, uint64_t epoch)
{
    if (l->order_epoch == epoch)
        return l->order;
    nn_epoch_order(l->order, l->idx, l->c.n, l->c.seed, epoch, l->c.shuffle);
    l->order_epoch = epoch;
    return l->order;
}

static AmoStatus load_one(NnLoader *l, NnImageCtx *ctx, uint64_t epoch, int image, float *dst,
                          char *err, size_t errlen)
{
    const uint64_t key = nn_image_key(l->c.seed, epoch, (uint64_t)image);
    return nn_image_load(ctx, l->c.f->paths[image], &l->c.tf, key, dst, NULL, err, errlen);
}

/* ---- the pool -------------------------------------------------------------------- */

/* Opens the next batch of the stream in a free slot (under the lock);
 * 0 when there is none to open. */
static int open_batch(NnLoader *l)
{
    if (l->stopped || l->issued - l->consumed >= (uint64_t)l->c.depth)
        return 0;
    if (epoch_end(l, l->cur_pos)) {
        if (!l->c.shuffle) { /* one evaluation pass: the next starts at a seek */
            l->stopped = 1;
            return 0;
        }
        l->cur_epoch++;
        l->cur_pos = 0;
    }
    Slot *s = &l->slots[l->issued % (uint64_t)l->c.depth];
    const int *order = order_of(l, l->cur_epoch);
    const int left = l->c.n - l->cur_pos;
    s->epoch = l->cur_epoch;
    s->pos = l->cur_pos;
    s->cnt = left < l->c.batch ? left : l->c.batch;
    part_of(l, s->cnt, &s->claimed, &s->end);
    s->left = s->end - s->claimed;
    s->st = AMO_OK;
    s->err[0] = '\0';
    for (int i = 0; i < s->cnt; i++) {
        s->img[i] = order[l->cur_pos + i];
        s->y[i] = l->c.f->y[s->img[i]];
    }
    l->cur_pos += s->cnt;
    l->issued++;
    if (!s->left) /* nothing of it is this part's: done as opened */
        pthread_cond_broadcast(&l->done);
    return 1;
}

/* The oldest opened batch with an image not yet handed out. */
static Slot *claimable(NnLoader *l)
{
    for (uint64_t b = l->consumed; b < l->issued; b++) {
        Slot *s = &l->slots[b % (uint64_t)l->c.depth];
        if (s->claimed < s->end)
            return s;
    }
    return NULL;
}

static void *worker(void *arg)
{
    Worker *w = arg;
    NnLoader *l = w->l;
    char err[1024];
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        Slot *s = claimable(l);
        if (!s && open_batch(l))
            continue;
        if (!s) {
            pthread_cond_wait(&l->work, &l->mu);
            continue;
        }
        const int i = s->claimed++;
        const uint64_t gen = l->gen, epoch = s->epoch;
        const int image = s->img[i];
        float *dst = s->x + (size_t)i * l->img;
        l->busy++;
        pthread_mutex_unlock(&l->mu);
        const AmoStatus st = load_one(l, w->ctx, epoch, image, dst, err, sizeof err);
        pthread_mutex_lock(&l->mu);
        l->busy--;
        if (gen == l->gen) {
            if (st != AMO_OK && s->st == AMO_OK) {
                s->st = st;
                snprintf(s->err, sizeof s->err, "%s", err);
            }
            if (--s->left == 0)
                pthread_cond_broadcast(&l->done);
        }
        if (l->busy == 0)
            pthread_cond_broadcast(&l->done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- the caller's side ---------------------------------------------------------- */

void nn_loader_destroy(NnLoader *l)
{
    if (!l)
        return;
    if (l->w) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->c.threads; i++) {
            if (l->w[i].started)
                pthread_join(l->w[i].th, NULL);
            nn_image_ctx_destroy(l->w[i].ctx);
        }
        free(l->w);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->work);
        pthread_cond_destroy(&l->done);
    }
    for (int i = 0; l->slots && i < l->c.depth; i++) {
        free(l->slots[i].x);
        free(l->slots[i].y);
        free(l->slots[i].img);
    }
    free(l->slots);
    nn_image_ctx_destroy(l->ctx);
    free(l->idx);
    free(l->order);
    free(l);
}

static AmoStatus start_pool(NnLoader *l, char *err, size_t errlen)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->done, NULL);
    l->slots = calloc((size_t)l->c.depth, sizeof(Slot));
    l->w = calloc((size_t)l->c.threads, sizeof(Worker));
    if (!l->slots || !l->w)
        return amo_err(AMO_ENOMEM, err, errlen, "out of memory for the loader");
    for (int i = 0; i < l->c.depth; i++) {
        Slot *s = &l->slots[i];
        s->x = malloc((size_t)l->c.batch * l->img * sizeof(float));
        s->y = malloc((size_t)l->c.batch * sizeof(int));
        s->img = malloc((size_t)l->c.batch * sizeof(int));
        if (!s->x || !s->y || !s->img)
            return amo_err(AMO_ENOMEM, err, errlen,
                           "out of memory for %d batches of %d images ahead", l->c.depth,
                           l->c.batch);
    }
    for (int i = 0; i < l->c.threads; i++) {
        l->w[i].l = l;
        AmoStatus st = nn_image_ctx_create(&l->w[i].ctx, err, errlen);
        if (st != AMO_OK)
            return st;
    }
    nn_loader_seek(l, 0, 0);
    for (int i = 0; i < l->c.threads; i++) {
        if (pthread_create(&l->w[i].th, NULL, worker, &l->w[i]))
            return amo_err(AMO_ENOMEM, err, errlen, "cannot start loader thread %d of %d", i + 1,
                           l->c.threads);
        l->w[i].started = 1;
    }
    return AMO_OK;
}

AmoStatus nn_loader_create(NnLoader **out, const NnLoaderConfig *c, char *err, size_t errlen)
{
    *out = NULL;
    if (!c->f || !c->idx || c->n < 1 || c->batch < 1 || c->threads < 0 || c->threads > 1024 ||
        c->depth < 0 || c->tf.size < 1)
        return amo_err(AMO_EINVAL, err, errlen,
                       "loader: %d images, batch %d, %d threads, depth %d, size %d", c->n,
                       c->batch, c->threads, c->depth, c->tf.size);
    for (int i = 0; i < c->n; i++)
        if (c->idx[i] < 0 || c->idx[i] >= c->f->n)
            return amo_err(AMO_EINVAL, err, errlen, "loader: image %d of the list is %d, not in "
                           "[0, %d)", i, c->idx[i], c->f->n);
    if (c->part_lo < 0 || c->part_hi < c->part_lo || c->part_hi > c->batch)
        return amo_err(AMO_EINVAL, err, errlen, "loader: part [%d, %d) of a batch of %d",
                       c->part_lo, c->part_hi, c->batch);
    NnLoader *l = calloc(1, sizeof(*l));
    if (!l)
        return amo_err(AMO_ENOMEM, err, errlen, "out of memory for the loader");
    l->c = *c;
    if (!c->part_hi) /* 0, 0: the whole batch */
        l->c.part_hi = c->batch;
    l->c.depth = c->depth ? c->depth : 2;
    l->img = (size_t)3 * c->tf.size * c->tf.size;
    l->order_epoch = UINT64_MAX;
    l->idx = malloc((size_t)c->n * sizeof(int));
    l->order = malloc((size_t)c->n * sizeof(int));
    AmoStatus st = AMO_OK;
    if (!l->idx || !l->order)
        st = amo_err(AMO_ENOMEM, err, errlen, "out of memory for the loader");
    if (st == AMO_OK) {
        memcpy(l->idx, c->idx, (size_t)c->n * sizeof(int));
        l->c.idx = l->idx;
        st = c->threads ? start_pool(l, err, errlen) : nn_image_ctx_create(&l->ctx, err, errlen);
    }
    if (st != AMO_OK) {
        nn_loader_destroy(l);
        return st;
    }
    *out = l;
    return AMO_OK;
}

int nn_loader_steps(const NnLoader *l)
{
    return l->c.drop_last ? l->c.n / l->c.batch : (l->c.n + l->c.batch - 1) / l->c.batch;
}

void nn_loader_position(const NnLoader *l, uint64_t *epoch, int *pos)
{
    *epoch = l->epoch;
    *pos = l->pos;
}

/* Under the lock (or with no pool): the stream restarts at (epoch, pos). */
static void restart(NnLoader *l, uint64_t epoch, int pos)
{
    l->issued = l->consumed = 0;
    l->cur_epoch = epoch;
    l->cur_pos = pos;
    l->stopped = 0;
}

AmoStatus nn_loader_seek(NnLoader *l, uint64_t epoch, int pos)
{
    if (pos < 0 || pos > l->c.n) /* it indexes the epoch's order */
        return AMO_EINVAL;
    if (!l->w) {
        l->epoch = epoch;
        l->pos = pos;
        return AMO_OK;
    }
    pthread_mutex_lock(&l->mu);
    l->gen++;
    while (l->busy) /* no decode may write into a slot once it is reused */
        pthread_cond_wait(&l->done, &l->mu);
    l->epoch = epoch;
    l->pos = pos;
    restart(l, epoch, pos);
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return AMO_OK;
}

/* threads == 0: the batch at (epoch, pos), decoded here. */
static AmoStatus next_here(NnLoader *l, float *x, int *y, int cnt, char *err, size_t errlen)
{
    const int *order = order_of(l, l->epoch);
    int lo, hi;
    part_of(l, cnt, &lo, &hi);
    for (int i = 0; i < cnt; i++) {
        const int image = order[l->pos + i];
        y[i] = l->c.f->y[image];
        float *dst = x + (size_t)i * l->img;
        if (i < lo || i >= hi) {
            memset(dst, 0, l->img * sizeof(float));
            continue;
        }
        AmoStatus st = load_one(l, l->ctx, l->epoch, image, dst, err, errlen);
        if (st != AMO_OK)
            return st;
    }
    return AMO_OK;
}

/* With the pool: waits for the oldest batch, copies it out, frees its slot. */
static AmoStatus next_pool(NnLoader *l, float *x, int *y, int cnt, char *err, size_t errlen)
{
    pthread_mutex_lock(&l->mu);
    Slot *s = &l->slots[l->consumed % (uint64_t)l->c.depth];
    while (l->consumed == l->issued || s->left > 0)
        pthread_cond_wait(&l->done, &l->mu);
    pthread_mutex_unlock(&l->mu);
    AmoStatus st = s->st;
    if (st != AMO_OK)
        amo_err(st, err, errlen, "%s", s->err);
    else if (s->epoch != l->epoch || s->pos != l->pos || s->cnt != cnt)
        st = amo_err(AMO_EINVAL, err, errlen, "loader: batch at epoch %llu position %d, "
                     "expected %llu, %d", (unsigned long long)s->epoch, s->pos,
                     (unsigned long long)l->epoch, l->pos); /* a bug, not an input */
    if (st == AMO_OK) {
        int lo, hi;
        part_of(l, cnt, &lo, &hi);
        memset(x, 0, (size_t)lo * l->img * sizeof(float));
        memcpy(x + (size_t)lo * l->img, s->x + (size_t)lo * l->img,
               (size_t)(hi - lo) * l->img * sizeof(float));
        memset(x + (size_t)hi * l->img, 0, (size_t)(cnt - hi) * l->img * sizeof(float));
        memcpy(y, s->y, (size_t)cnt * sizeof(int));
    }
    pthread_mutex_lock(&l->mu);
    l->consumed++;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return st;
}

AmoStatus nn_loader_next(NnLoader *l, float *x, int *y, int *cnt, char *err, size_t errlen)
{
    *cnt = 0;
    if (epoch_end(l, l->pos)) {
        l->epoch++;
        l->pos = 0;
        if (l->w) {
            pthread_mutex_lock(&l->mu);
            /* An evaluation pass is all taken and nothing beyond it was
             * opened (the cursor stops there, or is about to): the next. */
            if (!l->c.shuffle)
                restart(l, l->epoch, 0);
            pthread_cond_broadcast(&l->work);
            pthread_mutex_unlock(&l->mu);
        }
        return AMO_OK;
    }
    const int left = l->c.n - l->pos, n = left < l->c.batch ? left : l->c.batch;
    memset(x + (size_t)n * l->img, 0, (size_t)(l->c.batch - n) * l->img * sizeof(float));
    for (int i = n; i < l->c.batch; i++)
        y[i] = -1;
    const AmoStatus st = l->w ? next_pool(l, x, y, n, err, errlen)
                              : next_here(l, x, y, n, err, errlen);
    if (st != AMO_OK)
        return st;
    l->pos += n;
    *cnt = n;
    return AMO_OK;
}

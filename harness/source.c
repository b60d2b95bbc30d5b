/* Batches from memory or from a folder (harness/source.h). */
#include "harness/error.h"
#include "harness/source.h"

int hx_source_next(HxSource *s, float *x, int *y)
{
    if (s->b)
        return nn_batcher_next(s->b, x, y);
    char err[1200] = "";
    int cnt;
    const AmoStatus st = nn_loader_next(s->l, x, y, &cnt, err, sizeof err);
    if (st != AMO_OK) /* a file in this rank's share of the batch */
        hx_fail_local(HX_EXIT_FAIL, "%s", err);
    return cnt;
}

void hx_source_seek(HxSource *s, uint64_t epoch, int pos)
{
    if (s->b)
        nn_batcher_seek(s->b, epoch, pos);
    else if (nn_loader_seek(s->l, epoch, pos) != AMO_OK) /* checked by the checkpoint first */
        hx_fail(HX_EXIT_FAIL, "internal: loader position %d outside its images", pos);
}

void hx_source_position(const HxSource *s, uint64_t *epoch, int *pos)
{
    if (s->b) {
        *epoch = s->b->epoch;
        *pos = s->b->pos;
    } else {
        nn_loader_position(s->l, epoch, pos);
    }
}

int hx_source_steps(const HxSource *s)
{
    return s->b ? nn_batcher_steps(s->b) : nn_loader_steps(s->l);
}

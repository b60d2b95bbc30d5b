/* What optim.c (the step) and state.c (the state file) share: the
 * optimizer's insides.  Not installed. */
#ifndef AMO_OPTIM_OPT_IMPL_H
#define AMO_OPTIM_OPT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "optim/optim.h"

/* A piece is one contiguous run of one tensor, at most one sum-of-squares
 * chunk long and starting on a chunk boundary of its tensor, so that the
 * chunk sums can be computed in any order and added in a fixed one. */
typedef struct Piece {
    int tensor;
    size_t off;          /* element offset inside the tensor        */
    size_t n;
    size_t state_off;    /* element offset inside the moment buffers */
} Piece;

struct Opt {
    OptConfig cfg;
    OptTensor *t;
    int count;
    size_t total;        /* elements over all tensors */
    Piece *pieces;
    size_t npieces;
    double *partial;     /* one sum of squares per piece */
    void *s0, *s1;       /* moment buffers (layout: see state_buffers()) */
    uint64_t steps, skipped, clipped;
    int threads;
    float *lr_scale, *wd_scale; /* per tensor (opt_set_tensor_scales); NULL: all 1 */
    struct StepArgs *targs;     /* per tensor, this step's, when the scales are set */
};

/* Moment buffers per algorithm (s0, s1 or none), and bytes per element. */
int opt_state_buffers(const OptConfig *c);
size_t opt_state_elem_size(const OptConfig *c);

#endif

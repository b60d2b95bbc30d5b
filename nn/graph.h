/* The execution context every layer of nn/ is built on.
 *
 * A graph owns one oneDNN engine and stream, the lists of primitives that
 * each pass runs, every memory object, and the three flat fp32 buffers the
 * optimizer sees: params, grads, and the batch-norm running statistics.
 *
 * Building is two-phase, like llm.c's "allocate once, then step": layer
 * builders (nn/layers.h) create primitive descriptors, choose layouts
 * (dnnl_format_tag_any: the primitive picks) and append primitives to the
 * pass lists; memory objects get no storage until nn_graph_finalize, which
 * allocates the flat buffers, the activation buffers (one per alias group),
 * and a single scratchpad shared by every primitive (user scratchpad mode:
 * the passes run one primitive at a time on one stream, so one buffer of the
 * largest size serves them all).
 *
 * Passes:
 *   NN_PASS_SYNC       reorders the plain fp32 master weights into the
 *                      working copies the primitives want (blocked layout,
 *                      and bf16 in mixed precision); run before a forward.
 *   NN_PASS_TRAIN      forward with batch statistics (BN) and workspaces.
 *   NN_PASS_INFER      forward with running statistics.
 *   NN_PASS_BWD        backward; built in forward order as one group per
 *                      layer, executed group by group in reverse.
 *   NN_PASS_GRADS      reorders blocked weight gradients into the flat grads
 *                      buffer (plain layout); run after NN_PASS_BWD.
 */
#ifndef AMO_NN_GRAPH_H
#define AMO_NN_GRAPH_H

#include <stddef.h>

#include <oneapi/dnnl/dnnl.h>

#include "common/status.h"
#include "nn/types.h"

enum { NN_PASS_SYNC, NN_PASS_TRAIN, NN_PASS_INFER, NN_PASS_BWD, NN_PASS_GRADS, NN_PASS_COUNT };
#define NN_IN(p) (1u << (p))
#define NN_FWD (NN_IN(NN_PASS_TRAIN) | NN_IN(NN_PASS_INFER))

/* An activation tensor and its gradient.  md is the layout the producing
 * primitive chose; diff always has the same md.  The memory objects are
 * owned by the graph. */
typedef struct NnAct {
    dnnl_memory_desc_t md;
    dnnl_memory_t mem;  /* (N, C, H, W) */
    dnnl_memory_t diff; /* (N, C, H, W) */
} NnAct;

typedef struct NnOp {
    dnnl_primitive_t prim;   /* NULL: a C step, fn(arg)                  */
    void (*fn)(void *arg);
    void *arg;
    const char *layer;       /* for error messages                       */
    int group;               /* the backward group open when appended    */
    int nargs;
    dnnl_exec_arg_t args[12];
} NnOp;

typedef struct NnOpList {
    NnOp *v;
    int n, cap;
    int *group;              /* NN_PASS_BWD: start of each layer's ops   */
    size_t *gparam;          /* ... and the flat offset of its parameters */
    int ngroup, gcap, gpcap;
} NnOpList;

typedef struct NnBuf NnBuf;  /* graph.c: a memory object waiting for storage */

typedef struct NnGraph {
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    dnnl_data_type_t dt;        /* activations and conv/FC working weights  */
    int conv_gemm;              /* NN_CONV_GEMM_*; set before the builders  */
    int gemm_convs;             /* convolutions that took im2col + matmul   */
    int conv_algo;              /* NN_CONV_ALGO_*; set before the builders  */
    NnReduceFn bn_reduce;       /* sync-BN (nn_bn); set before the builders */
    void *bn_ctx;
    int wino_convs;             /* convolutions with a pass by Winograd     */
    int wino_passes;            /* their passes by Winograd (fwd, bwd d, w) */
    dnnl_primitive_attr_t attr; /* user scratchpad                          */
    NnOpList pass[NN_PASS_COUNT];

    NnParamInfo *tensors;       /* trainable tensors, in buffer order       */
    int ntensors, tcap;
    size_t nparams, nstats;
    float *params, *grads;      /* (nparams) each, 64-byte aligned          */
    float *stats;               /* (nstats): BN running mean, running var   */

    NnLayerInfo *layers;
    int nlayers, lcap;

    NnBuf *bufs;
    int nbufs, bcap;
    void **owned;               /* malloc'd blocks freed with the graph     */
    int nowned, ocap;
    dnnl_primitive_t *prims;
    int nprims, pcap;
    dnnl_primitive_desc_t *pds;
    int npds, dcap;
    size_t act_bytes;           /* activations, their gradients, workspaces */
    size_t work_bytes;          /* working copies of weights and gradients  */
    size_t scratch_bytes;
    int ref_prims;              /* primitives on reference implementations  */
    int finalized;
    int oom;                    /* a builder's bookkeeping ran out of memory */
    long bn_min_values;         /* smallest N*H*W of any batch norm         */
    char bn_min_layer[48];      /* ... and its name                         */

    const char *layer;          /* the layer being built                    */
    char where[200];            /* its name and shape, for error messages   */
    char msg[512];              /* the last error                           */
} NnGraph;

/* Status codes oneDNN gives are mapped to ours; the message names the layer,
 * its shape, the oneDNN call and the oneDNN status. */
#define NN_DNNL(g, call)                                                     \
    do {                                                                     \
        dnnl_status_t st_ = (call);                                          \
        if (st_ != dnnl_success)                                             \
            return nn_fail_dnnl((g), st_, #call);                            \
    } while (0)

#define NN_TRY(expr)                                                         \
    do {                                                                     \
        AmoStatus ks_ = (expr);                                               \
        if (ks_ != AMO_OK)                                                    \
            return ks_;                                                      \
    } while (0)

/* Fixes oneDNN's ISA to the kernels' level (kn_cpu_flags()) the first time
 * it is called in the process: scalar -> sse41 (oneDNN's lowest), avx2 ->
 * avx2, avx512 -> avx512_core, avx512 + bf16 -> avx512_core_bf16, and
 * avx512 + AMX -> avx512_core_amx; lower where the user's ONEDNN_MAX_CPU_ISA
 * (or DNNL_MAX_CPU_ISA) says so (an unknown name is AMO_EINVAL).  oneDNN
 * accepts this only before its first primitive, so a later call that would
 * need a different ISA fails with AMO_EUNSUPPORTED.  isa_name receives the ISA
 * oneDNN really dispatches to (dnnl_get_effective_cpu_isa). */
/* AMX is in the ladder because oneDNN 2.6's bf16 convolutions without it ran
 * at half their fp32 speed (results/nn/README.md).  KN_CPU_AMX is a CPU
 * flag, not a kernel level: --arch avx512 keeps it, --arch avx2 drops it. */
AmoStatus nn_isa_init(char *msg, size_t msglen, const char **isa_name);

/* Whether oneDNN, as capped, runs bf16 convolutions with jit kernels
 * (avx512_core or above; below that oneDNN 2.6 has reference code only). */
int nn_isa_has_bf16(void);

/* dt: dnnl_f32, or dnnl_bf16 for mixed precision (needs nn_isa_has_bf16()). */
AmoStatus nn_graph_init(NnGraph *g, dnnl_data_type_t dt);
void nn_graph_free(NnGraph *g);

/* Allocates storage and binds every memory object.  Call once, after the
 * last builder and before any pass. */
AmoStatus nn_graph_finalize(NnGraph *g);

/* Runs one pass (NN_PASS_*) and waits for it. */
AmoStatus nn_graph_run(NnGraph *g, int pass);

/* NN_PASS_BWD and NN_PASS_GRADS together, layer by layer: each group's
 * gradient reorders right after it, then ready(ctx, offset of the group's
 * first parameter), so that a caller can send gradients while backward
 * goes on.  The same results as the two passes one after the other. */
AmoStatus nn_graph_run_backward(NnGraph *g, NnReadyFn ready, void *ctx);

/* --- for layer builders (nn/layers.c) ----------------------------------- */

/* Creates a primitive descriptor (attr NULL: the graph's user-scratchpad
 * attr) that lives as long as the graph. */
AmoStatus nn_graph_pd(NnGraph *g, dnnl_primitive_desc_t *pd, const void *op_desc,
                     const_dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint);

/* Like nn_graph_pd with the graph's attr, but only if oneDNN has a
 * non-reference kernel for desc: otherwise *pd is NULL and the status AMO_OK
 * (the caller then tries other layouts). */
AmoStatus nn_graph_pd_fast(NnGraph *g, dnnl_primitive_desc_t *pd, const void *op_desc,
                          const_dnnl_primitive_desc_t hint);

/* Whether oneDNN picked a reference (slow, plain C++) implementation. */
int nn_pd_is_ref(const_dnnl_primitive_desc_t pd);

/* Starts a layer: sets the name and shape used by error messages and opens
 * its group in the backward pass.  fmt describes the shape. */
AmoStatus nn_graph_layer(NnGraph *g, const char *name, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void nn_graph_layer_done(NnGraph *g, const char *op, const dnnl_memory_desc_t *dst);

AmoStatus nn_fail(NnGraph *g, AmoStatus s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
AmoStatus nn_fail_dnnl(NnGraph *g, dnnl_status_t s, const char *call);

/* A trainable tensor of the current layer; returns its offset (floats). */
size_t nn_graph_param(NnGraph *g, const char *suffix, NnParamKind kind, int ndims,
                      const long *dims);
/* Running statistics (not trainable); returns the offset into stats. */
size_t nn_graph_stats(NnGraph *g, size_t count);

enum { NN_BUF_OWN, NN_BUF_WORK, NN_BUF_PARAMS, NN_BUF_GRADS, NN_BUF_STATS, NN_BUF_SCRATCH,
       NN_BUF_TMP };

/* A memory object for md, stored per kind: NN_BUF_OWN gets its own buffer
 * (or its alias group's), NN_BUF_WORK too (a working copy of weights or
 * weight gradients, counted apart), PARAMS/GRADS/STATS point at offset (floats) in the
 * flat buffers, SCRATCH and TMP share one buffer each. */
AmoStatus nn_graph_mem(NnGraph *g, dnnl_memory_t *out, const dnnl_memory_desc_t *md,
                      int kind, size_t offset);
/* An activation: mem and diff, both NN_BUF_OWN. */
AmoStatus nn_graph_act(NnGraph *g, NnAct *a, const dnnl_memory_desc_t *md);
/* b shares a's buffer (both NN_BUF_OWN or both NN_BUF_WORK; the group gets
 * the largest size). */
AmoStatus nn_graph_alias(NnGraph *g, dnnl_memory_t a, dnnl_memory_t b);

/* Creates the primitive for pd and appends it, with args and a scratchpad,
 * to every pass in mask (NN_IN(NN_PASS_x) | ...). */
AmoStatus nn_graph_prim(NnGraph *g, unsigned mask, const_dnnl_primitive_desc_t pd,
                       int nargs, const dnnl_exec_arg_t *args);
/* Appends a reorder src -> dst. */
AmoStatus nn_graph_reorder(NnGraph *g, unsigned mask, dnnl_memory_t src,
                          const dnnl_memory_desc_t *src_md, dnnl_memory_t dst,
                          const dnnl_memory_desc_t *dst_md);
/* Appends a C step (run after waiting for the stream). */
AmoStatus nn_graph_step(NnGraph *g, unsigned mask, void (*fn)(void *), void *arg);
/* Zeroed memory that lives as long as the graph. */
void *nn_graph_alloc(NnGraph *g, size_t bytes);

/* Plain row-major md (a, ab, abcd) of dims. */
dnnl_memory_desc_t nn_md_plain(int ndims, const long *dims, dnnl_data_type_t dt);
/* md with dnnl_format_tag_any. */
dnnl_memory_desc_t nn_md_any(int ndims, const long *dims, dnnl_data_type_t dt);
/* "4x64x8x8 f32 aBcd16b": dims, type and layout, for messages. */
void nn_md_str(char *buf, size_t len, const dnnl_memory_desc_t *md);

/* Copies an activation (which = mem or diff) to or from a plain fp32 NCHW
 * array.  For tests and for the network's input and logits; builds a reorder
 * each call. */
AmoStatus nn_act_read(NnGraph *g, dnnl_memory_t m, const dnnl_memory_desc_t *md, float *dst);
AmoStatus nn_act_write(NnGraph *g, dnnl_memory_t m, const dnnl_memory_desc_t *md,
                      const float *src);

#endif

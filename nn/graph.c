/* The nn/ execution context: engine, stream, pass lists, buffers, errors.
 * See nn/graph.h for the two-phase build. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl_debug.h>

#include "nn/graph.h"

struct NnBuf {
    dnnl_memory_t mem;
    size_t size;   /* bytes                                 */
    int kind;      /* NN_BUF_*                              */
    size_t offset; /* floats, for PARAMS / GRADS / STATS    */
    int root;      /* NN_BUF_OWN: alias group representative */
};

/* ------------------------------------------------------------- errors --- */

AmoStatus nn_fail(NnGraph *g, AmoStatus s, const char *fmt, ...)
{
    size_t n = 0;
    if (g->where[0])
        n = (size_t)snprintf(g->msg, sizeof g->msg, "%s: ", g->where);
    if (n < sizeof g->msg) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->msg + n, sizeof g->msg - n, fmt, ap);
        va_end(ap);
    }
    return s;
}

AmoStatus nn_fail_dnnl(NnGraph *g, dnnl_status_t s, const char *call)
{
    const char *paren = strchr(call, '(');
    const int len = paren ? (int)(paren - call) : (int)strlen(call);
    const AmoStatus ks = s == dnnl_out_of_memory ? AMO_ENOMEM
                      : s == dnnl_unimplemented ? AMO_EUNSUPPORTED
                                                : AMO_EINVAL;
    return nn_fail(g, ks, "%.*s failed: oneDNN %s%s", len, call, dnnl_status2str(s),
                   s == dnnl_unimplemented ? " (no implementation for these shapes, "
                                             "types and ISA)" : "");
}

/* ------------------------------------------------------------ helpers --- */

#define GROW(ptr, n, cap)                                                       \
    ((n) < (cap) ? 0                                                          \
                 : grow_((void **)&(ptr), &(cap), sizeof *(ptr)))

static int grow_(void **p, int *cap, size_t elem)
{
    const int ncap = *cap ? 2 * *cap : 16;
    void *q = realloc(*p, (size_t)ncap * elem);
    if (!q)
        return -1;
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *p = q;
    *cap = ncap;
    return 0;
}

void *nn_graph_alloc(NnGraph *g, size_t bytes)
{
    if (GROW(g->owned, g->nowned, g->ocap))
        return NULL;
    void *p = calloc(1, bytes ? bytes : 1);
    if (p)
        g->owned[g->nowned++] = p;
    return p;
}

static void *alloc_aligned(NnGraph *g, size_t bytes)
{
    if (GROW(g->owned, g->nowned, g->ocap))
        return NULL;
    bytes = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) {
        memset(p, 0, bytes);
        g->owned[g->nowned++] = p;
    }
    return p;
}

dnnl_memory_desc_t nn_md_plain(int ndims, const long *dims, dnnl_data_type_t dt)
{
    static const dnnl_format_tag_t tags[] = {dnnl_a, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd};
    dnnl_memory_desc_t md;
    dnnl_dims_t d;
    for (int i = 0; i < ndims; i++)
        d[i] = dims[i];
    dnnl_memory_desc_init_by_tag(&md, ndims, d, dt, tags[ndims]);
    return md;
}

dnnl_memory_desc_t nn_md_any(int ndims, const long *dims, dnnl_data_type_t dt)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t d;
    for (int i = 0; i < ndims; i++)
        d[i] = dims[i];
    dnnl_memory_desc_init_by_tag(&md, ndims, d, dt, dnnl_format_tag_any);
    return md;
}

/* oneDNN's own tag notation: outer dimensions by falling stride, a blocked
 * dimension in capitals, then the inner blocks ("aBcd16b" = nChw16c). */
void nn_md_str(char *buf, size_t len, const dnnl_memory_desc_t *md)
{
    size_t n = 0;
    for (int i = 0; i < md->ndims && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%ld", i ? "x" : "", (long)md->dims[i]);
    if (n < len)
        n += (size_t)snprintf(buf + n, len - n, " %s ", dnnl_dt2str(md->data_type));
    if (md->format_kind != dnnl_blocked) {
        if (n < len)
            snprintf(buf + n, len - n, "%s", dnnl_fmt_kind2str(md->format_kind));
        return;
    }
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    int order[DNNL_MAX_NDIMS], blocked[DNNL_MAX_NDIMS] = {0};
    for (int i = 0; i < md->ndims; i++)
        order[i] = i;
    for (int i = 0; i < b->inner_nblks; i++)
        blocked[b->inner_idxs[i]] = 1;
    for (int i = 1; i < md->ndims; i++) /* insertion sort, stable */
        for (int j = i; j > 0 && b->strides[order[j]] > b->strides[order[j - 1]]; j--) {
            const int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int i = 0; i < md->ndims && n + 1 < len; i++)
        buf[n++] = (char)((blocked[order[i]] ? 'A' : 'a') + order[i]);
    for (int i = 0; i < b->inner_nblks && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%ld%c", (long)b->inner_blks[i],
                              'a' + (int)b->inner_idxs[i]);
    if (n < len)
        buf[n] = 0;
    else if (len)
        buf[len - 1] = 0;
}

/* -------------------------------------------------------------- graph --- */

AmoStatus nn_graph_init(NnGraph *g, dnnl_data_type_t dt)
{
    memset(g, 0, sizeof *g);
    g->dt = dt;
    NN_DNNL(g, dnnl_engine_create(&g->eng, dnnl_cpu, 0));
    NN_DNNL(g, dnnl_stream_create(&g->strm, g->eng, dnnl_stream_default_flags));
    NN_DNNL(g, dnnl_primitive_attr_create(&g->attr));
    NN_DNNL(g, dnnl_primitive_attr_set_scratchpad_mode(g->attr, dnnl_scratchpad_mode_user));
    return AMO_OK;
}

void nn_graph_free(NnGraph *g)
{
    for (int i = 0; i < g->nprims; i++)
        dnnl_primitive_destroy(g->prims[i]);
    for (int i = 0; i < g->npds; i++)
        dnnl_primitive_desc_destroy(g->pds[i]);
    for (int i = 0; i < g->nbufs; i++)
        dnnl_memory_destroy(g->bufs[i].mem);
    for (int i = 0; i < g->nowned; i++)
        free(g->owned[i]);
    for (int p = 0; p < NN_PASS_COUNT; p++) {
        free(g->pass[p].v);
        free(g->pass[p].group);
        free(g->pass[p].gparam);
    }
    free(g->prims);
    free(g->pds);
    free(g->bufs);
    free(g->owned);
    free(g->tensors);
    free(g->layers);
    if (g->attr)
        dnnl_primitive_attr_destroy(g->attr);
    if (g->strm)
        dnnl_stream_destroy(g->strm);
    if (g->eng)
        dnnl_engine_destroy(g->eng);
    memset(g, 0, sizeof *g);
}

AmoStatus nn_graph_pd(NnGraph *g, dnnl_primitive_desc_t *pd, const void *op_desc,
                     const_dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint)
{
    if (GROW(g->pds, g->npds, g->dcap))
        return nn_fail(g, AMO_ENOMEM, "out of memory");
    NN_DNNL(g, dnnl_primitive_desc_create(pd, op_desc, attr ? attr : g->attr, g->eng, hint));
    g->pds[g->npds++] = *pd;
    return AMO_OK;
}

AmoStatus nn_graph_pd_fast(NnGraph *g, dnnl_primitive_desc_t *pd, const void *op_desc,
                          const_dnnl_primitive_desc_t hint)
{
    *pd = NULL;
    if (GROW(g->pds, g->npds, g->dcap))
        return nn_fail(g, AMO_ENOMEM, "out of memory");
    dnnl_primitive_desc_t p;
    if (dnnl_primitive_desc_create(&p, op_desc, g->attr, g->eng, hint) != dnnl_success)
        return AMO_OK;
    if (nn_pd_is_ref(p)) {
        dnnl_primitive_desc_destroy(p);
        return AMO_OK;
    }
    g->pds[g->npds++] = *pd = p;
    return AMO_OK;
}

AmoStatus nn_graph_layer(NnGraph *g, const char *name, const char *fmt, ...)
{
    char *copy = nn_graph_alloc(g, strlen(name) + 1);
    if (!copy)
        return nn_fail(g, AMO_ENOMEM, "out of memory");
    strcpy(copy, name);
    g->layer = copy;
    int n = snprintf(g->where, sizeof g->where, "%s (", name);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof g->where)
        n += vsnprintf(g->where + n, sizeof g->where - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n + 1 < sizeof g->where)
        strcat(g->where, ")");
    NnOpList *b = &g->pass[NN_PASS_BWD];
    if (GROW(b->group, b->ngroup, b->gcap) || GROW(b->gparam, b->ngroup, b->gpcap))
        return nn_fail(g, AMO_ENOMEM, "out of memory");
    b->gparam[b->ngroup] = g->nparams;
    b->group[b->ngroup++] = b->n;
    return AMO_OK;
}

void nn_graph_layer_done(NnGraph *g, const char *op, const dnnl_memory_desc_t *dst)
{
    if (GROW(g->layers, g->nlayers, g->lcap)) {
        g->oom = 1;
        return;
    }
    NnLayerInfo *l = &g->layers[g->nlayers++];
    snprintf(l->name, sizeof l->name, "%s", g->layer);
    snprintf(l->op, sizeof l->op, "%s", op);
    for (int i = 0; i < 4; i++)
        l->dims[i] = i < dst->ndims ? (long)dst->dims[i] : 1;
    g->where[0] = 0;
}

size_t nn_graph_param(NnGraph *g, const char *suffix, NnParamKind kind, int ndims,
                      const long *dims)
{
    if (GROW(g->tensors, g->ntensors, g->tcap)) {
        g->oom = 1; /* reported by nn_graph_finalize */
        return 0;
    }
    NnParamInfo *t = &g->tensors[g->ntensors++];
    snprintf(t->name, sizeof t->name, "%s.%s", g->layer, suffix);
    t->kind = kind;
    t->ndims = ndims;
    t->count = 1;
    for (int i = 0; i < ndims; i++) {
        t->dims[i] = dims[i];
        t->count *= (size_t)dims[i];
    }
    t->offset = g->nparams;
    g->nparams += t->count;
    return t->offset;
}

size_t nn_graph_stats(NnGraph *g, size_t count)
{
    const size_t off = g->nstats;
    g->nstats += count;
    return off;
}

AmoStatus nn_graph_mem(NnGraph *g, dnnl_memory_t *out, const dnnl_memory_desc_t *md,
                      int kind, size_t offset)
{
    if (GROW(g->bufs, g->nbufs, g->bcap))
        return nn_fail(g, AMO_ENOMEM, "out of memory");
    NN_DNNL(g, dnnl_memory_create(out, md, g->eng, DNNL_MEMORY_NONE));
    NnBuf *b = &g->bufs[g->nbufs];
    b->mem = *out;
    b->size = dnnl_memory_desc_get_size(md);
    b->kind = kind;
    b->offset = offset;
    b->root = g->nbufs++;
    return AMO_OK;
}

AmoStatus nn_graph_act(NnGraph *g, NnAct *a, const dnnl_memory_desc_t *md)
{
    a->md = *md;
    NN_TRY(nn_graph_mem(g, &a->mem, md, NN_BUF_OWN, 0));
    return nn_graph_mem(g, &a->diff, md, NN_BUF_OWN, 0);
}

static int buf_find(const NnGraph *g, dnnl_memory_t m)
{
    for (int i = g->nbufs - 1; i >= 0; i--)
        if (g->bufs[i].mem == m)
            return i;
    return -1;
}

static int buf_root(const NnGraph *g, int i)
{
    while (g->bufs[i].root != i)
        i = g->bufs[i].root;
    return i;
}

AmoStatus nn_graph_alias(NnGraph *g, dnnl_memory_t a, dnnl_memory_t b)
{
    const int ia = buf_find(g, a), ib = buf_find(g, b);
    if (ia < 0 || ib < 0 || g->bufs[ia].kind != g->bufs[ib].kind
        || (g->bufs[ia].kind != NN_BUF_OWN && g->bufs[ia].kind != NN_BUF_WORK))
        return nn_fail(g, AMO_EINVAL, "internal: alias of a memory the graph does not own");
    g->bufs[buf_root(g, ib)].root = buf_root(g, ia);
    return AMO_OK;
}

static AmoStatus append(NnGraph *g, int pass, const NnOp *op)
{
    NnOpList *l = &g->pass[pass];
    if (GROW(l->v, l->n, l->cap))
        return nn_fail(g, AMO_ENOMEM, "out of memory");
    l->v[l->n] = *op;
    l->v[l->n++].group = g->pass[NN_PASS_BWD].ngroup - 1;
    return AMO_OK;
}

int nn_pd_is_ref(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success
           && impl && !strncmp(impl, "ref", 3);
}

AmoStatus nn_graph_prim(NnGraph *g, unsigned mask, const_dnnl_primitive_desc_t pd,
                       int nargs, const dnnl_exec_arg_t *args)
{
    NnOp op = {0};
    if (nargs + 1 > (int)(sizeof op.args / sizeof op.args[0]))
        return nn_fail(g, AMO_EINVAL, "internal: too many primitive arguments");
    if (GROW(g->prims, g->nprims, g->pcap))
        return nn_fail(g, AMO_ENOMEM, "out of memory");
    NN_DNNL(g, dnnl_primitive_create(&op.prim, pd));
    g->prims[g->nprims++] = op.prim;
    g->ref_prims += nn_pd_is_ref(pd);
    op.layer = g->layer;
    op.nargs = nargs;
    memcpy(op.args, args, (size_t)nargs * sizeof *args);
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (smd && dnnl_memory_desc_get_size(smd) > 0) {
        dnnl_memory_t sm;
        NN_TRY(nn_graph_mem(g, &sm, smd, NN_BUF_SCRATCH, 0));
        op.args[op.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, sm};
    }
    for (int p = 0; p < NN_PASS_COUNT; p++)
        if (mask & NN_IN(p))
            NN_TRY(append(g, p, &op));
    return AMO_OK;
}

AmoStatus nn_graph_reorder(NnGraph *g, unsigned mask, dnnl_memory_t src,
                          const dnnl_memory_desc_t *src_md, dnnl_memory_t dst,
                          const dnnl_memory_desc_t *dst_md)
{
    dnnl_primitive_desc_t pd;
    NN_DNNL(g, dnnl_reorder_primitive_desc_create(&pd, src_md, g->eng, dst_md, g->eng, g->attr));
    const dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    const AmoStatus s = nn_graph_prim(g, mask, pd, 2, args);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

AmoStatus nn_graph_step(NnGraph *g, unsigned mask, void (*fn)(void *), void *arg)
{
    const NnOp op = {.fn = fn, .arg = arg, .layer = g->layer};
    for (int p = 0; p < NN_PASS_COUNT; p++)
        if (mask & NN_IN(p))
            NN_TRY(append(g, p, &op));
    return AMO_OK;
}

AmoStatus nn_graph_finalize(NnGraph *g)
{
    g->where[0] = 0;
    if (g->oom)
        return nn_fail(g, AMO_ENOMEM, "out of memory while building the graph");
    g->params = alloc_aligned(g, g->nparams * sizeof(float));
    g->grads = alloc_aligned(g, g->nparams * sizeof(float));
    g->stats = alloc_aligned(g, g->nstats * sizeof(float));
    if (!g->params || !g->grads || !g->stats)
        return nn_fail(g, AMO_ENOMEM, "out of memory for %zu parameters", g->nparams);

    size_t scratch = 0, tmp = 0;
    size_t *group = calloc((size_t)g->nbufs + 1, sizeof *group);
    void **base = calloc((size_t)g->nbufs + 1, sizeof *base);
    if (!group || !base) {
        free(group);
        free(base);
        return nn_fail(g, AMO_ENOMEM, "out of memory");
    }
    for (int i = 0; i < g->nbufs; i++) {
        const NnBuf *b = &g->bufs[i];
        if (b->kind == NN_BUF_SCRATCH && b->size > scratch)
            scratch = b->size;
        if (b->kind == NN_BUF_TMP && b->size > tmp)
            tmp = b->size;
        if (b->kind == NN_BUF_OWN || b->kind == NN_BUF_WORK) {
            const int r = buf_root(g, i);
            if (b->size > group[r])
                group[r] = b->size;
        }
    }
    AmoStatus s = AMO_OK;
    void *scratch_buf = alloc_aligned(g, scratch), *tmp_buf = alloc_aligned(g, tmp);
    g->scratch_bytes = scratch;
    g->act_bytes = tmp;
    for (int i = 0; i < g->nbufs && s == AMO_OK; i++)
        if (group[i]) {
            base[i] = alloc_aligned(g, group[i]);
            if (g->bufs[i].kind == NN_BUF_WORK)
                g->work_bytes += group[i];
            else
                g->act_bytes += group[i];
            if (!base[i])
                s = nn_fail(g, AMO_ENOMEM, "out of memory for activations (%zu bytes so far)",
                            g->act_bytes);
        }
    if (!scratch_buf || !tmp_buf)
        s = nn_fail(g, AMO_ENOMEM, "out of memory for the scratchpad (%zu bytes)", scratch);
    for (int i = 0; i < g->nbufs && s == AMO_OK; i++) {
        const NnBuf *b = &g->bufs[i];
        void *h = b->kind == NN_BUF_OWN || b->kind == NN_BUF_WORK ? base[buf_root(g, i)]
                : b->kind == NN_BUF_PARAMS  ? (void *)(g->params + b->offset)
                : b->kind == NN_BUF_GRADS   ? (void *)(g->grads + b->offset)
                : b->kind == NN_BUF_STATS   ? (void *)(g->stats + b->offset)
                : b->kind == NN_BUF_SCRATCH ? scratch_buf
                                            : tmp_buf;
        const dnnl_status_t st = dnnl_memory_set_data_handle(b->mem, h);
        if (st != dnnl_success)
            s = nn_fail_dnnl(g, st, "dnnl_memory_set_data_handle");
    }
    free(group);
    free(base);
    g->finalized = s == AMO_OK;
    return s;
}

static AmoStatus run_op(NnGraph *g, const NnOp *op)
{
    if (op->prim) {
        const dnnl_status_t st = dnnl_primitive_execute(op->prim, g->strm, op->nargs, op->args);
        if (st != dnnl_success) {
            snprintf(g->where, sizeof g->where, "%s", op->layer ? op->layer : "?");
            return nn_fail_dnnl(g, st, "dnnl_primitive_execute");
        }
        return AMO_OK;
    }
    NN_DNNL(g, dnnl_stream_wait(g->strm));
    op->fn(op->arg);
    return AMO_OK;
}

AmoStatus nn_graph_run(NnGraph *g, int pass)
{
    g->where[0] = 0;
    if (!g->finalized)
        return nn_fail(g, AMO_EINVAL, "internal: graph run before nn_graph_finalize");
    const NnOpList *l = &g->pass[pass];
    if (pass == NN_PASS_BWD) {
        for (int k = l->ngroup - 1; k >= 0; k--) {
            const int end = k + 1 < l->ngroup ? l->group[k + 1] : l->n;
            for (int i = l->group[k]; i < end; i++)
                NN_TRY(run_op(g, &l->v[i]));
        }
    } else {
        for (int i = 0; i < l->n; i++)
            NN_TRY(run_op(g, &l->v[i]));
    }
    NN_DNNL(g, dnnl_stream_wait(g->strm));
    return AMO_OK;
}

AmoStatus nn_graph_run_backward(NnGraph *g, NnReadyFn ready, void *ctx)
{
    g->where[0] = 0;
    if (!g->finalized)
        return nn_fail(g, AMO_EINVAL, "internal: graph run before nn_graph_finalize");
    const NnOpList *l = &g->pass[NN_PASS_BWD], *r = &g->pass[NN_PASS_GRADS];
    int j = r->n - 1; /* the reorders were appended in forward order: walk them back */
    for (int k = l->ngroup - 1; k >= 0; k--) {
        const int end = k + 1 < l->ngroup ? l->group[k + 1] : l->n;
        for (int i = l->group[k]; i < end; i++)
            NN_TRY(run_op(g, &l->v[i]));
        for (; j >= 0 && r->v[j].group >= k; j--)
            NN_TRY(run_op(g, &r->v[j]));
        NN_DNNL(g, dnnl_stream_wait(g->strm));
        ready(ctx, l->gparam[k]);
    }
    return AMO_OK;
}

/* ------------------------------------------------- plain copies (tests) -- */

static AmoStatus act_copy(NnGraph *g, dnnl_memory_t m, const dnnl_memory_desc_t *md,
                         float *plain, int to_plain)
{
    long dims[DNNL_MAX_NDIMS];
    for (int i = 0; i < md->ndims; i++)
        dims[i] = (long)md->dims[i];
    const dnnl_memory_desc_t pmd = nn_md_plain(md->ndims, dims, dnnl_f32);
    dnnl_memory_t pm = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_status_t st = dnnl_memory_create(&pm, &pmd, g->eng, plain);
    if (st == dnnl_success)
        st = to_plain ? dnnl_reorder_primitive_desc_create(&pd, md, g->eng, &pmd, g->eng, NULL)
                      : dnnl_reorder_primitive_desc_create(&pd, &pmd, g->eng, md, g->eng, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&prim, pd);
    if (st == dnnl_success) {
        const dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, to_plain ? m : pm},
                                        {DNNL_ARG_TO, to_plain ? pm : m}};
        st = dnnl_primitive_execute(prim, g->strm, 2, args);
    }
    if (st == dnnl_success)
        st = dnnl_stream_wait(g->strm);
    if (prim)
        dnnl_primitive_destroy(prim);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (pm)
        dnnl_memory_destroy(pm);
    return st == dnnl_success ? AMO_OK : nn_fail_dnnl(g, st, "reorder to or from plain fp32");
}

AmoStatus nn_act_read(NnGraph *g, dnnl_memory_t m, const dnnl_memory_desc_t *md, float *dst)
{
    return act_copy(g, m, md, dst, 1);
}

AmoStatus nn_act_write(NnGraph *g, dnnl_memory_t m, const dnnl_memory_desc_t *md,
                      const float *src)
{
    return act_copy(g, m, md, (float *)src, 0);
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hwloc.h>
#include <omp.h>

#include "harness/dist.h"
#include "harness/threads.h"

static size_t cache_size(hwloc_topology_t topo, hwloc_obj_type_t type)
{
    hwloc_obj_t o = hwloc_get_obj_by_type(topo, type, 0);
    return o && o->attr ? (size_t)o->attr->cache.size : 0;
}

static void fmt_size(char *buf, size_t len, size_t bytes)
{
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
        snprintf(buf, len, "%zuM", bytes >> 20);
    else
        snprintf(buf, len, "%zuK", bytes >> 10);
}

AmoStatus hx_topology(HxTopology *t)
{
    if (!t)
        return AMO_EINVAL;
    memset(t, 0, sizeof(*t));
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo))
        return AMO_EIO;
    if (hwloc_topology_load(topo)) {
        hwloc_topology_destroy(topo);
        return AMO_EIO;
    }
    t->packages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
    t->cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    t->pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    t->l1d = cache_size(topo, HWLOC_OBJ_L1CACHE);
    t->l2 = cache_size(topo, HWLOC_OBJ_L2CACHE);
    t->l3 = cache_size(topo, HWLOC_OBJ_L3CACHE);
    const int nl2 = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_L2CACHE);
    t->l2_shared_by = nl2 > 0 && t->cores > 0 ? t->cores / nl2 : 0;
    hwloc_topology_destroy(topo);
    if (t->cores < 1)
        t->cores = 1;
    char a[24], b[24], c[24];
    fmt_size(a, sizeof a, t->l1d);
    fmt_size(b, sizeof b, t->l2);
    fmt_size(c, sizeof c, t->l3);
    snprintf(t->summary, sizeof t->summary,
             "%d package(s), %d cores, %d PUs; L1d %s, L2 %s (per %d core(s)), L3 %s",
             t->packages, t->cores, t->pus, a, b, t->l2_shared_by, c);
    return AMO_OK;
}

int hx_default_threads(void)
{
    HxTopology t;
    return hx_topology(&t) == AMO_OK ? t.cores : 1;
}

AmoStatus hx_set_threads(int nthreads, int *used)
{
    if (nthreads < 0)
        return AMO_EINVAL;
    hwloc_topology_t topo;
    int loaded = hwloc_topology_init(&topo) == 0;
    if (loaded && hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        loaded = 0;
    }
    const int cores = loaded ? hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) : 0;
    const int n = nthreads ? nthreads : (cores > 0 ? cores : omp_get_num_procs());
    omp_set_num_threads(n);
    if (used)
        *used = n;
    /* One thread is left where the OS puts it: pinning the caller's thread to
     * core 0 would crowd every single-threaded process (parallel tests,
     * several runs) onto one core. */
    int failed = !loaded;
    if (loaded && cores > 0 && n > 1) {
        /* Only the cores this process is bound to: under mpirun, several
         * ranks on a host each get theirs (--bind-to, --map-by ...:PE=n);
         * alone, that is every core. */
        hwloc_obj_t *mine = malloc((size_t)cores * sizeof *mine);
        hwloc_bitmap_t set = hwloc_bitmap_alloc();
        const int bound = set && !hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS);
        int nmine = 0;
        for (int i = 0; mine && i < cores; i++) {
            hwloc_obj_t c = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, (unsigned)i);
            if (c && (!bound || hwloc_bitmap_intersects(c->cpuset, set)))
                mine[nmine++] = c;
        }
        failed = !nmine;
#pragma omp parallel num_threads(n) reduction(| : failed)
        {
            /* ranks sharing one binding (Open MPI binds to a socket above
             * two ranks) or none start at their own place in it */
            const int k = hx_dist_local_rank() * n + omp_get_thread_num();
            const hwloc_obj_t core = nmine ? mine[k % nmine] : NULL;
            if (!core || hwloc_set_cpubind(topo, core->cpuset, HWLOC_CPUBIND_THREAD))
                failed = 1;
        }
        hwloc_bitmap_free(set);
        free(mine);
    }
    if (loaded)
        hwloc_topology_destroy(topo);
    return failed ? AMO_EIO : AMO_OK;
}

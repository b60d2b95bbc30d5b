/* Threads for the update: the machine's topology (hwloc) and the pinning of
 * the OpenMP threads that both the kernels and oneDNN run on.  One pool, one
 * thread per core by default: no second pool competes with oneDNN's. */
#ifndef AMO_HARNESS_THREADS_H
#define AMO_HARNESS_THREADS_H

#include <stddef.h>

#include "common/status.h"

typedef struct HxTopology {
    int packages, cores, pus;  /* physical packages, cores, hardware threads */
    size_t l1d, l2, l3;        /* bytes of one cache of each level (0: none)  */
    int l2_shared_by;          /* cores sharing one L2                        */
    char summary[256];         /* one line: "2 cores, 2 PUs; L1d 48K, ..."    */
} HxTopology;

/* Reads the topology.  AMO_EIO if hwloc cannot load it. */
AmoStatus hx_topology(HxTopology *t);

/* Cores of this machine (1 if unknown): the default thread count. */
int hx_default_threads(void);

/* Sets the OpenMP thread count to nthreads (0: one per core) and, for more
 * than one thread, binds OpenMP thread i to core i % k of the k cores the
 * process is bound to (every core alone; a rank's own under mpirun), so
 * each later parallel region, the update kernels' and oneDNN's alike, runs
 * on the same cores.  AMO_EINVAL for nthreads < 0; AMO_EIO if hwloc cannot read the
 * topology or binding is refused (the count is set all the same, unpinned).
 * *used receives the count set (may be NULL). */
AmoStatus hx_set_threads(int nthreads, int *used);

#endif

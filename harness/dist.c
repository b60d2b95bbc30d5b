/* harness/dist.h on MPI (Open MPI here; nothing below is Open MPI's own). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>

#include "harness/dist.h"
#include "harness/error.h"

static int g_on, g_rank, g_size = 1, g_local = 1, g_local_rank;
static char g_lib[256];
static MPI_Request g_req[HX_DIST_MAX_PENDING];
static int g_nreq;

static void abort_job(int code)
{
    MPI_Abort(MPI_COMM_WORLD, code);
}

/* Started by a launcher (mpirun, or srun with PMI/PMIx)?  Alone, amo-bench
 * does not start MPI at all: Open MPI's singleton init would start its
 * runtime's threads (and a daemon) for a job of one. */
static int launched(void)
{
    static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                        "PMI_SIZE" };
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

void hx_dist_init(int *argc, char ***argv)
{
    if (!launched())
        return;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return; /* (MPI_Init aborts on failure; kept for form) */
    g_on = 1;
    if (provided < MPI_THREAD_FUNNELED) { /* OpenMP threads run beside MPI's */
        fprintf(stderr, "amo-bench: the MPI library gives thread level %d, below "
                "MPI_THREAD_FUNNELED\n", provided);
        MPI_Abort(MPI_COMM_WORLD, HX_EXIT_FAIL);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &g_local);
    MPI_Comm_rank(node, &g_local_rank);
    MPI_Comm_free(&node);
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    v[strcspn(v, "\n,")] = 0; /* "Open MPI v4.1.4, package: ...": the name and version */
    snprintf(g_lib, sizeof g_lib, "%s", v);
    if (g_size > 1)
        hx_error_set_rank(g_rank, abort_job);
}

void hx_dist_finalize(void)
{
    if (!g_on)
        return;
    g_on = 0;
    MPI_Finalize();
}

void hx_dist_exit(int code)
{
    hx_dist_finalize();
    exit(code);
}

int hx_dist_active(void) { return g_on && g_size > 1; }
int hx_dist_rank(void) { return g_rank; }
int hx_dist_size(void) { return g_size; }
int hx_dist_root(void) { return g_rank == 0; }
int hx_dist_local_size(void) { return g_local; }
int hx_dist_local_rank(void) { return g_local_rank; }

void hx_dist_barrier(void)
{
    if (hx_dist_active())
        MPI_Barrier(MPI_COMM_WORLD);
}

void hx_dist_bcast_i64(int64_t *v, int n, int root)
{
    if (hx_dist_active())
        MPI_Bcast(v, n, MPI_INT64_T, root, MPI_COMM_WORLD);
}

void hx_dist_bcast_f64(double *v, int n, int root)
{
    if (hx_dist_active())
        MPI_Bcast(v, n, MPI_DOUBLE, root, MPI_COMM_WORLD);
}

void hx_dist_bcast_f32(float *v, size_t n, int root)
{
    if (!hx_dist_active())
        return;
    for (size_t i = 0; i < n; i += 1u << 30) /* counts are int */
        MPI_Bcast(v + i, (int)(n - i < 1u << 30 ? n - i : 1u << 30), MPI_FLOAT, root,
                  MPI_COMM_WORLD);
}

void hx_dist_bcast_bytes(void *v, int n, int root)
{
    if (hx_dist_active())
        MPI_Bcast(v, n, MPI_BYTE, root, MPI_COMM_WORLD);
}

void hx_dist_sum_i64(int64_t *v, int n)
{
    if (hx_dist_active())
        MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
}

void hx_dist_sum_f64(double *v, int n)
{
    if (hx_dist_active())
        MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

void hx_dist_max_f64(double *v, int n)
{
    if (hx_dist_active())
        MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}

void hx_dist_sum_f64_cb(void *ctx, double *v, int n)
{
    (void)ctx;
    hx_dist_sum_f64(v, n);
}

int hx_dist_isum_f32(float *v, size_t n)
{
    if (!hx_dist_active())
        return -1;
    if (g_nreq == HX_DIST_MAX_PENDING || n > (size_t)1 << 30)
        hx_fail(HX_EXIT_FAIL, "internal: %d gradient sums in flight, or one of %zu floats",
                g_nreq, n);
    MPI_Iallreduce(MPI_IN_PLACE, v, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                   &g_req[g_nreq]);
    return g_nreq++;
}

void hx_dist_progress(void)
{
    int done;
    if (g_nreq)
        MPI_Testall(g_nreq, g_req, &done, MPI_STATUSES_IGNORE);
}

void hx_dist_wait_all(void)
{
    if (g_nreq)
        MPI_Waitall(g_nreq, g_req, MPI_STATUSES_IGNORE);
    g_nreq = 0;
}

const char *hx_dist_library(void)
{
    return g_lib;
}

void hx_dist_hosts(char *buf, size_t len)
{
    char me[64] = "";
    gethostname(me, sizeof me - 1);
    if (!hx_dist_active()) {
        snprintf(buf, len, "%s", me);
        return;
    }
    char *all = malloc((size_t)g_size * 64);
    if (!all)
        hx_fail(HX_EXIT_FAIL, "out of memory for %d host names", g_size);
    MPI_Gather(me, 64, MPI_CHAR, all, 64, MPI_CHAR, 0, MPI_COMM_WORLD);
    MPI_Bcast(all, g_size * 64, MPI_CHAR, 0, MPI_COMM_WORLD);
    size_t k = 0;
    buf[0] = 0;
    for (int r = 0; r < g_size && k < len; r++)
        k += (size_t)snprintf(buf + k, len - k, "%s%s", r ? "," : "", all + 64 * r);
    free(all);
}

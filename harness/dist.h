/* amo-bench's ranks: everything the harness does with MPI goes through
 * here (harness/dist.c on Open MPI; harness/dist_single.c, one process, when
 * built with -Dmpi=disabled or without MPI).  The library (libamo) never
 * links MPI: nn/ takes the reductions sync-BN needs as a callback
 * (NnResNetConfig.bn_reduce), which the harness points at hx_dist_sum_f64.
 *
 * Started alone, amo-bench is one rank of one, and every function below
 * is a no-op or the identity; under `mpirun -np N` it is rank 0..N-1 of N.
 * Collectives (barrier, bcast, sum, max) must be called by every rank in
 * the same order.  Errors inside MPI abort the job (MPI_ERRORS_ARE_FATAL):
 * a rank that dies or fails ends every rank, never a hang. */
#ifndef AMO_HARNESS_DIST_H
#define AMO_HARNESS_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Starts MPI if amo-bench was built with it and started by a launcher
 * (mpirun, srun: their environment variables; alone it stays one process
 * without MPI) (MPI_Init_thread, FUNNELED: only the main thread calls MPI,
 * OpenMP threads never do) and wires
 * hx_fail to the ranks: rank 0 prints a failure and aborts the job; another
 * rank waits a moment for that, then prints with its rank and aborts, so
 * an error every rank meets is printed once.  Call first in main. */
void hx_dist_init(int *argc, char ***argv);
/* MPI_Finalize; call before a successful exit. */
void hx_dist_finalize(void);
/* A successful exit from anywhere that every rank reaches alike (--help):
 * MPI_Finalize, then exit(code).  A rank that leaves without MPI_Finalize
 * is an abnormal termination to mpirun (exit 1); finalizing from atexit
 * instead would hang a job where one rank exits and the others wait. */
_Noreturn void hx_dist_exit(int code);

int hx_dist_active(void);   /* MPI started and more than one rank           */
int hx_dist_rank(void);     /* 0 .. size - 1                                 */
int hx_dist_size(void);     /* ranks in the job, 1 alone                     */
int hx_dist_root(void);     /* rank 0: the one that prints and writes files */
int hx_dist_local_size(void); /* ranks on this host (threads per rank)       */
int hx_dist_local_rank(void); /* 0 .. local size - 1                           */

void hx_dist_barrier(void);
/* v[0..n) from root to every rank. */
void hx_dist_bcast_i64(int64_t *v, int n, int root);
void hx_dist_bcast_f64(double *v, int n, int root);
void hx_dist_bcast_f32(float *v, size_t n, int root);
void hx_dist_bcast_bytes(void *v, int n, int root);
/* In place, every rank gets the element-wise sum (max) over ranks.  With
 * the same n on every run the reduction order is the same (Open MPI picks
 * its algorithm from the size and the rank count: tuned for the blocking
 * sums, libnbc for hx_dist_isum_f32), so results are bitwise the same run
 * to run. */
void hx_dist_sum_i64(int64_t *v, int n);
void hx_dist_sum_f64(double *v, int n);
void hx_dist_max_f64(double *v, int n);
/* The same callback with nn/'s signature (NnReduceFn, ctx unused). */
void hx_dist_sum_f64_cb(void *ctx, double *v, int n);

/* Gradient averaging, bucket by bucket: start a sum of f32 v[0..n) in
 * place (MPI_Iallreduce), poke the library so pending sums make progress
 * while backward runs (MPI_Testall), wait for all of them.  At most
 * HX_DIST_MAX_PENDING sums in flight; a handle is its index. */
#define HX_DIST_MAX_PENDING 64
int hx_dist_isum_f32(float *v, size_t n);
void hx_dist_progress(void);
void hx_dist_wait_all(void);

/* For metadata: MPI_Get_library_version's first line ("" without MPI), and
 * every rank's host name, comma-separated in rank order (the caller's
 * buffer; collective). */
const char *hx_dist_library(void);
void hx_dist_hosts(char *buf, size_t len);

#endif

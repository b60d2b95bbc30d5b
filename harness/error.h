/* The harness's one way to report trouble.  Library code returns a AmoStatus
 * and never prints; the harness turns statuses and bad input into a message
 * "amo-bench: ..." on stderr and an exit code:
 *   0  success
 *   1  the run failed (I/O, out of memory, a kernel refused its arguments)
 *   2  usage: an unknown option, a bad value, an unusable --out directory,
 *      a CPU level this CPU does not have */
#ifndef AMO_HARNESS_ERROR_H
#define AMO_HARNESS_ERROR_H

#include <stddef.h>

enum { HX_EXIT_OK = 0, HX_EXIT_FAIL = 1, HX_EXIT_USAGE = 2 };

#if defined(__GNUC__)
#define HX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define HX_NORETURN __attribute__((noreturn))
#else
#define HX_PRINTF(f, a)
#define HX_NORETURN
#endif

/* Prints "amo-bench: <message>" and exits with code.  For HX_EXIT_USAGE it
 * adds a line pointing at --help for the command being run. */
HX_NORETURN void hx_fail(int code, const char *fmt, ...) HX_PRINTF(2, 3);
/* The same for a failure only this rank can meet (under mpirun: printed at
 * once, not after the pause that lets rank 0 say what every rank meets). */
HX_NORETURN void hx_fail_local(int code, const char *fmt, ...) HX_PRINTF(2, 3);
/* on: every failure from now on is this rank's own (ablation's ranks, each
 * with runs of its own). */
void hx_error_local(int on);

/* Prints "amo-bench: warning: <message>" and returns. */
void hx_warn(const char *fmt, ...) HX_PRINTF(1, 2);

/* Under mpirun (harness/dist.c): this process's rank, and what ends every
 * rank's process after a failure instead of exit (MPI_Abort). */
void hx_error_set_rank(int rank, void (*abort_job)(int code));

/* The command whose --help the usage hint names ("kernels"); NULL: none. */
void hx_set_command(const char *name);

/* malloc that exits naming the source line on failure (llm.c's
 * malloc_check). */
#define hx_malloc(bytes) hx_malloc_((bytes), __FILE__, __LINE__)
void *hx_malloc_(size_t bytes, const char *file, int line);

#endif

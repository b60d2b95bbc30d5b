#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness/error.h"

static const char *g_command;
static int g_rank;                     /* hx_error_set_rank: under mpirun  */
static void (*g_abort)(int code);
static int g_local;                    /* hx_error_local: every error is this rank's own */

void hx_error_set_rank(int rank, void (*abort_job)(int code))
{
    g_rank = rank;
    g_abort = abort_job;
}

void hx_set_command(const char *name)
{
    g_command = name;
}

static HX_NORETURN void fail_v(int code, int local, const char *fmt, va_list ap)
{
    fflush(stdout);
    /* Settings and shared files: every rank meets bad input alike, rank 0
     * says so and its abort ends the others during their pause, which allows
     * for rank 0 reaching the error much later on a loaded host (3 s was too
     * short under CI); a failure of one rank alone is then printed by that
     * rank after the pause, with its number.  What only this rank can meet
     * (hx_fail_local: its share of the data; every error of an ablation
     * rank's own runs) is printed at once.  One write, so that mpirun's own
     * lines do not cut it. */
    if (g_abort && g_rank != 0 && !local)
        sleep(20);
    char msg[4096], who[32] = "";
    if (g_abort && g_rank != 0)
        snprintf(who, sizeof who, "rank %d: ", g_rank);
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (code == HX_EXIT_USAGE)
        fprintf(stderr, "amo-bench: %s%s\nTry 'amo-bench%s%s --help'.\n", who, msg,
                g_command ? " " : "", g_command ? g_command : "");
    else
        fprintf(stderr, "amo-bench: %s%s\n", who, msg);
    fflush(stderr);
    if (g_abort)
        g_abort(code);
    exit(code);
}

void hx_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(code, g_local, fmt, ap);
}

void hx_fail_local(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(code, 1, fmt, ap);
}

void hx_error_local(int on)
{
    g_local = on;
}

void hx_warn(const char *fmt, ...)
{
    va_list ap;
    if (g_rank != 0) /* the ranks run the same code on the same input */
        return;
    fflush(stdout);
    fputs("amo-bench: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void *hx_malloc_(size_t bytes, const char *file, int line)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        hx_fail(HX_EXIT_FAIL, "out of memory allocating %zu bytes (%s:%d)", bytes, file, line);
    return p;
}

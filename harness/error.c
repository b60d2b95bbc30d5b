#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness/error.h"

static const char *g_command;
static int g_rank;                     /* hx_error_set_rank: under mpirun  */
static void (*g_abort)(int code);

void hx_error_set_rank(int rank, void (*abort_job)(int code))
{
    g_rank = rank;
    g_abort = abort_job;
}

void hx_set_command(const char *name)
{
    g_command = name;
}

void hx_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    /* Every rank meets bad input alike: rank 0 says so and its abort ends
     * the others during their pause, which allows for rank 0 reaching the
     * error much later on a loaded host (3 s was too short under CI).  A
     * failure of one rank alone is printed by that rank after the pause,
     * with its number.  One write, so that mpirun's own lines do not cut it. */
    if (g_abort && g_rank != 0)
        sleep(20);
    char msg[4096], who[32] = "";
    if (g_abort && g_rank != 0)
        snprintf(who, sizeof who, "rank %d: ", g_rank);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
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

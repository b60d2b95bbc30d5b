/* The project's one clock: monotonic wall time in seconds, for intervals
 * (CLOCK_MONOTONIC never goes back).  Header-only so that every layer, the
 * library's timings (nn/) and the harness's (harness/timer.h), reads the
 * same clock.  The including file defines _POSIX_C_SOURCE. */
#ifndef AMO_COMMON_CLOCK_H
#define AMO_COMMON_CLOCK_H

#include <time.h>

static inline double amo_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif

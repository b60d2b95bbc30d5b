/* The harness's one clock: monotonic wall time in seconds, for intervals
 * only (CLOCK_MONOTONIC; never goes back, unaffected by clock changes).
 * Google Benchmark times the kernels themselves; this times everything else
 * (set-up, whole runs, training steps). */
#ifndef AMO_HARNESS_TIMER_H
#define AMO_HARNESS_TIMER_H

#include <stddef.h>

/* Seconds since an arbitrary fixed point. */
double hx_now(void);

/* The current date and time, UTC, ISO 8601 ("2024-05-01T12:34:56Z"), for
 * the metadata written beside results.  buf needs 21 bytes. */
void hx_utc_timestamp(char *buf, size_t len);

#endif

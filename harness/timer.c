#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "harness/timer.h"
#include "common/clock.h"

double hx_now(void) { return amo_now(); }

void hx_utc_timestamp(char *buf, size_t len)
{
    const time_t t = time(NULL);
    struct tm tm;
    if (!len)
        return;
    if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        buf[0] = '\0';
}

/* The status texts (common/status.h) and amo_err (common/err.h). */
#include <stdarg.h>
#include <stdio.h>

#include "common/err.h"
#include "common/status.h"

const char *amo_status_str(AmoStatus s)
{
    switch (s) {
    case AMO_OK: return "ok";
    case AMO_EINVAL: return "invalid argument";
    case AMO_EOVERLAP: return "buffers overlap";
    case AMO_EUNSUPPORTED: return "CPU level not supported by this CPU";
    case AMO_ENONFINITE: return "non-finite value (NaN or Inf) in input";
    case AMO_ENOMEM: return "out of memory";
    case AMO_EIO: return "I/O error";
    case AMO_EFORMAT: return "bad file format";
    }
    return "unknown status";
}

AmoStatus amo_err(AmoStatus st, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* The status every library function in amo returns.  Library code never
 * prints or exits; the harness turns a status into a message. */
#ifndef AMO_COMMON_STATUS_H
#define AMO_COMMON_STATUS_H

#include "common/api.h"

typedef enum AmoStatus {
    AMO_OK = 0,
    AMO_EINVAL,       /* a NULL pointer with n > 0, a non-finite or out-of-range value */
    AMO_EOVERLAP,     /* two buffers of one call overlap                                  */
    AMO_EUNSUPPORTED, /* a CPU level was asked for that this CPU does not have            */
    AMO_ENONFINITE,   /* the input holds a NaN or an Inf (the result is still written)    */
    AMO_ENOMEM,
    AMO_EIO,          /* a file could not be read or written                              */
    AMO_EFORMAT,      /* a file is truncated, corrupted or does not match                 */
} AmoStatus;

AMO_API const char *amo_status_str(AmoStatus s);

#endif

/* The status every library function in amo returns.  Library code never
 * prints or exits; the harness turns a status into a message. */
#ifndef AMO_KERNELS_STATUS_H
#define AMO_KERNELS_STATUS_H

typedef enum KnStatus {
    KN_OK = 0,
    KN_EINVAL,       /* a NULL pointer with n > 0, a non-finite or out-of-range value */
    KN_EOVERLAP,     /* two buffers of one call overlap                                  */
    KN_EUNSUPPORTED, /* a CPU level was asked for that this CPU does not have            */
    KN_ENONFINITE,   /* the input holds a NaN or an Inf (the result is still written)    */
    KN_ENOMEM,
    KN_EIO,          /* a file could not be read or written                              */
    KN_EFORMAT,      /* a file is truncated, corrupted or does not match                 */
} KnStatus;

const char *kn_status_str(KnStatus s);

#endif

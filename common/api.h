/* AMO_API marks the library's public functions: libamo.so is built with
 * -fvisibility=hidden (meson.build) and exports these alone. */
#ifndef AMO_COMMON_API_H
#define AMO_COMMON_API_H

#define AMO_API __attribute__((visibility("default")))

#endif

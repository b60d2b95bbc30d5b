/* What several amo-bench commands share: the output directory, the CPU
 * level, the one-process check, the command line and oneDNN's version for
 * metadata, and a small JSON writer for metadata.json files. */
#ifndef AMO_HARNESS_COMMON_H
#define AMO_HARNESS_COMMON_H

#include "harness/commands.h"

/* Commands that run as one process (kernels, throughput, loader, convex,
 * combine): under mpirun with more than one rank, a usage error naming the
 * command and the rank count, since every rank would time the same work
 * at once and write the same files.  Call after the options (--help works). */
void hx_one_process(const char *cmd);

/* mkdir -p dir, then proves it writable by creating a file in it; exits 2
 * naming opt and the directory otherwise, before any work starts. */
void hx_out_dir(const char *opt, const char *dir);

/* Sets the kernels' CPU level from the command's --arch (ask, may be NULL),
 * else the one given before the command, else AMO_ARCH: "auto", "scalar",
 * "avx2", "avx512", "neon".  A level this CPU lacks or an unknown name exits
 * 2 naming where it came from. */
void hx_apply_arch(const char *ask);

/* `amo-bench --arch LEVEL COMMAND ...`: the level every command takes when
 * it is given no --arch of its own (NULL: none). */
void hx_set_arch_default(const char *ask);
const char *hx_arch_default(void);

/* The whole command line, shell-quoted; free() it. */
char *hx_command_line(const HxInvocation *whole);

/* --conv-algo's values, indexed by NN_CONV_ALGO_* (nn/types.h); NULL-ended
 * for hx_parse_choice. */
extern const char *const hx_conv_algo_names[];

const char *hx_onednn_version(void); /* "2.6.3 (hash ...)" or "none"     */

/* A flat JSON object written to a temporary and renamed on close. */
typedef struct HxJson HxJson;
HxJson *hx_json_open(const char *path);
void hx_json_str(HxJson *j, const char *key, const char *value);
void hx_json_int(HxJson *j, const char *key, long long value);
void hx_json_num(HxJson *j, const char *key, double value);
void hx_json_close(HxJson *j);

#endif

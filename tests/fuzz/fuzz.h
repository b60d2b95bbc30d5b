/* What the fuzz targets (tests/fuzz/fuzz_*.c) and the seed writer
 * (tests/fuzz/seeds.c) share: the loaders read paths, so an input is
 * written to a file first; the state target's optimizers and the run of the
 * checkpoint and summary targets, which their seeds must match field by
 * field. */
#ifndef AMO_TESTS_FUZZ_FUZZ_H
#define AMO_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/checkpoint.h"
#include "optim/optim.h"

/* libFuzzer's entry point; tests/fuzz/replay.c calls it without libFuzzer. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The directory for the inputs: $TMPDIR/amo-fuzz-TAG-XXXXXX, else in
 * /dev/shm: on a disk, rewriting a file at every run made the IDX target 4x
 * slower (ext4 flushes a truncated and rewritten file at close).  Removed
 * at exit. */
static char fuzz_dir[160];

static inline void fuzz_dir_remove(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir);
}

static inline void fuzz_dir_make(const char *tag)
{
    const char *base = getenv("TMPDIR");
    struct stat sb;
    if (!base || !*base)
        base = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0
                   ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/amo-fuzz-%s-XXXXXX", base, tag);
    if (!mkdtemp(fuzz_dir)) {
        perror(fuzz_dir);
        exit(3);
    }
    atexit(fuzz_dir_remove);
}

/* Writes data to path (replacing it); exits if it cannot: a fuzz run whose
 * input never reaches the loader would look clean. */
static inline void fuzz_write(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        exit(3);
    }
}

/* The IDX target's input: a 2-byte little-endian length, that many bytes
 * of the images file, and the labels file (the rest).  A length past the
 * end takes all that is left. */
#define FUZZ_IDX_SPLIT 2

/* The CIFAR-10 target's input: one byte choosing which of the six files it
 * replaces (modulo 6; the others are valid one-record files), and the
 * file's bytes. */
#define FUZZ_CIFAR_FILES 6

/* The state target's optimizers: every algorithm, each state buffer count
 * (0, 1, 2) and both state types, over two tensors of 3 and 5 elements.
 * Each input is offered to all of them. */
#define FUZZ_NOPT 5
/* The tag the seeds are saved with (opt_save's run tag): the fuzzed files
 * must carry it to get past the tag check. */
#define FUZZ_STATE_TAG 0x616d6f2d66757a7aull
enum { FUZZ_N0 = 3, FUZZ_N1 = 5 };

typedef struct FuzzOpt {
    Opt *opt;
    float param[FUZZ_N0 + FUZZ_N1], grad[FUZZ_N0 + FUZZ_N1];
} FuzzOpt;

static inline OptConfig fuzz_opt_config(int i)
{
    static const OptAlgo algo[FUZZ_NOPT] = { OPT_AMO, OPT_ADAM, OPT_SGD, OPT_SGD, OPT_RMSPROP };
    OptConfig c = opt_config_default(algo[i]);
    c.threads = 1;
    if (i == 1)
        c.state = OPT_STATE_BF16;
    if (i == 3)
        c.momentum = 0.0f; /* no state buffer at all */
    if (i == 4)
        c.momentum = 0.9f; /* RMSprop's two buffers */
    return c;
}

/* Creates optimizer i over f's tensors; NULL (after a message) if it
 * cannot. */
static inline Opt *fuzz_opt_create(FuzzOpt *f, int i)
{
    const OptConfig c = fuzz_opt_config(i);
    const OptTensor t[2] = { { f->param, f->grad, FUZZ_N0, 0 },
                             { f->param + FUZZ_N0, f->grad + FUZZ_N0, FUZZ_N1, 1 } };
    char err[256];
    if (opt_create(&f->opt, &c, t, 2, err, sizeof err) != AMO_OK) {
        fprintf(stderr, "fuzz: optimizer %d: %s\n", i, err);
        return NULL;
    }
    return f->opt;
}

/* Whether err names its cause as the harness's readers promise: "offset
 * N: ..." with N within the size bytes read. */
static inline int fuzz_err_at_offset(const char *err, size_t size)
{
    if (strncmp(err, "offset ", 7))
        return 0;
    char *end;
    const unsigned long long off = strtoull(err + 7, &end, 10);
    return end != err + 7 && *end == ':' && off <= size;
}

/* The run the checkpoint and summary targets read for: 12 steps, 5 per
 * epoch of batch 4 over 18 examples (an epoch's last batch is short, so the
 * batcher's position is capped), evaluations every 5 steps, a model of 5
 * parameters and 2 batch-norm statistics.  Its checkpoints are at steps 0,
 * 5 and 10. */
enum { FUZZ_CKPT_STEPS = 12, FUZZ_CKPT_EVERY = 5, FUZZ_CKPT_PARAMS = 5, FUZZ_CKPT_STATS = 2 };

static inline HxCkptRun fuzz_ckpt_run(void)
{
    return (HxCkptRun){ .run_id = "synthetic-r18w0.0625-amo-lr0.001-s1-fuzz",
                        .total_steps = FUZZ_CKPT_STEPS, .steps_per_epoch = 5,
                        .eval_every = FUZZ_CKPT_EVERY, .batch = 4, .ntrain = 18, .nval = 6,
                        .ntest = 8, .nparams = FUZZ_CKPT_PARAMS, .nstats = FUZZ_CKPT_STATS,
                        .ranks = 1 };
}

#endif

/* nn_data_cifar10 (nn/data.c) with one of its six files replaced by the
 * input (tests/fuzz/fuzz.h), the others valid one-record files.  The loader
 * must return a status; on AMO_OK both sets must be whole, and nothing may
 * leak. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/data.h"
#include "tests/fuzz/fuzz.h"

#define CIFAR_REC 3073 /* a label byte and 3 x 32 x 32 pixels */

static const char *const names[FUZZ_CIFAR_FILES] = {
    "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
    "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
};
static char g_path[FUZZ_CIFAR_FILES][200];
static unsigned char g_valid[CIFAR_REC];

static void put_valid(int i)
{
    fuzz_write(g_path[i], g_valid, sizeof g_valid);
}

static void setup(void)
{
    if (g_path[0][0])
        return;
    fuzz_dir_make("cifar");
    g_valid[0] = 7;
    for (int i = 1; i < CIFAR_REC; i++)
        g_valid[i] = (unsigned char)i;
    for (int i = 0; i < FUZZ_CIFAR_FILES; i++) {
        snprintf(g_path[i], sizeof g_path[i], "%s/%s", fuzz_dir, names[i]);
        put_valid(i);
    }
}

static void check_set(const NnDataset *d, int min_n)
{
    if (d->n < min_n || d->c != 3 || d->h != 32 || d->w != 32 || d->classes != 10 || !d->x
        || !d->y)
        abort();
    for (int i = 0; i < d->n; i++)
        if (d->y[i] >= d->classes)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup();
    const int which = data[0] % FUZZ_CIFAR_FILES;
    fuzz_write(g_path[which], data + 1, size - 1);
    NnDataset train = { 0 }, test = { 0 };
    char err[512] = "";
    if (nn_data_cifar10(&train, &test, fuzz_dir, err, sizeof err) == AMO_OK) {
        check_set(&train, 5);
        check_set(&test, 1);
        nn_data_free(&train);
        nn_data_free(&test);
    } else if (!err[0] || train.x || train.y || test.x || test.y) {
        abort(); /* a failure names its cause and returns nothing half-loaded */
    }
    put_valid(which);
    return 0;
}

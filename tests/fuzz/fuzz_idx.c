/* nn_data_idx (nn/data.c) on any pair of files: an input is split into an
 * images file and a labels file (tests/fuzz/fuzz.h), each raw or gzip, as
 * the loader takes either.  The loader must return a status; on AMO_OK the
 * dataset must be what the headers say, and nothing may leak. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/data.h"
#include "tests/fuzz/fuzz.h"

static char g_images[200], g_labels[200];

static void setup(void)
{
    if (g_images[0])
        return;
    fuzz_dir_make("idx");
    snprintf(g_images, sizeof g_images, "%s/images", fuzz_dir);
    snprintf(g_labels, sizeof g_labels, "%s/labels", fuzz_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_IDX_SPLIT)
        return 0;
    setup();
    size_t ni = (size_t)data[0] | (size_t)data[1] << 8;
    data += FUZZ_IDX_SPLIT;
    size -= FUZZ_IDX_SPLIT;
    if (ni > size)
        ni = size;
    fuzz_write(g_images, data, ni);
    fuzz_write(g_labels, data + ni, size - ni);
    NnDataset d = { 0 };
    char err[512] = "";
    if (nn_data_idx(&d, g_images, g_labels, err, sizeof err) == AMO_OK) {
        if (d.n < 1 || d.c != 1 || d.h < 1 || d.w < 1 || d.classes != 10 || !d.x || !d.y)
            abort();
        for (int i = 0; i < d.n; i++)
            if (d.y[i] >= d.classes)
                abort();
        nn_data_free(&d);
    } else if (!err[0] || d.x || d.y) {
        abort(); /* a failure names its cause and returns nothing half-loaded */
    }
    return 0;
}

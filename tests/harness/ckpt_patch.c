/* ckpt-patch FILE OFFSET VALUE: writes VALUE as a little-endian i64 at byte
 * OFFSET of FILE, then rewrites the file's last 8 bytes with the FNV-1a 64
 * of the bytes before them, as checkpoint.bin ends.  tests/test_train.sh
 * crafts with it the checkpoints that pass their checksum and lie. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ckpt-patch FILE OFFSET VALUE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r+b");
    if (!f || fseek(f, 0, SEEK_END) != 0) {
        fprintf(stderr, "ckpt-patch: %s: cannot open\n", argv[1]);
        return 1;
    }
    const long len = ftell(f);
    const long off = strtol(argv[2], NULL, 10);
    const int64_t value = strtoll(argv[3], NULL, 10);
    unsigned char *d = malloc(len > 0 ? (size_t)len : 1);
    if (!d || len < 16 || off < 0 || off + 8 > len - 8) {
        fprintf(stderr, "ckpt-patch: %s: offset %ld outside its %ld bytes\n", argv[1], off, len);
        return 1;
    }
    rewind(f);
    if (fread(d, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "ckpt-patch: %s: cannot read\n", argv[1]);
        return 1;
    }
    memcpy(d + off, &value, 8);
    const uint64_t sum = amo_fnv1a64(d, (size_t)len - 8);
    memcpy(d + len - 8, &sum, 8);
    rewind(f);
    const int ok = fwrite(d, 1, (size_t)len, f) == (size_t)len;
    if (fclose(f) != 0 || !ok) {
        fprintf(stderr, "ckpt-patch: %s: cannot write\n", argv[1]);
        return 1;
    }
    free(d);
    return 0;
}

/* Files and buffers (common/file.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/file.h"

static AmoStatus not_regular(const char *path, mode_t mode, char *err, size_t len)
{
    const char *what = S_ISDIR(mode)    ? "a directory"
                       : S_ISFIFO(mode) ? "a FIFO"
                       : S_ISCHR(mode)  ? "a character device"
                       : S_ISBLK(mode)  ? "a block device"
                       : S_ISSOCK(mode) ? "a socket"
                                        : "of an unknown kind";
    errno = EINVAL;
    return amo_err(AMO_EIO, err, len, "%s: not a regular file (it is %s)", path, what);
}

AmoStatus amo_file_size(const char *path, size_t *size, char *err, size_t len)
{
    struct stat sb;
    *size = 0;
    if (stat(path, &sb) != 0) {
        const int e = errno;
        amo_err(AMO_EIO, err, len, "%s: cannot stat: %s", path, strerror(e));
        errno = e; /* ENOENT: the caller may say what was expected there */
        return AMO_EIO;
    }
    if (!S_ISREG(sb.st_mode))
        return not_regular(path, sb.st_mode, err, len);
    *size = (size_t)sb.st_size;
    return AMO_OK;
}

/* O_NONBLOCK, because opening a FIFO that has no writer blocks for good;
 * fstat on the descriptor leaves no gap between the check and the open. */
AmoStatus amo_read_file(const char *path, unsigned char **data, size_t *n, char *err,
                        size_t len)
{
    *data = NULL;
    *n = 0;
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        const int e = errno;
        amo_err(AMO_EIO, err, len, "%s: cannot open: %s", path, strerror(e));
        errno = e;
        return AMO_EIO;
    }
    struct stat sb;
    AmoStatus st = AMO_OK;
    if (fstat(fd, &sb) != 0)
        st = amo_err(AMO_EIO, err, len, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = not_regular(path, sb.st_mode, err, len);
    else if ((uintmax_t)sb.st_size >= SIZE_MAX || !(*data = malloc((size_t)sb.st_size + 1)))
        st = amo_err(AMO_ENOMEM, err, len, "%s: out of memory for its %lld bytes", path,
                     (long long)sb.st_size);
    size_t done = 0;
    while (st == AMO_OK && done < (size_t)sb.st_size) {
        const size_t want = (size_t)sb.st_size - done;
        const ssize_t r = read(fd, *data + done, want < (1u << 30) ? want : (1u << 30));
        if (r > 0)
            done += (size_t)r;
        else if (r < 0 && errno != EINTR)
            st = amo_err(AMO_EIO, err, len, "%s: read error at offset %zu: %s", path, done,
                         strerror(errno));
        else if (r == 0)
            st = amo_err(AMO_EIO, err, len, "%s: ends at offset %zu, not %lld: changed while read",
                         path, done, (long long)sb.st_size);
    }
    const int e = errno;
    close(fd);
    errno = e;
    if (st != AMO_OK) {
        free(*data);
        *data = NULL;
        return st;
    }
    (*data)[done] = 0;
    *n = done;
    return AMO_OK;
}

struct AmoFile {
    FILE *f;
    char *path, *tmp;
};

void amo_file_abort(AmoFile *f)
{
    if (!f)
        return;
    const int e = errno;
    if (f->f)
        fclose(f->f);
    if (f->tmp)
        unlink(f->tmp);
    free(f->path);
    free(f->tmp);
    free(f);
    errno = e;
}

AmoStatus amo_file_create(AmoFile **out, const char *path, char *err, size_t len)
{
    static atomic_uint serial;
    *out = NULL;
    AmoFile *f = calloc(1, sizeof *f);
    const size_t pl = strlen(path), tl = pl + 48;
    if (!f || !(f->path = malloc(pl + 1)) || !(f->tmp = malloc(tl))) {
        amo_file_abort(f);
        return amo_err(AMO_ENOMEM, err, len, "%s: out of memory", path);
    }
    memcpy(f->path, path, pl + 1);
    const char *slash = strrchr(path, '/');
    const int dirlen = slash ? (int)(slash - path) + 1 : 0;
    /* O_EXCL on a name no other process or thread uses: 0666 less the umask,
     * as for any file the program creates */
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        snprintf(f->tmp, tl, "%.*s.%s.%ld.%u.tmp", dirlen, path, path + dirlen, (long)getpid(),
                 atomic_fetch_add(&serial, 1u));
        fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0 || !(f->f = fdopen(fd, "wb"))) {
        const int e = errno;
        if (fd >= 0)
            close(fd);
        else {
            free(f->tmp);
            f->tmp = NULL; /* nothing was created */
        }
        amo_err(AMO_EIO, err, len, "%s: cannot create a file beside it: %s", path, strerror(e));
        amo_file_abort(f);
        errno = e;
        return AMO_EIO;
    }
    *out = f;
    return AMO_OK;
}

FILE *amo_file_stream(AmoFile *f) { return f->f; }

static int fsync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return -1;
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -1;
    const int r = fsync(fd);
    close(fd);
    return r;
}

AmoStatus amo_file_commit(AmoFile *f, char *err, size_t len)
{
    const int ok = fflush(f->f) == 0 && !ferror(f->f) && fsync(fileno(f->f)) == 0;
    int e = errno;
    const int closed = fclose(f->f) == 0;
    f->f = NULL;
    if (ok && !closed)
        e = errno;
    if (!ok || !closed || rename(f->tmp, f->path) != 0) {
        if (ok && closed)
            e = errno;
        amo_err(AMO_EIO, err, len, "%s: cannot write: %s", f->path, strerror(e));
        amo_file_abort(f);
        errno = e;
        return AMO_EIO;
    }
    free(f->tmp);
    f->tmp = NULL; /* renamed: nothing to remove */
    /* the rename itself on disk too (a crash right after must not undo it) */
    const AmoStatus st = fsync_dir(f->path) == 0 ? AMO_OK
                         : amo_err(AMO_EIO, err, len, "%s: cannot sync its directory: %s",
                                   f->path, strerror(errno));
    amo_file_abort(f);
    return st;
}

AmoStatus amo_write_atomic(const char *path, const void *data, size_t n, char *err, size_t len)
{
    AmoFile *f;
    const AmoStatus st = amo_file_create(&f, path, err, len);
    if (st != AMO_OK)
        return st;
    if (n && fwrite(data, 1, n, f->f) != n) {
        const int e = errno;
        amo_err(AMO_EIO, err, len, "%s: cannot write: %s", path, strerror(e));
        amo_file_abort(f);
        errno = e;
        return AMO_EIO;
    }
    return amo_file_commit(f, err, len);
}

void amo_buf_put(AmoBuf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (n > SIZE_MAX / 2 - b->len) { /* the doubling below would overflow */
        b->oom = 1;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

void amo_buf_free(AmoBuf *b)
{
    free(b->p);
    *b = (AmoBuf){ 0 };
}

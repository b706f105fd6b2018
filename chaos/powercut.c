/*
 * Power-cut simulation for redis-server, loaded with LD_PRELOAD by scripts/chaos.
 *
 * What a power cut loses is what the kernel had not yet put on disk: every write()
 * since the last fsync. This shim makes that explicit for Redis's append-only files
 * (any file whose name contains ".aof"): write() to such a file is held in this
 * process's memory, and only fsync()/fdatasync() on it writes the held bytes to the
 * file (then syncs). SIGKILL the process, and whatever was held is gone, exactly
 * the bytes a power cut would have taken. Every other file is untouched.
 *
 * Built at run time with the machine's C compiler: cc -shared -fPIC -o x.so x.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FDS 4096

struct held {
    int tracked;
    char *data;
    size_t len, cap;
};

static struct held fds[MAX_FDS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);

static void init(void) {
    if (real_write) return;
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_close = dlsym(RTLD_NEXT, "close");
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_write = dlsym(RTLD_NEXT, "write");
}

static void track(int fd, const char *path, int flags) {
    if (fd < 0 || fd >= MAX_FDS || path == NULL) return;
    if (!(flags & (O_WRONLY | O_RDWR))) return;
    pthread_mutex_lock(&lock);
    fds[fd].len = 0;
    fds[fd].tracked = strstr(path, ".aof") != NULL;
    pthread_mutex_unlock(&lock);
}

static mode_t mode_of(int flags, va_list ap) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    init();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    int fd = real_open(path, flags, mode);
    track(fd, path, flags);
    return fd;
}

int open64(const char *path, int flags, ...) {
    init();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    int fd = real_open64 ? real_open64(path, flags, mode) : real_open(path, flags, mode);
    track(fd, path, flags);
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...) {
    init();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    int fd = real_openat(dirfd, path, flags, mode);
    track(fd, path, flags);
    return fd;
}

ssize_t write(int fd, const void *buf, size_t count) {
    init();
    if (fd >= 0 && fd < MAX_FDS) {
        pthread_mutex_lock(&lock);
        if (fds[fd].tracked) {
            struct held *h = &fds[fd];
            if (h->len + count > h->cap) {
                size_t cap = h->cap ? h->cap : 65536;
                while (cap < h->len + count) cap *= 2;
                char *data = realloc(h->data, cap);
                if (data == NULL) {
                    pthread_mutex_unlock(&lock);
                    errno = ENOMEM;
                    return -1;
                }
                h->data = data;
                h->cap = cap;
            }
            memcpy(h->data + h->len, buf, count);
            h->len += count;
            pthread_mutex_unlock(&lock);
            return (ssize_t)count;
        }
        pthread_mutex_unlock(&lock);
    }
    return real_write(fd, buf, count);
}

/* Write what is held for fd to the file; called with the lock held. */
static int flush_held(int fd) {
    struct held *h = &fds[fd];
    size_t done = 0;
    while (done < h->len) {
        ssize_t n = real_write(fd, h->data + done, h->len - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            memmove(h->data, h->data + done, h->len - done);
            h->len -= done;
            return -1;
        }
        done += (size_t)n;
    }
    h->len = 0;
    return 0;
}

static int sync_fd(int fd, int (*real)(int)) {
    if (fd >= 0 && fd < MAX_FDS) {
        pthread_mutex_lock(&lock);
        int failed = fds[fd].tracked ? flush_held(fd) : 0;
        pthread_mutex_unlock(&lock);
        if (failed) return -1;
    }
    return real(fd);
}

int fsync(int fd) {
    init();
    return sync_fd(fd, real_fsync);
}

int fdatasync(int fd) {
    init();
    return sync_fd(fd, real_fdatasync);
}

int close(int fd) {
    init();
    if (fd >= 0 && fd < MAX_FDS) {
        pthread_mutex_lock(&lock);
        /* Closing without fsync: the kernel would keep the bytes in its cache, where a
         * power cut still loses them. Keep them lost: drop what is held. */
        fds[fd].tracked = 0;
        fds[fd].len = 0;
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}

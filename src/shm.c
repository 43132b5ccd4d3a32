/*
 * shm.c - memfd zones shared by the supervisor and its workers (shm.h).
 */
#include "shm.h"
#include "errors.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int mw_shm_create(const char *label, size_t size, void **map, int *fd) {
    *map = NULL;
    *fd = -1;
    int f = memfd_create(label, MFD_CLOEXEC);
    if (f < 0)
        return MW_ENOMEM;
    void *m = MAP_FAILED;
    if (ftruncate(f, (off_t)size) == 0) /* zero-filled, pages taken as written */
        m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    if (m == MAP_FAILED) {
        close(f);
        return MW_ENOMEM;
    }
    *map = m;
    *fd = f;
    return 0;
}

int mw_shm_attach(int fd, size_t min_size, size_t max_size, void **map, size_t *size) {
    *map = NULL;
    *size = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < 0 || (unsigned long long)sb.st_size < min_size ||
        (unsigned long long)sb.st_size > max_size)
        return MW_EINVAL;
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return MW_ENOMEM;
    *map = m;
    *size = (size_t)sb.st_size;
    return 0;
}

/*
 * procs.c - the server under test as a tree of processes (--server-pid):
 * the process itself and every descendant, so that a server with workers
 * (moonwire's supervisor and its `workers = N` processes) is measured
 * whole. From /proc: CPU time (utime, stime of /proc/P/stat, all threads),
 * memory (VmRSS of /proc/P/status, Pss of /proc/P/smaps_rollup: shared
 * pages split between the processes that map them, so the sum over the
 * tree counts them once), read and write syscalls (syscr, syscw of
 * /proc/P/io: how well writes are batched), and which process holds the server end of each
 * of this generator's connections (its socket inodes in /proc/P/fd,
 * matched to our local addresses through /proc/net/tcp).
 *
 * Everything here runs outside the measured window or at its two ends.
 */
#include "bench.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* read_stat fills the name, utime and stime of p->pid: 0, or -1 when the
 * process is gone. */
static int read_stat(mw_bench_proc_t *p) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", p->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (!open || !close || close < open)
        return -1;
    size_t nl = (size_t)(close - open - 1);
    if (nl >= sizeof(p->name))
        nl = sizeof(p->name) - 1;
    memcpy(p->name, open + 1, nl);
    p->name[nl] = 0;
    for (char *c = p->name; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            *c = '_'; /* it goes into the JSON line as it is */
    /* After "(comm) ": state is field 3; utime is field 14, stime 15. */
    char *s = close + 2;
    int field = 3;
    long long ut = -1, st = -1;
    while (*s && field <= 15) {
        if (field == 14)
            ut = strtoll(s, NULL, 10);
        if (field == 15)
            st = strtoll(s, NULL, 10);
        s = strchr(s, ' ');
        if (!s)
            break;
        s++;
        field++;
    }
    if (ut < 0 || st < 0)
        return -1;
    p->utime = ut;
    p->stime = st;
    return 0;
}

/* field reads "Name: N" from a /proc file; N or -1. */
static long long field(const char *path, const char *name) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    size_t nl = strlen(name);
    long long v = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
            v = strtoll(line + nl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* kb_field reads "Name:   N kB" from a /proc file; bytes or -1. */
static long long kb_field(const char *path, const char *name) {
    long long kb = field(path, name);
    return kb < 0 ? -1 : kb * 1024;
}

/* add_children appends the children of procs[i] (every thread's list). */
static int add_children(mw_bench_proc_t *procs, int n, int max, int i) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/task", procs[i].pid);
    DIR *d = opendir(path);
    if (!d)
        return n;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char cpath[64 + 256 + 16];
        snprintf(cpath, sizeof(cpath), "/proc/%ld/task/%s/children", procs[i].pid, e->d_name);
        FILE *f = fopen(cpath, "r");
        if (!f)
            continue;
        long pid;
        while (n < max && fscanf(f, "%ld", &pid) == 1) {
            memset(&procs[n], 0, sizeof(procs[n]));
            procs[n++].pid = pid;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

int mw_bench_procs_read(long pid, mw_bench_proc_t *procs, int max, int mem) {
    if (max < 1)
        return 0;
    memset(&procs[0], 0, sizeof(procs[0]));
    procs[0].pid = pid;
    int n = 1;
    for (int i = 0; i < n; i++)
        n = add_children(procs, n, max, i);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        mw_bench_proc_t p = procs[i];
        p.rss = p.pss = -1;
        if (read_stat(&p) != 0) {
            if (i == 0)
                return 0; /* the server itself is gone */
            continue;     /* a child that just exited */
        }
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/io", p.pid);
        p.syscr = field(path, "syscr");
        p.syscw = field(path, "syscw");
        if (mem) {
            snprintf(path, sizeof(path), "/proc/%ld/status", p.pid);
            p.rss = kb_field(path, "VmRSS");
            snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", p.pid);
            p.pss = kb_field(path, "Pss");
        }
        procs[kept++] = p;
    }
    return kept;
}

long mw_bench_clk_tck(void) {
    long t = sysconf(_SC_CLK_TCK);
    return t > 0 ? t : 100;
}

/* ---- which process serves each connection -------------------------------- */

typedef struct {
    unsigned long long key; /* inode, or address << 16 | port */
    int proc;
} pair_t;

static int cmp_pair(const void *a, const void *b) {
    unsigned long long x = ((const pair_t *)a)->key, y = ((const pair_t *)b)->key;
    return x < y ? -1 : x > y;
}

static int push(pair_t **v, size_t *n, size_t *cap, unsigned long long key, int proc) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        pair_t *nv = realloc(*v, c * sizeof(**v));
        if (!nv)
            return -1;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = (pair_t){key, proc};
    return 0;
}

static const pair_t *find(const pair_t *v, size_t n, unsigned long long key) {
    pair_t k = {key, 0};
    return bsearch(&k, v, n, sizeof(*v), cmp_pair);
}

int mw_bench_procs_owners(const mw_bench_proc_t *procs, int n, mw_bench_client_t *const *clients,
                          size_t nc, int *owner) {
    pair_t *inodes = NULL, *peers = NULL;
    size_t ni = 0, ci = 0, np = 0, cp = 0;
    int rc = -1;
    /* The socket inodes of every process of the server. */
    for (int i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/fd", procs[i].pid);
        DIR *d = opendir(path);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            char lpath[64 + 256 + 2], target[64];
            snprintf(lpath, sizeof(lpath), "%s/%s", path, e->d_name);
            ssize_t l = readlink(lpath, target, sizeof(target) - 1);
            if (l <= 8)
                continue;
            target[l] = 0;
            unsigned long long ino;
            if (sscanf(target, "socket:[%llu]", &ino) == 1 &&
                push(&inodes, &ni, &ci, ino, i) != 0) {
                closedir(d);
                goto out;
            }
        }
        closedir(d);
    }
    qsort(inodes, ni, sizeof(*inodes), cmp_pair);
    /* Their TCP connections: the remote end is one of our sockets. */
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        goto out;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        unsigned laddr, lport, raddr, rport, st;
        unsigned long long ino;
        if (sscanf(line, " %*d: %x:%x %x:%x %x %*s %*s %*s %*s %*s %llu", &laddr, &lport, &raddr,
                   &rport, &st, &ino) != 6)
            continue;
        const pair_t *p = find(inodes, ni, ino);
        if (p && push(&peers, &np, &cp, (unsigned long long)raddr << 16 | rport, p->proc) != 0) {
            fclose(f);
            goto out;
        }
    }
    fclose(f);
    qsort(peers, np, sizeof(*peers), cmp_pair);
    for (size_t i = 0; i < nc; i++) {
        struct sockaddr_in sa;
        owner[i] = -1;
        if (!clients[i] || mw_bench_client_sockname(clients[i], &sa) != 0)
            continue;
        /* /proc/net/tcp prints the address as the int it is in memory. */
        const pair_t *p =
            find(peers, np, (unsigned long long)sa.sin_addr.s_addr << 16 | ntohs(sa.sin_port));
        if (p)
            owner[i] = p->proc;
    }
    rc = 0;
out:
    free(inodes);
    free(peers);
    return rc;
}

int mw_bench_procs_split(const mw_bench_proc_t *procs, int n, mw_bench_client_t *const *clients,
                         size_t nc, size_t nsub, size_t *subs, size_t *pubs, size_t *unmatched) {
    int *owner = malloc((nc ? nc : 1) * sizeof(*owner));
    if (!owner)
        return -1;
    for (int i = 0; i < n; i++)
        subs[i] = pubs[i] = 0;
    unmatched[0] = unmatched[1] = 0;
    if (mw_bench_procs_owners(procs, n, clients, nc, owner) != 0) {
        free(owner);
        return -1;
    }
    for (size_t i = 0; i < nc; i++) {
        if (!clients[i])
            continue;
        if (owner[i] < 0)
            unmatched[i < nsub ? 0 : 1]++;
        else if (i < nsub)
            subs[owner[i]]++;
        else
            pubs[owner[i]]++;
    }
    free(owner);
    return 0;
}

const mw_bench_proc_t *mw_bench_procs_find(const mw_bench_proc_t *procs, int n, long pid) {
    for (int i = 0; i < n; i++)
        if (procs[i].pid == pid)
            return &procs[i];
    return NULL;
}

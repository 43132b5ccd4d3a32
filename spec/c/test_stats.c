/*
 * test_stats.c - the stats zone (src/stats.c): a snapshot published and
 * read back, through a second mapping of the memfd too; what the
 * supervisor records (pid, restarts); the limits; and, across a real
 * fork(), a writer hammering its slot (and stopped with SIGSTOP at random
 * points, mid-copy most of the time) while this process reads: every copy
 * it accepts is one whole snapshot, and no read ever waits.
 */
#include "errors.h"
#include "stats.h"
#include "test.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static mw_stats_numbers_t numbers(uint64_t k) {
    mw_stats_numbers_t n = {.pid = (int64_t)k,
                            .published_ms = k,
                            .started_ms = k,
                            .connections = k,
                            .rooms = k,
                            .dropped = k,
                            .refused = k,
                            .rate_limited = k,
                            .reloads = k};
    return n;
}

static void test_publish_read(void) {
    mw_stats_t *st, *other;
    int fd;
    REQUIRE(mw_stats_create(&st, 2, 4096, &fd) == 0);
    CHECK_EQ(mw_stats_workers(st), 2);
    CHECK(mw_stats_created_ms(st) > 0);
    mw_stats_snapshot_t snap = {0};
    CHECK_EQ(mw_stats_read(st, 1, &snap), MW_ENOTFOUND);
    CHECK_EQ(mw_stats_read(st, 0, &snap), MW_EINVAL);
    CHECK_EQ(mw_stats_read(st, 3, &snap), MW_EINVAL);
    mw_stats_numbers_t n = numbers(7);
    CHECK_EQ(mw_stats_publish(st, 1, &n, "abc", 3, "de", 2), 0);
    REQUIRE(mw_stats_read(st, 1, &snap) == 0);
    CHECK_MEM(snap.text, snap.len, "abcde", 5);
    CHECK_EQ(snap.n.connections, 7);
    CHECK_EQ(mw_stats_read(st, 2, &snap), MW_ENOTFOUND); /* slots are apart */
    /* a second mapping, at another address, sees the same slots */
    REQUIRE(mw_stats_attach(&other, fd) == 0);
    n = numbers(8);
    CHECK_EQ(mw_stats_publish(other, 2, &n, "xyz", 3, NULL, 0), 0);
    REQUIRE(mw_stats_read(st, 2, &snap) == 0);
    CHECK_MEM(snap.text, snap.len, "xyz", 3);
    CHECK_EQ(snap.n.reloads, 8);
    /* the newest wins, in either buffer, several times over */
    for (uint64_t k = 10; k < 15; k++) {
        n = numbers(k);
        char text[32];
        int len = snprintf(text, sizeof text, "gen %llu", (unsigned long long)k);
        CHECK_EQ(mw_stats_publish(st, 1, &n, text, (size_t)len, NULL, 0), 0);
        REQUIRE(mw_stats_read(other, 1, &snap) == 0);
        CHECK_MEM(snap.text, snap.len, text, (size_t)len);
        CHECK_EQ(snap.n.dropped, k);
    }
    /* too big: refused, the previous snapshot stays */
    char *big = calloc(1, 5000);
    REQUIRE(big != NULL);
    CHECK_EQ(mw_stats_publish(st, 1, &n, big, 4000, big, 97), MW_ETOOBIG);
    CHECK_EQ(mw_stats_publish(st, 1, &n, big, 4097, NULL, 0), MW_ETOOBIG);
    CHECK_EQ(mw_stats_publish(st, 3, &n, big, 1, NULL, 0), MW_EINVAL);
    REQUIRE(mw_stats_read(st, 1, &snap) == 0);
    CHECK_MEM(snap.text, snap.len, "gen 14", 6);
    CHECK_EQ(mw_stats_publish(st, 1, &n, big, 4000, big, 96), 0); /* exactly text_max */
    REQUIRE(mw_stats_read(st, 1, &snap) == 0);
    CHECK_EQ(snap.len, 4096);
    free(big);
    mw_stats_snapshot_free(&snap);
    mw_stats_free(other);
    mw_stats_free(st);
    close(fd);
}

static void test_process(void) {
    mw_stats_t *st;
    int fd;
    REQUIRE(mw_stats_create(&st, 3, 1024, &fd) == 0);
    int64_t pid;
    uint32_t restarts;
    mw_stats_process(st, 2, &pid, &restarts);
    CHECK_EQ(pid, 0);
    CHECK_EQ(restarts, 0);
    mw_stats_spawned(st, 2, 100);
    mw_stats_process(st, 2, &pid, &restarts);
    CHECK_EQ(pid, 100);
    CHECK_EQ(restarts, 0); /* the first start is no restart */
    mw_stats_exited(st, 2);
    mw_stats_process(st, 2, &pid, &restarts);
    CHECK_EQ(pid, 0);
    mw_stats_spawned(st, 2, 101);
    mw_stats_spawned(st, 3, 200);
    mw_stats_process(st, 2, &pid, &restarts);
    CHECK_EQ(pid, 101);
    CHECK_EQ(restarts, 1);
    mw_stats_process(st, 3, &pid, &restarts);
    CHECK_EQ(pid, 200);
    CHECK_EQ(restarts, 0);
    mw_stats_spawned(st, 9, 1); /* no such slot: ignored */
    mw_stats_process(st, 9, &pid, &restarts);
    CHECK_EQ(pid, 0);
    mw_stats_free(st);
    close(fd);
}

static void test_limits(void) {
    mw_stats_t *st;
    int fd;
    CHECK_EQ(mw_stats_create(&st, 0, 1024, &fd), MW_EINVAL);
    CHECK_EQ(mw_stats_create(&st, 65, 1024, &fd), MW_EINVAL);
    CHECK_EQ(mw_stats_create(&st, 1, 1, &fd), MW_EINVAL);
    /* a memfd that is no zone */
    int junk = memfd_create("junk", MFD_CLOEXEC);
    REQUIRE(junk >= 0);
    REQUIRE(ftruncate(junk, 65536) == 0);
    CHECK_EQ(mw_stats_attach(&st, junk), MW_EINVAL);
    close(junk);
    /* the zone the server makes: 64 workers of MW_STATS_TEXT_MAX, pages
     * taken only when written */
    REQUIRE(mw_stats_create(&st, 64, MW_STATS_TEXT_MAX, &fd) == 0);
    mw_stats_numbers_t n = numbers(1);
    CHECK_EQ(mw_stats_publish(st, 64, &n, "last", 4, NULL, 0), 0);
    mw_stats_snapshot_t snap = {0};
    REQUIRE(mw_stats_read(st, 64, &snap) == 0);
    CHECK_MEM(snap.text, snap.len, "last", 4);
    mw_stats_snapshot_free(&snap);
    mw_stats_free(st);
    close(fd);
}

/* ---- torn reads -------------------------------------------------------------- */

#define TEXT_MAX (64 * 1024)

/* fill writes snapshot k's text: its length and every byte follow from k. */
static size_t fill(char *buf, uint64_t k) {
    size_t len = 1024 + (size_t)(k * 7919 % (TEXT_MAX - 2048));
    int head = snprintf(buf, 32, "%020llu|", (unsigned long long)k);
    memset(buf + head, 'a' + (int)(k % 26), len - (size_t)head);
    return len;
}

/* whole says whether snap is snapshot k whole, k read from its numbers. */
static int whole(const mw_stats_snapshot_t *snap, char *expect) {
    uint64_t k = snap->n.connections;
    const mw_stats_numbers_t *n = &snap->n;
    if ((uint64_t)n->pid != k || n->published_ms != k || n->started_ms != k || n->rooms != k ||
        n->dropped != k || n->refused != k || n->rate_limited != k || n->reloads != k)
        return 0;
    size_t len = fill(expect, k);
    return snap->len == len && memcmp(snap->text, expect, len) == 0;
}

/* writer publishes snapshots 1, 2, ... until killed. */
static void writer(mw_stats_t *st) {
    char *buf = malloc(TEXT_MAX);
    if (!buf)
        _exit(1);
    for (uint64_t k = 1;; k++) {
        mw_stats_numbers_t n = numbers(k);
        size_t len = fill(buf, k);
        /* in two parts, as a worker publishes its text and its base */
        if (mw_stats_publish(st, 1, &n, buf, len / 3, buf + len / 3, len - len / 3) != 0)
            _exit(2);
    }
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_torn_reads(void) {
    mw_stats_t *st;
    int fd;
    REQUIRE(mw_stats_create(&st, 1, TEXT_MAX, &fd) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        writer(st); /* the fork shares the mapping */
    char *expect = malloc(TEXT_MAX);
    REQUIRE(expect != NULL);
    mw_stats_snapshot_t snap = {0};
    /* Reads while it writes: every accepted copy whole, generations never
     * going back. Bounded by a count of progress, not by the clock; the
     * clock only keeps a starved machine from running forever. */
    uint64_t last = 0, distinct = 0, reads = 0, busy = 0, bad = 0, stopped_reads = 0;
    uint64_t give_up = now_ms() + 60000;
    while ((distinct < 2000 || stopped_reads < 200) && now_ms() < give_up) {
        int stop = reads % 1024 == 1023; /* now and then, freeze it wherever it is */
        if (stop) {
            int st_;
            kill(pid, SIGSTOP);
            REQUIRE(waitpid(pid, &st_, WUNTRACED) == pid && WIFSTOPPED(st_));
        }
        for (int i = 0; i < (stop ? 4 : 1); i++) {
            int rc = mw_stats_read(st, 1, &snap);
            reads++;
            if (rc == MW_ENOTFOUND)
                continue;
            if (rc == MW_EBUSY) {
                CHECK(!stop); /* a stopped writer cannot keep a reader busy */
                busy++;
                continue;
            }
            REQUIRE(rc == 0);
            if (!whole(&snap, expect)) {
                bad++;
                continue;
            }
            uint64_t k = snap.n.connections;
            CHECK(k >= last);
            if (k > last)
                distinct++;
            last = k;
            if (stop) /* stopped: never busy, never waiting, the same whole one */
                stopped_reads++;
        }
        if (stop)
            kill(pid, SIGCONT);
    }
    kill(pid, SIGKILL);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status)); /* it was still writing: it never failed */
    CHECK_EQ(bad, 0);
    CHECK(distinct >= 2000);
    CHECK(stopped_reads >= 200);
    /* killed mid-write: the last whole snapshot is still there */
    REQUIRE(mw_stats_read(st, 1, &snap) == 0);
    CHECK(whole(&snap, expect));
    CHECK(snap.n.connections >= last);
    fprintf(stderr, "  torn reads: %llu reads, %llu snapshots seen, %llu busy\n",
            (unsigned long long)reads, (unsigned long long)distinct, (unsigned long long)busy);
    free(expect);
    mw_stats_snapshot_free(&snap);
    mw_stats_free(st);
    close(fd);
}

int main(void) {
    RUN(test_publish_read);
    RUN(test_process);
    RUN(test_limits);
    RUN(test_torn_reads);
    return test_summary();
}

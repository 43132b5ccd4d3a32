/*
 * test_shlimits.c - the server-wide connection counts (src/shlimits.c):
 * two workers' handles on one memfd see each other's clients, addresses
 * and users; a cap and a rate hold across them; the supervisor's clear
 * forgets what a dead worker held; and, across real fork()s, two
 * processes admitting the same address at once never exceed the cap and
 * leave every count at zero once they released.
 */
#include "errors.h"
#include "shlimits.h"
#include "test.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static mw_ipkey_t ip4(uint32_t a) {
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(a);
    mw_ipkey_t k;
    mw_ipkey_from_sockaddr((const struct sockaddr *)&sin, &k);
    return k;
}

static void test_attach(void) {
    mw_shlimits_t *sup, *w;
    int fd;
    CHECK_EQ(mw_shlimits_create(&sup, 0, &fd), MW_EINVAL);
    CHECK_EQ(mw_shlimits_create(&sup, 65, &fd), MW_EINVAL);
    REQUIRE(mw_shlimits_create(&sup, 2, &fd) == 0);
    CHECK_EQ(mw_shlimits_attach(&w, fd, 0), MW_EINVAL);
    CHECK_EQ(mw_shlimits_attach(&w, fd, 3), MW_EINVAL);
    REQUIRE(mw_shlimits_attach(&w, fd, 2) == 0);
    mw_shlimits_free(w);
    /* not a limits zone */
    int other = memfd_create("other", MFD_CLOEXEC);
    REQUIRE(other >= 0 && ftruncate(other, 1 << 20) == 0);
    CHECK_EQ(mw_shlimits_attach(&w, other, 1), MW_EINVAL);
    close(other);
    mw_shlimits_free(sup);
    close(fd);
}

static void test_two_workers(void) {
    mw_shlimits_t *sup, *w1, *w2;
    int fd;
    REQUIRE(mw_shlimits_create(&sup, 2, &fd) == 0);
    REQUIRE(mw_shlimits_attach(&w1, fd, 1) == 0);
    REQUIRE(mw_shlimits_attach(&w2, fd, 2) == 0);
    mw_rate_t none, rate;
    mw_rate_init(&none, 0, 0);
    mw_rate_init(&rate, 1000, 3); /* 3 a second */

    /* clients: each worker says its own, every worker reads the sum */
    mw_shlimits_set_clients(w1, 3);
    mw_shlimits_set_clients(w2, 4);
    CHECK_EQ(mw_shlimits_clients(w1), 7);
    CHECK_EQ(mw_shlimits_clients(w2), 7);
    mw_shlimits_set_clients(w2, 1);
    CHECK_EQ(mw_shlimits_clients(w1), 4);

    /* an address capped at 3 across both */
    mw_ipkey_t a = ip4(0x7f000001), b = ip4(0x7f000002);
    CHECK_EQ(mw_shlimits_ip_admit(w1, &a, 1000, &none, 3), 0);
    CHECK_EQ(mw_shlimits_ip_admit(w2, &a, 1000, &none, 3), 0);
    CHECK_EQ(mw_shlimits_ip_admit(w1, &a, 1000, &none, 3), 0);
    CHECK_EQ(mw_shlimits_ip_admit(w2, &a, 1000, &none, 3), MW_EBUSY);
    CHECK_EQ(mw_shlimits_ip_admit(w1, &a, 1000, &none, 3), MW_EBUSY);
    CHECK_EQ(mw_shlimits_ip_open(w2, &a), 3);
    CHECK_EQ(mw_shlimits_ip_admit(w2, &b, 1000, &none, 3), 0); /* another address */
    CHECK_EQ(mw_shlimits_ip_open(w1, &b), 1);
    mw_shlimits_ip_release(w1, &a);
    CHECK_EQ(mw_shlimits_ip_open(w2, &a), 2);
    CHECK_EQ(mw_shlimits_ip_admit(w2, &a, 1000, &none, 3), 0); /* room again */

    /* the rate of an address is one cell for both workers */
    mw_ipkey_t c = ip4(0x0a000001);
    uint64_t t = 5000000;
    CHECK_EQ(mw_shlimits_ip_admit(w1, &c, t, &rate, 0), 0);
    CHECK_EQ(mw_shlimits_ip_admit(w2, &c, t, &rate, 0), 0);
    CHECK_EQ(mw_shlimits_ip_admit(w1, &c, t, &rate, 0), 0);
    CHECK_EQ(mw_shlimits_ip_admit(w2, &c, t, &rate, 0), MW_ERATE);
    CHECK_EQ(mw_shlimits_ip_open(w1, &c), 3);                        /* a refusal holds no place */
    CHECK_EQ(mw_shlimits_ip_admit(w2, &c, t + 400000, &rate, 0), 0); /* one interval later */
    CHECK_EQ(mw_shlimits_ip_admit(w1, &c, t + 400000, &rate, 0), MW_ERATE);

    /* users */
    uint64_t ann = mw_shlimits_hash(w1, "ann", 3);
    CHECK_EQ(ann, mw_shlimits_hash(w2, "ann", 3)); /* one seed for every worker */
    uint64_t bob = mw_shlimits_hash(w1, "bob", 3);
    CHECK_EQ(mw_shlimits_user_claim(w1, ann), 1);
    CHECK_EQ(mw_shlimits_user_claim(w2, ann), 2);
    CHECK_EQ(mw_shlimits_user_claim(w2, bob), 1);
    mw_shlimits_user_release(w1, ann);
    CHECK_EQ(mw_shlimits_user_claim(w1, ann), 2);

    /* rooms: a sketch of their own (a room named as a user is not that user) */
    uint64_t lobby = mw_shlimits_hash(w1, "lobby", 5);
    CHECK_EQ(mw_shlimits_room_claim(w1, lobby), 1);
    CHECK_EQ(mw_shlimits_room_claim(w2, lobby), 2);
    CHECK_EQ(mw_shlimits_room_claim(w2, ann), 1);
    mw_shlimits_room_release(w2, ann);
    mw_shlimits_room_release(w1, lobby);
    CHECK_EQ(mw_shlimits_room_claim(w1, lobby), 2);

    /* worker 2 dies: the supervisor clears its slice, worker 1's stays */
    mw_shlimits_clear(sup, 2);
    CHECK_EQ(mw_shlimits_clients(w1), 4 - 1);
    CHECK_EQ(mw_shlimits_ip_open(w1, &a), 1); /* worker 1 admitted two, released one */
    CHECK_EQ(mw_shlimits_ip_open(w1, &b), 0);
    CHECK_EQ(mw_shlimits_user_claim(w1, bob), 1);
    CHECK_EQ(mw_shlimits_user_claim(w1, ann), 2);
    CHECK_EQ(mw_shlimits_room_claim(w1, lobby), 2); /* worker 1's one, and this one */

    mw_shlimits_free(w1);
    mw_shlimits_free(w2);
    mw_shlimits_free(sup);
    close(fd);
}

/* hammer admits and releases one address as worker, in a loop, keeping
 * *admitted (shared by both processes) one above what they hold; it
 * counts how often that went over the cap. (The zone's own count may be
 * over it for a moment: a refused admission holds its place until it
 * looked.) */
#define CAP 5
#define ROUNDS 20000
static _Atomic int *admitted;
static int hammer(int fd, int worker) {
    mw_shlimits_t *w;
    if (mw_shlimits_attach(&w, fd, worker) != 0)
        return 2;
    mw_rate_t none;
    mw_rate_init(&none, 0, 0);
    mw_ipkey_t a = ip4(0xc0a80001);
    int over = 0, held = 0;
    for (int i = 0; i < ROUNDS; i++) {
        if (held < CAP && mw_shlimits_ip_admit(w, &a, 1, &none, CAP) == 0) {
            held++;
            if (atomic_fetch_add(admitted, 1) + 1 > CAP)
                over++;
        } else if (held > 0) {
            atomic_fetch_sub(admitted, 1);
            mw_shlimits_ip_release(w, &a);
            held--;
        }
    }
    while (held-- > 0) {
        atomic_fetch_sub(admitted, 1);
        mw_shlimits_ip_release(w, &a);
    }
    mw_shlimits_free(w);
    return over ? 1 : 0;
}

static void test_fork(void) {
    mw_shlimits_t *sup, *w;
    int fd;
    REQUIRE(mw_shlimits_create(&sup, 2, &fd) == 0);
    admitted =
        mmap(NULL, sizeof *admitted, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(admitted != MAP_FAILED);
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        REQUIRE(pids[i] >= 0);
        if (pids[i] == 0)
            _exit(hammer(fd, i + 1));
    }
    for (int i = 0; i < 2; i++) {
        int status;
        REQUIRE(waitpid(pids[i], &status, 0) == pids[i]);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0); /* never more than CAP at once */
    }
    REQUIRE(mw_shlimits_attach(&w, fd, 1) == 0);
    mw_ipkey_t a = ip4(0xc0a80001);
    CHECK_EQ(mw_shlimits_ip_open(w, &a), 0); /* every place given back */

    /* a process killed while holding places: cleared, they are free */
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        mw_shlimits_t *k;
        mw_rate_t none;
        mw_rate_init(&none, 0, 0);
        if (mw_shlimits_attach(&k, fd, 2) != 0)
            _exit(2);
        for (int i = 0; i < CAP; i++)
            mw_shlimits_ip_admit(k, &a, 1, &none, CAP);
        mw_shlimits_set_clients(k, CAP);
        pause(); /* killed holding them */
        _exit(0);
    }
    while (mw_shlimits_clients(w) < CAP)
        usleep(1000);
    CHECK_EQ(mw_shlimits_ip_open(w, &a), CAP);
    kill(pid, SIGKILL);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK_EQ(mw_shlimits_ip_open(w, &a), CAP); /* left behind by the dead */
    mw_shlimits_clear(sup, 2);
    CHECK_EQ(mw_shlimits_ip_open(w, &a), 0);
    CHECK_EQ(mw_shlimits_clients(w), 0);
    munmap(admitted, sizeof *admitted);
    mw_shlimits_free(w);
    mw_shlimits_free(sup);
    close(fd);
}

/* The sketch stays exact for a busy server's keys: 20,000 users, one
 * connection each, then each counted again. A count above 2 is a key all
 * of whose counters are shared (expected for about 8 of them: 4 rows of
 * 131,072); with 2 rows of 16,384 it was half of them. */
static void test_many_keys(void) {
    mw_shlimits_t *sup, *w1;
    int fd;
    CHECK_EQ(mw_shlimits_create(&sup, 2, &fd), 0);
    CHECK_EQ(mw_shlimits_attach(&w1, fd, 1), 0);
    enum { KEYS = 20000 };
    char name[32];
    for (int i = 0; i < KEYS; i++) {
        int n = snprintf(name, sizeof name, "user-%d", i);
        mw_shlimits_user_claim(w1, mw_shlimits_hash(w1, name, (size_t)n));
    }
    int over = 0;
    for (int i = 0; i < KEYS; i++) {
        int n = snprintf(name, sizeof name, "user-%d", i);
        uint64_t h = mw_shlimits_hash(w1, name, (size_t)n);
        if (mw_shlimits_user_claim(w1, h) > 2)
            over++;
        mw_shlimits_user_release(w1, h);
    }
    CHECK(over <= 40);
    /* cleared by the supervisor: every count back to none */
    mw_shlimits_clear(sup, 1);
    CHECK_EQ(mw_shlimits_user_claim(w1, mw_shlimits_hash(w1, "user-7", 6)), 1);
    mw_shlimits_free(w1);
    mw_shlimits_free(sup);
    close(fd);
}

int main(void) {
    RUN(test_attach);
    RUN(test_two_workers);
    RUN(test_many_keys);
    RUN(test_fork);
    return test_summary();
}

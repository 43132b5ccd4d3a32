/*
 * test_live.h - header-only helpers for the C tests that drive a real
 * server process (test_redis.c, test_nats.c): the loop run until a
 * condition holds or a generous deadline passes (WAIT), so a slow machine
 * makes a test slower, never wrong, and a bug makes it fail, never hang; a
 * free loopback port; the server spawned, polled until it answers, killed;
 * the log captured for checks.
 */
#ifndef MW_SPEC_TEST_LIVE_H
#define MW_SPEC_TEST_LIVE_H

#include "log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

static uv_loop_t loop;
static uv_timer_t deadline;
static int expired;

static inline void on_expire(uv_timer_t *t) {
    (void)t;
    expired = 1;
}

/* WAIT runs the loop until cond holds or ms have passed. */
#define WAIT(cond, ms)                                                                             \
    do {                                                                                           \
        expired = 0;                                                                               \
        uv_timer_start(&deadline, on_expire, (ms), 0);                                             \
        while (!(cond) && !expired)                                                                \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        uv_timer_stop(&deadline);                                                                  \
    } while (0)

/* live_loop_init starts the loop and the deadline's timer;
 * live_loop_close ends them and returns 0, or 1 when handles were left. */
static inline void live_loop_init(void) {
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    uv_timer_init(&loop, &deadline);
}

static inline int live_loop_close(void) {
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&loop);
    if (closed != 0)
        fprintf(stderr, "loop not empty at exit: %s\n", uv_strerror(closed));
    return closed != 0;
}

static inline int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("free_port");
        exit(2);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* live_spawn runs argv (argv[0] found on PATH) with its stdout, and its
 * stderr too when quiet, on /dev/null, then polls answers(arg) every 20 ms
 * for 10 s. Returns 0 with *pid set, or -1 (said on stderr; *pid is the
 * process to kill, or 0). */
static inline int live_spawn(pid_t *pid, const char *const *argv, int quiet,
                             int (*answers)(void *arg), void *arg) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (quiet)
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        *pid = 0;
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    for (int i = 0; i < 500; i++) { /* 10 s */
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            fprintf(stderr, "%s exited at start\n", argv[0]);
            *pid = 0;
            return -1;
        }
        if (answers(arg))
            return 0;
        sleep_ms(20);
    }
    fprintf(stderr, "%s did not answer\n", argv[0]);
    return -1;
}

/* live_kill kills *pid (when there is one) and reaps it. */
static inline void live_kill(pid_t *pid) {
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

/* The log, captured: log_count counts a text in it since log_reset. */
static char logbuf[65536];
static size_t loglen;

static inline void log_sink(void *data, mw_log_level level, const char *msg) {
    (void)data;
    int n = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%d %s\n", (int)level, msg);
    if (n > 0 && loglen + (size_t)n < sizeof logbuf)
        loglen += (size_t)n;
}

static inline int log_count(const char *needle) {
    int n = 0;
    for (const char *p = logbuf; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static inline void log_reset(void) {
    loglen = 0;
    logbuf[0] = '\0';
}

#endif

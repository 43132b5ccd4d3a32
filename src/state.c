/*
 * state.c - the accessors of a worker's shared state (state.h): the one
 * lookup of a client by id, the clock every part of the server reads, and
 * the counters the app bumps.
 */
#include "state.h"

#include <sys/time.h>
#include <time.h>

mw_conn_t *mw_server_client(mw_server_t *s, uint64_t id) {
    return mw_idmap_get(&s->clients, id);
}

mw_rooms_t *mw_server_rooms(mw_server_t *s) {
    return s->rooms;
}

uint64_t mw_server_room_count(const mw_server_t *s) {
    return mw_rooms_size(s->rooms) + s->rooms_elsewhere;
}

mw_timers_t *mw_server_timers(mw_server_t *s) {
    return &s->timers;
}

const mw_config_t *mw_server_config(const mw_server_t *s) {
    return s->cfg;
}

uint64_t mw_server_now(const mw_server_t *s) {
    return s->virtual_clock ? s->vnow : uv_now(s->loop);
}

uint64_t mw_server_now_ns(const mw_server_t *s) {
    if (s->virtual_clock)
        return s->vnow * 1000000u;
    /* uv_hrtime's clock, without its wrapper: this runs twice a message. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mw_server_count_error(mw_server_t *s, const char *code, size_t len) {
    mw_counters_error(&s->counters, code, len);
}

uint64_t mw_server_wall_ms(const mw_server_t *s) {
    if (s && s->virtual_clock)
        return s->vnow;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

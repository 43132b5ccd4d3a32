/*
 * state.c - the accessors of a worker's shared state (state.h): the one
 * lookup of a client by id, and the clock every part of the server reads.
 */
#include "state.h"

#include <sys/time.h>

mw_conn_t *mw_server_client(mw_server_t *s, uint64_t id) {
    return mw_idmap_get(&s->clients, id);
}

mw_rooms_t *mw_server_rooms(mw_server_t *s) {
    return s->rooms;
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

uint64_t mw_server_wall_ms(const mw_server_t *s) {
    if (s && s->virtual_clock)
        return s->vnow;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

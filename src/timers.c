/*
 * timers.c - one-shot timers on the server's clock (see timers.h).
 *
 * A binary min-heap of deadlines, ordered by (deadline, start order) so
 * that timers due at the same millisecond fire in the order they were
 * started. Each timer knows its slot, so stopping one is O(log n). On the
 * real clock one uv_timer is kept armed for the earliest deadline; on the
 * virtual clock mw_server_advance calls mw_timers_run as time moves, and
 * the uv_timer only fires what is due now at the next loop turn.
 */
#include "timers.h"
#include "errors.h"

#include <stdlib.h>

struct mw_timer {
    uint64_t deadline, seq;
    size_t slot; /* index in the heap */
    mw_timer_cb cb;
    void *data;
    mw_timers_t *heap;
};

static int earlier(const mw_timer_t *a, const mw_timer_t *b) {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void place(mw_timers_t *h, size_t i, mw_timer_t *t) {
    h->heap[i] = t;
    t->slot = i;
}

static void sift_up(mw_timers_t *h, size_t i) {
    mw_timer_t *t = h->heap[i];
    while (i > 0 && earlier(t, h->heap[(i - 1) / 2])) {
        place(h, i, h->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    place(h, i, t);
}

static void sift_down(mw_timers_t *h, size_t i) {
    mw_timer_t *t = h->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const mw_timer_t *best = t;
        if (l < h->n && earlier(h->heap[l], best)) {
            m = l;
            best = h->heap[l];
        }
        if (l + 1 < h->n && earlier(h->heap[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        place(h, i, h->heap[m]);
        i = m;
    }
    place(h, i, t);
}

static void remove_at(mw_timers_t *h, size_t i) {
    mw_timer_t *last = h->heap[--h->n];
    if (i == h->n)
        return;
    place(h, i, last);
    sift_down(h, i);
    sift_up(h, last->slot);
}

static void on_uv_timer(uv_timer_t *uv);

/* arm keeps the uv_timer set for the earliest deadline. On the virtual
 * clock, whose time only moves with mw_server_advance, it is set only for
 * timers already due (a zero delay), to fire at the next loop turn. */
static void arm(mw_timers_t *h) {
    if (!h->uv_ready)
        return;
    uint64_t now = h->now(h->now_data), at = h->n ? h->heap[0]->deadline : UINT64_MAX;
    if (h->n == 0 || (h->manual && at > now)) {
        uv_timer_stop(&h->uv);
        return;
    }
    uv_timer_start(&h->uv, on_uv_timer, at > now ? at - now : 0, 0);
}

static void on_uv_timer(uv_timer_t *uv) {
    mw_timers_t *h = uv->data;
    mw_timers_run(h, h->now(h->now_data));
}

int mw_timer_start(mw_timers_t *h, uint64_t ms, mw_timer_cb cb, void *data, mw_timer_t **out) {
    if (!h->uv_ready)
        return MW_ECLOSED;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        mw_timer_t **heap = realloc(h->heap, cap * sizeof *heap);
        if (!heap)
            return MW_ENOMEM;
        h->heap = heap;
        h->cap = cap;
    }
    mw_timer_t *t = malloc(sizeof *t);
    if (!t)
        return MW_ENOMEM;
    t->deadline = h->now(h->now_data) + ms;
    t->seq = h->seq++;
    t->cb = cb;
    t->data = data;
    t->heap = h;
    place(h, h->n++, t);
    sift_up(h, t->slot);
    if (t->slot == 0)
        arm(h);
    *out = t;
    return 0;
}

void mw_timer_stop(mw_timer_t *t) {
    mw_timers_t *h = t->heap;
    int first = t->slot == 0;
    remove_at(h, t->slot);
    free(t);
    if (first)
        arm(h);
}

void mw_timers_run(mw_timers_t *h, uint64_t now) {
    /* One pass fires what is due now; a timer started by a callback for
     * "now" (a zero sleep) waits for the next pass, so a loop of zero
     * sleeps cannot starve the rest of the server. */
    uint64_t last = h->seq;
    while (h->n > 0 && h->heap[0]->deadline <= now && h->heap[0]->seq < last) {
        mw_timer_t *t = h->heap[0];
        remove_at(h, 0);
        mw_timer_cb cb = t->cb;
        void *data = t->data;
        free(t);
        cb(data);
    }
    arm(h);
}

uint64_t mw_timers_next(const mw_timers_t *h) {
    return h->n ? h->heap[0]->deadline : UINT64_MAX;
}

void mw_timers_init(mw_timers_t *h, uv_loop_t *loop, mw_timers_clock_fn now, void *data,
                    int manual) {
    h->now = now;
    h->now_data = data;
    h->manual = manual;
    uv_timer_init(loop, &h->uv);
    h->uv.data = h;
    h->uv_ready = 1;
}

void mw_timers_close(mw_timers_t *h) {
    if (h->uv_ready) {
        uv_close((uv_handle_t *)&h->uv, NULL);
        h->uv_ready = 0;
    }
}

void mw_timers_free(mw_timers_t *h) {
    for (size_t i = 0; i < h->n; i++)
        free(h->heap[i]);
    free(h->heap);
    h->heap = NULL;
    h->n = h->cap = 0;
}

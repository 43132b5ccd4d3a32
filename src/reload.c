/*
 * reload.c - file watching and debouncing for hot reload.
 *
 * Editors save in bursts (write a temp file, rename it over the original,
 * touch a swap file); the debounce timer turns each burst into one reload.
 * Only changes to .lua files count: static files in public/ never reload
 * code. Scanning the folder uses synchronous uv_fs calls: it happens at
 * start-up and once per reload, on a handful of local directories, the same
 * trade OpenResty makes when it reads Lua files with lua_code_cache off.
 */
#include "reload.h"
#include "errors.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define MAX_WATCHED_DIRS 256
#define MAX_DEPTH 8

typedef struct watcher {
    uv_fs_event_t handle;
    struct watcher *next;
    mw_reload_t *owner;
} watcher_t;

struct mw_reload {
    uv_loop_t *loop;
    const char *dir;
    const int *debounce_ms;
    mw_reload_cb on_change;
    void *data;
    uv_timer_t debounce;
    watcher_t *watchers;
    int nwatchers;
    int stopped;
    int pending_closes; /* watcher handles not yet closed */
};

static void on_watcher_closed(uv_handle_t *h) {
    watcher_t *w = h->data;
    w->owner->pending_closes--;
    free(w);
}

static void unwatch_all(mw_reload_t *r) {
    watcher_t *w = r->watchers;
    while (w) {
        watcher_t *next = w->next;
        uv_close((uv_handle_t *)&w->handle, on_watcher_closed);
        w = next;
    }
    r->watchers = NULL;
    r->nwatchers = 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void on_debounce(uv_timer_t *t);

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status) {
    (void)events;
    watcher_t *w = h->data;
    mw_reload_t *r = w->owner;
    if (status < 0 || r->stopped)
        return;
    if (filename && !ends_with(filename, ".lua"))
        return;
    if (filename && filename[0] == '.')
        return;
    uv_timer_start(&r->debounce, on_debounce, (uint64_t)*r->debounce_ms, 0);
}

static void watch_tree(mw_reload_t *r, const char *dir, int depth) {
    if (r->nwatchers >= MAX_WATCHED_DIRS || depth > MAX_DEPTH)
        return;
    watcher_t *w = calloc(1, sizeof *w);
    if (!w)
        return;
    w->owner = r;
    uv_fs_event_init(r->loop, &w->handle);
    w->handle.data = w;
    if (uv_fs_event_start(&w->handle, on_fs_event, dir, 0) != 0) {
        r->pending_closes++;
        uv_close((uv_handle_t *)&w->handle, on_watcher_closed);
        return;
    }
    w->next = r->watchers;
    r->watchers = w;
    r->nwatchers++;

    uv_fs_t req;
    uv_dirent_t ent;
    if (uv_fs_scandir(NULL, &req, dir, 0, NULL) < 0) {
        uv_fs_req_cleanup(&req);
        return;
    }
    while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
        if (ent.type != UV_DIRENT_DIR || ent.name[0] == '.')
            continue;
        size_t n = strlen(dir) + strlen(ent.name) + 2;
        char *sub = malloc(n);
        if (!sub)
            break;
        snprintf(sub, n, "%s/%s", dir, ent.name);
        watch_tree(r, sub, depth + 1);
        free(sub);
    }
    uv_fs_req_cleanup(&req);
}

static void rewatch(mw_reload_t *r) {
    r->pending_closes += r->nwatchers;
    unwatch_all(r);
    watch_tree(r, r->dir, 0);
}

static void on_debounce(uv_timer_t *t) {
    mw_reload_t *r = t->data;
    if (r->stopped)
        return;
    r->on_change(r->data, "file change");
    rewatch(r); /* pick up folders created since the last scan */
}

int mw_reload_start(mw_reload_t **out, uv_loop_t *loop, const char *dir, const int *debounce_ms,
                    mw_reload_cb on_change, void *data) {
    mw_reload_t *r = calloc(1, sizeof *r);
    if (!r)
        return MW_ENOMEM;
    r->loop = loop;
    r->dir = dir;
    r->debounce_ms = debounce_ms;
    r->on_change = on_change;
    r->data = data;
    uv_timer_init(loop, &r->debounce);
    r->debounce.data = r;
    watch_tree(r, dir, 0);
    *out = r;
    if (r->nwatchers == 0)
        return MW_EIO;
    mw_log_debug("watching %d folder(s) under %s for changes", r->nwatchers, dir);
    return 0;
}

void mw_reload_stop(mw_reload_t *r) {
    if (!r || r->stopped)
        return;
    r->stopped = 1;
    r->pending_closes += r->nwatchers;
    unwatch_all(r);
    uv_close((uv_handle_t *)&r->debounce, NULL);
}

void mw_reload_free(mw_reload_t *r) {
    free(r);
}

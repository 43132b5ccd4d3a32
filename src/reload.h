/*
 * reload.h - watch the app folder and reload the app when a .lua file
 * changes, after reload_debounce ms of quiet.
 *
 * Linux inotify (libuv's uv_fs_event) is not recursive, so every directory
 * of the app gets its own watcher; the set is rebuilt after each reload so
 * new folders are picked up. Hidden folders (.git) are skipped.
 */
#ifndef MW_RELOAD_H
#define MW_RELOAD_H

#include <uv.h>

typedef struct mw_reload mw_reload_t;

/* What to do after a burst of changes: called with data and a short
 * reason ("file change"). */
typedef void (*mw_reload_cb)(void *data, const char *why);

/* mw_reload_start watches dir (borrowed) on loop and calls on_change after
 * *debounce_ms (read at each change, so it can change live) of quiet.
 * Returns 0, MW_ENOMEM or MW_EIO when not even the top folder can be
 * watched. */
int mw_reload_start(mw_reload_t **out, uv_loop_t *loop, const char *dir, const int *debounce_ms,
                    mw_reload_cb on_change, void *data);

/* mw_reload_stop closes every handle; safe with NULL. The struct itself is
 * released by mw_reload_free once the loop has run the close callbacks. */
void mw_reload_stop(mw_reload_t *r);

void mw_reload_free(mw_reload_t *r);

#endif

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

#include "server.h"

typedef struct mw_reload mw_reload_t;

/* mw_reload_start watches the server's app folder. Returns 0, MW_ENOMEM or
 * MW_EIO when not even the top folder can be watched. */
int mw_reload_start(mw_reload_t **out, mw_server_t *s);

/* mw_reload_stop closes every handle; safe with NULL. The struct itself is
 * released by mw_reload_free once the loop has run the close callbacks. */
void mw_reload_stop(mw_reload_t *r);

void mw_reload_free(mw_reload_t *r);

#endif

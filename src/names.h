/*
 * names.h - a small table of interned strings, numbered from 1.
 *
 * For the names a server learns from its app and then refers to by number
 * on the per-message path (the labels of routes, the routes themselves):
 * each is copied once; reading one back by its number is an index. A
 * lookup by text is a linear search, made once per new name by code that
 * caches the number (the runtime labels each route once), never per
 * message. The table is bounded: an app cannot grow it without limit.
 */
#ifndef MW_NAMES_H
#define MW_NAMES_H

#include <stddef.h>

typedef struct {
    char **v;        /* v[id - 1]: NUL-terminated copies */
    unsigned n, cap; /* names held, room in v */
    unsigned max;    /* how many it may hold */
} mw_names_t;

/* mw_names_init makes an empty table that holds at most max names. */
void mw_names_init(mw_names_t *t, unsigned max);

/* mw_names_intern returns the number of the len bytes at s (which need not
 * be NUL-terminated): the same number for the same text, >= 1, or 0 once
 * the table holds max names or memory ran out. */
unsigned mw_names_intern(mw_names_t *t, const char *s, size_t len);

/* mw_names_get is the text of number id, or NULL for a number it never
 * gave. Valid until mw_names_free. */
const char *mw_names_get(const mw_names_t *t, unsigned id);

void mw_names_free(mw_names_t *t);

#endif

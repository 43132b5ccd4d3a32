/*
 * names.c - interned strings numbered from 1 (names.h).
 */
#include "names.h"

#include <stdlib.h>
#include <string.h>

void mw_names_init(mw_names_t *t, unsigned max) {
    memset(t, 0, sizeof *t);
    t->max = max;
}

unsigned mw_names_intern(mw_names_t *t, const char *s, size_t len) {
    for (unsigned i = 0; i < t->n; i++)
        if (strlen(t->v[i]) == len && memcmp(t->v[i], s, len) == 0)
            return i + 1;
    if (t->n >= t->max || memchr(s, '\0', len))
        return 0;
    if (t->n == t->cap) {
        unsigned cap = t->cap ? t->cap * 2 : 16;
        char **v = realloc(t->v, cap * sizeof *v);
        if (!v)
            return 0;
        t->v = v;
        t->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return 0;
    memcpy(copy, s, len);
    copy[len] = '\0';
    t->v[t->n++] = copy;
    return t->n;
}

const char *mw_names_get(const mw_names_t *t, unsigned id) {
    return id >= 1 && id <= t->n ? t->v[id - 1] : NULL;
}

void mw_names_free(mw_names_t *t) {
    for (unsigned i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
    memset(t, 0, sizeof *t);
}

/*
 * idmap.c - open addressing with linear probing and tombstones.
 *
 * The table grows when live + deleted slots pass 70% and is rebuilt at the
 * same time, which also clears tombstones left by churning connections.
 */
#include "idmap.h"
#include "errors.h"

#include <stdlib.h>

#define TOMBSTONE UINT64_MAX

static size_t slot(uint64_t id, size_t cap) {
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL; /* murmur3's finalizer: spreads sequential ids */
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

void mw_idmap_init(mw_idmap_t *m) {
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->count = m->used = 0;
}

void mw_idmap_free(mw_idmap_t *m) {
    free(m->keys);
    free(m->vals);
    mw_idmap_init(m);
}

static int grow(mw_idmap_t *m) {
    /* Double only for live entries; a table filled by tombstones is
     * rebuilt at its size. */
    size_t cap = m->cap ? m->cap : 64;
    while (m->count * 10 >= cap * 5)
        cap *= 2;
    uint64_t *keys = calloc(cap, sizeof *keys);
    void **vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return MW_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == 0 || m->keys[i] == TOMBSTONE)
            continue;
        size_t s = slot(m->keys[i], cap);
        while (keys[s])
            s = (s + 1) & (cap - 1);
        keys[s] = m->keys[i];
        vals[s] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->used = m->count;
    return 0;
}

int mw_idmap_put(mw_idmap_t *m, uint64_t id, void *val) {
    if (id == 0 || id == TOMBSTONE)
        return MW_EINVAL;
    if ((m->used + 1) * 10 > m->cap * 7) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    size_t s = slot(id, m->cap), first_free = SIZE_MAX;
    while (m->keys[s]) {
        if (m->keys[s] == id) {
            m->vals[s] = val;
            return 0;
        }
        if (m->keys[s] == TOMBSTONE && first_free == SIZE_MAX)
            first_free = s;
        s = (s + 1) & (m->cap - 1);
    }
    if (first_free != SIZE_MAX)
        s = first_free;
    else
        m->used++;
    m->keys[s] = id;
    m->vals[s] = val;
    m->count++;
    return 0;
}

static size_t find(const mw_idmap_t *m, uint64_t id) {
    if (m->cap == 0 || id == 0 || id == TOMBSTONE)
        return SIZE_MAX;
    size_t s = slot(id, m->cap);
    while (m->keys[s]) {
        if (m->keys[s] == id)
            return s;
        s = (s + 1) & (m->cap - 1);
    }
    return SIZE_MAX;
}

void *mw_idmap_get(const mw_idmap_t *m, uint64_t id) {
    size_t s = find(m, id);
    return s == SIZE_MAX ? NULL : m->vals[s];
}

int mw_idmap_del(mw_idmap_t *m, uint64_t id) {
    size_t s = find(m, id);
    if (s == SIZE_MAX)
        return MW_ENOTFOUND;
    m->keys[s] = TOMBSTONE;
    m->vals[s] = NULL;
    m->count--;
    return 0;
}

/*
 * idmap.h - a hash map from 64-bit client ids to pointers.
 *
 * Lua refers to clients by id, never by pointer, so a stale id after a
 * disconnect is a clean "closed" instead of a use-after-free. Ids are never
 * 0 (0 marks an empty slot).
 */
#ifndef MW_IDMAP_H
#define MW_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *keys;
    void **vals;
    size_t cap, count, used; /* slots, live entries, live + deleted */
} mw_idmap_t;

void mw_idmap_init(mw_idmap_t *m);
void mw_idmap_free(mw_idmap_t *m);

/* mw_idmap_put inserts or replaces. Returns 0 or MW_ENOMEM (or MW_EINVAL for id 0). */
int mw_idmap_put(mw_idmap_t *m, uint64_t id, void *val);

/* mw_idmap_get returns the value for id, or NULL. */
void *mw_idmap_get(const mw_idmap_t *m, uint64_t id);

/* mw_idmap_del removes id; returns 0 or MW_ENOTFOUND. */
int mw_idmap_del(mw_idmap_t *m, uint64_t id);

#endif

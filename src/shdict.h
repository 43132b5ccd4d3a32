/*
 * shdict.h - shared dicts: a fixed-size zone of keys -> values (string,
 * number, boolean) with per-key expiry, shared by every worker process.
 *
 * The model is OpenResty's lua_shared_dict. A dict is one shared mapping,
 * a zone: on a memfd that the supervisor (or the single process) creates
 * and every worker maps from the inherited descriptor, or anonymous and
 * shared with forked children. Everything lives inside it: a header, the
 * hash buckets and an arena where each item (node, key and value) is one
 * block of a boundary-tag allocator; nothing of a dict is ever malloc'ed,
 * and every link inside is an offset from the zone's start, so each
 * process may map it at its own address. A process-shared, robust mutex in
 * the zone guards it: a worker that dies holding the lock leaves it to the
 * next locker, which gets EOWNERDEAD, and, when the dead worker was in the
 * middle of a change, wipes the dict (a cache that lost its content, never
 * a corrupt one) and counts a recovery.
 *
 * Expiry is on a clock the caller passes (ms; the server's monotonic clock,
 * the same in every process, or the virtual one in specs). An expired key
 * is dead on read and its memory is reclaimed on the way: by the read that
 * finds it, by each write (a few from the least recently used end) or by
 * mw_shdict_flush_expired. When a write finds no room, the least recently
 * used items are evicted (counted) until there is; the "safe" modes fail
 * with MW_ENOMEM instead.
 */
#ifndef MW_SHDICT_H
#define MW_SHDICT_H

#include <stddef.h>
#include <stdint.h>

#define MW_SHDICT_KEY_MAX 1024 /* bytes of a key */
#define MW_SHDICT_NAME_MAX 64  /* bytes of a dict's name: [A-Za-z0-9_-] */
#define MW_SHDICT_MIN_SIZE (16 * 1024)
#define MW_SHDICT_MAX_SIZE (16LL << 30)

typedef struct mw_shdict mw_shdict_t;

typedef enum {
    MW_SHDICT_NIL = 0, /* no value (a set of nil deletes) */
    MW_SHDICT_BOOLEAN,
    MW_SHDICT_NUMBER,
    MW_SHDICT_STRING
} mw_shdict_type;

/* A value going in or coming out. str is borrowed going in; coming out it
 * points into the caller's buffer (mw_shdict_get). */
typedef struct {
    mw_shdict_type type;
    int boolean;
    double number;
    const char *str;
    size_t len;
    uint32_t flags; /* the app's own 32 bits, kept with the value */
} mw_shdict_value_t;

/* Write modes (mw_shdict_set). */
enum {
    MW_SHDICT_SET = 0,     /* store, whether or not the key exists */
    MW_SHDICT_ADD = 1,     /* only if the key is absent (or expired) */
    MW_SHDICT_REPLACE = 2, /* only if the key is present */
    MW_SHDICT_SAFE = 4     /* or'ed in: never evict another key, fail with MW_ENOMEM */
};

/* mw_shdict_create maps a new, anonymous dict of size bytes
 * (MW_SHDICT_MIN_SIZE .. MW_SHDICT_MAX_SIZE) named name: forked children
 * share it. Returns 0, MW_EINVAL (a bad name or size) or MW_ENOMEM. */
int mw_shdict_create(mw_shdict_t **out, const char *name, size_t size);

/* mw_shdict_create_fd makes the same dict on a new memfd (close-on-exec),
 * its descriptor in *fd (the caller closes it after mw_shdict_free), for
 * other processes to mw_shdict_attach. Same returns. */
int mw_shdict_create_fd(mw_shdict_t **out, const char *name, size_t size, int *fd);

/* mw_shdict_attach maps the dict another process made on the memfd fd,
 * as it is (no reinitialisation; its lock is shared). Returns 0, MW_EINVAL
 * (fd is not a dict: a bad size, magic or header) or MW_ENOMEM. The fd
 * stays the caller's. */
int mw_shdict_attach(mw_shdict_t **out, int fd);

/* mw_shdict_free unmaps the dict (in this process; others keep theirs). */
void mw_shdict_free(mw_shdict_t *d);

const char *mw_shdict_name(const mw_shdict_t *d);

/* mw_shdict_parse_spec parses "name:size" (size in bytes, or with a k or
 * m or g suffix: "10m"). Returns NULL and fills name (MW_SHDICT_NAME_MAX
 * + 1 bytes) and *size, or why the spec is refused. */
const char *mw_shdict_parse_spec(const char *spec, char *name, size_t *size);

/* mw_shdict_get reads key at now_ms into *out. A string value is copied
 * into *buf (realloc'ed to fit, *cap its size; the caller frees it), so it
 * stays valid after the lock is released. Returns 0, MW_ENOTFOUND (absent
 * or expired), MW_EINVAL (key too long) or MW_ENOMEM (*buf could not
 * grow). A hit makes the key the most recently used. */
int mw_shdict_get(mw_shdict_t *d, const char *key, size_t klen, uint64_t now_ms,
                  mw_shdict_value_t *out, char **buf, size_t *cap);

/* mw_shdict_set stores v under key, expiring ttl_ms after now_ms (0:
 * never), according to mode (MW_SHDICT_SET, ADD or REPLACE, or'ed with
 * MW_SHDICT_SAFE). A value of type MW_SHDICT_NIL deletes the key. Returns
 * 0, MW_EDUP (ADD: the key exists), MW_ENOTFOUND (REPLACE: it does not),
 * MW_ETOOBIG (the item could never fit in this dict), MW_ENOMEM (no room,
 * even after evicting; SAFE: without evicting; the old value, if any, is
 * kept) or MW_EINVAL (key too long). *evicted, when not NULL, is set to 1
 * when other keys were evicted to make room. */
int mw_shdict_set(mw_shdict_t *d, const char *key, size_t klen, const mw_shdict_value_t *v,
                  uint64_t ttl_ms, uint64_t now_ms, int mode, int *evicted);

/* mw_shdict_incr adds n to the number under key and sets *out to the sum.
 * A key that is absent or expired is first set to *init, with init_ttl_ms
 * (0: never) when init is not NULL (evicting like MW_SHDICT_SET); without
 * init it is MW_ENOTFOUND. The expiry of an existing key is kept. Returns
 * 0, MW_ENOTFOUND, MW_EINVAL (the value is not a number, or key too long)
 * or MW_ENOMEM. */
int mw_shdict_incr(mw_shdict_t *d, const char *key, size_t klen, double n, const double *init,
                   uint64_t init_ttl_ms, uint64_t now_ms, double *out);

/* mw_shdict_delete removes key. Returns 0 (also when it was absent) or
 * MW_EINVAL. */
int mw_shdict_delete(mw_shdict_t *d, const char *key, size_t klen);

/* mw_shdict_ttl sets *ttl_ms to what is left of key's life (rounded up,
 * so at least 1), or 0 when it never expires. Returns 0, MW_ENOTFOUND or
 * MW_EINVAL. */
int mw_shdict_ttl(mw_shdict_t *d, const char *key, size_t klen, uint64_t now_ms, uint64_t *ttl_ms);

/* mw_shdict_expire makes key expire ttl_ms after now_ms (0: never).
 * Returns 0, MW_ENOTFOUND or MW_EINVAL. */
int mw_shdict_expire(mw_shdict_t *d, const char *key, size_t klen, uint64_t ttl_ms,
                     uint64_t now_ms);

/* mw_shdict_flush_all removes every key. */
void mw_shdict_flush_all(mw_shdict_t *d);

/* mw_shdict_flush_expired reclaims up to max expired keys (0: all), from
 * the least recently used end. Returns how many it reclaimed. */
size_t mw_shdict_flush_expired(mw_shdict_t *d, uint64_t now_ms, size_t max);

/* mw_shdict_keys calls each(ud, key, klen) for up to max live keys (0:
 * all), most recently used first. It runs under the dict's lock: each must
 * neither call into the dict nor jump out (no Lua). Returns the count. */
size_t mw_shdict_keys(mw_shdict_t *d, uint64_t now_ms, size_t max,
                      void (*each)(void *ud, const char *key, size_t klen), void *ud);

/* mw_shdict_capacity is the bytes of the arena items live in;
 * mw_shdict_free_space what of it is free (a single item may still not
 * fit when the free space is in pieces). */
size_t mw_shdict_capacity(const mw_shdict_t *d);
size_t mw_shdict_free_space(mw_shdict_t *d);

/* Counters for /metrics: keys held (expired ones not yet reclaimed
 * included), keys evicted to make room, and recoveries from a worker that
 * died holding the lock mid-change. */
typedef struct {
    size_t keys;
    uint64_t evictions;
    uint64_t recoveries;
} mw_shdict_stats_t;

void mw_shdict_stats(mw_shdict_t *d, mw_shdict_stats_t *out);

/* mw__shdict_lock / mw__shdict_unlock take and release the dict's lock,
 * and mw__shdict_mark_busy marks a change under way (as every write does
 * under the lock), for the fork tests (spec/c/test_shdict.c) that kill a
 * holder. */
void mw__shdict_lock(mw_shdict_t *d);
void mw__shdict_unlock(mw_shdict_t *d);
void mw__shdict_mark_busy(mw_shdict_t *d);

/* A set of dicts by name, made at start-up from the shared_dicts option
 * ("name:size" entries, already validated by config.c). */
typedef struct mw_shdicts mw_shdicts_t;

/* mw_shdicts_create makes one dict per spec, each on its memfd
 * (mw_shdict_create_fd). Returns 0, MW_EINVAL (a bad spec) or MW_ENOMEM;
 * with n == 0 *out is an empty set. */
int mw_shdicts_create(mw_shdicts_t **out, char *const *specs, int n);
/* mw_shdicts_attach maps the n dicts on fds (inherited from the process
 * that made them; their names come from the zones). On success the set
 * owns the fds (made close-on-exec). Returns 0, MW_EINVAL (an fd that is
 * not a dict, or a name twice) or MW_ENOMEM. */
int mw_shdicts_attach(mw_shdicts_t **out, const int *fds, int n);
/* mw_shdicts_free unmaps every dict and closes their fds. */
void mw_shdicts_free(mw_shdicts_t *set);
/* mw_shdicts_find returns the dict named name (len bytes), or NULL. */
mw_shdict_t *mw_shdicts_find(const mw_shdicts_t *set, const char *name, size_t len);
/* mw_shdicts_at returns the i-th dict (for /metrics), NULL past the end. */
mw_shdict_t *mw_shdicts_at(const mw_shdicts_t *set, size_t i);
/* mw_shdicts_fd is the memfd of the i-th dict (to pass to a worker), -1
 * past the end. */
int mw_shdicts_fd(const mw_shdicts_t *set, size_t i);

#endif

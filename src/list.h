/*
 * list.h - an intrusive doubly-linked list.
 *
 * Connections sit on several lists at once (all connections, those with a
 * deadline, those with output to flush) without any allocation: each list
 * is a node embedded in the connection (the shape of libuv's queue.h).
 */
#ifndef MW_LIST_H
#define MW_LIST_H

#include <stddef.h>

typedef struct mw_list {
    struct mw_list *prev, *next;
} mw_list_t;

/* clang-format 14 mangles this macro */
/* clang-format off */
#define mw_list_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
/* clang-format on */

static inline void mw_list_init(mw_list_t *l) {
    l->prev = l->next = l;
}

static inline int mw_list_empty(const mw_list_t *l) {
    return l->next == l;
}

/* mw_list_linked tells whether a node initialised with mw_list_init is on a list. */
static inline int mw_list_linked(const mw_list_t *n) {
    return n->next != n;
}

static inline void mw_list_insert_tail(mw_list_t *head, mw_list_t *n) {
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void mw_list_remove(mw_list_t *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#endif

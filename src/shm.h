/*
 * shm.h - memory zones shared by the supervisor and its workers.
 *
 * The supervisor makes each zone on a memfd (shared dicts, the stats zone,
 * the connection counts), every worker inherits the descriptor and maps
 * it: the same pages in every process, whatever address each maps them
 * at, and a restarted worker finds them as they were. Here is only the
 * making and the mapping; each module lays out and checks its own header.
 */
#ifndef MW_SHM_H
#define MW_SHM_H

#include <stddef.h>

/* mw_shm_create makes a zone of `size` zero-filled bytes (pages taken as
 * they are written) named `label` (seen in /proc/PID/maps) and maps it:
 * *map and *fd (close-on-exec: pass it on explicitly). MW_ENOMEM when it
 * cannot. */
int mw_shm_create(const char *label, size_t size, void **map, int *fd);

/* mw_shm_attach maps the zone of inherited descriptor fd whole: *map and
 * *size. MW_EINVAL when its size is not within [min_size, max_size] (not
 * one of ours), MW_ENOMEM when it cannot be mapped. The caller checks the
 * header and munmaps on a mismatch. */
int mw_shm_attach(int fd, size_t min_size, size_t max_size, void **map, size_t *size);

#endif

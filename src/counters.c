/*
 * counters.c - bookkeeping of the counters that need more than an
 * increment: disconnects by close code, and the names of refusal reasons.
 */
#include "counters.h"

#include <string.h>

void mw_counters_disconnect(mw_counters_t *m, unsigned code) {
    /* Closes are rare next to messages, and few codes occur: a sorted
     * array, searched linearly, keeps the output in code order. */
    int i = 0;
    while (i < m->ncodes && m->codes[i] < code)
        i++;
    if (i < m->ncodes && m->codes[i] == code) {
        m->code_counts[i]++;
        return;
    }
    if (m->ncodes == MW_COUNTERS_MAX_CODES || code > 0xffff) {
        m->other_codes++;
        return;
    }
    memmove(m->codes + i + 1, m->codes + i, (size_t)(m->ncodes - i) * sizeof m->codes[0]);
    memmove(m->code_counts + i + 1, m->code_counts + i,
            (size_t)(m->ncodes - i) * sizeof m->code_counts[0]);
    m->codes[i] = (uint16_t)code;
    m->code_counts[i] = 1;
    m->ncodes++;
}

const char *mw_counters_reason_name(mw_refused_reason_t r) {
    static const char *const names[MW_REFUSED_COUNT] = {
        [MW_REFUSED_OPEN_FILES] = "open_files",
        [MW_REFUSED_NO_MEMORY] = "no_memory",
        [MW_REFUSED_IP_CONNECTIONS] = "ip_connections",
        [MW_REFUSED_IP_RATE] = "ip_rate",
        [MW_REFUSED_ORIGIN] = "origin",
        [MW_REFUSED_CAPACITY] = "capacity",
        [MW_REFUSED_APP] = "app",
    };
    return (unsigned)r < MW_REFUSED_COUNT ? names[r] : "unknown";
}

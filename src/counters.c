/*
 * counters.c - bookkeeping of the counters that need more than an
 * increment: disconnects by close code, errors by code, and the names of
 * refusal reasons.
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

/* cmp_code compares the len bytes at code with the stored code s, as
 * strcmp would compare them as strings. */
static int cmp_code(const char *s, const char *code, size_t len) {
    int c = strncmp(s, code, len);
    return c ? c : s[len] != '\0';
}

void mw_counters_error(mw_counters_t *m, const char *code, size_t len) {
    /* Errors are rare next to messages, and few codes occur: the same
     * sorted array as the close codes, by code text. */
    if (len == 0 || len > MW_COUNTERS_ERROR_LEN || memchr(code, '\0', len)) {
        m->other_errors++;
        return;
    }
    int i = 0, c = 1;
    while (i < m->nerrors && (c = cmp_code(m->errors[i], code, len)) < 0)
        i++;
    if (i < m->nerrors && c == 0) {
        m->error_counts[i]++;
        return;
    }
    if (m->nerrors == MW_COUNTERS_MAX_ERRORS) {
        m->other_errors++;
        return;
    }
    memmove(m->errors + i + 1, m->errors + i, (size_t)(m->nerrors - i) * sizeof m->errors[0]);
    memmove(m->error_counts + i + 1, m->error_counts + i,
            (size_t)(m->nerrors - i) * sizeof m->error_counts[0]);
    memcpy(m->errors[i], code, len);
    m->errors[i][len] = '\0';
    m->error_counts[i] = 1;
    m->nerrors++;
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

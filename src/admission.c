/*
 * admission.c - the connection limits and the Origin policy, as decisions.
 */
#include "admission.h"
#include "errors.h"
#include "log.h"
#include "shlimits.h"
#include "state.h"

#include <string.h>
#include <strings.h>

mw_admit_t mw_admission_accept(mw_server_t *s, const struct sockaddr *peer, mw_ipkey_t *key,
                               int *counted, mw_refusal_t *r) {
    const mw_config_t *cfg = s->cfg;
    *counted = 0;
    if (s->nconns > s->fd_ceiling) {
        mw_log_debug("refused a connection: %zu open, near the open-files limit", s->nconns);
        s->counters.refused[MW_REFUSED_OPEN_FILES]++;
        return MW_ADMIT_DROP;
    }
    if (!cfg->max_connections_per_ip && !mw_rate_enabled(&s->ip_rate))
        return MW_ADMIT;
    if (!peer || mw_ipkey_from_sockaddr(peer, key) != 0)
        return MW_ADMIT;
    /* workers = N: the whole server's counts, else this process's */
    uint64_t now_us = mw_server_now(s) * 1000;
    uint32_t max_open = (uint32_t)cfg->max_connections_per_ip;
    int rc = s->limits ? mw_shlimits_ip_admit(s->limits, key, now_us, &s->ip_rate, max_open)
                       : mw_iptable_admit(s->ips, key, now_us, &s->ip_rate, max_open);
    if (rc == 0) {
        *counted = 1;
        return MW_ADMIT;
    }
    if (rc == MW_EBUSY) {
        s->counters.refused[MW_REFUSED_IP_CONNECTIONS]++;
        *r = (mw_refusal_t){429, "Retry-After: 5\r\n", "too many connections from this address"};
    } else if (rc == MW_ERATE) {
        s->counters.refused[MW_REFUSED_IP_RATE]++;
        *r = (mw_refusal_t){429, "Retry-After: 1\r\n", "too many new connections: slow down"};
    } else {
        s->counters.refused[MW_REFUSED_NO_MEMORY]++;
        return MW_ADMIT_DROP;
    }
    return MW_ADMIT_REFUSE;
}

void mw_admission_release(mw_server_t *s, const mw_ipkey_t *key) {
    if (s->limits)
        mw_shlimits_ip_release(s->limits, key);
    else
        mw_iptable_release(s->ips, key);
}

/* origin_allowed: allowed_origins empty or "*" accepts any; otherwise the
 * request's Origin must be one of them (ASCII case-insensitive, RFC 6454).
 * A request without Origin does not come from a browser page, which is
 * what Origin checks protect (cross-site WebSocket hijacking), so it is
 * accepted; authentication is what stops other clients. */
static int origin_allowed(const mw_config_t *cfg, const mw_request_t *req) {
    if (cfg->nallowed_origins == 0)
        return 1;
    const char *origin = mw_request_header(req, "Origin");
    if (!origin)
        return 1;
    for (int i = 0; i < cfg->nallowed_origins; i++)
        if (strcmp(cfg->allowed_origins[i], "*") == 0 ||
            strcasecmp(cfg->allowed_origins[i], origin) == 0)
            return 1;
    return 0;
}

mw_admit_t mw_admission_upgrade(mw_server_t *s, const mw_request_t *req, int valid,
                                mw_refusal_t *r) {
    const mw_config_t *cfg = s->cfg;
    if (!origin_allowed(cfg, req)) {
        s->counters.refused[MW_REFUSED_ORIGIN]++;
        *r = (mw_refusal_t){403, NULL, "origin not allowed"};
        return MW_ADMIT_REFUSE;
    }
    if (valid && cfg->max_connections &&
        (s->limits ? mw_shlimits_clients(s->limits) : s->nclients) >=
            (size_t)cfg->max_connections) {
        s->counters.refused[MW_REFUSED_CAPACITY]++;
        *r = (mw_refusal_t){503, "Retry-After: 5\r\n", "server at capacity"};
        return MW_ADMIT_REFUSE;
    }
    return MW_ADMIT;
}

void mw_admission_app_refusal(mw_server_t *s, int status, const char *msg, mw_refusal_t *r) {
    s->counters.refused[MW_REFUSED_APP]++;
    *r = (mw_refusal_t){status, status == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL, msg};
}

/*
 * admission.h - who may connect: the policy checks a connection passes
 * before it costs more than its socket (docs/security.md).
 *
 * Each check returns a decision; the connection acts on it (closes the
 * socket, answers with the refusal, or goes on). At accept: the
 * open-files ceiling and the per-address caps and rates. At the upgrade:
 * the Origin and max_connections (checked there, not at accept, so that
 * /health still answers when the server is full), then the app's own
 * decision (authentication) turned into an HTTP answer.
 */
#ifndef MW_ADMISSION_H
#define MW_ADMISSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http.h"
#include "iptable.h"

typedef struct mw_server mw_server_t;

typedef enum {
    MW_ADMIT,        /* go on */
    MW_ADMIT_REFUSE, /* answer with the refusal, then close */
    MW_ADMIT_DROP    /* close at once, no answer (no files to spare) */
} mw_admit_t;

/* mw_admission_accept decides about a new connection from peer (NULL when
 * its address is unknown). On MW_ADMIT with *counted set, the connection
 * holds a place in its address's count under *key until
 * mw_admission_release. */
mw_admit_t mw_admission_accept(mw_server_t *s, const struct sockaddr *peer, mw_ipkey_t *key,
                               int *counted, mw_refusal_t *r);

/* mw_admission_release gives back the place taken at accept. */
void mw_admission_release(mw_server_t *s, const mw_ipkey_t *key);

/* mw_admission_upgrade decides about an upgrade request for the WebSocket
 * endpoint: its Origin always, the server's capacity when the handshake is
 * valid (an invalid one gets the handshake's own answer). */
mw_admit_t mw_admission_upgrade(mw_server_t *s, const mw_request_t *req, int valid,
                                mw_refusal_t *r);

/* mw_admission_app_refusal turns the app's refusal of an upgrade (status,
 * message) into the answer: 401 carries WWW-Authenticate.
 *
 * Every decision that turns a connection away is counted by its reason in
 * s->metrics (metrics.h), where it is made. */
void mw_admission_app_refusal(mw_server_t *s, int status, const char *msg, mw_refusal_t *r);

#endif

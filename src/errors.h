/*
 * errors.h - the one error vocabulary of the C core.
 *
 * Every public function returns 0 on success or a negative mw_err code,
 * grouped by hundreds the way wslay groups its codes, so a caller can tell a
 * protocol problem from a resource problem without string compares.
 */
#ifndef MW_ERRORS_H
#define MW_ERRORS_H

typedef enum {
    MW_OK = 0,
    /* -1xx: the peer sent something we refuse */
    MW_EPROTO = -100,     /* WebSocket protocol violation (close 1002) */
    MW_EUTF8 = -101,      /* invalid UTF-8 in a text message (close 1007) */
    MW_ETOOBIG = -102,    /* message larger than max_message_size (close 1009) */
    MW_EHTTP = -103,      /* malformed HTTP request */
    MW_EMALFORMED = -104, /* a token that is not a compact JWS of base64url parts */
    MW_EBADSIG = -105,    /* a token whose signature does not verify */
    MW_EALG = -106,       /* a token algorithm we do not implement ("none" included) */
    MW_ETOKENBIG = -107,  /* a token over MW_JWT_MAX_TOKEN bytes */
    MW_ETLS = -108,       /* TLS handshake failed or a bad record (the connection closes) */
    MW_EJSON = -109,      /* malformed JSON (src/envelope.c) */
    MW_ENOTOBJ = -110,    /* valid JSON, but not the object a message must be */
    /* -2xx: the caller asked for something impossible */
    MW_EINVAL = -200,    /* invalid argument */
    MW_ECLOSED = -201,   /* the connection is closing or gone */
    MW_ENOTFOUND = -202, /* no such object */
    MW_ECONFIG = -203,   /* invalid configuration */
    MW_ESCRIPT = -204,   /* the Lua app failed to load or run */
    MW_EFULL = -205,     /* the room is full (max_connections_per_room) */
    MW_ELIMIT = -206,    /* the client is in too many rooms (max_rooms_per_client) */
    MW_EDUP = -207,      /* the event was already delivered to this client */
    MW_ESLOW = -208,     /* dropped: the client's output is over max_buffered_bytes */
    MW_EKEY = -209,      /* a key that cannot be parsed or is of an unsupported type */
    MW_EWEAKKEY = -210,  /* an RSA key under 2048 bits */
    MW_EKEYALG = -211,   /* a key of the wrong type for the algorithm */
    MW_ERATE = -212,     /* over a rate limit */
    MW_EBUSY = -213,     /* too many connections (server-wide, per address or per user) */
    MW_EPENDING = -214,  /* not done yet: the answer comes later */
    MW_ETIMEOUT = -215,  /* a wait ran past its timeout */
    /* -3xx: the system refused */
    MW_ENOMEM = -300,    /* out of memory */
    MW_EIO = -301,       /* an I/O or libuv call failed */
    MW_ECONNLOST = -302, /* a connection to a service (Redis) broke before it answered */
    MW_ENOTCONN = -303,  /* not connected to a service (Redis) that is down */
    MW_ENORESP = -304    /* a NATS request that no subscriber listens to */
} mw_err;

/* mw_strerror returns a short, stable, human sentence for an mw_err code. */
const char *mw_strerror(int err);

/* mw_err_name returns the symbolic name ("MW_EPROTO") for logs and tests. */
const char *mw_err_name(int err);

#endif

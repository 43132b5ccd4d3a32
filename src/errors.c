/*
 * errors.c - names and messages for mw_err codes.
 */
#include "errors.h"

const char *mw_strerror(int err) {
    switch (err) {
    case MW_OK: return "success";
    case MW_EPROTO: return "protocol error";
    case MW_EUTF8: return "invalid utf-8";
    case MW_ETOOBIG: return "message too big";
    case MW_EHTTP: return "malformed http request";
    case MW_EMALFORMED: return "malformed token";
    case MW_EBADSIG: return "invalid signature";
    case MW_EALG: return "unsupported algorithm";
    case MW_ETOKENBIG: return "token too large";
    case MW_ETLS: return "tls error";
    case MW_EJSON: return "malformed json";
    case MW_ENOTOBJ: return "json is not an object";
    case MW_EINVAL: return "invalid argument";
    case MW_ECLOSED: return "closed";
    case MW_ENOTFOUND: return "not found";
    case MW_ECONFIG: return "invalid configuration";
    case MW_ESCRIPT: return "script error";
    case MW_EFULL: return "room full";
    case MW_ELIMIT: return "too many rooms";
    case MW_EDUP: return "duplicate event";
    case MW_ESLOW: return "slow consumer";
    case MW_EKEY: return "unsupported key";
    case MW_EWEAKKEY: return "key too small";
    case MW_EKEYALG: return "key does not fit the algorithm";
    case MW_ERATE: return "rate limited";
    case MW_EBUSY: return "too many connections";
    case MW_EPENDING: return "pending";
    case MW_ETIMEOUT: return "timeout";
    case MW_ENOMEM: return "out of memory";
    case MW_EIO: return "i/o error";
    case MW_ECONNLOST: return "connection lost";
    case MW_ENOTCONN: return "not connected";
    case MW_ENORESP: return "no responders";
    default: return "unknown error";
    }
}

const char *mw_err_name(int err) {
    switch (err) {
    case MW_OK: return "MW_OK";
    case MW_EPROTO: return "MW_EPROTO";
    case MW_EUTF8: return "MW_EUTF8";
    case MW_ETOOBIG: return "MW_ETOOBIG";
    case MW_EHTTP: return "MW_EHTTP";
    case MW_EMALFORMED: return "MW_EMALFORMED";
    case MW_EBADSIG: return "MW_EBADSIG";
    case MW_EALG: return "MW_EALG";
    case MW_ETOKENBIG: return "MW_ETOKENBIG";
    case MW_ETLS: return "MW_ETLS";
    case MW_EJSON: return "MW_EJSON";
    case MW_ENOTOBJ: return "MW_ENOTOBJ";
    case MW_EINVAL: return "MW_EINVAL";
    case MW_ECLOSED: return "MW_ECLOSED";
    case MW_ENOTFOUND: return "MW_ENOTFOUND";
    case MW_ECONFIG: return "MW_ECONFIG";
    case MW_ESCRIPT: return "MW_ESCRIPT";
    case MW_EFULL: return "MW_EFULL";
    case MW_ELIMIT: return "MW_ELIMIT";
    case MW_EDUP: return "MW_EDUP";
    case MW_ESLOW: return "MW_ESLOW";
    case MW_EKEY: return "MW_EKEY";
    case MW_EWEAKKEY: return "MW_EWEAKKEY";
    case MW_EKEYALG: return "MW_EKEYALG";
    case MW_ERATE: return "MW_ERATE";
    case MW_EBUSY: return "MW_EBUSY";
    case MW_EPENDING: return "MW_EPENDING";
    case MW_ETIMEOUT: return "MW_ETIMEOUT";
    case MW_ENOMEM: return "MW_ENOMEM";
    case MW_EIO: return "MW_EIO";
    case MW_ECONNLOST: return "MW_ECONNLOST";
    case MW_ENOTCONN: return "MW_ENOTCONN";
    case MW_ENORESP: return "MW_ENORESP";
    default: return "MW_EUNKNOWN";
    }
}

/*
 * envelope.c - one-pass JSON validation that visits the members of the
 * top level with the spans of their keys and values, and the decoding of a
 * string span on request (envelope.h says what and why).
 *
 * A small iterative parser over the bytes: a value, then either the end of
 * the text or a separator of the container it is in. The containers open
 * around the current position are a stack of bits (1 for an object), which
 * is why the depth is bounded. Nothing is decoded while scanning: the
 * caller decodes the strings it reads with mw_envelope_string. This module
 * owns no memory and never reads past json[len - 1]; the input need not be
 * NUL-terminated.
 *
 * Why not jsmn (Debian's libjsmn-dev): even with JSMN_STRICT it accepts
 * `{"a" "b"}`, `[1 2]`, `{"a":1,}`, `{"a":01}`, `{"a":tru}` and raw control
 * characters, so every token and every gap between tokens would have to be
 * checked again; it also needs a token array that grows with the input.
 * docs/performance.md ("Locating the envelope") has the measurements.
 */
#include "envelope.h"
#include "errors.h"

#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The problems, as mw_json_error_t.what reports them. */
static const char E_END[] = "unexpected end of input";
static const char E_VALUE[] = "value expected";
static const char E_KEY[] = "object key (a string) expected";
static const char E_COLON[] = "':' expected";
static const char E_OBJSEP[] = "',' or '}' expected";
static const char E_ARRSEP[] = "',' or ']' expected";
static const char E_TRAILING[] = "unexpected characters after the value";
static const char E_CONTROL[] = "control character in string (must be escaped)";
static const char E_ESCAPE[] = "invalid escape";
static const char E_UESCAPE[] = "invalid \\u escape (bad hex digits or unpaired surrogate)";
static const char E_DIGIT[] = "digit expected in number";
static const char E_LITERAL[] = "invalid literal";
static const char E_DEPTH[] = "objects and arrays nested too deeply";

static inline bool is_ws(unsigned char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline bool is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

static int hex4(const unsigned char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A \u escape at p (p[0] == '\\', p[1] == 'u'), as cjson reads it: a high
 * surrogate must be followed at once by an escaped low one, a low one alone
 * is an error. Returns the code point and sets *n to the bytes consumed
 * (6 or 12), or returns -1. */
static long u_escape(const unsigned char *p, const unsigned char *end, size_t *n) {
    if (end - p < 6)
        return -1;
    long cp = hex4(p + 2);
    if (cp < 0)
        return -1;
    *n = 6;
    if ((cp & 0xF800) != 0xD800)
        return cp;
    if (cp & 0x400) /* a low surrogate first */
        return -1;
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u')
        return -1;
    long lo = hex4(p + 8);
    if (lo < 0 || (lo & 0xFC00) != 0xDC00)
        return -1;
    *n = 12;
    return (((cp & 0x3FF) << 10) | (lo & 0x3FF)) + 0x10000;
}

/* Whether any of 8 bytes is a quote, a backslash or under 0x20: the
 * classic has-zero-byte test, exact for "any" (SWAR; see Hacker's
 * Delight, 6-1). */
static inline bool special8(uint64_t x) {
    const uint64_t lo = 0x0101010101010101ULL, hi = 0x8080808080808080ULL;
    uint64_t q = x ^ (lo * '"'), b = x ^ (lo * '\\');
    return (((x - lo * 0x20) & ~x) | ((q - lo) & ~q) | ((b - lo) & ~b)) & hi;
}

#ifdef __SSE2__
/* The same for 16 bytes: 0xFF where a byte is special. */
static inline __m128i special16(const unsigned char *p) {
    const __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i hit =
        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\\')));
    /* bytes <= 0x1F: the unsigned min(x, 0x1F) is x */
    return _mm_or_si128(hit, _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1F)), x));
}
#endif

/* Scans a string whose opening quote is at *pp; on success *pp is just past
 * the closing quote. Returns NULL or the problem, with *pp at it. */
static const char *scan_string(const unsigned char **pp, const unsigned char *end, bool *escaped) {
    const unsigned char *p = *pp + 1;
    for (;;) {
#ifdef __SSE2__
        /* 64, then 16 bytes at a time: x86-64 always has SSE2 */
        while (end - p >= 64) {
            __m128i hit = special16(p);
            hit = _mm_or_si128(hit, special16(p + 16));
            hit = _mm_or_si128(hit, special16(p + 32));
            hit = _mm_or_si128(hit, special16(p + 48));
            if (_mm_movemask_epi8(hit))
                break;
            p += 64;
        }
        while (end - p >= 16) {
            int mask = _mm_movemask_epi8(special16(p));
            if (mask) {
                p += __builtin_ctz((unsigned)mask);
                goto found;
            }
            p += 16;
        }
#endif
        while (end - p >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            if (special8(x))
                break;
            p += 8;
        }
#ifdef __SSE2__
    found:
#endif
        if (p == end) {
            *pp = p;
            return E_END;
        }
        unsigned char c = *p;
        if (c == '"') {
            *pp = p + 1;
            return NULL;
        }
        if (c < 0x20) {
            *pp = p;
            return E_CONTROL;
        }
        if (c != '\\') {
            p++;
            continue;
        }
        *escaped = true;
        if (end - p < 2) {
            *pp = end;
            return E_END;
        }
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't': p += 2; break;
        case 'u': {
            size_t n;
            if (u_escape(p, end, &n) < 0) {
                *pp = p;
                return E_UESCAPE;
            }
            p += n;
            break;
        }
        default: *pp = p; return E_ESCAPE;
        }
    }
}

/* Scans an RFC 8259 number at *pp (which holds '-' or a digit). What ends
 * it is left to the caller: "01" is "0" followed by a stray '1'. */
static const char *scan_number(const unsigned char **pp, const unsigned char *end) {
    const unsigned char *p = *pp;
    if (*p == '-')
        p++;
    if (p == end || !is_digit(*p))
        goto bad;
    if (*p++ != '0')
        while (p < end && is_digit(*p))
            p++;
    if (p < end && *p == '.') {
        p++;
        if (p == end || !is_digit(*p))
            goto bad;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p | 0x20) == 'e') {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            goto bad;
        while (p < end && is_digit(*p))
            p++;
    }
    *pp = p;
    return NULL;
bad:
    *pp = p;
    return p == end ? E_END : E_DIGIT;
}

/* The scanner: validates json[0, len) and calls visit (when not NULL) for
 * each member of the top-level object or array, in order, as soon as its
 * value ends (so a visit may come before an error further on). A nonzero
 * return from visit stops the scan and is returned. */
static int scan(const char *json, size_t len, mw_json_member_fn visit, void *vdata,
                mw_json_kind_t *top, size_t *err_pos, const char **err_what) {
    const unsigned char *const base = (const unsigned char *)json;
    const unsigned char *p = base, *const end = base + len;
    const char *what = NULL;
    uint64_t objects = 0; /* bit d-1 set: the container at depth d is an object */
    int depth = 0;
    mw_json_member_t m = {0};            /* the top-level member being scanned */
    const unsigned char *vstart = NULL;  /* where that member's value starts */
    mw_json_kind_t vkind = MW_JSON_NONE; /* the kind of the value that just ended */
    bool vescaped = false;               /* for a string: whether it had escapes */

    while (p < end && is_ws(*p))
        p++;

value:
    /* p: the first byte of a value (whitespace skipped) */
    if (p == end) {
        what = E_END;
        goto fail;
    }
    if (depth == 1)
        vstart = p;
    switch (*p) {
    case '{':
    case '[':
        if (depth == MW_ENVELOPE_MAX_DEPTH) {
            what = E_DEPTH;
            goto fail;
        }
        if (*p == '{')
            objects |= (uint64_t)1 << depth;
        else
            objects &= ~((uint64_t)1 << depth);
        vkind = *p == '{' ? MW_JSON_OBJECT : MW_JSON_ARRAY;
        depth++;
        p++;
        while (p < end && is_ws(*p))
            p++;
        if (p < end && *p == (vkind == MW_JSON_OBJECT ? '}' : ']')) {
            depth--;
            p++;
            goto after;
        }
        if (vkind == MW_JSON_OBJECT)
            goto key;
        goto value;
    case '"':
        vescaped = false;
        if ((what = scan_string(&p, end, &vescaped)))
            goto fail;
        vkind = MW_JSON_STRING;
        goto after;
    case 't':
    case 'f':
    case 'n': {
        static const char *const lit[3] = {"true", "false", "null"};
        static const mw_json_kind_t kinds[3] = {MW_JSON_TRUE, MW_JSON_FALSE, MW_JSON_NULL};
        int i = *p == 't' ? 0 : *p == 'f' ? 1 : 2;
        for (const char *l = lit[i]; *l; l++, p++) {
            if (p == end || *p != (unsigned char)*l) {
                what = p == end ? E_END : E_LITERAL;
                goto fail;
            }
        }
        vkind = kinds[i];
        goto after;
    }
    default:
        if (*p == '-' || is_digit(*p)) {
            if ((what = scan_number(&p, end)))
                goto fail;
            vkind = MW_JSON_NUMBER;
            goto after;
        }
        what = E_VALUE;
        goto fail;
    }

key:
    /* p: where a key must start, inside an object at `depth` */
    if (p == end || *p != '"') {
        what = p == end ? E_END : E_KEY;
        goto fail;
    }
    {
        const unsigned char *k = p;
        bool escaped = false;
        if ((what = scan_string(&p, end, &escaped)))
            goto fail;
        if (depth == 1) {
            m.key.off = (size_t)(k - base);
            m.key.len = (size_t)(p - k);
            m.key.kind = MW_JSON_STRING;
            m.key.escaped = escaped;
        }
    }
    while (p < end && is_ws(*p))
        p++;
    if (p == end || *p != ':') {
        what = p == end ? E_END : E_COLON;
        goto fail;
    }
    p++;
    while (p < end && is_ws(*p))
        p++;
    goto value;

after:
    /* a value ended just before p; depth is that of its container */
    if (depth == 1) {
        m.value.off = (size_t)(vstart - base);
        m.value.len = (size_t)(p - vstart);
        m.value.kind = vkind;
        m.value.escaped = vkind == MW_JSON_STRING && vescaped;
        if (!(objects & 1))
            m.key = (mw_envelope_span_t){0};
        if (visit) {
            int rc = visit(vdata, &m);
            if (rc)
                return rc;
        }
    }
    while (p < end && is_ws(*p))
        p++;
    if (depth == 0) {
        if (p != end) {
            what = E_TRAILING;
            goto fail;
        }
        if (top)
            *top = vkind;
        return 0;
    }
    {
        bool in_object = (objects >> (depth - 1)) & 1;
        if (p == end) {
            what = E_END;
            goto fail;
        }
        if (*p == ',') {
            p++;
            while (p < end && is_ws(*p))
                p++;
            if (in_object)
                goto key;
            goto value;
        }
        if (*p == (in_object ? '}' : ']')) {
            p++;
            depth--;
            vkind = in_object ? MW_JSON_OBJECT : MW_JSON_ARRAY;
            goto after;
        }
        what = in_object ? E_OBJSEP : E_ARRSEP;
    }

fail:
    *err_pos = (size_t)(p - base);
    *err_what = what;
    return MW_EJSON;
}

int mw_envelope_members(const char *json, size_t len, mw_json_member_fn visit, void *data,
                        mw_json_kind_t *top, mw_json_error_t *err) {
    mw_json_error_t e;
    if (!err)
        err = &e;
    err->pos = 0;
    err->what = NULL;
    return scan(json, len, visit, data, top, &err->pos, &err->what);
}

/* Writes code point cp (at most U+10FFFF) as UTF-8; returns the length. */
static size_t put_utf8(unsigned char *o, long cp) {
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* How many bytes the one character (or escape) at q decodes to. */
static size_t decoded_len(const unsigned char *q, const unsigned char *end) {
    size_t used;
    long cp = q[0] == '\\' && end - q > 1 && q[1] == 'u' ? u_escape(q, end, &used) : 0;
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

int mw_envelope_string(const char *json, const mw_envelope_span_t *span, char *buf, size_t cap,
                       size_t *out_len) {
    if (span->kind != MW_JSON_STRING || span->len < 2)
        return MW_EINVAL;
    const unsigned char *p = (const unsigned char *)json + span->off;
    const unsigned char *end = p + span->len - 1; /* the closing quote */
    if (*p != '"' || *end != '"')
        return MW_EINVAL;
    unsigned char *o = (unsigned char *)buf, *const oend = o + cap;
    for (const unsigned char *q = p + 1; q < end;) {
        unsigned char c = *q;
        if ((size_t)(oend - o) < 4 && (size_t)(oend - o) < decoded_len(q, end))
            return MW_ETOOBIG;
        if (c == '"' || c < 0x20)
            return MW_EINVAL;
        if (c != '\\') {
            *o++ = c;
            q++;
            continue;
        }
        if (q + 1 >= end)
            return MW_EINVAL;
        switch (q[1]) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            size_t used;
            long cp = u_escape(q, end, &used);
            if (cp < 0)
                return MW_EINVAL;
            o += put_utf8(o, cp);
            q += used;
            continue;
        }
        default: return MW_EINVAL;
        }
        q += 2;
    }
    *out_len = (size_t)(o - (unsigned char *)buf);
    return 0;
}

/*
 * envelope.h - validate a JSON text in one pass and visit the members of
 * its top level, without decoding them.
 *
 * A client message is one JSON object whose few top-level keys (type,
 * action, id, data, room, event_id) route it; the rest, `data` above all, is
 * forwarded. mw_envelope_members validates the whole text in one pass and
 * reports where the key and the raw value of each member of the top-level
 * object (or each element of a top-level array) lie in it, so that the
 * runtime decodes one level at a time (src/lua/json_lua.c, for Lua's lazy
 * JSON values), reads the short strings it routes on with
 * mw_envelope_string, and splices the other values into outgoing messages
 * as the client's own bytes, never decoding or re-encoding them.
 *
 * What it accepts is what lua-cjson (the JSON of what Lua reads, configured
 * as lua/moonwire/protocol.lua does) accepts, except where cjson is laxer
 * than RFC 8259 in ways that would make the forwarded bytes invalid JSON for
 * the receiver; those it rejects (docs/performance.md, "What the scanner
 * accepts, against lua-cjson"):
 *   - raw control characters (U+0000..U+001F) inside strings;
 *   - numbers strtod takes but JSON does not: "1.", "-.5", "1.e5";
 *   - anything after a NUL byte (cjson stops reading there).
 * Like cjson it does not validate UTF-8 inside strings: the WebSocket layer
 * already has (src/utf8.c), and other callers validate with mw_utf8_valid.
 *
 * No allocation, no recursion: nesting is tracked in a 64-bit mask, and
 * deeper than MW_ENVELOPE_MAX_DEPTH (protocol.lua's decode_max_depth) is an
 * error, so any input length is scanned in constant memory.
 */
#ifndef MW_ENVELOPE_H
#define MW_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>

/* Objects and arrays nested deeper than this (a top-level object or array
 * counts as 1) are rejected, as cjson with decode_max_depth(64) rejects them. */
#define MW_ENVELOPE_MAX_DEPTH 64

/* The JSON kind of a value; MW_JSON_NONE for a span that is absent. */
typedef enum {
    MW_JSON_NONE = 0,
    MW_JSON_STRING,
    MW_JSON_NUMBER,
    MW_JSON_OBJECT,
    MW_JSON_ARRAY,
    MW_JSON_TRUE,
    MW_JSON_FALSE,
    MW_JSON_NULL
} mw_json_kind_t;

/* The raw value of one member, or the key of one: json[off, off + len) is
 * exactly its text (a string's span includes its quotes). An absent span
 * (the key of an array element) has kind MW_JSON_NONE and len 0. */
typedef struct {
    size_t off;
    size_t len;
    mw_json_kind_t kind;
    bool escaped; /* a string with at least one backslash escape */
} mw_envelope_span_t;

/* One member of the top-level object or array, as mw_envelope_members
 * reports it: the key's span (a string, quotes included; absent for an
 * array element) and the value's. */
typedef struct {
    mw_envelope_span_t key;
    mw_envelope_span_t value;
} mw_json_member_t;

typedef int (*mw_json_member_fn)(void *data, const mw_json_member_t *member);

typedef struct {
    size_t pos;       /* the byte offset of the problem */
    const char *what; /* a short, stable phrase; NULL when there is none */
} mw_json_error_t;

/* mw_envelope_members validates json[0, len) as one JSON text, by the
 * rules at the top of this file, and calls visit(data, member) for each
 * member of the top-level object or element of the top-level array, in
 * order, as soon as its value ends: a visit can come before an error
 * further on, so a caller that builds something must discard it on error.
 * A top-level scalar is visited never. Duplicate keys are all visited, in
 * order (cjson keeps the last). visit may be NULL (validation only).
 * *top (when not NULL) gets the kind of the whole text on success. Returns
 * 0, MW_EJSON (err, when not NULL, says where and why), or the first
 * nonzero value a visit returned, which stops the scan. */
int mw_envelope_members(const char *json, size_t len, mw_json_member_fn visit, void *data,
                        mw_json_kind_t *top, mw_json_error_t *err);

/* mw_envelope_string decodes the string at span (a key or a value that
 * mw_envelope_members reported for the same json) into UTF-8 bytes, as
 * cjson would: escapes translated, \uXXXX (surrogate pairs included)
 * written as UTF-8, \u0000 as a NUL byte. The
 * result is never longer than span->len - 2, so a buffer of span->len
 * bytes always suffices. *out_len gets its length. Returns 0, MW_EINVAL
 * when the span is not a string (or not one that scans), or MW_ETOOBIG
 * when cap is too small (nothing useful is in buf then). */
int mw_envelope_string(const char *json, const mw_envelope_span_t *span, char *buf, size_t cap,
                       size_t *out_len);

#endif

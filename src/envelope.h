/*
 * envelope.h - locate the envelope of a JSON message without decoding it.
 *
 * A client message is one JSON object whose few top-level keys (type,
 * action, id, data, room, event_id) route it; the rest, `data` above all, is
 * forwarded. mw_envelope_scan validates the whole text in one pass and
 * returns where the raw value of each of those keys lies in it, so that the
 * runtime reads the short strings it routes on and splices the others into
 * outgoing messages as the client's own bytes, never decoding or
 * re-encoding them.
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

/* Objects and arrays nested deeper than this (the top-level object counts
 * as 1) are rejected, as cjson with decode_max_depth(64) rejects them. */
#define MW_ENVELOPE_MAX_DEPTH 64

/* The JSON kind of a value; MW_JSON_NONE for a key that is absent. */
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

/* The top-level keys the scanner locates, as indexes of mw_envelope_t.field. */
typedef enum {
    MW_ENVELOPE_TYPE = 0,
    MW_ENVELOPE_ACTION,
    MW_ENVELOPE_ID,
    MW_ENVELOPE_DATA,
    MW_ENVELOPE_ROOM,
    MW_ENVELOPE_EVENT_ID,
    MW_ENVELOPE_NFIELDS
} mw_envelope_field_t;

/* The raw value of one key: json[off, off + len) is exactly the value's
 * text (a string's span includes its quotes). len is 0 when absent. */
typedef struct {
    size_t off;
    size_t len;
    mw_json_kind_t kind;
    bool escaped; /* a string with at least one backslash escape */
} mw_envelope_span_t;

typedef struct {
    mw_envelope_span_t field[MW_ENVELOPE_NFIELDS];
    bool other_keys; /* the object has a key that names no field */
    /* On error: the byte offset of the problem and a short, stable phrase
     * for it ("invalid escape"); err_what is NULL on success. */
    size_t err_pos;
    const char *err_what;
} mw_envelope_t;

/* mw_envelope_scan validates json[0, len) as one JSON text and, when it is
 * an object, fills out->field with the spans of the keys above. When a key
 * appears more than once, the last one wins (as in the table cjson builds).
 * Keys are compared after decoding their escapes ("typ\u0065" is "type").
 * Returns:
 *   0               an object; out->field filled
 *   MW_EJSON        not valid JSON (out->err_pos, out->err_what say why)
 *   MW_ENOTOBJ  valid JSON, but not an object (err_pos: where it starts)
 * On error every field is absent. */
int mw_envelope_scan(const char *json, size_t len, mw_envelope_t *out);

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

/* mw_envelope_members validates json[0, len) as one JSON text, by the same
 * rules as mw_envelope_scan, and calls visit(data, member) for each member
 * of the top-level object or element of the top-level array, in order, as
 * soon as its value ends: a visit can come before an error further on, so a
 * caller that builds something must discard it on error. This is how the
 * Lua side decodes one level of a value at a time (src/lua/json_lua.c).
 * *top (when not NULL) gets the kind of the whole text. Returns 0,
 * MW_EJSON (err, when not NULL, says where and why), or the first nonzero
 * value a visit returned. */
int mw_envelope_members(const char *json, size_t len, mw_json_member_fn visit, void *data,
                        mw_json_kind_t *top, mw_json_error_t *err);

/* mw_envelope_field_name returns the key of a field ("event_id"). */
const char *mw_envelope_field_name(mw_envelope_field_t field);

/* mw_envelope_string decodes the string value at span (from a scan of the
 * same json) into UTF-8 bytes, as cjson would: escapes translated, \uXXXX
 * (surrogate pairs included) written as UTF-8, \u0000 as a NUL byte. The
 * result is never longer than span->len - 2, so a buffer of span->len
 * bytes always suffices. *out_len gets its length. Returns 0, MW_EINVAL
 * when the span is not a string (or not one that scans), or MW_ETOOBIG
 * when cap is too small (nothing useful is in buf then). */
int mw_envelope_string(const char *json, const mw_envelope_span_t *span, char *buf, size_t cap,
                       size_t *out_len);

#endif

/*
 * utf8.h - an incremental UTF-8 validator (RFC 3629).
 *
 * Incremental so that a text message split across frames, or a code point
 * split across two reads, is validated without reassembly. Rejects overlong
 * forms, UTF-16 surrogates (U+D800..U+DFFF) and code points above U+10FFFF.
 */
#ifndef MW_UTF8_H
#define MW_UTF8_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t need;  /* continuation bytes still expected */
    uint8_t lo, hi; /* allowed range of the next continuation byte */
    int failed;
} mw_utf8_t;

/* clang-format 14 mangles this macro */
/* clang-format off */
#define MW_UTF8_INIT {0, 0x80, 0xBF, 0}
/* clang-format on */

/* mw_utf8_feed validates one more chunk. Returns 0 while the input is valid
 * so far, MW_EUTF8 as soon as it cannot be valid (fail fast). Once failed,
 * every later call returns MW_EUTF8. */
int mw_utf8_feed(mw_utf8_t *st, const uint8_t *p, size_t len);

/* mw_utf8_finish returns 0 when the input ended on a code point boundary,
 * MW_EUTF8 when a sequence was left truncated or the input was invalid. */
int mw_utf8_finish(const mw_utf8_t *st);

/* mw_utf8_valid checks a complete buffer in one call. Returns 1 or 0. */
int mw_utf8_valid(const uint8_t *p, size_t len);

#endif

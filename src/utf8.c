/*
 * utf8.c - incremental UTF-8 validation.
 *
 * The server must never send invalid UTF-8 in a text frame (RFC 6455 8.1), so
 * every text payload handed to us by Lua and every close reason passes here.
 * (Incoming text is validated by wslay itself, fail-fast, per chunk.)
 * The state is three bytes: how many continuation bytes remain, and the
 * allowed range of the next one, which is how overlongs, surrogates and
 * values past U+10FFFF are refused (the table in RFC 3629 section 4).
 */
#include "utf8.h"
#include "errors.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define HIGH_BITS 0x8080808080808080ull

int mw_utf8_feed(mw_utf8_t *st, const uint8_t *p, size_t len) {
    if (st->failed)
        return MW_EUTF8;
    for (size_t i = 0; i < len; i++) {
        /* Most payloads are mostly ASCII (JSON): between code points, skip
         * eight bytes at a time while none has its high bit set. memcpy
         * is the alignment-safe load; compilers make it one instruction. */
        if (!st->need) {
            uint64_t w;
            while (len - i >= 8 && (memcpy(&w, p + i, 8), (w & HIGH_BITS) == 0))
                i += 8;
            if (i == len)
                break;
        }
        uint8_t c = p[i];
        if (st->need) {
            if (c < st->lo || c > st->hi)
                goto fail;
            st->lo = 0x80;
            st->hi = 0xBF;
            st->need--;
            continue;
        }
        if (c < 0x80)
            continue;
        if (c >= 0xC2 && c <= 0xDF) {
            st->need = 1;
        } else if (c == 0xE0) {
            st->need = 2;
            st->lo = 0xA0; /* no overlong 3-byte forms */
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            st->need = 2;
        } else if (c == 0xED) {
            st->need = 2;
            st->hi = 0x9F; /* no surrogates */
        } else if (c == 0xF0) {
            st->need = 3;
            st->lo = 0x90; /* no overlong 4-byte forms */
        } else if (c >= 0xF1 && c <= 0xF3) {
            st->need = 3;
        } else if (c == 0xF4) {
            st->need = 3;
            st->hi = 0x8F; /* nothing above U+10FFFF */
        } else {
            goto fail; /* 0x80..0xC1 as a lead byte, or 0xF5..0xFF */
        }
    }
    return 0;
fail:
    st->failed = 1;
    return MW_EUTF8;
}

int mw_utf8_finish(const mw_utf8_t *st) {
    return (st->failed || st->need) ? MW_EUTF8 : 0;
}

/* mw_utf8_valid checks every text message the server receives on its fast
 * path and every one it sends, so an all-ASCII message (most JSON) is
 * settled first, sixteen bytes per step with the last eight bytes read
 * once more rather than one at a time; the first word with a high bit
 * sends the rest through mw_utf8_feed from that word on. */
int mw_utf8_valid(const uint8_t *p, size_t len) {
    size_t i = 0;
    uint64_t a, b;
#ifdef __SSE2__
    /* long messages: 64 bytes per step, one movemask for four loads */
    for (; len - i >= 64; i += 64) {
        __m128i x = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + i)),
                                 _mm_loadu_si128((const __m128i *)(const void *)(p + i + 16)));
        __m128i y = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + i + 32)),
                                 _mm_loadu_si128((const __m128i *)(const void *)(p + i + 48)));
        if (_mm_movemask_epi8(_mm_or_si128(x, y)))
            goto slow;
    }
#endif
    if (len - i >= 8) {
        for (; len - i >= 16; i += 16) {
            memcpy(&a, p + i, 8);
            memcpy(&b, p + i + 8, 8);
            if ((a | b) & HIGH_BITS)
                goto slow;
        }
        memcpy(&a, p + len - 8, 8); /* the last 8 bytes, overlapping what was read */
        memcpy(&b, p + (len - i >= 8 ? i : len - 8), 8);
        if (!((a | b) & HIGH_BITS))
            return 1;
    } else {
        for (; i < len; i++)
            if (p[i] & 0x80)
                goto slow;
        return 1;
    }
slow:;
    mw_utf8_t st = MW_UTF8_INIT;
    return mw_utf8_feed(&st, p + i, len - i) == 0 && mw_utf8_finish(&st) == 0;
}

/*
 * fuzz_utf8.c - libFuzzer target: the UTF-8 validator (src/utf8.c).
 *
 * Why: it decides what the server may put in a text frame and which close
 * reasons it accepts and echoes; a wrong "valid" sends bytes a browser must
 * fail the connection on. Its state machine is table-driven, and the
 * streaming form (mw_utf8_feed over chunks) must agree with the one-shot
 * form (mw_utf8_valid) however the input is cut.
 *
 * Checks: against a reference written here in another way (decode each
 * code point and ask whether its leading bits can still end in a scalar
 * value: >= the shortest form's minimum, <= U+10FFFF, not a surrogate):
 * mw_utf8_valid says the same; fed in one piece, byte by byte and in random
 * pieces with empty feeds in between, mw_utf8_feed fails exactly on the
 * piece holding the first byte that cannot be part of valid UTF-8 (fail
 * fast), stays failed, and mw_utf8_finish agrees with mw_utf8_valid.
 */
#include "fuzz.h"
#include "errors.h"
#include "utf8.h"

/* completable: some value whose leading bits are `prefix`, with `rem` more
 * 6-bit groups to come, is a scalar value of this sequence length. */
static int completable(uint32_t prefix, int rem, uint32_t min) {
    uint32_t lo = prefix << (6 * rem), hi = lo | ((1u << (6 * rem)) - 1);
    if (hi < min || lo > 0x10FFFF)
        return 0;
    if (lo < min)
        lo = min;
    if (hi > 0x10FFFF)
        hi = 0x10FFFF;
    return lo < 0xD800 || hi > 0xDFFF;
}

/* ref_scan returns the offset of the first byte at which p stops being a
 * prefix of valid UTF-8 (len if it never does), and sets *complete when p
 * ends on a code point boundary. */
static size_t ref_scan(const uint8_t *p, size_t len, int *complete) {
    *complete = 1;
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        int n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC0 && c < 0xE0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c < 0xF0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c < 0xF8) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return i; /* a continuation byte, or no UTF-8 lead byte at all */
        }
        if (!completable(cp, n, min))
            return i;
        for (int k = 1; k <= n; k++) {
            if (i + k == len) {
                *complete = 0;
                return len;
            }
            uint8_t d = p[i + k];
            if ((d & 0xC0) != 0x80)
                return i + k;
            cp = cp << 6 | (d & 0x3F);
            if (!completable(cp, n - k, min))
                return i + k;
        }
        i += (size_t)n + 1;
    }
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    int complete;
    size_t bad = ref_scan(data, len, &complete);
    int valid = bad == len && complete;
    FUZZ_CHECK(mw_utf8_valid(data, len) == valid);

    for (int m = 0; m < FUZZ_NSPLITS; m++) {
        fuzz_split_t s = fuzz_split_init(m, data, len);
        mw_utf8_t st = MW_UTF8_INIT;
        int failed = 0;
        for (size_t off = 0; off < len;) {
            size_t n = fuzz_next_chunk(&s, len - off);
            int rc = mw_utf8_feed(&st, data + off, n);
            /* Fails on the piece with the first bad byte, and stays failed. */
            int should_fail = bad < off + n;
            FUZZ_CHECK(rc == (should_fail ? MW_EUTF8 : 0));
            FUZZ_CHECK(!failed || should_fail);
            failed = should_fail;
            if (m == FUZZ_RANDOM && (fuzz_rand(&s) & 7) == 0)
                FUZZ_CHECK(mw_utf8_feed(&st, data, 0) == (failed ? MW_EUTF8 : 0));
            off += n;
        }
        FUZZ_CHECK((mw_utf8_finish(&st) == 0) == valid);
    }
    return 0;
}

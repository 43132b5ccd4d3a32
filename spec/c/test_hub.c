/*
 * test_hub.c - the hub's records (src/hub.c): written then parsed back,
 * taken whole from a stream that delivers them in pieces, bad bytes
 * refused.
 */
#include "errors.h"
#include "hub.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static void test_round_trip(void) {
    char buf[64];
    size_t n = mw_hub_record_size(7, 5);
    CHECK_EQ(n, MW_HUB_HEADER + 12);
    mw_hub_record_write(buf, MW_HUB_PUB, "mw:room", 7, "a\0b\nc", 5);
    mw_hub_record_t rec;
    CHECK_EQ(mw_hub_record_parse(buf, n - 1, &rec), 0); /* not all there */
    CHECK_EQ(mw_hub_record_parse(buf, n, &rec), (long)n);
    CHECK_EQ(rec.op, MW_HUB_PUB);
    CHECK_MEM(rec.channel, rec.channel_len, "mw:room", 7);
    CHECK_MEM(rec.payload, rec.payload_len, "a\0b\nc", 5);
    mw_hub_record_write(buf, MW_HUB_SUB, "x", 1, NULL, 0);
    CHECK_EQ(mw_hub_record_parse(buf, mw_hub_record_size(1, 0), &rec), MW_HUB_HEADER + 1);
    CHECK_EQ(rec.payload_len, 0);
}

static void test_bad_records(void) {
    char buf[16];
    mw_hub_record_t rec;
    mw_hub_record_write(buf, MW_HUB_PUB, "ch", 2, "p", 1);
    buf[4] = 9; /* no such op */
    CHECK_EQ(mw_hub_record_parse(buf, sizeof buf, &rec), MW_EPROTO);
    mw_hub_record_write(buf, MW_HUB_PUB, "ch", 2, "p", 1);
    buf[6] = 5; /* a channel longer than the record */
    CHECK_EQ(mw_hub_record_parse(buf, sizeof buf, &rec), MW_EPROTO);
    memset(buf, 0xff, 4); /* a length past the limit */
    CHECK_EQ(mw_hub_record_parse(buf, sizeof buf, &rec), MW_EPROTO);
}

static int seen;
static char last[32];

static void count(void *data, const mw_hub_record_t *rec) {
    (void)data;
    seen++;
    memcpy(last, rec->payload, rec->payload_len);
    last[rec->payload_len] = '\0';
}

/* Three records arrive one byte at a time: each comes out whole, once. */
static void test_reader_pieces(void) {
    char stream[96];
    size_t len = 0;
    const char *payloads[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        size_t pl = strlen(payloads[i]);
        mw_hub_record_write(stream + len, MW_HUB_PUB, "c", 1, payloads[i], pl);
        len += mw_hub_record_size(1, pl);
    }
    mw_hub_reader_t r = {0};
    seen = 0;
    for (size_t i = 0; i < len; i++) {
        uv_buf_t b;
        REQUIRE(mw_hub_reader_alloc(&r, &b) == 0);
        b.base[0] = stream[i];
        CHECK_EQ(mw_hub_reader_take(&r, 1, count, NULL), 0);
    }
    CHECK_EQ(seen, 3);
    CHECK_STR(last, "three");
    CHECK_EQ(r.len, 0);
    mw_hub_reader_free(&r);
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_bad_records);
    RUN(test_reader_pieces);
    return test_summary();
}

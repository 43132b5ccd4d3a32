/*
 * log.c - the line logger.
 *
 * Writes go to stderr with one fprintf per line so that lines from one
 * process never interleave mid-line. Timestamps are UTC with milliseconds.
 * A sink (mw_log_set_sink) takes the lines instead: the test driver of
 * src/lua/ hands them to specs (harness:logs()).
 */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static mw_log_level min_level = MW_LOG_INFO;
static int json_format = 0;
static int worker_id = 0; /* supervisor.h: 0 when not a worker */
static mw_log_sink_cb sink;
static void *sink_data;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void mw_log_configure(mw_log_level level, int json) {
    min_level = level;
    json_format = json;
}

void mw_log_set_worker(int id) {
    worker_id = id;
}

void mw_log_set_sink(mw_log_sink_cb fn, void *data) {
    sink = fn;
    sink_data = data;
}

int mw_log_level_parse(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

int mw_log_enabled(mw_log_level level) {
    return level >= min_level;
}

void mw_json_escape(FILE *f, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
}

static void format_time(char *out, size_t n) {
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t len = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + len, n - len, ".%03dZ", (int)(tv.tv_usec / 1000));
}

void mw_log(mw_log_level level, const char *fmt, ...) {
    if (level < min_level)
        return;
    char msg[4096], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (sink) {
        sink(sink_data, level, msg);
        return;
    }
    format_time(ts, sizeof ts);

    /* Build the whole line in memory so it is written with one call. */
    char line[8192];
    FILE *f = fmemopen(line, sizeof line, "w");
    if (!f)
        return;
    if (json_format) {
        fprintf(f, "{\"ts\":\"%s\",\"level\":\"%s\",", ts, level_names[level]);
        if (worker_id)
            fprintf(f, "\"worker\":%d,", worker_id);
        fputs("\"msg\":\"", f);
        mw_json_escape(f, msg);
        fputs("\"}\n", f);
    } else {
        fprintf(f, "%s %-5s ", ts, level_names[level]);
        if (worker_id)
            fprintf(f, "[worker %d] ", worker_id);
        for (char *p = msg; *p; p++) {
            if (*p == '\n')
                fputs("\\n", f);
            else
                fputc(*p, f);
        }
        fputc('\n', f);
    }
    long n = ftell(f);
    fclose(f);
    if (n > 0) {
        if ((size_t)n >= sizeof line)
            line[sizeof line - 2] = '\n', n = sizeof line - 1;
        fwrite(line, 1, (size_t)n, stderr);
    }
}

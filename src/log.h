/*
 * log.h - one line per event, as text or JSON, with levels.
 *
 * The logger is the one piece of process-wide state outside mw_server_t:
 * configuration errors must be reportable before a server exists, and every
 * module logs. It is set once at start-up and read-only afterwards.
 */
#ifndef MW_LOG_H
#define MW_LOG_H

#include <stdio.h>

typedef enum { MW_LOG_DEBUG = 0, MW_LOG_INFO, MW_LOG_WARN, MW_LOG_ERROR } mw_log_level;

/* mw_log_configure sets the minimum level and the format (json = 1). */
void mw_log_configure(mw_log_level level, int json);

/* mw_log_set_worker tags every line with a worker's number (supervisor.h):
 * "[worker 2] " in text, "worker":2 in JSON. 0: no tag. */
void mw_log_set_worker(int id);

/* mw_log_level_parse maps "debug".."error" to a level; -1 if unknown. */
int mw_log_level_parse(const char *name);

/* mw_log_enabled tells whether a line at this level would be written. */
int mw_log_enabled(mw_log_level level);

/* A sink receives every line instead of stderr (specs collect them; see
 * mw_log_set_sink). msg is the formatted message without timestamp or
 * level, valid during the call. */
typedef void (*mw_log_sink_cb)(void *data, mw_log_level level, const char *msg);

/* mw_log_set_sink routes every later line to fn(data, ...) instead of
 * stderr; fn = NULL restores stderr. Lines below the configured level are
 * still dropped before they reach it. */
void mw_log_set_sink(mw_log_sink_cb fn, void *data);

/* mw_log writes one line to stderr (or the sink). Newlines in the message are escaped so a
 * line is always one event. */
void mw_log(mw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define mw_log_debug(...) mw_log(MW_LOG_DEBUG, __VA_ARGS__)
#define mw_log_info(...) mw_log(MW_LOG_INFO, __VA_ARGS__)
#define mw_log_warn(...) mw_log(MW_LOG_WARN, __VA_ARGS__)
#define mw_log_error(...) mw_log(MW_LOG_ERROR, __VA_ARGS__)

/* mw_json_escape writes s as a JSON string body (no quotes) to f. Shared by
 * the JSON log format and the /health endpoint. */
void mw_json_escape(FILE *f, const char *s);

#endif

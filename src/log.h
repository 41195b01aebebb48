/*
 * log.h - levelled logging to stderr or a file.
 *
 * One line per event: "2026-11-24T10:00:00.123Z info c2s: message". Level and
 * destination come from the config and can change on reload (SIGHUP reopens the
 * file, so logrotate works).
 */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARN, LOG_ERROR };

/* Opens path for appending (NULL: stderr). Returns 0 or -1 with errno. */
int log_open(const char *path);
void log_close(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "debug", "info", ... ; -1 when the name is unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *subsys, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(sub, ...)  do { if (log_get_level() <= LOG_DEBUG) \
	log_msg(LOG_DEBUG, (sub), __VA_ARGS__); } while (0)
#define log_info(sub, ...)   log_msg(LOG_INFO, (sub), __VA_ARGS__)
#define log_notice(sub, ...) log_msg(LOG_NOTICE, (sub), __VA_ARGS__)
#define log_warn(sub, ...)   log_msg(LOG_WARN, (sub), __VA_ARGS__)
#define log_error(sub, ...)  log_msg(LOG_ERROR, (sub), __VA_ARGS__)

#endif

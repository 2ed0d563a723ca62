/* SPDX-License-Identifier: MIT */
/*
 * log.h - ferryd's log: one line per event on stderr (journald picks it
 * up), with a timestamp and a level.  Thread-safe: each line is written
 * with one write(2).
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3, LOG_TRACE = 4 };

extern enum log_level log_threshold;

int log_level_parse(const char *s, enum log_level *out);
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_threshold >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_trace(...) do { if (log_threshold >= LOG_TRACE) log_msg(LOG_TRACE, __VA_ARGS__); } while (0)

#endif

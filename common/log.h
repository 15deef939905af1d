/*
 * log.h: the daemon's log, on stderr. Syslog levels; messages are lowercase and name their object
 * ("store: map grown to 2 GiB"). Under journald (JOURNAL_STREAM set) each line starts with a <N>
 * level prefix and carries no timestamp; otherwise it starts with an ISO time and the level's name.
 */
#ifndef HSAMEM_LOG_H
#define HSAMEM_LOG_H

#include <syslog.h>

/* Messages above this level (LOG_DEBUG > LOG_INFO > ... > LOG_ERR) are dropped.
 * Default LOG_INFO. */
void log_set_level(int level);
int log_level(void);
/* "debug", "info", "notice", "warning", "err"/"error", "crit": the level, or -1. */
int log_level_parse(const char *name);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)    log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  log_msg(LOG_DEBUG, __VA_ARGS__)

#endif

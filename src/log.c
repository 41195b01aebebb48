/*
 * log.c - levelled logging to stderr or a file.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

static FILE *log_fp;
static enum log_level log_level = LOG_INFO;

static const char *const level_names[] = {
	[LOG_DEBUG] = "debug", [LOG_INFO] = "info", [LOG_NOTICE] = "notice",
	[LOG_WARN] = "warn", [LOG_ERROR] = "error",
};

int log_open(const char *path)
{
	FILE *fp = stderr;

	if (path && *path) {
		fp = fopen(path, "a");
		if (!fp)
			return -1;
		setvbuf(fp, NULL, _IOLBF, 0);
	}
	log_close();
	log_fp = fp;
	return 0;
}

void log_close(void)
{
	if (log_fp && log_fp != stderr)
		fclose(log_fp);
	log_fp = NULL;
}

void log_set_level(enum log_level level) { log_level = level; }
enum log_level log_get_level(void) { return log_level; }

int log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(name, "warning") == 0)
		return LOG_WARN;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[level];
}

void log_msg(enum log_level level, const char *subsys, const char *fmt, ...)
{
	FILE *fp = log_fp ? log_fp : stderr;
	struct timeval tv;
	struct tm tm;
	char stamp[32];
	char line[2048];
	va_list ap;
	int saved = errno;

	if (level < log_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One fprintf per line so concurrent writers (several nodes, one file)
	 * do not interleave inside a line. */
	fprintf(fp, "%s.%03ldZ %-6s %s: %s\n", stamp, (long)(tv.tv_usec / 1000),
		level_names[level], subsys ? subsys : "parley", line);
	errno = saved;
}

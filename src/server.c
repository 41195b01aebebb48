/*
 * server.c - the one struct server of the process (see server.h).
 */
#include "server.h"

#include <stdio.h>
#include <unistd.h>

struct server server;

long server_rss_kb(void)
{
	FILE *fp = fopen("/proc/self/statm", "r");
	long pages = 0, rss = 0;

	if (!fp)
		return -1;
	if (fscanf(fp, "%ld %ld", &pages, &rss) != 2)
		rss = -1;
	fclose(fp);
	return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

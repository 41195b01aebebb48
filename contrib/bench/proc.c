/*
 * proc.c - process figures from /proc (see proc.h). Reading them costs the
 * parent a few file reads per phase, never anything in the workers' loops.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "proc.h"

int proc_status_kib(pid_t pid, const char *file, const char *key, uint64_t *out)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	FILE *f;
	int rc = -1;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			*out = strtoull(line + kl + 1, NULL, 10);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NAN;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return NAN;
	buf[n] = '\0';
	p = strrchr(buf, ')');	/* the command name may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return NAN;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double server_cpu(void)
{
	double t = 0;

	if (!opt.npids)
		return NAN;
	for (int i = 0; i < opt.npids; i++)
		t += proc_cpu_s(opt.pids[i]);
	return t;
}

struct mem server_mem(void)
{
	struct mem m = { 0, 0 };

	if (!opt.npids)
		return (struct mem){ NAN, NAN };
	for (int i = 0; i < opt.npids; i++) {
		uint64_t v;

		m.rss += proc_status_kib(opt.pids[i], "status", "VmRSS", &v) == 0 ?
			 (double)v : NAN;
		m.pss += proc_status_kib(opt.pids[i], "smaps_rollup", "Pss", &v) == 0 ?
			 (double)v : NAN;
	}
	return m;
}

/*
 * floor.c - what one delivery costs a server that does nothing but write it:
 * N loopback TCP connections, a reader process that reads them all (epoll, as
 * parley-bench does), and a writer that sends one stanza-sized writev() of
 * three pieces (head, 'to', rest: what Parley's shared broadcast writes) to
 * every connection RATE times a second. Prints the writer's CPU seconds
 * (user + system, getrusage) per 100k writes: the floor under any server's
 * "CPU s/100k deliveries" in the muc scenario on this machine, since each
 * delivery is at least one such write.
 *
 *	cc -O2 -o floor contrib/bench/floor.c
 *	./floor [N=100] [RATE=50] [SECONDS=10] [BYTES=420]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100, rate = argc > 2 ? atoi(argv[2]) : 50;
	int secs = argc > 3 ? atoi(argv[3]) : 10, bytes = argc > 4 ? atoi(argv[4]) : 420;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), *w, one = 1;
	char *msg;
	pid_t reader;

	if (n < 1 || n > 10000 || rate < 1 || secs < 1 || bytes < 64 || bytes > 65536)
		return 2;
	w = calloc((size_t)n, sizeof(*w));
	msg = malloc((size_t)bytes);
	memset(msg, 'x', (size_t)bytes);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, n) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("listen");
		return 1;
	}
	reader = fork();
	if (reader == 0) {
		int ep = epoll_create1(0);
		char buf[65536];

		for (int i = 0; i < n; i++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

			if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
				_exit(1);
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		}
		for (;;) {
			struct epoll_event evs[256];
			int k = epoll_wait(ep, evs, 256, -1);

			for (int i = 0; i < k; i++)
				if (read(evs[i].data.fd, buf, sizeof(buf)) <= 0)
					_exit(0);
		}
	}
	for (int i = 0; i < n; i++) {
		w[i] = accept(lfd, NULL, NULL);
		setsockopt(w[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	{
		double t0 = now(), c0 = cpu(), next = t0;
		long writes = 0;

		for (int step = 0; step < rate * secs; step++) {
			struct iovec iov[3] = {
				{ msg, 40 }, { msg + 40, 24 }, { msg + 64, (size_t)bytes - 64 },
			};
			struct timespec ts;
			double d;

			for (int i = 0; i < n; i++, writes++)
				if (writev(w[i], iov, 3) < 0)
					perror("writev");
			next += 1.0 / rate;
			if ((d = next - now()) > 0) {
				ts.tv_sec = (time_t)d;
				ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
				nanosleep(&ts, NULL);
			}
		}
		printf("floor: %d connections, %d writes/s each of %d bytes, %.1f s: "
		       "%.3f CPU s per 100k writes (%.2f us each)\n", n, rate, bytes, now() - t0,
		       (cpu() - c0) / writes * 1e5, (cpu() - c0) / writes * 1e6);
	}
	kill(reader, SIGTERM);
	waitpid(reader, NULL, 0);
	return 0;
}

/*
 * worker.c - a few threads for CPU-heavy work that must not run on the loop.
 *
 * Jobs go into a queue guarded by a mutex; finished jobs come back on a second
 * queue and an eventfd wakes the loop, which runs their done() callbacks.
 */
#include "worker.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

#define WORKER_MAX 8

struct job {
	void (*work)(void *);
	void (*done)(void *);
	void *arg;
	struct job *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *todo, *todo_tail;
	struct job *finished;
	pthread_t threads[WORKER_MAX];
	unsigned nthreads;
	bool stopping;
	int efd;
	struct event *ev;
} w = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .efd = -1 };

static void *worker_main(void *unused)
{
	pthread_mutex_lock(&w.lock);
	for (;;) {
		struct job *j;
		uint64_t one = 1;

		while (!w.todo && !w.stopping)
			pthread_cond_wait(&w.cond, &w.lock);
		if (!w.todo)
			break;
		j = w.todo;
		w.todo = j->next;
		if (!w.todo)
			w.todo_tail = NULL;
		pthread_mutex_unlock(&w.lock);
		j->work(j->arg);
		pthread_mutex_lock(&w.lock);
		j->next = w.finished;
		w.finished = j;
		if (write(w.efd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow here; nothing to do. */
		}
	}
	pthread_mutex_unlock(&w.lock);
	return NULL;
}

static void on_finished(evutil_socket_t fd, short what, void *unused)
{
	struct job *list, *rev = NULL;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: another wake-up already drained it */
	}
	pthread_mutex_lock(&w.lock);
	list = w.finished;
	w.finished = NULL;
	pthread_mutex_unlock(&w.lock);
	/* The list is newest first: reverse it so callbacks run in finishing order. */
	while (list) {
		struct job *next = list->next;

		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		struct job *next = rev->next;

		rev->done(rev->arg);
		free(rev);
		rev = next;
	}
}

int worker_init(struct event_base *base, unsigned nthreads)
{
	if (nthreads == 0 || nthreads > WORKER_MAX)
		nthreads = 2;
	w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w.efd < 0)
		return -1;
	w.ev = event_new(base, w.efd, EV_READ | EV_PERSIST, on_finished, NULL);
	if (!w.ev || event_add(w.ev, NULL) < 0)
		return -1;
	w.stopping = false;
	for (w.nthreads = 0; w.nthreads < nthreads; w.nthreads++) {
		if (pthread_create(&w.threads[w.nthreads], NULL, worker_main, NULL) != 0) {
			log_error("worker", "cannot start a worker thread");
			return -1;
		}
	}
	return 0;
}

int worker_submit(void (*work)(void *), void (*done)(void *), void *arg)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return -1;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w.lock);
	if (w.todo_tail)
		w.todo_tail->next = j;
	else
		w.todo = j;
	w.todo_tail = j;
	pthread_cond_signal(&w.cond);
	pthread_mutex_unlock(&w.lock);
	return 0;
}

void worker_shutdown(void)
{
	pthread_mutex_lock(&w.lock);
	w.stopping = true;
	pthread_cond_broadcast(&w.cond);
	pthread_mutex_unlock(&w.lock);
	for (unsigned i = 0; i < w.nthreads; i++)
		pthread_join(w.threads[i], NULL);
	w.nthreads = 0;
	/* Run the done() of jobs that finished after the loop stopped, so each
	 * owner gets its callback (and frees its argument) exactly once. */
	while (w.finished) {
		struct job *next = w.finished->next;

		w.finished->done(w.finished->arg);
		free(w.finished);
		w.finished = next;
	}
	if (w.ev)
		event_free(w.ev);
	w.ev = NULL;
	if (w.efd >= 0)
		close(w.efd);
	w.efd = -1;
}

/*
 * idle.c - the idle scenario (see idle.h). The workers only answer the
 * server's pings (receive.c), so sessions can be held past an idle timeout.
 *
 * A server that has already served sessions reuses the memory they freed,
 * so its RSS hardly grows and the figure per session reads about 0: the
 * JSON then says so ("memory_note"). Measure on a freshly started server.
 */
#include <math.h>

#include "idle.h"
#include "json.h"
#include "login.h"
#include "options.h"
#include "parent.h"
#include "proc.h"
#include "util.h"

static void idle_json(const struct mem *before, const struct mem *after, uint32_t ok)
{
	double b = workers_rss();

	j_num("hold_s", opt.hold_s, 1);
	j_num("settle_s", opt.settle_s, 1);
	j_num("server_rss_kib_before", before->rss, 0);
	j_num("server_rss_kib_after", after->rss, 0);
	j_num("server_pss_kib_before", before->pss, 0);
	j_num("server_pss_kib_after", after->pss, 0);
	j_num("rss_kib_per_session", ok ? (after->rss - before->rss) / ok : NAN, 2);
	j_num("pss_kib_per_session", ok ? (after->pss - before->pss) / ok : NAN, 2);
	j_num("bench_rss_kib", b, 0);
	j_num("bench_rss_kib_per_session", ok ? b / ok : NAN, 2);
	if (ok && after->rss - before->rss < 0.05 * ok)
		j_str("memory_note", "the server's memory hardly grew: it probably reuses what "
		      "earlier sessions freed; measure on a freshly started server");
	note("server memory per session: %.2f KiB RSS, %.2f KiB PSS",
	     ok ? (after->rss - before->rss) / ok : NAN,
	     ok ? (after->pss - before->pss) / ok : NAN);
}

void scenario_idle(void)
{
	struct report sum;
	struct mem before, after;
	uint64_t t_logged;
	double hold_left;

	before = server_mem();
	P.phase = "logging in";
	if (phase_login(0, "", &sum) < 0)
		return;
	t_logged = now_ns();
	P.phase = "settling";
	if (wait_reports(0, now_ns() + (uint64_t)(opt.settle_s * 1e9)) < 0)
		return;
	after = server_mem();
	idle_json(&before, &after, sum.ok);
	hold_left = opt.hold_s - (double)(now_ns() - t_logged) / 1e9;
	P.phase = "holding";
	if (hold_left > 0)
		wait_reports(0, now_ns() + (uint64_t)(hold_left * 1e9));
}

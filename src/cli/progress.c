/*
 * progress.c: the progress line of `xylem run` (see progress.h). The line
 * is built once per update and written with a single fputs, so it never
 * interleaves with itself; rate is tasks done per second since the start.
 */
#include "progress.h"

#include <time.h>
#include <unistd.h>

#include "xylem.h"

#define TTY_INTERVAL 0.1
#define LOG_INTERVAL 5.0

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void xy_progress_init(struct xy_progress *p, FILE *out, int enabled)
{
	p->out = out;
	p->tty = isatty(fileno(out));
	p->enabled = enabled;
	p->shown = 0;
	p->start = mono_now();
	p->last = p->start;
}

double xy_progress_elapsed(const struct xy_progress *p)
{
	return mono_now() - p->start;
}

void xy_progress_update(struct xy_progress *p,
			const struct xy_progress_counts *c, int force)
{
	double now = mono_now(), elapsed = now - p->start;
	double rate = elapsed > 0 ? (double)c->done / elapsed : 0;
	char line[256];

	if (!p->enabled)
		return;
	if (p->tty) {
		if (!force && now - p->last < TTY_INTERVAL)
			return;
		/* \033[K erases what a longer previous line left behind. */
		snprintf(line, sizeof line,
			 "\r%lld/%lld done, %lld running, %.1f/s, %lld failed\033[K",
			 (long long)c->done, (long long)c->total,
			 (long long)c->running, rate, (long long)c->failed);
		p->shown = 1;
	} else {
		/* Not a terminal: a line every few seconds, and none at all
		 * for a run shorter than that. */
		if (now - p->last < LOG_INTERVAL)
			return;
		snprintf(line, sizeof line,
			 "progress: %lld/%lld done, %lld running, %.1f/s,"
			 " %lld failed, %.0f s\n",
			 (long long)c->done, (long long)c->total,
			 (long long)c->running, rate, (long long)c->failed,
			 elapsed);
	}
	p->last = now;
	fputs(line, p->out);
	fflush(p->out);
}

void xy_progress_manager(struct xy_progress *p, const struct xy_manager *m,
			 int64_t total, int force)
{
	struct xy_progress_counts c;
	struct xy_stats st;

	if (!p->enabled)
		return;
	xy_manager_stats(m, &st);
	c.done = st.tasks_done + st.tasks_succeeded + st.tasks_failed;
	c.failed = st.tasks_failed;
	c.running = st.tasks_running;
	c.total = total > c.done ? total : c.done;
	xy_progress_update(p, &c, force);
}

void xy_progress_clear(struct xy_progress *p)
{
	if (p->enabled && p->tty && p->shown) {
		fputs("\r\033[K", p->out);
		fflush(p->out);
		p->shown = 0;
	}
}

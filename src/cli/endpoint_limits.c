/*
 * endpoint_limits.c: the administrator's limits on each user's Python
 * session (docs/endpoint.md, "Limits"), read from the endpoint's
 * configuration beside endpoint.c's own settings. Each setting is checked
 * here, once, with its type and range, and becomes arguments of the
 * session servers the spawner starts (`--limit KEY=VALUE`, `--option
 * NAME=SPEC`, `--pool NAME=SPEC`), which enforce them
 * (python/xylem/endpoint.py). The caps on a user's workers and cores
 * (max_workers, max_cores, `user NAME = ...`) size the manager and the
 * session server the spawner starts (xy_cli_ep_limits_size), and go to
 * the session server too, which fits the pools it grants within them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spawn.h"

/* The per-call options a schema may name: those of Executor.options()
 * that mean something to a session server's executor. */
static const char *const option_names[] = {
	"cores", "memory", "disk", "gpus", "retries", "time_limit",
	"priority", "tag", NULL,
};

static int add_arg(struct xy_ep_config *cfg, const char *flag,
		   const char *key, const char *value)
{
	size_t n = strlen(key) + strlen(value) + 2;
	char *kv;

	if (cfg->n_session_args + 2 > XY_EP_SESSION_ARGS_MAX) {
		errno = E2BIG;
		return -1;
	}
	if (!(kv = malloc(n)))
		return -1;
	snprintf(kv, n, "%s=%s", key, value);
	cfg->session_args[cfg->n_session_args++] = (char *)flag;
	cfg->session_args[cfg->n_session_args++] = kv;
	return 0;
}

/* A whole number with an optional unit (units: NULL-terminated pairs of
 * suffix and factor), from lo to hi: 0, or -1. */
static int number(const char *v, const char *const *units,
		  const long long *factors, long long lo, long long hi,
		  long long *out)
{
	char *end;
	long long n, f = 1;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || end == v)
		return -1;
	if (*end) {
		int i;
		for (i = 0; units && units[i]; i++)
			if (strcmp(end, units[i]) == 0)
				break;
		if (!units || !units[i])
			return -1;
		f = factors[i];
	}
	if (n < 0 || (f > 1 && n > hi / f))
		return -1;
	n *= f;
	if (n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

/* "int LO..HI", "float LO..HI" or "enum A, B, C": 0, or -1. */
static int check_schema(const char *name, const char *spec, char *err,
			size_t len)
{
	int i;
	char *end;

	for (i = 0; option_names[i]; i++)
		if (strcmp(name, option_names[i]) == 0)
			break;
	if (!option_names[i]) {
		snprintf(err, len, "option '%s' is not one users can set (cores,"
			 " memory, disk, gpus, retries, time_limit, priority, "
			 "tag)", name);
		return -1;
	}
	if (strncmp(spec, "enum ", 5) == 0) {
		for (const char *p = spec + 5; *p; p++)
			if (*p != ' ' && *p != ',')
				return 0;
	} else if (strncmp(spec, "int ", 4) == 0 ||
		   strncmp(spec, "float ", 6) == 0) {
		/* Split at "..": strtod would take "1." of "1..2". */
		int is_int = spec[0] == 'i';
		const char *p = spec + (is_int ? 4 : 6), *dots = strstr(p, "..");
		char lo_s[64];
		double lo, hi;
		/* Decimal only: Python's float() takes no hex, inf or nan. */
		if (dots && (size_t)(dots - p) < sizeof lo_s &&
		    strspn(p, "0123456789+-.eE") == strlen(p)) {
			memcpy(lo_s, p, dots - p);
			lo_s[dots - p] = '\0';
			errno = 0;
			lo = is_int ? (double)strtoll(lo_s, &end, 10)
				    : strtod(lo_s, &end);
			int lo_ok = !errno && end != lo_s && !*end;
			p = dots + 2;
			hi = is_int ? (double)strtoll(p, &end, 10)
				    : strtod(p, &end);
			if (lo_ok && !errno && end != p && !*end && lo <= hi)
				return 0;
		}
	}
	snprintf(err, len, "option %s wants 'int LO..HI', 'float LO..HI' or "
		 "'enum A, B, ...', not '%s'", name, spec);
	return -1;
}

/* "PROVIDER CORES MAX_WORKERS [USER, ...]" for pool name: 0, or -1. */
static int check_pool(const char *name, const char *v, char *err,
		      size_t len)
{
	static const char *const providers[] = {"local", "slurm",
						"gridengine", NULL};
	char provider[16];
	long cores, max;
	int used = 0, i;
	size_t n = strlen(name);

	if (n == 0 || n > 32 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
				      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
				       != n) {
		snprintf(err, len, "a pool's name is 1 to 32 letters, digits, "
			 "'-' and '_', not '%s'", name);
		return -1;
	}
	if (sscanf(v, "%15s %ld %ld%n", provider, &cores, &max, &used) != 3)
		goto bad;
	for (i = 0; providers[i]; i++)
		if (strcmp(provider, providers[i]) == 0)
			break;
	/* The number ends where a word does ("10abc" and "10.5" are not
	 * numbers to the session server's int() either). */
	if (!providers[i] || cores < 1 || cores > 4096 || max < 1 ||
	    max > 100000 || (v[used] && !strchr(" ,\t", v[used])))
		goto bad;
	for (const char *p = v + used; *p; p++)
		if (!strchr(" ,\t", *p) &&
		    !strchr("abcdefghijklmnopqrstuvwxyz0123456789_-.", *p))
			goto bad;
	return 0;
bad:
	snprintf(err, len, "pool %s wants 'PROVIDER CORES MAX_WORKERS [USER, "
		 "...]' (local, slurm or gridengine; 1 to 4096 cores; 1 to "
		 "100000 workers), not '%s'", name, v);
	return -1;
}

#define CAP_MAX (1 << 20) /* workers or cores a cap may name */

/* "max_workers N, max_cores M" (either, both) for user name: 0, or -1. */
static int user_caps(struct xy_ep_config *cfg, const char *name,
		     const char *v, char *err, size_t len)
{
	struct xy_ep_caps c = {0};
	char buf[256], *save, *w;
	size_t n = strlen(name);

	if (n == 0 || n >= XY_EP_NAME_MAX || strpbrk(name, " \t,") ||
	    cfg->n_caps == XY_EP_USERS_MAX || strlen(v) >= sizeof buf) {
		snprintf(err, len, "user wants an account name (at most %d "
			 "users), not '%s'", XY_EP_USERS_MAX, name);
		return -1;
	}
	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(buf, sizeof buf, "%s", v);
	for (w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		char key[32];
		long k;
		int used = 0;
		if (sscanf(w, " %31s %ld %n", key, &k, &used) != 2 ||
		    w[used] || k < 1 || k > CAP_MAX)
			goto bad;
		if (strcmp(key, "max_workers") == 0 && !c.max_workers)
			c.max_workers = (int)k;
		else if (strcmp(key, "max_cores") == 0 && !c.max_cores)
			c.max_cores = (int)k;
		else
			goto bad;
	}
	if (!c.max_workers && !c.max_cores)
		goto bad;
	for (int i = 0; i < cfg->n_caps; i++)
		if (strcmp(cfg->caps[i].name, name) == 0) {
			snprintf(err, len, "user %s is set twice", name);
			return -1;
		}
	cfg->caps[cfg->n_caps++] = c;
	return 0;
bad:
	snprintf(err, len, "user %s wants 'max_workers N, max_cores M' (either"
		 " or both, 1 to %d), not '%s'", name, CAP_MAX, v);
	return -1;
}

void xy_cli_ep_limits_size(const struct xy_ep_config *cfg, const char *name,
			   int python, struct xy_ep_size *sz)
{
	int w = cfg->workers, c = cfg->cores_per_worker;

	sz->max_workers = cfg->max_workers;
	sz->max_cores = cfg->max_cores;
	for (int i = 0; i < cfg->n_caps; i++)
		if (strcmp(cfg->caps[i].name, name) == 0) {
			if (cfg->caps[i].max_workers)
				sz->max_workers = cfg->caps[i].max_workers;
			if (cfg->caps[i].max_cores)
				sz->max_cores = cfg->caps[i].max_cores;
		}
	sz->capped = 0;
	if (sz->max_workers && w > sz->max_workers) {
		w = sz->max_workers;
		sz->capped = 1;
	}
	if (sz->max_cores && w > 0) {
		/* The manager's default is the machine's cores over its
		 * workers: with a cap, its share of the cap instead. */
		if (c == 0)
			c = python ? 1 : sz->max_cores / w;
		if (c < 1)
			c = 1;
		if (c > sz->max_cores) {
			c = sz->max_cores;
			sz->capped = 1;
		}
		if (w > sz->max_cores / c) {
			w = sz->max_cores / c;
			sz->capped = 1;
		}
	}
	sz->workers = w;
	sz->cores = c;
}

int xy_cli_ep_limits_line(struct xy_ep_config *cfg, const char *key,
			  const char *v, char *err, size_t len)
{
	static const char *const sizes[] = {"K", "M", "G", "T", NULL};
	static const long long size_f[] = {1LL << 10, 1LL << 20, 1LL << 30,
					   1LL << 40};
	static const char *const times[] = {"s", "m", "h", "d", NULL};
	static const long long time_f[] = {1, 60, 3600, 86400};
	long long n;
	char buf[32];

	if (strncmp(key, "option ", 7) == 0) {
		const char *name = key + 7;
		while (*name == ' ')
			name++;
		if (check_schema(name, v, err, len) < 0)
			return -1;
		return add_arg(cfg, "--option", name, v) < 0 ? -1 : 1;
	}
	if (strncmp(key, "user ", 5) == 0) {
		const char *name = key + 5;
		while (*name == ' ')
			name++;
		return user_caps(cfg, name, v, err, len) < 0 ? -1 : 1;
	}
	if (strcmp(key, "max_workers") == 0 || strcmp(key, "max_cores") == 0) {
		if (number(v, NULL, NULL, 1, CAP_MAX, &n) < 0) {
			snprintf(err, len, "%s wants a number from 1 to %d, not "
				 "'%s'", key, CAP_MAX, v);
			return -1;
		}
		*(key[4] == 'w' ? &cfg->max_workers : &cfg->max_cores) = (int)n;
		return 1;
	}
	if (strncmp(key, "pool ", 5) == 0) {
		const char *name = key + 5;
		while (*name == ' ')
			name++;
		if (check_pool(name, v, err, len) < 0)
			return -1;
		return add_arg(cfg, "--pool", name, v) < 0 ? -1 : 1;
	}
	if (strcmp(key, "max_queued") == 0) {
		if (number(v, NULL, NULL, 1, 1000000000, &n) < 0) {
			snprintf(err, len, "max_queued wants a number from 1 "
				 "to 1000000000, not '%s'", v);
			return -1;
		}
	} else if (strcmp(key, "max_result_bytes") == 0) {
		if (number(v, sizes, size_f, 1024, 1LL << 50, &n) < 0) {
			snprintf(err, len, "max_result_bytes wants a size from "
				 "1K to 1024T (a number, K, M, G or T), not '%s'",
				 v);
			return -1;
		}
	} else if (strcmp(key, "retention") == 0) {
		if (number(v, times, time_f, 1, 10LL * 365 * 86400, &n) < 0) {
			snprintf(err, len, "retention wants a time from 1 s to "
				 "10 years (a number, s, m, h or d), not '%s'",
				 v);
			return -1;
		}
	} else {
		return 0;
	}
	snprintf(buf, sizeof buf, "%lld", n);
	return add_arg(cfg, "--limit", key, buf) < 0 ? -1 : 1;
}

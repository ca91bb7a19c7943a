/*
 * pools_arg.c: the --pool and --pools options of `xylem run` and `xylem
 * manager` (cli.h): one pool as comma-separated KEY=VALUE pairs, or a
 * file of them, one a line; checked here and added to the manager by
 * xy_cli_pools_add (docs/cli.md, "Pools").
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "xylem.h"

#define EXTRA_MAX 16

struct xy_cli_pool {
	struct xy_pool_options o;
	char *spec; /* a copy, cut up: the strings in o point into it */
	const char *extra[EXTRA_MAX + 1];
	int n_extra;
};

/* v as a number from lo to hi (a whole one if whole): else -1, said. */
static int number(const char *who, const char *key, const char *v,
		  double lo, double hi, int whole, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (!*v || *end || errno || !isfinite(d) || d < lo || d > hi ||
	    (whole && d != floor(d))) {
		fprintf(stderr, "%s: --pool: %s wants a%s number from %.0f to"
			" %.0f, not '%s'\n", who, key, whole ? " whole" : "",
			lo, hi, v);
		return -1;
	}
	*out = d;
	return 0;
}

/* Applies key=v to p; -1 with a message on stderr if it is bad. */
static int apply(const char *who, struct xy_cli_pool *p, const char *key,
		 const char *v)
{
	struct xy_pool_options *o = &p->o;
	double d;
	static const struct {
		const char *key;
		double lo, hi;
	} nums[] = {
		{"cores", 1, 1 << 20},     {"gpus", 0, 1024},
		{"memory", 0, 1e12},       {"disk", 0, 1e12},
		{"min", 0, 1e6},           {"max", 0, 1e6},
		{"backlog", 0, XY_POOL_BACKLOG_MAX},       {"priority", -1e6, 1e6},
		{"walltime", 0, 1e8},      {"idle", 0, 1e8},
	};
	if (!strcmp(key, "name"))
		o->name = v;
	else if (!strcmp(key, "provider"))
		o->provider = v;
	else if (!strcmp(key, "partition"))
		o->partition = v;
	else if (!strcmp(key, "manager-host"))
		o->manager_host = v;
	else if (!strcmp(key, "log-dir"))
		o->log_dir = v;
	else if (!strcmp(key, "sbatch-arg") || !strcmp(key, "qsub-arg")) {
		/* qsub-arg: the same list, named for Grid Engine's pools */
		if (p->n_extra == EXTRA_MAX) {
			fprintf(stderr, "%s: --pool: at most %d sbatch-arg or"
				" qsub-arg\n", who, EXTRA_MAX);
			return -1;
		}
		p->extra[p->n_extra++] = v;
		o->extra_args = p->extra;
	} else {
		size_t i;
		for (i = 0; i < sizeof nums / sizeof nums[0]; i++)
			if (!strcmp(key, nums[i].key))
				break;
		if (i == sizeof nums / sizeof nums[0]) {
			fprintf(stderr, "%s: --pool: unknown key '%s'\n", who,
				key);
			return -1;
		}
		/* walltime and idle (the last two) are seconds. */
		if (number(who, key, v, nums[i].lo, nums[i].hi, i < 8, &d) < 0)
			return -1;
		switch (i) {
		case 0: o->cores = (int)d; break;
		case 1: o->gpus = (int)d; break;
		case 2: o->memory_mb = (int64_t)d; break;
		case 3: o->disk_mb = (int64_t)d; break;
		case 4: o->min_workers = (int)d; break;
		case 5: o->max_workers = (int)d; break;
		case 6: o->backlog = (int)d; break;
		case 7: o->priority = (int)d; break;
		case 8: o->walltime_s = d; break;
		case 9: o->idle_timeout_s = d; break;
		}
	}
	return 0;
}

struct xy_cli_pool *xy_cli_pool_parse(const char *who, const char *spec)
{
	struct xy_cli_pool *p = calloc(1, sizeof *p);
	if (!p || !(p->spec = strdup(spec))) {
		free(p);
		fprintf(stderr, "%s: out of memory\n", who);
		return NULL;
	}
	char *save = NULL;
	for (char *kv = strtok_r(p->spec, ",", &save); kv;
	     kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq) {
			fprintf(stderr, "%s: --pool: '%s' is not KEY=VALUE\n",
				who, kv);
			goto bad;
		}
		*eq = 0;
		if (apply(who, p, kv, eq + 1) < 0)
			goto bad;
	}
	if (!p->o.name || !p->o.cores) {
		fprintf(stderr, "%s: --pool: name= and cores= are needed\n",
			who);
		goto bad;
	}
	if (p->o.provider && strcmp(p->o.provider, "local") &&
	    strcmp(p->o.provider, "slurm") &&
	    strcmp(p->o.provider, "gridengine")) {
		fprintf(stderr, "%s: --pool: unknown provider '%s' (local,"
			" slurm or gridengine)\n", who, p->o.provider);
		goto bad;
	}
	return p;
bad:
	xy_cli_pool_free(p);
	return NULL;
}

int xy_cli_pool_arg(const char *who, const char *spec,
		    struct xy_cli_pool **pools, int *n)
{
	if (*n == XY_CLI_POOLS_MAX) {
		fprintf(stderr, "%s: at most %d pools\n", who,
			XY_CLI_POOLS_MAX);
		return -1;
	}
	if (!(pools[*n] = xy_cli_pool_parse(who, spec)))
		return -1;
	(*n)++;
	return 0;
}

int xy_cli_pools_file(const char *who, const char *path,
		      struct xy_cli_pool **pools, int *n)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: --pools %s: %s\n", who, path,
			strerror(errno));
		return -1;
	}
	char *line = NULL, where[PATH_MAX + 64];
	size_t cap = 0;
	int rc = 0, at = 0, before = *n;
	while (rc == 0 && getline(&line, &cap, f) >= 0) {
		at++;
		char *s = line + strspn(line, " \t");
		s[strcspn(s, "\r\n")] = 0;
		/* A comment: '#' at the start or after a blank (a value such
		 * as a path may hold one). */
		for (char *h = s; (h = strchr(h, '#')); h++)
			if (h == s || h[-1] == ' ' || h[-1] == '\t') {
				*h = 0;
				break;
			}
		for (size_t k = strlen(s); k && (s[k - 1] == ' ' ||
						 s[k - 1] == '\t');)
			s[--k] = 0;
		if (!*s)
			continue;
		snprintf(where, sizeof where, "%s: %s:%d", who, path, at);
		rc = xy_cli_pool_arg(where, s, pools, n);
	}
	if (rc == 0 && ferror(f)) {
		fprintf(stderr, "%s: --pools %s: %s\n", who, path,
			strerror(errno));
		rc = -1;
	}
	if (rc == 0 && *n == before) {
		fprintf(stderr, "%s: --pools %s: no pool in it\n", who, path);
		rc = -1;
	}
	free(line);
	fclose(f);
	return rc;
}

void xy_cli_pool_free(struct xy_cli_pool *p)
{
	if (!p)
		return;
	free(p->spec);
	free(p);
}

int xy_cli_pools_add(const char *who, struct xy_manager *m,
		     struct xy_cli_pool **pools, int n)
{
	char self[PATH_MAX], err[512];
	ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
	self[len > 0 ? len : 0] = 0;
	for (int i = 0; i < n; i++) {
		/* Workers run this very program. */
		pools[i]->o.xylem = len > 0 ? self : NULL;
		if (xy_manager_add_pool(m, &pools[i]->o, err, sizeof err) < 0) {
			fprintf(stderr, "%s: %s\n", who, err);
			return -1;
		}
	}
	return 0;
}

/*
 * exec.c: runs a CommandLineTool here (cwl.h): its resources, its initial
 * working directory, its environment and standard streams, the process
 * with a time limit, and the exit code's class; then outputs.c collects
 * the result. `xylem cwl-exec` (src/cli/cwl.c) calls it inside a task's
 * sandbox.
 *
 * The environment is the reference runner's: nothing is inherited but
 * PATH; HOME is the output directory and TMPDIR the temporary one, set
 * after EnvVarRequirement so that they win. The tool's stdout, when not
 * captured, goes to this process's stderr, which keeps stdout free for
 * the caller.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cwl.h"
#include "util.h"

/* The tool with the requirements a job may carry in "cwl:requirements"
 * put over its own, as the reference runner takes them. */
static json_t *with_job_requirements(const json_t *tool, const json_t *job)
{
	const json_t *extra = json_object_get(job, "cwl:requirements"), *r;
	size_t i;
	if (!json_array_size(extra))
		return json_incref((json_t *)tool);
	json_t *t = json_copy((json_t *)tool);
	json_t *reqs = json_deep_copy(json_object_get(tool, "requirements"));
	if (!reqs)
		reqs = json_object();
	json_array_foreach(extra, i, r) {
		const char *cls = json_string_value(json_object_get(r, "class"));
		if (cls)
			json_object_set(reqs, cwl_short_name(cls), (json_t *)r);
	}
	json_object_set_new(t, "requirements", reqs);
	return t;
}

/* -------------------------------------------------------- resources */

/* One resource: xMin, else xMax, else the default; expressions
 * evaluated with the job's inputs. */
static int resource(struct cwl_expr *x, const json_t *req, const char *name,
		    const json_t *job, double def, double *out, char *err,
		    size_t errlen)
{
	char key[32];
	json_t *v = NULL;
	static const char *const ends[] = {"Min", "Max"};
	for (int i = 0; i < 2 && !v; i++) {
		snprintf(key, sizeof key, "%s%s", name, ends[i]);
		const json_t *given = json_object_get(req, key);
		if (!given || json_is_null(given) ||
		    (json_is_number(given) && json_number_value(given) == 0))
			continue;
		v = cwl_expr_eval_value(x, given, job, NULL, NULL, err, errlen);
		if (!v)
			return -1;
		if (!json_is_number(v)) {
			json_decref(v);
			return xy_fail(err, errlen, EINVAL,
				       "ResourceRequirement %s must give a "
				       "number", key);
		}
	}
	*out = v ? json_number_value(v) : def;
	json_decref(v);
	return 0;
}

static int get_resources(const json_t *tool, const json_t *job,
			 struct cwl_runtime *rt, char *err, size_t errlen)
{
	const json_t *req = cwl_requirement(tool, "ResourceRequirement", NULL);
	const char *ver = json_string_value(json_object_get(tool, "cwlVersion"));
	double cores = 1, ram = ver && !strcmp(ver, "v1.0") ? 1024 : 256;
	double outdir = 1024, tmpdir = 1024;
	if (!req)
		goto done;
	struct cwl_expr *x = cwl_expr_new(tool, err, errlen);
	if (!x)
		return -1;
	int rc = resource(x, req, "cores", job, cores, &cores, err, errlen);
	if (!rc)
		rc = resource(x, req, "ram", job, ram, &ram, err, errlen);
	if (!rc)
		rc = resource(x, req, "outdir", job, outdir, &outdir, err,
			      errlen);
	if (!rc)
		rc = resource(x, req, "tmpdir", job, tmpdir, &tmpdir, err,
			      errlen);
	cwl_expr_free(x);
	if (rc)
		return -1;
done:
	rt->cores = (int64_t)ceil(cores);
	rt->ram = (int64_t)ceil(ram);
	rt->outdir_size = (int64_t)ceil(outdir);
	rt->tmpdir_size = (int64_t)ceil(tmpdir);
	return 0;
}

int cwl_resources(const json_t *given, const json_t *job,
		  struct cwl_runtime *rt, char *err, size_t errlen)
{
	json_t *tool = with_job_requirements(given, job);
	int rc = get_resources(tool, job, rt, err, errlen);
	json_decref(tool);
	return rc;
}

/* ----------------------------------------------------------- copies */

static int copy_file(const char *src, const char *dst, mode_t mode,
		     char *err, size_t errlen)
{
	char buf[65536];
	int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
	if (in >= 0)
		out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			   (mode & 0777) | 0200);
	if (in < 0 || out < 0) {
		rc = xy_fail(err, errlen, errno, "copy %s to %s: %s", src, dst,
			     strerror(errno));
		goto done;
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n == 0)
			break;
		if (n < 0 || write(out, buf, n) != n) {
			rc = xy_fail(err, errlen, errno ? errno : EIO,
				     "copy %s: %s", src, strerror(errno));
			break;
		}
	}
done:
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) && !rc)
		rc = xy_fail(err, errlen, errno, "copy %s: %s", dst,
			     strerror(errno));
	return rc;
}

int cwl_copy_path(const char *src, const char *dst, char *err, size_t errlen)
{
	struct stat st;
	if (stat(src, &st))
		return xy_fail(err, errlen, errno, "%s: %s", src,
			       strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return copy_file(src, dst, st.st_mode, err, errlen);
	if (mkdir(dst, 0755) && errno != EEXIST)
		return xy_fail(err, errlen, errno, "mkdir %s: %s", dst,
			       strerror(errno));
	DIR *d = opendir(src);
	if (!d)
		return xy_fail(err, errlen, errno, "%s: %s", src,
			       strerror(errno));
	struct dirent *e;
	int rc = 0;
	while (!rc && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *s = NULL, *t = NULL;
		if (asprintf(&s, "%s/%s", src, e->d_name) < 0 ||
		    asprintf(&t, "%s/%s", dst, e->d_name) < 0)
			rc = xy_fail(err, errlen, ENOMEM, "no memory");
		else
			rc = cwl_copy_path(s, t, err, errlen);
		free(s);
		free(t);
	}
	closedir(d);
	return rc;
}

/* --------------------------------------------------- InitialWorkDir */

struct stage {
	struct cwl_expr *x;
	json_t *inputs; /* the job, whose paths staging moves */
	const json_t *runtime;
	const char *outdir;
	json_t *moved; /* old path -> new path */
	json_t *writable; /* new path -> old path, of writable copies */
	char *err;
	size_t errlen;
};

static json_t *eval(struct stage *s, const json_t *v)
{
	return cwl_expr_eval_value(s->x, v, s->inputs, NULL, s->runtime,
				   s->err, s->errlen);
}

/* A Dirent whose entry and entryname are evaluated, as a File or
 * Directory to stage (appended to ls). Per CWL 1.2 an entry that is
 * neither a string nor a File or Directory is written as JSON. */
static int dirent_value(struct stage *s, json_t *entry, const json_t *name,
			int writable, json_t *ls)
{
	size_t i;
	json_t *item, *obj;
	int files = json_is_array(entry);
	json_array_foreach(entry, i, item)
		files &= cwl_is_fileobj(item);
	if (files && json_array_size(entry)) {
		json_array_foreach(entry, i, item) {
			obj = json_deep_copy(item);
			json_object_set_new(obj, "writable",
					    json_boolean(writable));
			json_array_append_new(ls, obj);
		}
		return 0;
	}
	if (cwl_is_fileobj(entry)) {
		obj = json_deep_copy(entry);
	} else if (!json_is_string(name) || !json_string_length(name)) {
		return xy_fail(s->err, s->errlen, EINVAL,
			       "InitialWorkDir entry without an entryname");
	} else if (json_is_string(entry)) {
		obj = json_pack("{sssO}", "class", "File", "contents", entry);
	} else {
		char *text = cwl_json_dumps(entry);
		obj = json_pack("{ssss}", "class", "File", "contents",
				text ? text : "null");
		free(text);
	}
	if (json_is_string(name) && json_string_length(name))
		json_object_set(obj, "basename", (json_t *)name);
	json_object_set_new(obj, "writable", json_boolean(writable));
	json_array_append_new(ls, obj);
	return 0;
}

static int dirent(struct stage *s, const json_t *t, json_t *ls)
{
	const json_t *e = json_object_get(t, "entry");
	const json_t *n = json_object_get(t, "entryname");
	json_t *entry = json_is_string(e)
				? cwl_expr_eval_keep_space(
					  s->x, json_string_value(e), s->inputs,
					  NULL, s->runtime, s->err, s->errlen)
				: json_incref((json_t *)e);
	json_t *name = n ? eval(s, n) : NULL;
	int rc = -1;
	if (!entry || (n && !name))
		goto done;
	if (name && !json_is_string(name)) {
		xy_fail(s->err, s->errlen, EINVAL,
			"an entryname must give a string");
		goto done;
	}
	rc = json_is_null(entry)
		     ? 0
		     : dirent_value(s, entry, name,
				    json_is_true(json_object_get(t, "writable")),
				    ls);
done:
	json_decref(entry);
	json_decref(name);
	return rc;
}

/* An evaluated listing item: a File, a Directory, a Dirent, or a list of
 * them; null adds nothing. */
static int add_item(struct stage *s, json_t *v, json_t *ls)
{
	size_t i;
	json_t *item;
	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			if (add_item(s, item, ls))
				return -1;
		return 0;
	}
	if (json_is_null(v) || json_is_false(v))
		return 0;
	if (json_is_object(v) && json_object_get(v, "entry"))
		return dirent_value(s, json_object_get(v, "entry"),
				    json_object_get(v, "entryname"),
				    json_is_true(json_object_get(v, "writable")),
				    ls);
	if (!cwl_is_fileobj(v))
		return xy_fail(s->err, s->errlen, EINVAL,
			       "an InitialWorkDir item is not a File, "
			       "Directory or Dirent");
	json_array_append(ls, v);
	return 0;
}

/* The listing as File and Directory objects, each with the name it takes
 * under outdir in "basename". */
static json_t *iwd_listing(struct stage *s, const json_t *listing)
{
	json_t *ls = json_array(), *t;
	size_t i;
	int rc = 0;
	if (json_is_string(listing)) {
		json_t *v = eval(s, listing);
		rc = v ? add_item(s, v, ls) : -1;
		json_decref(v);
	}
	json_array_foreach(listing, i, t) {
		if (rc)
			break;
		if (json_is_object(t) && json_object_get(t, "entry")) {
			rc = dirent(s, t, ls);
		} else {
			json_t *v = eval(s, t);
			rc = v ? add_item(s, v, ls) : -1;
			json_decref(v);
		}
	}
	if (rc) {
		json_decref(ls);
		return NULL;
	}
	return ls;
}

static int write_contents(struct stage *s, const char *dst, const json_t *c)
{
	FILE *f = fopen(dst, "w");
	if (!f)
		return xy_fail(s->err, s->errlen, errno, "%s: %s", dst,
			       strerror(errno));
	size_t n = json_string_length(c);
	int bad = fwrite(json_string_value(c), 1, n, f) != n;
	if (fclose(f) || bad)
		return xy_fail(s->err, s->errlen, EIO, "cannot write %s", dst);
	return 0;
}

static int stage_item(struct stage *s, json_t *item, const char *dir);

/* Stages a File or Directory that exists somewhere as dst: a copy when it
 * is writable, else a hard link for a file (cheap, and the tool is not to
 * change it). */
static int stage_existing(struct stage *s, json_t *item, const char *src,
			  const char *dst)
{
	char *real = realpath(src, NULL);
	int same = real && !strcmp(real, dst), rc = 0;
	free(real);
	if (!same) {
		unlink(dst);
		if (json_is_true(json_object_get(item, "writable")) ||
		    cwl_is_class(item, "Directory") ||
		    linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW))
			rc = cwl_copy_path(src, dst, s->err, s->errlen);
	}
	if (!rc)
		json_object_set_new(s->moved, src, json_string(dst));
	if (!rc && json_is_true(json_object_get(item, "writable")))
		json_object_set_new(s->writable, dst, json_string(src));
	return rc;
}

static int stage_children(struct stage *s, json_t *item, const char *dst)
{
	size_t i;
	json_t *c;
	const char *slash = strrchr(dst, '/');
	char *dir = strndup(dst, slash ? (size_t)(slash - dst) : 0);
	int rc = 0;
	json_array_foreach(json_object_get(item, "secondaryFiles"), i, c)
		if (!rc)
			rc = stage_item(s, c, dir);
	free(dir);
	if (cwl_is_class(item, "Directory") &&
	    !json_object_get(item, "path")) { /* a literal's listing */
		json_array_foreach(json_object_get(item, "listing"), i, c)
			if (!rc)
				rc = stage_item(s, c, dst);
	}
	return rc;
}

static int stage_item(struct stage *s, json_t *item, const char *dir)
{
	const char *src = json_string_value(json_object_get(item, "path"));
	const char *loc = json_string_value(json_object_get(item, "location"));
	const char *base = json_string_value(json_object_get(item, "basename"));
	if (!src && loc && !strncmp(loc, "file://", 7))
		src = loc + 7;
	char *dst = NULL;
	if (!base && src)
		base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
	if (!base || xy_check_sandbox_name(base, NULL, 0) < 0)
		return xy_fail(s->err, s->errlen, EINVAL,
			       "InitialWorkDir name %s is not allowed",
			       base ? base : "(none)");
	if (asprintf(&dst, "%s/%s", dir, base) < 0)
		return xy_fail(s->err, s->errlen, ENOMEM, "no memory");
	char *slash = strrchr(dst, '/');
	*slash = 0;
	int rc = xy_mkdir_p(dst);
	*slash = '/';
	if (rc)
		rc = xy_fail(s->err, s->errlen, errno, "mkdir %s: %s", dst,
			     strerror(errno));
	else if (src)
		rc = stage_existing(s, item, src, dst);
	else if (cwl_is_class(item, "Directory"))
		rc = xy_mkdir_p(dst) ? xy_fail(s->err, s->errlen, errno,
					       "mkdir %s", dst)
				     : 0;
	else
		rc = write_contents(s, dst, json_object_get(item, "contents"));
	if (!rc)
		rc = stage_children(s, item, dst);
	free(dst);
	return rc;
}

/* Points the job's Files and Directories that were staged at their new
 * place, so that the command line and expressions name the staged copy. */
static void repoint(json_t *v, const json_t *moved)
{
	size_t i;
	const char *k;
	json_t *item;
	if (cwl_is_fileobj(v)) {
		const json_t *to = json_object_get(
			moved, json_string_value(json_object_get(v, "path")) ?: "");
		if (to) {
			const char *p = json_string_value(to);
			json_object_set(v, "path", (json_t *)to);
			json_object_set_new(v, "location",
					    json_sprintf("file://%s", p));
			json_object_set_new(v, "basename",
					    json_string(strrchr(p, '/') + 1));
			json_object_set_new(v, "dirname",
					    json_stringn(p, strrchr(p, '/') - p));
		}
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			repoint(item, moved);
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, item)
			repoint(item, moved);
	}
}

static int stage_iwd(struct stage *s, const json_t *req)
{
	json_t *ls = iwd_listing(s, json_object_get(req, "listing")), *item;
	size_t i;
	int rc = ls ? 0 : -1;
	json_array_foreach(ls, i, item)
		if (!rc)
			rc = stage_item(s, item, s->outdir);
	json_decref(ls);
	if (!rc)
		repoint(s->inputs, s->moved);
	return rc;
}

/* ------------------------------------------------------- the process */

struct proc {
	char **argv;
	char **envp;
	const char *cwd;
	const char *in, *out, *errf; /* NULL: not redirected */
	double limit;                /* seconds, 0: none */
};

static int redirect(const char *path, int flags, int fd)
{
	int f = open(path, flags, 0644);
	if (f < 0 || dup2(f, fd) < 0)
		return -1;
	close(f);
	return 0;
}

/* In the child: never returns. An error before exec goes back to the
 * parent through the close-on-exec pipe. */
static void child(const struct proc *p, int errfd)
{
	const int wr = O_WRONLY | O_CREAT | O_TRUNC;
	int e = 0;
	/* xylem ignores SIGPIPE for itself; a tool gets the default, so
	 * that `yes | head` ends as it does in a shell. */
	signal(SIGPIPE, SIG_DFL);
	if (chdir(p->cwd))
		e = errno;
	else if (redirect(p->in ? p->in : "/dev/null", O_RDONLY, 0))
		e = errno;
	else if (p->out ? redirect(p->out, wr, 1) : dup2(2, 1) < 0)
		e = errno;
	else if (p->errf && redirect(p->errf, wr, 2))
		e = errno;
	if (!e) {
		close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
		execvpe(p->argv[0], p->argv, p->envp);
		e = errno;
	}
	if (write(errfd, &e, sizeof e) < 0)
		_exit(127);
	_exit(127);
}

/* Waits for pid, killing it when the time limit passes. */
static int wait_for(pid_t pid, double limit, int *timed_out)
{
	int st = 0;
	double end = xy_now() + limit;
	for (;;) {
		pid_t r = waitpid(pid, &st, limit > 0 ? WNOHANG : 0);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (limit > 0 && xy_now() > end && !*timed_out) {
			kill(pid, SIGKILL);
			*timed_out = 1;
			limit = 0; /* now wait for it to go */
		} else if (limit > 0) {
			struct timespec ts = {0, 20 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* Runs the process; returns its exit code (minus the signal if one killed
 * it), or -1000 with err if it could not start. */
static int run(const struct proc *p, int *timed_out, char *err, size_t errlen)
{
	int fds[2], e = 0;
	if (pipe2(fds, O_CLOEXEC))
		return xy_fail(err, errlen, errno, "pipe: %s", strerror(errno)),
		       -1000;
	pid_t pid = fork();
	if (pid == 0)
		child(p, fds[1]);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return xy_fail(err, errlen, errno, "fork: %s", strerror(errno)),
		       -1000;
	}
	ssize_t n;
	while ((n = read(fds[0], &e, sizeof e)) < 0 && errno == EINTR)
		;
	close(fds[0]);
	int code = wait_for(pid, p->limit, timed_out);
	if (n == sizeof e)
		return xy_fail(err, errlen, e, "cannot run %s: %s", p->argv[0],
			       strerror(e)),
		       -1000;
	return code;
}

/* ---------------------------------------------------------- the job */

/* The environment: EnvVarRequirement's variables, then HOME, TMPDIR and
 * PATH, as "NAME=value" strings in a NULL-terminated array. */
static char **make_env(struct stage *s, const json_t *tool,
		       const struct cwl_runtime *rt)
{
	const json_t *req = cwl_requirement(tool, "EnvVarRequirement", NULL);
	const json_t *defs = json_object_get(req, "envDef"), *d;
	json_t *env = json_object(), *v;
	const char *k;
	size_t i;
	json_array_foreach(defs, i, d) {
		v = eval(s, json_object_get(d, "envValue"));
		if (!v || !json_is_string(v)) {
			if (v)
				xy_fail(s->err, s->errlen, EINVAL,
					"envValue must give a string");
			json_decref(v);
			json_decref(env);
			return NULL;
		}
		json_object_set_new(
			env, json_string_value(json_object_get(d, "envName")),
			v);
	}
	json_object_set_new(env, "HOME", json_string(rt->outdir));
	json_object_set_new(env, "TMPDIR", json_string(rt->tmpdir));
	json_object_set_new(env, "PATH",
			    json_string(getenv("PATH") ? getenv("PATH")
						       : "/usr/bin:/bin"));
	char **envp = calloc(json_object_size(env) + 1, sizeof *envp);
	i = 0;
	json_object_foreach(env, k, v)
		if (envp && asprintf(&envp[i], "%s=%s", k,
				     json_string_value(v)) >= 0)
			i++;
	json_decref(env);
	return envp;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* stdin, stdout or stderr: evaluated; an output name must stay inside
 * outdir. *path is NULL when the stream is not redirected. */
static int stream_path(struct stage *s, const json_t *tool, const char *key,
		       char **path)
{
	const json_t *given = json_object_get(tool, key);
	*path = NULL;
	if (!given)
		return 0;
	json_t *v = eval(s, given);
	if (!v)
		return -1;
	const char *p = json_string_value(v);
	int rc = 0, in = !strcmp(key, "stdin");
	if (!p && !(in && json_is_null(v)))
		rc = xy_fail(s->err, s->errlen, EINVAL,
			     "%s must give a string", key);
	else if (p && !in && xy_check_sandbox_name(p, NULL, 0) < 0)
		rc = xy_fail(s->err, s->errlen, EINVAL,
			     "%s must be a relative path, not %s", key, p);
	else if (p && in)
		*path = strdup(p);
	else if (p && asprintf(path, "%s/%s", s->outdir, p) < 0)
		*path = NULL;
	if (p && !*path && !rc)
		rc = xy_fail(s->err, s->errlen, ENOMEM, "no memory");
	if (*path && !in && !rc) {
		char *slash = strrchr(*path, '/');
		*slash = 0;
		if (xy_mkdir_p(*path))
			rc = xy_fail(s->err, s->errlen, errno, "mkdir %s",
				     *path);
		*slash = '/';
	}
	json_decref(v);
	return rc;
}

/* The time limit: ToolTimeLimit's, or the runtime's if that is shorter. */
static int time_limit(struct stage *s, const json_t *tool,
		      const struct cwl_runtime *rt, double *limit)
{
	const json_t *req = cwl_requirement(tool, "ToolTimeLimit", NULL);
	*limit = rt->time_limit > 0 ? rt->time_limit : 0;
	if (!req)
		return 0;
	json_t *v = eval(s, json_object_get(req, "timelimit"));
	if (!v)
		return -1;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		json_decref(v);
		return xy_fail(s->err, s->errlen, EINVAL,
			       "timelimit must be an integer >= 0");
	}
	double t = (double)json_integer_value(v);
	if (t > 0 && (*limit == 0 || t < *limit))
		*limit = t;
	json_decref(v);
	return 0;
}

static int has_code(const json_t *tool, const char *key, int code)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(tool, key), i, c)
		if (json_integer_value(c) == code)
			return 1;
	return 0;
}

static int classify(const json_t *tool, int code)
{
	if (has_code(tool, "successCodes", code))
		return CWL_OK;
	if (has_code(tool, "temporaryFailCodes", code))
		return CWL_TEMPORARY_FAIL;
	if (has_code(tool, "permanentFailCodes", code))
		return CWL_PERMANENT_FAIL;
	return code == 0 ? CWL_OK : CWL_PERMANENT_FAIL;
}

static json_t *runtime_object(const struct cwl_runtime *rt)
{
	return json_pack("{sssssIsIsIsI}", "outdir", rt->outdir, "tmpdir",
			 rt->tmpdir, "cores", (json_int_t)rt->cores, "ram",
			 (json_int_t)rt->ram, "outdirSize",
			 (json_int_t)rt->outdir_size, "tmpdirSize",
			 (json_int_t)rt->tmpdir_size);
}

/* Everything before the run: staging, the command line, the streams,
 * the environment and the time limit. */
static int prepare(struct stage *s, const json_t *tool,
		   const struct cwl_runtime *rt, struct proc *p, json_t **cmd)
{
	const json_t *iwd = cwl_requirement(tool, "InitialWorkDirRequirement",
					    NULL);
	if (iwd && stage_iwd(s, iwd))
		return -1;
	*cmd = cwl_command_line(s->x, tool, s->inputs, s->runtime, s->err,
				s->errlen);
	if (!*cmd)
		return -1;
	size_t n = json_array_size(*cmd), i;
	if (n == 0)
		return xy_fail(s->err, s->errlen, EINVAL,
			       "the command line is empty");
	p->argv = calloc(n + 1, sizeof *p->argv);
	for (i = 0; p->argv && i < n; i++)
		p->argv[i] = (char *)json_string_value(json_array_get(*cmd, i));
	p->cwd = rt->outdir;
	if (!p->argv || stream_path(s, tool, "stdin", (char **)&p->in) ||
	    stream_path(s, tool, "stdout", (char **)&p->out) ||
	    stream_path(s, tool, "stderr", (char **)&p->errf) ||
	    time_limit(s, tool, rt, &p->limit))
		return -1;
	p->envp = make_env(s, tool, rt);
	return p->envp ? 0 : -1;
}

/* Runs the prepared process and collects the outputs. */
static json_t *run_and_collect(struct stage *s, const json_t *tool,
			       const struct proc *p, int *status)
{
	int timed_out = 0;
	int code = run(p, &timed_out, s->err, s->errlen);
	if (code == -1000)
		return NULL;
	if (timed_out) {
		xy_fail(s->err, s->errlen, ETIMEDOUT,
			"the tool ran past its time limit of %.0f s", p->limit);
		return NULL;
	}
	*status = classify(tool, code);
	if (*status != CWL_OK) {
		xy_fail(s->err, s->errlen, EINVAL, "the tool exited with %d",
			code);
		return NULL;
	}
	const char *ver = json_string_value(json_object_get(tool, "cwlVersion"));
	json_t *runtime = json_deep_copy(s->runtime);
	if (!ver || strcmp(ver, "v1.0"))
		json_object_set_new(runtime, "exitCode", json_integer(code));
	json_t *out = cwl_collect_outputs(s->x, tool, s->inputs, runtime,
					  s->outdir, s->err, s->errlen);
	json_decref(runtime);
	if (!out)
		*status = CWL_PERMANENT_FAIL;
	return out;
}

/* With InplaceUpdateRequirement, an output that is the writable copy of
 * an input says which input it updates ("xylem:updates", the input's
 * path): a workflow then gives the new object to the steps that read the
 * old one (docs/cwl.md, "Workflows"). */
static void mark_updates(json_t *v, const json_t *writable)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			mark_updates(x, writable);
	} else if (cwl_is_fileobj(v)) {
		const json_t *src = json_object_get(writable, json_string_value(
			json_object_get(v, "path")) ?: "");

		if (src)
			json_object_set(v, "xylem:updates", (json_t *)src);
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, x)
			mark_updates(x, writable);
	}
}

json_t *cwl_exec_tool(const json_t *given, const json_t *job,
		      const struct cwl_runtime *rt, int *status, char *err,
		      size_t errlen)
{
	json_t *tool = with_job_requirements(given, job);
	struct stage s = {NULL, json_deep_copy(job), runtime_object(rt),
			  rt->outdir, json_object(), json_object(), err, errlen};
	struct proc p = {0};
	json_t *cmd = NULL, *out = NULL;
	*status = CWL_PERMANENT_FAIL;
	if (!s.inputs || !s.runtime || !s.moved || !s.writable) {
		xy_fail(err, errlen, ENOMEM, "no memory");
		goto done;
	}
	json_object_del(s.inputs, "cwl:requirements");
	s.x = cwl_expr_new(tool, err, errlen);
	if (s.x && prepare(&s, tool, rt, &p, &cmd) == 0)
		out = run_and_collect(&s, tool, &p, status);
	if (out && json_is_true(json_object_get(cwl_requirement(
		    tool, "InplaceUpdateRequirement", NULL), "inplaceUpdate")))
		mark_updates(out, s.writable);
done:
	if (!out && *status == CWL_OK)
		*status = CWL_PERMANENT_FAIL;
	free(p.argv);
	free((char *)p.in);
	free((char *)p.out);
	free((char *)p.errf);
	free_strv(p.envp);
	json_decref(cmd);
	json_decref(s.inputs);
	json_decref((json_t *)s.runtime);
	json_decref(s.moved);
	json_decref(s.writable);
	cwl_expr_free(s.x);
	json_decref(tool);
	return out;
}

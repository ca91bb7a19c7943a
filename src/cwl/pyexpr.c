/*
 * pyexpr.c: expressions written in Python, Xylem's extension to CWL
 * (xylem:InlinePythonRequirement, docs/cwl.md "Inline Python"). expr.c
 * hands every $(...) and ${...} that is not a plain parameter reference
 * here when the tool has the requirement.
 *
 * The interpreter is a separate `python3 -I -S` process per tool run,
 * spoken to in lines of JSON over a pipe pair. It is sandboxed in three
 * layers: the code is parsed first and refused if it imports, or names
 * anything that starts with an underscore, a frame, code or traceback
 * attribute (gi_frame, f_back, tb_frame...) or str.format (whose format
 * strings reach attributes the parser cannot see): the ways out of a
 * restricted namespace go through those. It runs with a small table of
 * builtins (no open, __import__, eval, getattr, format) and a few chosen
 * functions of math, re, json and posixpath, never the modules; and the
 * process
 * runs in / with only PATH and LC_ALL in its environment, under limits on
 * CPU time, memory, file size and open files. Each expression also has a
 * wall-clock limit, after which the process is killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "cwl.h"
#include "util.h"

#define EVAL_TIMEOUT_MS 30000
#define REPLY_MAX (64 << 20)

struct cwl_py {
	pid_t pid;
	int to, from; /* our ends of its stdin and stdout */
	struct xy_buf in; /* bytes read and not yet used */
};

/* The interpreter's side. Names starting with "_" are refused by check(),
 * so the script's own helpers cannot be reached from expressions. */
static const char script[] =
	"import ast, json, math, re, sys, textwrap\n"
	"import posixpath\n"
	"SAFE = ('abs all any bool chr dict divmod enumerate filter float '\n"
	"        'frozenset hex int isinstance len list map max min oct '\n"
	"        'ord pow range repr reversed round set slice sorted str sum '\n"
	"        'tuple zip ValueError TypeError KeyError IndexError Exception '\n"
	"        'True False None').split()\n"
	"B = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)\n"
	"B = {k: B[k] for k in SAFE}\n"
	"class Obj(dict):\n"
	"    def __getattr__(self, k):\n"
	"        try:\n"
	"            return self[k]\n"
	"        except KeyError:\n"
	"            raise AttributeError(k) from None\n"
	"def wrap(v):\n"
	"    if isinstance(v, dict):\n"
	"        return Obj({k: wrap(x) for k, x in v.items()})\n"
	"    if isinstance(v, list):\n"
	"        return [wrap(x) for x in v]\n"
	"    return v\n"
	"DENY_PREFIX = ('_', 'gi_', 'cr_', 'ag_', 'f_', 'tb_', 'co_')\n"
	"DENY = ('format', 'format_map', 'mro')\n"
	"def check(tree):\n"
	"    for n in ast.walk(tree):\n"
	"        if isinstance(n, (ast.Import, ast.ImportFrom, ast.Global,\n"
	"                          ast.Nonlocal)):\n"
	"            raise ValueError('imports and globals are not allowed')\n"
	"        name = getattr(n, 'attr', None) or getattr(n, 'id', None) \\\n"
	"            or getattr(n, 'name', None) or getattr(n, 'arg', None)\n"
	"        if isinstance(name, str) and (name.startswith(DENY_PREFIX)\n"
	"                                      or name in DENY):\n"
	"            raise ValueError('name not allowed: ' + name)\n"
	"def compile_checked(src, mode):\n"
	"    tree = ast.parse(src, '<expression>', mode)\n"
	"    check(tree)\n"
	"    return compile(tree, '<expression>', mode)\n"
	"class NS:\n"
	"    def __init__(self, **kw):\n"
	"        self.__dict__.update(kw)\n"
	"def pick(mod, names):\n"
	"    return NS(**{k: getattr(mod, k) for k in names.split()})\n"
	"G = {'__builtins__': B, 'math': math,\n"
	"     're': pick(re, 'compile escape findall fullmatch match search '\n"
	"                'split sub subn'),\n"
	"     'json': pick(json, 'dumps loads'),\n"
	"     'path': pick(posixpath, 'basename dirname isabs join normpath '\n"
	"                  'relpath split splitext')}\n"
	"for src in json.loads(sys.stdin.readline()):\n"
	"    exec(compile_checked(textwrap.dedent(src), 'exec'), G)\n"
	"sys.stdout.write('{}\\n'); sys.stdout.flush()\n"
	"for line in sys.stdin:\n"
	"    q = json.loads(line)\n"
	"    g = dict(G, inputs=wrap(q['inputs']), self=wrap(q['self']),\n"
	"             runtime=wrap(q['runtime']))\n"
	"    try:\n"
	"        code = q['code']\n"
	"        if q['body']:\n"
	"            body = textwrap.indent(textwrap.dedent(code), '    ')\n"
	"            exec(compile_checked('def f():\\n' + body + '\\n    pass\\n',\n"
	"                                 'exec'), g)\n"
	"            r = {'value': g['f']()}\n"
	"        else:\n"
	"            r = {'value': eval(compile_checked(code.strip(), 'eval'), g)}\n"
	"        out = json.dumps(r)\n"
	"    except BaseException as e:\n"
	"        out = json.dumps({'error': type(e).__name__ + ': ' + str(e)})\n"
	"    sys.stdout.write(out + '\\n'); sys.stdout.flush()\n";

/* In the child: limits, an empty directory, no environment. */
static void child(int in, int out)
{
	static const struct {
		int res;
		rlim_t lim;
	} limits[] = {
		{RLIMIT_CPU, 60},
		{RLIMIT_AS, (rlim_t)1 << 30},
		{RLIMIT_FSIZE, 0},
		{RLIMIT_NOFILE, 16},
		{RLIMIT_CORE, 0},
	};
	char *argv[] = {"python3", "-I", "-S", "-c", (char *)script, NULL};
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8",
			NULL};

	if (dup2(in, 0) < 0 || dup2(out, 1) < 0)
		_exit(127);
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	if (chdir("/") < 0)
		_exit(127);
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		struct rlimit r = {limits[i].lim, limits[i].lim};
		setrlimit(limits[i].res, &r);
	}
	/* Only these two: a PATH search would run whatever python3 the
	 * caller's environment names, with that environment's needs. */
	execve("/usr/bin/python3", argv, envp);
	execve("/usr/local/bin/python3", argv, envp);
	_exit(127);
}

static int send_line(struct cwl_py *p, const char *text, char *err,
		     size_t errlen)
{
	size_t n = strlen(text), done = 0;

	while (done < n) {
		ssize_t w = write(p->to, text + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return xy_fail(err, errlen, errno, "Python expression "
				       "interpreter: %s", strerror(errno));
		done += (size_t)w;
	}
	if (write(p->to, "\n", 1) != 1)
		return xy_fail(err, errlen, EPIPE, "Python expression "
			       "interpreter went away");
	return 0;
}

/* Reads one line of JSON from the interpreter, within the time limit. */
static json_t *read_line(struct cwl_py *p, char *err, size_t errlen)
{
	char chunk[65536];
	json_error_t je;

	for (;;) {
		char *nl = p->in.len ? memchr(p->in.data, '\n', p->in.len)
				     : NULL;
		if (nl) {
			size_t n = (size_t)(nl - (char *)p->in.data);
			json_t *v = json_loadb((const char *)p->in.data, n, 0,
					       &je);
			memmove(p->in.data, nl + 1, p->in.len - n - 1);
			p->in.len -= n + 1;
			if (!v)
				xy_fail(err, errlen, EINVAL, "Python expression "
					"interpreter: %s", je.text);
			return v;
		}
		struct pollfd pfd = {p->from, POLLIN, 0};
		int r = poll(&pfd, 1, EVAL_TIMEOUT_MS);
		if (r == 0) {
			kill(p->pid, SIGKILL);
			xy_fail(err, errlen, ETIMEDOUT, "a Python expression ran "
				"past %d s", EVAL_TIMEOUT_MS / 1000);
			return NULL;
		}
		ssize_t got = r < 0 ? -1 : read(p->from, chunk, sizeof chunk);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0 || p->in.len + (size_t)got > REPLY_MAX) {
			xy_fail(err, errlen, EPIPE, "the Python expression "
				"interpreter stopped (is python3 installed?)");
			return NULL;
		}
		xy_buf_put_raw(&p->in, chunk, (size_t)got);
	}
}

void cwl_py_stop(struct cwl_py *p)
{
	if (!p)
		return;
	if (p->to >= 0)
		close(p->to);
	if (p->from >= 0)
		close(p->from);
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	xy_buf_free(&p->in);
	free(p);
}

struct cwl_py *cwl_py_start(const json_t *req, char *err, size_t errlen)
{
	struct cwl_py *p = calloc(1, sizeof *p);
	int a[2] = {-1, -1}, b[2] = {-1, -1};
	const json_t *lib = json_object_get(req, "expressionLib");
	char *text = NULL;
	json_t *ok;

	if (p)
		p->to = p->from = -1;
	if (!p || pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0) {
		xy_fail(err, errlen, errno, "cannot start Python: %s",
			strerror(errno));
		goto error;
	}
	xy_buf_init(&p->in);
	p->pid = fork();
	if (p->pid == 0)
		child(a[0], b[1]);
	close(a[0]);
	close(b[1]);
	p->to = a[1];
	p->from = b[0];
	a[1] = b[0] = -1;
	if (p->pid < 0) {
		xy_fail(err, errlen, errno, "cannot start Python: %s",
			strerror(errno));
		goto error;
	}
	text = json_is_array(lib) ? json_dumps(lib, JSON_COMPACT) : strdup("[]");
	if (!text || send_line(p, text, err, errlen) < 0 ||
	    !(ok = read_line(p, err, errlen)))
		goto error;
	json_decref(ok);
	free(text);
	return p;
error:
	free(text);
	for (int i = 0; i < 2; i++) {
		if (a[i] >= 0)
			close(a[i]);
		if (b[i] >= 0)
			close(b[i]);
	}
	if (p && !*err)
		xy_fail(err, errlen, EINVAL, "expressionLib failed");
	cwl_py_stop(p);
	return NULL;
}

json_t *cwl_py_eval(struct cwl_py *p, const char *ex, size_t len,
		    const json_t *inputs, const json_t *self,
		    const json_t *runtime, char *err, size_t errlen)
{
	/* ex is "(expression)" or "{body}", as scanned. */
	json_t *q = json_pack("{s:s%, s:b, s:O?, s:O?, s:O?}", "code",
			      ex + 1, len - 2, "body", ex[0] == '{', "inputs",
			      inputs, "self", self, "runtime", runtime);
	char *line = q ? json_dumps(q, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_t *r = NULL, *v = NULL;

	json_decref(q);
	if (!line) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	if (send_line(p, line, err, errlen) == 0 &&
	    (r = read_line(p, err, errlen))) {
		if (json_object_get(r, "error"))
			xy_fail(err, errlen, EINVAL, "Python expression %.*s "
				"failed: %s", (int)(len > 200 ? 200 : len), ex,
				json_string_value(json_object_get(r, "error")));
		else
			v = json_incref(json_object_get(r, "value"));
	}
	free(line);
	json_decref(r);
	return v;
}

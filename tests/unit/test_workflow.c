/*
 * test_workflow.c: unit tests for the workflow file parser of `xylem run`
 * (src/cli/workflow.c): a good file parses into the expected structs, and
 * each kind of bad file is refused with a message that names the fault.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "workflow.h"

static char err[2048];

static struct xy_workflow *parse(const char *text)
{
	err[0] = '\0';
	return xy_workflow_parse(text, strlen(text), "wf.json", "/base", err,
				 sizeof err);
}

/* text must be refused, with each of the NULL-terminated needles in the
 * message. */
static void refused(const char *text, const char *const *needles)
{
	struct xy_workflow *w = parse(text);

	if (w) {
		fprintf(stderr, "accepted: %s\n", text);
		exit(1);
	}
	XY_CHECK_EQ(errno, EINVAL);
	XY_CHECK(strncmp(err, "wf.json: ", 9) == 0);
	for (; *needles; needles++) {
		if (!strstr(err, *needles)) {
			fprintf(stderr, "message lacks '%s': %s\n", *needles,
				err);
			exit(1);
		}
	}
}

#define REFUSED(text, ...)                                                  \
	do {                                                                \
		const char *const n_[] = {__VA_ARGS__, NULL};               \
		refused(text, n_);                                          \
	} while (0)

static const char good[] =
	"{\"name\": \"demo\", \"tasks\": [\n"
	" {\"id\": \"split\", \"command\": \"split -n 2 in.txt part\",\n"
	"  \"inputs\": [{\"path\": \"data/in.txt\", \"as\": \"in.txt\","
	"   \"cache\": \"worker\"}],\n"
	"  \"outputs\": [{\"path\": \"out/a\", \"as\": \"partaa\"},\n"
	"              {\"path\": \"/abs/out/b\", \"as\": \"sub/partab\","
	"               \"cache\": \"task\"}],\n"
	"  \"env\": {\"LC_ALL\": \"C\", \"N\": \"2\"},\n"
	"  \"resources\": {\"cores\": 2, \"memory\": 500, \"disk\": 100,"
	"   \"gpus\": 0},\n"
	"  \"retries\": 3, \"priority\": 1.5, \"time_limit\": 60},\n"
	" {\"id\": \"count\", \"command\": \"wc -l a b > n\",\n"
	"  \"inputs\": [{\"path\": \"./out//a\", \"as\": \"a\","
	"   \"cache\": \"forever\"},\n"
	"             {\"path\": \"/abs/x/../out/b\", \"as\": \"b\"}],\n"
	"  \"outputs\": [{\"path\": \"n.txt\", \"as\": \"n\"}]}\n"
	"]}\n";

static void t_good_file(void)
{
	struct xy_workflow *w = parse(good);
	struct xy_wf_task *s, *c;

	if (!w)
		fprintf(stderr, "%s\n", err);
	XY_CHECK(w != NULL);
	XY_CHECK(strcmp(w->name, "demo") == 0);
	XY_CHECK_EQ(w->n_tasks, 2);
	s = &w->tasks[0];
	c = &w->tasks[1];
	XY_CHECK(strcmp(s->id, "split") == 0);
	XY_CHECK(strcmp(s->command, "split -n 2 in.txt part") == 0);
	XY_CHECK_EQ(s->n_inputs, 1);
	XY_CHECK_EQ(s->n_outputs, 2);
	XY_CHECK(strcmp(s->outputs[1].as, "sub/partab") == 0);
	XY_CHECK_EQ(s->inputs[0].cache, XY_CACHE_WORKER);
	XY_CHECK_EQ(s->outputs[0].cache, XY_CACHE_WORKFLOW);
	XY_CHECK_EQ(s->outputs[1].cache, XY_CACHE_TASK);
	XY_CHECK_EQ(s->n_env, 2);
	XY_CHECK(strcmp(s->env[0].name, "LC_ALL") == 0);
	XY_CHECK(strcmp(s->env[0].value, "C") == 0);
	XY_CHECK_EQ(s->cores, 2);
	XY_CHECK_EQ(s->memory_mb, 500);
	XY_CHECK_EQ(s->disk_mb, 100);
	XY_CHECK_EQ(s->gpus, 0);
	XY_CHECK_EQ(s->retries, 3);
	XY_CHECK(s->has_priority && s->priority == 1.5);
	XY_CHECK(s->time_limit == 60);

	/* Defaults stay "not given". */
	XY_CHECK_EQ(c->cores, -1);
	XY_CHECK_EQ(c->memory_mb, -1);
	XY_CHECK_EQ(c->retries, -1);
	XY_CHECK(!c->has_priority);
	XY_CHECK(c->time_limit == 0);

	/* Four distinct paths: two spellings of out/a and of /abs/out/b. */
	XY_CHECK_EQ(w->n_paths, 4);
	XY_CHECK_EQ(c->inputs[0].ref, s->outputs[0].ref);
	XY_CHECK_EQ(c->inputs[1].ref, s->outputs[1].ref);
	XY_CHECK(strcmp(w->paths[s->inputs[0].ref].full, "/base/data/in.txt") == 0);
	XY_CHECK(strcmp(w->paths[s->outputs[0].ref].full, "/base/out/a") == 0);
	XY_CHECK(strcmp(w->paths[s->outputs[1].ref].full, "/abs/out/b") == 0);
	XY_CHECK(strcmp(w->paths[c->outputs[0].ref].full, "/base/n.txt") == 0);
	/* Producers, and the longest cache level asked for a path. */
	XY_CHECK_EQ(w->paths[s->inputs[0].ref].producer, -1);
	XY_CHECK_EQ(w->paths[c->inputs[0].ref].producer, 0);
	XY_CHECK_EQ(w->paths[c->outputs[0].ref].producer, 1);
	XY_CHECK_EQ(w->paths[c->inputs[0].ref].cache, XY_CACHE_FOREVER);
	XY_CHECK_EQ(w->paths[c->inputs[1].ref].cache, XY_CACHE_WORKFLOW);
	xy_workflow_free(w);
}

static void t_load_from_file(void)
{
	char path[4096];
	struct xy_workflow *w;
	FILE *f;

	snprintf(path, sizeof path, "%s/wf.json", xy_test_tmpdir());
	f = fopen(path, "w");
	XY_CHECK(f != NULL);
	fputs(good, f);
	fclose(f);
	/* Relative paths start at the current directory, not the file's. */
	XY_CHECK(chdir("/") == 0);
	w = xy_workflow_load(path, err, sizeof err);
	XY_CHECK(w != NULL);
	XY_CHECK(strncmp(w->paths[0].full, "/data/", 6) == 0);
	XY_CHECK(strstr(w->paths[0].full, "/data/in.txt") != NULL);
	xy_workflow_free(w);

	w = xy_workflow_load("/nonexistent/wf.json", err, sizeof err);
	XY_CHECK(w == NULL);
	XY_CHECK(strstr(err, "/nonexistent/wf.json") != NULL);
}

static void t_empty_workflow(void)
{
	struct xy_workflow *w = parse("{\"tasks\": []}");

	XY_CHECK(w != NULL);
	XY_CHECK_EQ(w->n_tasks, 0);
	xy_workflow_free(w);
	xy_workflow_free(NULL);
}

static void t_hostile_sandbox_names(void)
{
	static const char *const names[] = {"/abs", "a/../b", "..",
					    "../etc/passwd", "a//b", ".", "",
					    "x/./y", "x/"};
	char text[1024];

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(text, sizeof text,
			 "{\"tasks\": [{\"id\": \"ok\", \"command\": \"true\"},"
			 " {\"id\": \"sort1\", \"command\": \"cat x\","
			 " \"inputs\": [{\"path\": \"in\", \"as\": \"%s\"}]}]}",
			 names[i]);
		char quoted[64];
		snprintf(quoted, sizeof quoted, "\"%s\"", names[i]);
		REFUSED(text, "task \"sort1\"", "input \"as\"", quoted,
			"refused");
	}
	REFUSED("{\"tasks\": [{\"id\": \"w\", \"command\": \"true\","
		" \"outputs\": [{\"path\": \"o\", \"as\": \"../o\"}]}]}",
		"task \"w\"", "output \"as\"", "\"../o\"", "refused");
}

static void t_duplicate_ids(void)
{
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\"},"
		" {\"id\": \"b\", \"command\": \"true\"},"
		" {\"id\": \"a\", \"command\": \"false\"}]}",
		"task \"a\"", "used twice", "#1", "#3");
}

static void t_missing_keys(void)
{
	REFUSED("{\"tasks\": [{\"command\": \"true\"}]}", "task #1",
		"no \"id\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\"}]}", "task \"a\"",
		"no \"command\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"inputs\": [{\"path\": \"x\"}]}]}",
		"task \"a\"", "lacks \"as\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"inputs\": [{\"as\": \"x\"}]}]}",
		"task \"a\"", "lacks \"path\"");
	REFUSED("{\"name\": \"x\"}", "\"tasks\" must be an array");
	REFUSED("[1, 2]", "must be a JSON object");
}

static void t_unknown_keys(void)
{
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"comand\": \"true\"}]}",
		"task \"a\"", "unknown key \"comand\"",
		"did you mean \"command\"");
	REFUSED("{\"tasks\": [{\"Id\": \"a\", \"command\": \"true\"}]}",
		"task #1", "unknown key \"Id\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"resources\": {\"cpus\": 2}}]}",
		"task \"a\"", "unknown key \"cpus\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"inputs\": [{\"path\": \"x\", \"as\": \"x\","
		" \"cahce\": \"task\"}]}]}",
		"task \"a\"", "unknown key \"cahce\"", "\"cache\"");
	REFUSED("{\"tasks\": [], \"workers\": 3}", "unknown key \"workers\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"timeout\": 3}]}",
		"task \"a\"", "unknown key \"timeout\"");
}

static void t_bad_values(void)
{
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"resources\": {\"cores\": 0}}]}", "task \"a\"", "\"cores\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"resources\": {\"memory\": \"1G\"}}]}", "\"memory\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"retries\": -1}]}", "\"retries\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"time_limit\": 0}]}", "\"time_limit\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"env\": {\"X\": 3}}]}", "task \"a\"", "env \"X\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"env\": {\"A=B\": \"x\"}}]}", "env name \"A=B\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"inputs\": [{\"path\": \"x\", \"as\": \"x\","
		" \"cache\": \"always\"}]}]}", "\"cache\" must be one of");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": 5}]}",
		"\"command\" must be a string");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"inputs\": [{\"path\": \"x\", \"as\": \"y\"},"
		" {\"path\": \"z\", \"as\": \"y\"}]}]}",
		"sandbox name \"y\" is used twice");
}

static void t_malformed_json(void)
{
	REFUSED("{\"tasks\": [\n"
		"  {\"id\": \"a\", \"command\": \"true\"},\n"
		"  {\"id\": \"b\" \"command\": \"true\"}\n"
		"]}\n",
		"line 3", "column", "invalid JSON");
	REFUSED("", "line", "invalid JSON");
	/* A key given twice in one object is not silently merged. */
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"id\": \"b\","
		" \"command\": \"true\"}]}", "line 1", "duplicate");
}

static void t_two_writers(void)
{
	REFUSED("{\"tasks\": [\n"
		" {\"id\": \"a\", \"command\": \"true\","
		"  \"outputs\": [{\"path\": \"out/x\", \"as\": \"x\"}]},\n"
		" {\"id\": \"b\", \"command\": \"true\","
		"  \"outputs\": [{\"path\": \"./out//x\", \"as\": \"y\"}]}]}",
		"tasks \"a\" and \"b\" both write", "out/x");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"outputs\": [{\"path\": \"x\", \"as\": \"x\"},"
		" {\"path\": \"x\", \"as\": \"y\"}]}]}",
		"task \"a\" writes \"x\" twice");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"inputs\": [{\"path\": \"x\", \"as\": \"in\"}],"
		" \"outputs\": [{\"path\": \"x\", \"as\": \"out\"}]}]}",
		"task \"a\" reads \"x\", which it writes itself");
}

/* "temp": true on an entry makes its path a temp; a temp must have a
 * writer in the workflow. */
static void t_temps(void)
{
	struct xy_workflow *w = parse(
		"{\"tasks\": [\n"
		" {\"id\": \"a\", \"command\": \"true\","
		"  \"outputs\": [{\"path\": \"mid\", \"as\": \"x\","
		"   \"temp\": true}]},\n"
		" {\"id\": \"b\", \"command\": \"true\","
		"  \"inputs\": [{\"path\": \"mid\", \"as\": \"x\"}],"
		"  \"outputs\": [{\"path\": \"out\", \"as\": \"y\","
		"   \"temp\": false}]}]}");
	XY_CHECK(w);
	XY_CHECK_EQ(w->n_paths, 2);
	XY_CHECK(w->paths[w->tasks[1].inputs[0].ref].temp);
	XY_CHECK(w->tasks[0].outputs[0].temp && !w->tasks[1].inputs[0].temp);
	XY_CHECK(!w->paths[w->tasks[1].outputs[0].ref].temp);
	xy_workflow_free(w);
	REFUSED("{\"tasks\": [{\"id\": \"b\", \"command\": \"true\","
		" \"inputs\": [{\"path\": \"m\", \"as\": \"x\","
		" \"temp\": true}]}]}",
		"task \"b\" reads temp \"m\", which no task writes");
	REFUSED("{\"tasks\": [{\"id\": \"b\", \"command\": \"true\","
		" \"outputs\": [{\"path\": \"m\", \"as\": \"x\","
		" \"temp\": 1}]}]}",
		"\"temp\": must be true or false");
}

static void t_cycle(void)
{
	REFUSED("{\"tasks\": [\n"
		" {\"id\": \"src\", \"command\": \"true\","
		"  \"outputs\": [{\"path\": \"s\", \"as\": \"s\"}]},\n"
		" {\"id\": \"a\", \"command\": \"true\","
		"  \"inputs\": [{\"path\": \"s\", \"as\": \"s\"},"
		"              {\"path\": \"y\", \"as\": \"y\"}],"
		"  \"outputs\": [{\"path\": \"x\", \"as\": \"x\"}]},\n"
		" {\"id\": \"b\", \"command\": \"true\","
		"  \"inputs\": [{\"path\": \"x\", \"as\": \"x\"}],"
		"  \"outputs\": [{\"path\": \"y\", \"as\": \"y\"}]}]}",
		"dependency cycle", "\"a\"", "\"b\"");
}

/* A long chain is ordered without trouble (and in linear time). */
static void t_long_chain(void)
{
	enum { N = 20000 };
	size_t cap = (size_t)N * 160, len = 0;
	char *text = malloc(cap);
	struct xy_workflow *w;

	len += snprintf(text + len, cap - len, "{\"tasks\": [");
	for (int i = 0; i < N; i++)
		len += snprintf(text + len, cap - len,
				"%s{\"id\": \"t%d\", \"command\": \"cat in > out\","
				" \"inputs\": [{\"path\": \"f%d\", \"as\": \"in\"}],"
				" \"outputs\": [{\"path\": \"f%d\", \"as\": \"out\"}]}",
				i ? "," : "", i, i, i + 1);
	len += snprintf(text + len, cap - len, "]}");
	w = parse(text);
	XY_CHECK(w != NULL);
	XY_CHECK_EQ(w->n_tasks, N);
	XY_CHECK_EQ(w->n_paths, N + 1);
	xy_workflow_free(w);
	free(text);
}

static void t_arrays(void)
{
	char path[4096], text[8192];
	struct xy_workflow *w;
	FILE *f;

	w = parse("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		  " \"array\": {\"range\": 1000000},"
		  " \"outputs\": [{\"path\": \"o/${XY_INDEX}\", \"as\": \"o\"}]}]}");
	XY_CHECK(w != NULL);
	XY_CHECK_EQ((int64_t)w->tasks[0].array_n, 1000000);
	XY_CHECK(w->tasks[0].array_lines == NULL);
	xy_workflow_free(w);
	/* Lines: a last line without a newline counts. */
	snprintf(path, sizeof path, "%s/lines.txt", xy_test_tmpdir());
	f = fopen(path, "w");
	XY_CHECK(f != NULL);
	fputs("a\nb b\n\nc", f);
	fclose(f);
	snprintf(text, sizeof text, "{\"tasks\": [{\"id\": \"a\", \"command\":"
		 " \"true\", \"array\": {\"lines\": \"%s\"}}]}", path);
	w = parse(text);
	XY_CHECK(w != NULL);
	XY_CHECK_EQ((int64_t)w->tasks[0].array_n, 4);
	XY_CHECK(strcmp(w->tasks[0].array_lines, path) == 0);
	xy_workflow_free(w);
	f = fopen(path, "w");
	XY_CHECK(f != NULL);
	fclose(f);
	REFUSED(text, "task \"a\"", "is empty");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"array\": {\"range\": 0}}]}", "task \"a\"", "\"range\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"array\": {\"range\": 2, \"lines\": \"x\"}}]}",
		"one of \"range\" and \"lines\"");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"array\": {\"rnage\": 2}}]}", "rnage");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"array\": 5}]}", "must be an object");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"array\": {\"lines\": \"/nonexistent/l\"}}]}",
		"/nonexistent/l");
	REFUSED("{\"tasks\": [{\"id\": \"a\", \"command\": \"true\","
		" \"array\": {\"lines\": \"/dev/zero\"}}]}",
		"not a regular file");
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_good_file),
		XY_TEST(t_load_from_file),
		XY_TEST(t_empty_workflow),
		XY_TEST(t_hostile_sandbox_names),
		XY_TEST(t_duplicate_ids),
		XY_TEST(t_missing_keys),
		XY_TEST(t_unknown_keys),
		XY_TEST(t_bad_values),
		XY_TEST(t_malformed_json),
		XY_TEST(t_two_writers),
		XY_TEST(t_temps),
		XY_TEST(t_cycle),
		XY_TEST(t_arrays),
		XY_TEST_T(t_long_chain, 120), /* slow under the sanitizers */
		{0},
	};
	return xy_test_main(argc, argv, tests);
}

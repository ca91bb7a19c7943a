/*
 * task.c: the task object of the public API: creation, the setters a
 * program calls before submitting, and the getters it calls after wait
 * returns the task. The manager's life cycle of a task is in manager.c.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "proto.h"
#include "util.h"

/* Resources and policies are fixed once the manager holds the task: the
 * setters below do nothing to a submitted task that is not yet returned. */
static int frozen(const struct xy_task *t)
{
	return t->manager && t->state != XY_TASK_RETURNED;
}

struct xy_task *xy_task_create(const char *command)
{
	if (!command) {
		errno = EINVAL;
		return NULL;
	}
	struct xy_task *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->command = strdup(command);
	if (!t->command) {
		free(t);
		return NULL;
	}
	t->cores = 1;
	t->exit_code = -1;
	return t;
}

struct xy_task *xy_task_create_call(const char *library, const void *payload,
				    size_t len)
{
	if (!library || !*library || strlen(library) > XY_MAX_NAME ||
	    len > XY_PAYLOAD_MAX || (len && !payload)) {
		errno = EINVAL;
		return NULL;
	}
	struct xy_task *t = xy_task_create("");
	if (!t)
		return NULL;
	t->library = strdup(library);
	t->payload = malloc(len ? len : 1);
	if (!t->library || !t->payload) {
		xy_task_delete(t);
		errno = ENOMEM;
		return NULL;
	}
	memcpy(t->payload, payload, len);
	t->payload_len = len;
	return t;
}

void xy_task_free_results(struct xy_task *t)
{
	free(t->output);
	free(t->error);
	free(t->worker_name);
	t->output = t->error = t->worker_name = NULL;
	t->output_len = 0;
}

void xy_task_delete(struct xy_task *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->n_inputs; i++)
		free(t->inputs[i].as);
	for (uint32_t i = 0; i < t->n_outputs; i++)
		free(t->outputs[i].as);
	for (uint32_t i = 0; i < t->n_env; i++) {
		free(t->env[i].name);
		free(t->env[i].value);
	}
	free(t->inputs);
	free(t->outputs);
	free(t->env);
	free(t->command);
	free(t->tag);
	free(t->library);
	free(t->payload);
	free(t->key);
	xy_task_free_results(t);
	free(t);
}

static int add_file(struct task_file **arr, uint32_t *n, struct xy_file *f,
		    const char *as, const char *what, char *err,
		    size_t errlen)
{
	if (!f)
		return xy_fail(err, errlen, EINVAL, "%s: no file given", what);
	if (*n >= XY_MAX_FILES)
		return xy_fail(err, errlen, E2BIG, "more than %u %ss",
			       XY_MAX_FILES, what);
	if (xy_check_sandbox_name(as, err, errlen) < 0)
		return -1;
	for (uint32_t i = 0; i < *n; i++)
		if (!strcmp((*arr)[i].as, as))
			return xy_fail(err, errlen, EINVAL,
				       "%s \"%s\" is named twice", what, as);
	struct task_file *na = realloc(*arr, (*n + 1) * sizeof **arr);
	if (!na)
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	*arr = na;
	na[*n].file = f;
	na[*n].as = strdup(as);
	if (!na[*n].as)
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	(*n)++;
	return 0;
}

int xy_task_add_input(struct xy_task *t, struct xy_file *f, const char *as,
		      char *err, size_t errlen)
{
	if (frozen(t))
		return xy_fail(err, errlen, EBUSY, "the task is submitted");
	return add_file(&t->inputs, &t->n_inputs, f, as, "input", err,
			errlen);
}

int xy_task_add_output(struct xy_task *t, struct xy_file *f, const char *as,
		       char *err, size_t errlen)
{
	if (frozen(t))
		return xy_fail(err, errlen, EBUSY, "the task is submitted");
	if (f && !f->path && !f->temp)
		return xy_fail(err, errlen, EINVAL,
			       "output \"%s\": a buffer cannot be an output",
			       as ? as : "");
	return add_file(&t->outputs, &t->n_outputs, f, as, "output", err,
			errlen);
}

int xy_task_set_env(struct xy_task *t, const char *name, const char *value)
{
	if (!name || !*name || strchr(name, '=') || !value || frozen(t)) {
		errno = EINVAL;
		return -1;
	}
	for (uint32_t i = 0; i < t->n_env; i++) {
		if (!strcmp(t->env[i].name, name)) {
			char *v = strdup(value);
			if (!v)
				return -1;
			free(t->env[i].value);
			t->env[i].value = v;
			return 0;
		}
	}
	struct xy_env_var *ne = realloc(t->env, (t->n_env + 1) * sizeof *ne);
	if (!ne)
		return -1;
	t->env = ne;
	ne[t->n_env].name = strdup(name);
	ne[t->n_env].value = strdup(value);
	if (!ne[t->n_env].name || !ne[t->n_env].value) {
		free(ne[t->n_env].name);
		free(ne[t->n_env].value);
		return -1;
	}
	t->n_env++;
	return 0;
}

void xy_task_set_cores(struct xy_task *t, int cores)
{
	if (!frozen(t))
		t->cores = cores > 0 ? cores : 1;
}

void xy_task_set_calls(struct xy_task *t, int calls)
{
	if (!frozen(t))
		t->calls = calls > 1 ? calls : 0;
}

void xy_task_set_memory(struct xy_task *t, int64_t mb)
{
	if (!frozen(t))
		t->memory = mb > 0 ? mb : 0;
}

void xy_task_set_disk(struct xy_task *t, int64_t mb)
{
	if (!frozen(t))
		t->disk = mb > 0 ? mb : 0;
}

void xy_task_set_gpus(struct xy_task *t, int gpus)
{
	if (!frozen(t))
		t->gpus = gpus > 0 ? gpus : 0;
}

void xy_task_set_retries(struct xy_task *t, int retries)
{
	if (!frozen(t))
		t->retries = retries > 0 ? retries : 0;
}

void xy_task_set_priority(struct xy_task *t, double priority)
{
	/* The ready queue orders by priority: NaN would order nothing. */
	if (!frozen(t))
		t->priority = isfinite(priority) ? priority : 0;
}

void xy_task_set_time_limit(struct xy_task *t, double seconds)
{
	/* Past a year is no limit at all. */
	if (!frozen(t))
		t->time_limit = isfinite(seconds) && seconds > 0 &&
					seconds < 31536000
				? seconds
				: 0;
}

void xy_task_set_user(struct xy_task *t, uint64_t value)
{
	t->user = value;
}

uint64_t xy_task_user(const struct xy_task *t)
{
	return t->user;
}

int xy_task_set_tag(struct xy_task *t, const char *tag)
{
	char *c = tag ? strdup(tag) : NULL;
	if (tag && !c)
		return -1;
	free(t->tag);
	t->tag = c;
	return 0;
}

uint64_t xy_task_id(const struct xy_task *t)
{
	return t->id;
}

const char *xy_task_command(const struct xy_task *t)
{
	return t->command;
}

const char *xy_task_tag(const struct xy_task *t)
{
	return t->tag ? t->tag : "";
}

xy_task_state xy_task_get_state(const struct xy_task *t)
{
	return t->state;
}

xy_result xy_task_result(const struct xy_task *t)
{
	return t->result;
}

const char *xy_result_string(xy_result r)
{
	static const char *names[] = {
		[XY_RESULT_SUCCESS] = "success",
		[XY_RESULT_APP_FAILED] = "application failed",
		[XY_RESULT_WORKER_FAILED] = "worker failed",
		[XY_RESULT_RESOURCES_EXHAUSTED] = "resources exhausted",
		[XY_RESULT_INPUT_MISSING] = "input missing",
		[XY_RESULT_CANCELLED] = "cancelled",
		[XY_RESULT_MANAGER_FAILED] = "manager failed",
		[XY_RESULT_UNSCHEDULABLE] = "unschedulable",
	};
	if ((unsigned)r >= sizeof names / sizeof names[0])
		return "unknown";
	return names[r];
}

int xy_task_exit_code(const struct xy_task *t)
{
	return t->exit_code;
}

xy_failure xy_task_failure(const struct xy_task *t)
{
	return t->failure;
}

const char *xy_task_output(const struct xy_task *t, size_t *len)
{
	if (len)
		*len = t->output_len;
	return t->output ? t->output : "";
}

const char *xy_task_error(const struct xy_task *t)
{
	return t->error ? t->error : "";
}

const char *xy_task_worker(const struct xy_task *t)
{
	return t->worker_name ? t->worker_name : "";
}

int xy_task_attempts(const struct xy_task *t)
{
	return t->attempts;
}

void xy_task_times(const struct xy_task *t, struct xy_task_times *out)
{
	*out = t->times;
}

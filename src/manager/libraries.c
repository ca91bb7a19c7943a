/*
 * libraries.c: declared libraries (internal.h, struct library): the
 * templates of the instances workers start for calls, the LIBRARY message
 * each worker gets once, and the inputs a call carries from its library.
 * A replaced library stays until the manager goes, since workers remember
 * which library records they were sent.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util.h"

/* The wire's limits, checked here so that a task the encoder would
 * refuse is refused at submit, not lost at dispatch. */
int xy_manager_check_limits(const struct xy_task *t, char *err,
			    size_t errlen)
{
	if (strlen(t->command) > XY_MAX_COMMAND)
		return xy_fail(err, errlen, E2BIG, "command over %u bytes",
			       XY_MAX_COMMAND);
	if (t->payload_len > XY_MAX_PAYLOAD)
		return xy_fail(err, errlen, E2BIG, "payload over %u bytes",
			       XY_MAX_PAYLOAD);
	if (t->n_env > XY_MAX_ENV)
		return xy_fail(err, errlen, E2BIG, "more than %u variables",
			       XY_MAX_ENV);
	for (uint32_t i = 0; i < t->n_env; i++)
		if (strlen(t->env[i].name) > XY_MAX_NAME ||
		    strlen(t->env[i].value) > XY_MAX_STR)
			return xy_fail(err, errlen, E2BIG,
				       "variable %.40s is too long",
				       t->env[i].name);
	return 0;
}

struct library *xy_manager_library(struct xy_manager *m, const char *name)
{
	for (struct library *l = m->libraries; l; l = l->next)
		if (l->current && !strcmp(l->name, name))
			return l;
	return NULL;
}

int xy_manager_declare_library(struct xy_manager *m, const char *name,
			       struct xy_task *tmpl, char *err, size_t errlen)
{
	if (!name || !*name || strlen(name) > XY_MAX_NAME)
		return xy_fail(err, errlen, EINVAL, "a library needs a name");
	if (!tmpl || !*tmpl->command || tmpl->library || tmpl->n_outputs ||
	    tmpl->manager)
		return xy_fail(err, errlen, EINVAL,
			       "library %s: the template must be an unsubmitted "
			       "command task without outputs", name);
	if (xy_manager_check_limits(tmpl, err, errlen) < 0)
		return -1;
	struct library *l = calloc(1, sizeof *l);
	if (!l || !(l->name = strdup(name))) {
		free(l);
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	}
	struct library *old = xy_manager_library(m, name);
	if (old)
		old->current = 0;
	/* Kept until the manager goes, as the library itself is. */
	for (uint32_t i = 0; i < tmpl->n_inputs; i++)
		xy_catalog_file_incref(tmpl->inputs[i].file);
	l->tmpl = tmpl;
	l->current = 1;
	l->next = m->libraries;
	m->libraries = l;
	return 0;
}

int xy_manager_add_library_inputs(struct xy_manager *m, struct xy_task *t,
				  char *err, size_t errlen)
{
	struct library *l = xy_manager_library(m, t->library);
	for (uint32_t i = 0; i < l->tmpl->n_inputs; i++) {
		struct task_file *li = &l->tmpl->inputs[i];
		int have = 0;
		for (uint32_t j = 0; j < t->n_inputs; j++) {
			if (t->inputs[j].file == li->file &&
			    !strcmp(t->inputs[j].as, li->as))
				have = 1;
			else if (!strcmp(t->inputs[j].as, li->as))
				return xy_fail(err, errlen, EINVAL,
					       "input %s is also an input of "
					       "library %s", li->as, l->name);
		}
		if (!have &&
		    xy_task_add_input(t, li->file, li->as, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int xy_manager_send_library(struct xy_manager *m, struct xy_worker *w,
			    const char *name)
{
	struct library *l = xy_manager_library(m, name);
	for (uint32_t i = 0; i < w->n_libs; i++)
		if (w->libs[i] == l)
			return 0;
	struct xy_task *tp = l->tmpl;
	union xy_msg msg = {0};
	struct xy_msg_task *tm = &msg.task;
	struct xy_task_input *in = xy__calloc(m, tp->n_inputs + 1, sizeof *in);
	struct library **nl = in ? xy__realloc(m, w->libs, (w->n_libs + 1) *
						 sizeof *nl)
				 : NULL;
	if (!nl) {
		free(in);
		return -1;
	}
	w->libs = nl;
	w->libs[w->n_libs++] = l;

	for (uint32_t i = 0; i < tp->n_inputs; i++) {
		struct xy_file *f = tp->inputs[i].file;
		memcpy(in[i].id, f->obj->id, XY_ID_LEN);
		in[i].kind = xy_input_kind(tp, f);
		in[i].level = (uint8_t)f->level;
		in[i].name = tp->inputs[i].as;
	}
	tm->command = tp->command;
	tm->cores = (uint32_t)tp->cores;
	tm->memory_mb = (uint64_t)tp->memory;
	tm->disk_mb = (uint64_t)tp->disk;
	tm->gpus = (uint32_t)tp->gpus;
	tm->n_env = tp->n_env;
	tm->env = tp->env;
	tm->n_inputs = tp->n_inputs;
	tm->inputs = in;
	tm->library = l->name;
	xy_manager_send(m, w, XY_MSG_LIBRARY, &msg);
	free(in);
	return 0;
}

void xy_manager_free_libraries(struct xy_manager *m)
{
	for (struct library *l = m->libraries, *n; l; l = n) {
		n = l->next;
		xy_task_delete(l->tmpl);
		free(l->name);
		free(l);
	}
	m->libraries = NULL;
}

/*
 * unpack.c: archives declared for unpacking and software environments,
 * on the manager's side. An expansion is a file of the catalogue that
 * mirrors its archive (catalog.c): the same object, so the planner stages
 * the archive and the scheduler counts its bytes; only the input's kind in
 * TASK tells the worker to mount the archive expanded (UNPACK), and to
 * activate it as the task's environment (ENV). The worker expands each
 * archive once (src/worker/unpack.c).
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "util.h"

struct xy_file *xy_manager_declare_unpack(struct xy_manager *m,
					  struct xy_file *archive,
					  xy_cache_level level, char *err,
					  size_t errlen)
{
	if (!archive || archive->archive) {
		xy_fail(err, errlen, EINVAL, "unpack: %s",
			archive ? "an expansion cannot be unpacked again"
				: "no archive given");
		return NULL;
	}
	if (xy_catalog_check_level(level, err, errlen) < 0)
		return NULL;
	struct xy_file *f = xy_catalog_unpack(m->catalog, archive, level);
	if (!f)
		xy_fail(err, errlen, ENOMEM, "out of memory");
	return f;
}

int xy_task_set_environment(struct xy_task *t, struct xy_file *env,
			    char *err, size_t errlen)
{
	if (t->manager && t->state != XY_TASK_RETURNED)
		return xy_fail(err, errlen, EBUSY, "the task is submitted");
	if (!env || !env->archive)
		return xy_fail(err, errlen, EINVAL, "an environment is an "
			       "archive declared with xy_manager_declare_unpack");
	if (t->environment)
		return xy_fail(err, errlen, EEXIST,
			       "the task has an environment already");
	if (xy_task_add_input(t, env, XY_ENV_MOUNT, err, errlen) < 0)
		return -1;
	t->environment = env;
	return 0;
}

uint8_t xy_input_kind(const struct xy_task *t, const struct xy_file *f)
{
	if (!f->archive)
		return f->obj->kind;
	return f == t->environment ? XY_INPUT_ENV : XY_INPUT_UNPACK;
}

/* exec.c: placeholder until written (cwl.h). */
#include <stdio.h>
#include "cwl.h"

int cwl_resources(const json_t *tool, const json_t *job, struct cwl_runtime *rt,
		  char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: not built yet", __func__);
	return -1;
}

json_t *cwl_exec_tool(const json_t *tool, const json_t *job,
		      const struct cwl_runtime *rt, int *status, char *err,
		      size_t errlen)
{
	snprintf(err, errlen, "%s: not built yet", __func__);
	return NULL;
}

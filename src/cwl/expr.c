/* expr.c: placeholder until written (cwl.h). */
#include <stdio.h>
#include "cwl.h"

struct cwl_expr *cwl_expr_new(const json_t *tool, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: not built yet", __func__);
	return NULL;
}

void cwl_expr_free(struct cwl_expr *x)
{
	return;
}

int cwl_expr_has(const char *text)
{
	return -1;
}

json_t *cwl_expr_eval(struct cwl_expr *x, const char *text,
		      const json_t *inputs, const json_t *self,
		      const json_t *runtime, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: not built yet", __func__);
	return NULL;
}

json_t *cwl_expr_eval_value(struct cwl_expr *x, const json_t *v,
			    const json_t *inputs, const json_t *self,
			    const json_t *runtime, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: not built yet", __func__);
	return NULL;
}

char *cwl_json_dumps(const json_t *v)
{
	return NULL;
}

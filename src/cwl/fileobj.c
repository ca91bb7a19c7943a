/* fileobj.c: placeholder until written (cwl.h). */
#include <stdio.h>
#include "cwl.h"

int cwl_file_complete(json_t *obj, int checksum, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: not built yet", __func__);
	return -1;
}

int cwl_file_load_contents(json_t *file, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: not built yet", __func__);
	return -1;
}

int cwl_dir_listing(json_t *dir, const char *depth, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: not built yet", __func__);
	return -1;
}

char *cwl_secondary_name(const char *basename, const char *pattern)
{
	return NULL;
}

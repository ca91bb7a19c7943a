/*
 * load_int.h: the loader's state, shared by load.c (tools, and the
 * picking of a process out of a document) and wfload.c (workflows and
 * expression tools, and the processes their steps run). Internal to the
 * loader: nothing outside src/cwl/load.c and src/cwl/wfload.c includes it.
 */
#ifndef XY_CWL_LOAD_INT_H
#define XY_CWL_LOAD_INT_H

#include <jansson.h>
#include <stddef.h>

struct tl {
	char *path;         /* absolute path of the document */
	char *uri;          /* its file:// URI */
	json_t *root;       /* the whole document */
	const json_t *proc; /* the process in it */
	const json_t *ns;   /* $namespaces */
	json_t *defs;       /* SchemaDefRequirement: short name -> type */
	json_t *out;        /* the canonical process */
	int status;
	char *err;
	size_t errlen;
	int depth;          /* documents nested through steps' run */
};

/* load.c's pieces, for wfload.c. */
int cwl__load_bad(struct tl *t, const json_t *at, const char *fmt,
		  const char *arg);
json_t *cwl__load_params(struct tl *t, const char *key, int output);
json_t *cwl__load_reqs(struct tl *t, const json_t *v, int hint);
int cwl__load_id_matches(const json_t *p, const char *frag);
/* 1 if the process being loaded is v1.2 (or later). */
int cwl__load_v12(const struct tl *t);

/* The canonical form of a process embedded in parent's document (a
 * step's inline run, or a $graph entry it names); NULL with parent's err
 * and status set. */
json_t *cwl__load_embedded(struct tl *parent, const json_t *proc);

/* cwl_load_tool for a document that a step's run names, depth documents
 * deep. */
json_t *cwl__load_file(const char *tool, int depth, int *status, char *err,
		       size_t errlen);

/* wfload.c: the rest of an ExpressionTool or a Workflow, after its
 * class, id and requirements are in t->out. */
int cwl__load_other(struct tl *t);

#endif

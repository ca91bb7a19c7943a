/*
 * lineage.h: temps and their lineage (lineage.c). A sub-context of the
 * manager, with its own create and destroy; only files under src/manager
 * include it, through internal.h, which gives the types it shares with the
 * others.
 */
#ifndef XY_MANAGER_LINEAGE_H
#define XY_MANAGER_LINEAGE_H

/* Temps and their lineage (lineage.c, docs/dataplane.md "Temps"). */
struct xy_lineage *xy_lineage_create(struct xy_manager *m);
/* Frees the recipes and the retired remakes (temps are the catalogue's). */
void xy_lineage_destroy(struct xy_lineage *l);
struct xy_file *xy_lineage_declare(struct xy_lineage *l,
				   xy_cache_level level, char *err,
				   size_t errlen);
/* At submit: keeps a recipe of t if it writes a temp. -1 on ENOMEM. */
int xy_lineage_record(struct xy_lineage *l, struct xy_task *t, char *err,
		      size_t errlen);
/* f is a temp with no copy left that a task needs: its producer is
 * queued to run again (f is then FILE_PRODUCED) and 0 returned, or -1
 * with a reason in *why (malloc'd) if it cannot be made again. */
int xy_lineage_remake(struct xy_lineage *l, struct xy_file *f, char **why);
/* The temp f is being freed: it leaves its recipe, which goes with its
 * last temp (and gives back its inputs). */
void xy_lineage_forget(struct xy_lineage *l, struct xy_file *f);
/* The temp f was made (obj on w): copies it to more workers if asked. */
void xy_lineage_made(struct xy_lineage *l, struct xy_file *f);
/* A remake finished (t->internal): it is freed in the next phase. */
void xy_lineage_retire(struct xy_lineage *l, struct xy_task *t);
/* The loop's phase: frees retired remakes, starts queued ones. */
void xy_lineage_phase(struct xy_lineage *l);
int64_t xy_lineage_remakes(const struct xy_lineage *l);
/* The file's name in messages: its path, its label, or "(buffer)". */
const char *xy_file_label(const struct xy_file *f);

#endif

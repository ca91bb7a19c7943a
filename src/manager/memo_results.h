/*
 * memo_results.h: the results of finished tasks a journal remembers
 * (memo_results.c, docs/durability.md, "Results"), beside memo.c's DONE
 * records. A task's output bytes (a Python call's reply, a command's
 * output) are not a file that memo.c could find again by its size and
 * time: a RESULT record keeps them, small ones in the record itself,
 * larger ones in a file under the journal's directory, so that a task
 * finished from the journal hands its program the output it had. Only
 * memo.c includes it.
 */
#ifndef XY_MANAGER_MEMO_RESULTS_H
#define XY_MANAGER_MEMO_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#define XY_MEMO_REC_RESULT 10 /* the journal record's type */
#define XY_MEMO_REC_CLIENT 11 /* a client's finished task (client.c) */
/* A session's accepted SUBMIT, its job's answer, the session's numbering
 * (clients_journal.c). */
#define XY_MEMO_REC_SUBMIT 12
#define XY_MEMO_REC_ANSWER 13
#define XY_MEMO_REC_SESSION 14
/* A session's temp named or dropped (client_temps.c). */
#define XY_MEMO_REC_CTEMP 15

struct xy_journal;
struct xy_memo_results;
struct xy_task;

/* Whether the memo's table still has fingerprint fp (a result whose
 * task it forgot is dropped at compaction). */
typedef int (*xy_memo_known_fn)(void *arg, const uint8_t *fp);

/* The results of the journal in dir (large ones in dir/results); sync:
 * files are fdatasync'd, and the directory, before their record. NULL
 * with errno (ENOMEM). */
struct xy_memo_results *xy_memo_results_create(const char *dir, int sync);
/* Frees. NULL does nothing. */
void xy_memo_results_destroy(struct xy_memo_results *r);

/* Takes a RESULT record read back from the journal: 0, or -1 with the
 * reason in err (malformed). */
int xy_memo_results_replay(struct xy_memo_results *r, const void *data,
			   size_t len, char *err, size_t errlen);

/* t (whose fingerprint is fp) finished well: its RESULT record goes to
 * j's buffer, before its DONE record (a torn tail that keeps the DONE
 * keeps the RESULT). A large output is written to its file first. An
 * empty output needs no record, unless an older result of fp is known
 * (then a record that forgets it). 0, or -1 with errno: t must then not
 * be recorded. */
int xy_memo_results_record(struct xy_memo_results *r, struct xy_journal *j,
			   const uint8_t *fp, const struct xy_task *t);

/* t (fingerprint fp) is to finish from the journal: its output and exit
 * code are set from its result (none known: an empty output). 0, or -1
 * if its result is known but cannot be had (its file gone, cut or
 * changed; memory short): t must then run. */
int xy_memo_results_restore(struct xy_memo_results *r, const uint8_t *fp,
			    struct xy_task *t);

/* For a snapshot: appends to snap the RESULT record of each result
 * whose fingerprint known() still has, and forgets the others
 * (xy_memo_results_prune). 0, or -1 with errno. */
int xy_memo_results_dump(struct xy_memo_results *r, struct xy_journal *snap,
			 xy_memo_known_fn known, void *arg);

/* Forgets the results whose fingerprint known() no longer has (their
 * task's record was replaced by a later one for the same outputs). */
void xy_memo_results_prune(struct xy_memo_results *r, xy_memo_known_fn known,
			   void *arg);

/* Removes the files under dir/results that no known result names (left
 * by a crash between a file and its record, or by results forgotten). */
void xy_memo_results_sweep(struct xy_memo_results *r);

/* Clients' finished tasks (client.c, docs/durability.md, "Clients"):
 * each a key (a digest of the SUBMIT) and bytes that only client.c
 * reads. Replay of a CLIENT record: 0, or -1 with the reason in err. */
int xy_memo_results_client_replay(struct xy_memo_results *r,
				  const void *data, size_t len, char *err,
				  size_t errlen);
/* The bytes recorded for key, or NULL; *len their length. */
const void *xy_memo_results_client_find(struct xy_memo_results *r,
					const uint8_t *key, size_t *len);
/* Appends key's CLIENT record to j's buffer and keeps it. 0, or -1
 * with errno. */
int xy_memo_results_client_record(struct xy_memo_results *r,
				  struct xy_journal *j, const uint8_t *key,
				  const void *data, size_t len);
/* The journal's directory. */
const char *xy_memo_results_base(const struct xy_memo_results *r);

/* The payload bytes a snapshot of the results would take, and their
 * count, for the compaction's estimate. */
uint64_t xy_memo_results_bytes(const struct xy_memo_results *r);
size_t xy_memo_results_count(const struct xy_memo_results *r);

#endif

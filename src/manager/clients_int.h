/*
 * clients_int.h: the structures of the clients sub-context, shared by
 * client.c (connections, SUBMIT, RESULT) and clients_journal.c (sessions:
 * SUBMITs recorded before they are accepted, RESULTs numbered and recorded
 * before they are sent, jobs made again from their records at a start).
 */
#ifndef XY_MANAGER_CLIENTS_INT_H
#define XY_MANAGER_CLIENTS_INT_H

#include <stdint.h>

#include "internal.h"

#define DIR_LEN 4120 /* the staging directory's, and objects/ or jobs/ */
#define PATH_LEN (DIR_LEN + XY_MAX_NAME + 32)

struct session;
struct accepted;
struct xy_cjournal;
struct xy_ctemps;

/* A client's share of the manager: files in one SUBMIT, and tasks not
 * yet answered (the duplicate-id check walks these). */
#define CLIENT_FILES_MAX 4096
#define CLIENT_JOBS_MAX 10000
#define STR_(x) #x
#define STR(x) STR_(x)

struct client {
	struct xy_clients *cs;
	struct xy_conn *conn;
	char *addr; /* where its transfer server is: the peer's ip */
	int jobs;   /* its jobs not yet answered */
	struct session *sess; /* its ATTACH's, or NULL */
	/* Where its temps' names live: its session's id once attached,
	 * else its own (client_temps.c). */
	uint8_t scope[XY_ID_LEN];
	int scope_session; /* scope is its session's: it outlives cl */
};

/* One SUBMIT, from its arrival to its RESULT. */
struct client_job {
	struct xy_clients *cs;
	struct client *cl;  /* NULL once the client is gone */
	uint64_t cid;       /* the client's id for it */
	uint64_t seq;       /* ours: names its directory under jobs/ */
	union xy_msg sub;   /* the SUBMIT, until the task is made */
	struct xy_task *t;  /* once made */
	int in_table;       /* t is in the manager's table, not ours */
	int work;           /* thread-pool jobs in flight */
	char *why;          /* the first input that could not be had */
	int oom;            /* memory was short for its work */
	int keyed;          /* journaled under key when it succeeds */
	uint8_t key[XY_ID_LEN];
	/* A session's job (a SUBMIT with a key, with a journal): its key
	 * is jkey, its SUBMIT record acc once written (clients_journal.c). */
	int session_job;
	int resumed;  /* made from its SUBMIT record at a start */
	int recorded; /* its SUBMIT record is written: it was accepted */
	uint8_t jkey[XY_ID_LEN];
	struct session *sess;
	struct accepted *acc;
	/* The files its SUBMIT named that are not the client's own (temps,
	 * URLs, expansions), by input then output, each with a reference
	 * of the job's; NULL where none (client_temps.c). */
	struct xy_file **in_files, **out_files;
	uint32_t n_bound;
	char **out_names; /* its outputs' temp names (NULL: not a temp) */
	uint32_t n_out_names;
	uint8_t scope[XY_ID_LEN];
	int scope_session; /* the scope is a session's: journaled */
	struct client_job *prev, *next;
};

struct xy_clients {
	struct xy_manager *m;
	struct client_job *jobs; /* every job, of every client */
	uint64_t seq;
	uint64_t last_expiry; /* tokens get distinct expiries */
	char store[DIR_LEN], jobdir[DIR_LEN];
	int journal; /* the store is the journal's (xy_clients_journal) */
	struct xy_cjournal *cj; /* sessions (clients_journal.c) */
	struct xy_ctemps *ct;   /* clients' temps (client_temps.c) */
	uint64_t scopes;        /* connections' temp scopes given out */
	int64_t connected; /* clients connected now */
};

/* clients_journal.c, for client.c (docs/durability.md, "Clients"). */

/* An ATTACH from cl: binds it to its session, sends the session's RESULTs
 * after msg's, and takes over the session's jobs. -1 (closed) on ENOMEM. */
int xy_clients__attach(struct xy_clients *cs, struct client *cl,
		       const struct xy_msg_attach *a);
/* A keyed SUBMIT from an attached client, with a journal: 1 if it is
 * a job the manager knows (accepted and running: now cl's; or answered:
 * its RESULT sent again); 0 if it is new: its key is in jkey. */
int xy_clients__known(struct xy_clients *cs, struct client *cl,
		      const struct xy_msg_submit *s, uint8_t *jkey);
/* Records j's SUBMIT (written at once) and tells its client ACCEPTED.
 * -1 if the journal could not take it. */
int xy_clients__accept(struct client_job *j);
/* j, an accepted job, ended with res: numbered, recorded (written at
 * once, with its task's end as a run), sent if its session is attached. */
void xy_clients__answer(struct client_job *j, struct xy_msg_result *res);
/* At a start, after replay: every accepted job without an answer is made
 * again from its record; their tasks are adopted from their workers. */
void xy_clients__resume(struct xy_clients *cs);
/* A client left: its session waits for another ATTACH. */
void xy_clients__detach(struct xy_clients *cs, struct client *cl);
void xy_clients__free_journal(struct xy_clients *cs);
/* client.c's, for clients_journal.c: j's task made and submitted (its
 * inputs are in the store), or answered at once if that fails. */
void xy_clients__start(struct client_job *j);
/* A new job of cl (NULL: of nobody yet), in cs's list; NULL on ENOMEM. */
struct client_job *xy_clients__job_new(struct xy_clients *cs,
				       struct client *cl);
void xy_clients__job_free(struct client_job *j);
/* A new keyed job, tracked by its key from now on (-1 on ENOMEM); a job
 * freed: its key forgotten if it was never recorded. */
int xy_clients__track(struct client_job *j);
void xy_clients__untrack(struct client_job *j);

/* client_temps.c, for client.c: temps, URLs and archives in SUBMIT. */

/* Gives cl a scope of its own for its temps' names. */
void xy_clients__scope_new(struct xy_clients *cs, struct client *cl);
/* Binds what j's SUBMIT names besides the client's objects, in its
 * scope: a temp read (one that names nothing sets j->why), a URL, an
 * expansion, a temp written (declared anew). -1 on ENOMEM. */
int xy_clients__bind(struct client_job *j);
/* Gives back the job's references on what it bound. */
void xy_clients__unbind(struct client_job *j);
/* DROP from cl: those temps' names are forgotten. */
void xy_clients__drop(struct xy_clients *cs, struct client *cl,
		      const struct xy_msg_drop *d);
/* Every temp of a scope forgotten (a client without a session left). */
void xy_clients__drop_scope(struct xy_clients *cs, const uint8_t *scope);
void xy_clients__free_temps(struct xy_clients *cs);
/* j succeeded: its temps, still named so, recorded with their objects. */
void xy_clients__temps_made(struct client_job *j);
/* A CTEMP record replayed (cs NULL: only checked); -1 if malformed. */
int xy_clients__temp_replay(struct xy_clients *cs, const void *data,
			    size_t len, char *err, size_t errlen);
/* At a start, before jobs are made again: the journal's temps given
 * back to their sessions. */
void xy_clients__temps_restore(struct xy_clients *cs);
/* A snapshot's CTEMP records. 0, or -1. */
int xy_clients__temps_dump(struct xy_clients *cs, struct xy_journal *snap);
/* clients_journal.c's: a session's id. */
const uint8_t *xy_clients__session_id(const struct session *s);

#endif

/*
 * clients.h: clients (client.c): programs that submit tasks with role
 * CLIENT. A sub-context of the manager, with its own create and destroy;
 * only files under src/manager include it, through internal.h, which gives
 * the types it shares with the others.
 */
#ifndef XY_MANAGER_CLIENTS_H
#define XY_MANAGER_CLIENTS_H

/* Programs that submit tasks over the control port with role CLIENT
 * (client.c, docs/architecture.md "Clients"). */
struct xy_clients *xy_clients_create(struct xy_manager *m);
/* Keeps the store (and jobs' directories) under the journal's directory
 * dir, and records clients' tasks there (docs/durability.md, "Clients").
 * 0, or -1 with errno. */
int xy_clients_journal(struct xy_clients *cs, const char *dir);
/* Frees every job left; tasks still in the manager's table are its. */
void xy_clients_destroy(struct xy_clients *cs);
/* A connection authenticated as a client; NULL on ENOMEM. */
struct client *xy_clients_add(struct xy_clients *cs, struct xy_conn *c);
/* A message from it: SUBMIT, KEEPALIVE; anything else closes it. */
void xy_clients_msg(struct xy_clients *cs, struct client *cl, unsigned type,
		    union xy_msg *msg);
/* Its connection closed: its tasks are cancelled, cl is freed. */
void xy_clients_remove(struct xy_clients *cs, struct client *cl,
		       const char *reason);
/* How many clients are connected now. */
int64_t xy_clients_connected(const struct xy_clients *cs);
/* t, a client's task, is finished and out of the manager's table: its
 * job owns it now, and answers the client. */
void xy_clients_task_done(struct xy_clients *cs, struct xy_task *t);

/* The journal's client records at its opening (memo.c's replay: SUBMIT,
 * ANSWER and SESSION records, clients_journal.c), and as a snapshot's. */
struct xy_journal;
int xy_clients_replay(struct xy_clients *cs, unsigned type, const void *data,
		      size_t len, char *err, size_t errlen);
int xy_clients_dump(struct xy_clients *cs, struct xy_journal *snap);

#endif

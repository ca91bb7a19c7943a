/*
 * memo.c: the finished tasks a journal remembers (memo.h).
 *
 * A DONE record is a task's fingerprint (SHA-256 over what makes its
 * results what they are: command, library, payload, environment
 * variables, software environment, each input's name and content id,
 * each output's name and path) and, for each output, the size and
 * modification time (ns) its file had once it was brought back. Replay
 * keeps the last record of each fingerprint in a table. A ready task
 * whose fingerprint is there, and whose output files all still have
 * those sizes and times, is finished without running: its outputs are
 * hashed again from their paths, as declared inputs are, and the tasks
 * that read them wait for that.
 */
#include "memo.h"
#include "memo_results.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "htab.h"
#include "internal.h"
#include "journal.h"
#include "log.h"
#include "util.h"

#define WHO "journal"
#define REC_DONE 1
#define REC_RUN 2   /* a task sent to a worker: fingerprint, worker */
#define REC_UNRUN 3 /* it stopped running without a DONE: fingerprint */
#define REC_DONE_TEMPS 4 /* a DONE of a task with temps among its outputs */
#define TEMP_MTIME INT64_MIN /* out_stat.mtime_ns of a temp output */
#define OUTPUTS_MAX 100000
/* The log is compacted once it holds more than this, and more than
 * twice what a snapshot of the table would (XYLEM_JOURNAL_COMPACT_BYTES
 * sets the first, for tests). */
#define COMPACT_MIN (64u << 20)

struct entry {
	uint8_t fp[XY_ID_LEN];
	/* Where its outputs are (a digest of their paths), if it has any:
	 * a later record with the same place replaces this one, since its
	 * task rewrote them. */
	uint8_t place[XY_ID_LEN];
	uint8_t has_place;
	uint32_t bytes; /* its record's payload */
	uint32_t n_out;
	struct out_stat {
		uint64_t size;
		int64_t mtime_ns; /* TEMP_MTIME: a temp, its id in temps */
	} *outs;
	/* A task with temps among its outputs (REC_DONE_TEMPS): each temp's
	 * object (NULL otherwise), and the worker that held it when its task
	 * finished ("" if none). */
	struct temp_out {
		uint8_t id[XY_ID_LEN];
		uint8_t kind;
	} *temps;
	char *worker;
	struct entry *next, *pnext; /* the two tables' chains */
};

/* A temp given its object by the journal (restore_temps): the worker that
 * held it, for the wait for workers of the manager before. */
struct restored {
	uint8_t id[XY_ID_LEN];
	char *worker;
	struct restored *next;
};

/* A task running on a worker, by the journal: sent in this epoch, or
 * running when an earlier manager stopped (epoch below the current). */
struct run {
	uint8_t fp[XY_ID_LEN];
	uint32_t epoch;
	char *worker;
	struct run *next;
	struct run *wnext; /* earlier epochs': the by-worker table's chain */
};

struct xy_memo {
	struct xy_manager *m;
	struct xy_journal *j;
	EVP_MD *sha256;  /* fetched once */
	EVP_MD_CTX *ctx; /* for each fingerprint, in turn */
	struct xy_htab runs;   /* struct run by fingerprint */
	struct xy_htab before; /* those of earlier epochs by worker name */
	size_t runs_before;    /* those of earlier epochs */
	int sync;              /* --journal-sync */
	struct xy_htab table;  /* entries by fingerprint (next) */
	struct xy_htab places; /* those with a place, by it (pnext) */
	int64_t skipped;
	size_t n_temps;  /* entries with temps */
	struct xy_htab restored; /* struct restored by object id */
	int temps_wait;  /* a temp of the manager before may yet come back */
	int client_temps; /* the journal named clients' temps (CTEMP) */
	struct xy_htab back; /* struct back_name: workers greeted meanwhile */
	int broken; /* the journal failed: nothing more is recorded */
	uint64_t table_bytes; /* the payloads of the table's records */
	uint64_t compact_min;
	int64_t compactions;
	struct xy_memo_results *results; /* outputs (memo_results.c) */
};

/* A worker that greeted this manager while it waits for temps' holders:
 * by name, so that xy_memo_temp_awaited is one lookup, not a walk over
 * every worker for every file (a restart with 10,000 workers). */
struct back_name {
	struct back_name *next;
	char name[];
};

static uint32_t back_hash(const void *node)
{
	return xy_str_hash(((const struct back_name *)node)->name);
}

static struct back_name *find_back(const struct xy_memo *memo,
				   const char *name)
{
	uint32_t h = xy_str_hash(name);
	for (struct back_name *b = xy_htab_first(&memo->back, h); b;
	     b = xy_htab_next(&memo->back, b))
		if (!strcmp(b->name, name))
			return b;
	return NULL;
}

static void free_back(struct xy_memo *memo)
{
	for (size_t i = 0; i < memo->back.n_slots; i++)
		for (struct back_name *b = xy_htab_slot(&memo->back, i), *n;
		     b; b = n) {
			n = b->next;
			free(b);
		}
	xy_htab_free(&memo->back);
}

static uint32_t fp_hash(const uint8_t fp[XY_ID_LEN])
{
	uint32_t h;
	memcpy(&h, fp, sizeof h);
	return h;
}

static uint32_t entry_hash(const void *node)
{
	return fp_hash(((const struct entry *)node)->fp);
}

static uint32_t place_hash(const void *node)
{
	return fp_hash(((const struct entry *)node)->place);
}

static struct entry *find_place(struct xy_memo *memo,
				const uint8_t place[XY_ID_LEN])
{
	for (struct entry *e = xy_htab_first(&memo->places, fp_hash(place));
	     e; e = xy_htab_next(&memo->places, e))
		if (!memcmp(e->place, place, XY_ID_LEN))
			return e;
	return NULL;
}

static void entry_free(struct entry *e);

static void drop(struct xy_memo *memo, struct entry *e)
{
	memo->table_bytes -= e->bytes;
	memo->n_temps -= e->temps != NULL;
	xy_htab_remove(&memo->table, e, fp_hash(e->fp));
	if (e->has_place)
		xy_htab_remove(&memo->places, e, fp_hash(e->place));
	entry_free(e);
}

static struct entry *find(struct xy_memo *memo, const uint8_t fp[XY_ID_LEN])
{
	for (struct entry *e = xy_htab_first(&memo->table, fp_hash(fp)); e;
	     e = xy_htab_next(&memo->table, e))
		if (!memcmp(e->fp, fp, XY_ID_LEN))
			return e;
	return NULL;
}

static void entry_free(struct entry *e)
{
	if (e) {
		free(e->outs);
		free(e->temps);
		free(e->worker);
	}
	free(e);
}

static uint32_t restored_hash(const void *node)
{
	return fp_hash(((const struct restored *)node)->id);
}

static uint32_t run_hash(const void *node)
{
	return fp_hash(((const struct run *)node)->fp);
}

static struct run *find_run(struct xy_memo *memo, const uint8_t fp[XY_ID_LEN])
{
	for (struct run *r = xy_htab_first(&memo->runs, fp_hash(fp)); r;
	     r = xy_htab_next(&memo->runs, r))
		if (!memcmp(r->fp, fp, XY_ID_LEN))
			return r;
	return NULL;
}

static uint32_t current_epoch(const struct xy_memo *memo)
{
	/* During replay the journal is not open yet: every record is of an
	 * earlier epoch. */
	return memo->j ? xy_journal_info(memo->j)->epoch : UINT32_MAX;
}

static void drop_run(struct xy_memo *memo, struct run *r)
{
	if (r->epoch < current_epoch(memo)) {
		memo->runs_before--;
		xy_htab_remove(&memo->before, r, xy_str_hash(r->worker));
	}
	xy_htab_remove(&memo->runs, r, fp_hash(r->fp));
	free(r->worker);
	free(r);
}

/* fp runs on worker (epoch: the manager's that sent it), in place of
 * what the table had for fp. -1 on ENOMEM. */
static int set_run(struct xy_memo *memo, const uint8_t fp[XY_ID_LEN],
		   const char *worker, uint32_t epoch)
{
	struct run *r = calloc(1, sizeof *r);
	if (!r || !(r->worker = strdup(worker))) {
		free(r);
		return -1;
	}
	struct run *old = find_run(memo, fp);
	if (old)
		drop_run(memo, old);
	memcpy(r->fp, fp, XY_ID_LEN);
	r->epoch = epoch;
	if (epoch < current_epoch(memo)) {
		memo->runs_before++;
		xy_htab_insert(&memo->before, r, xy_str_hash(worker));
	}
	xy_htab_insert(&memo->runs, r, fp_hash(fp));
	return 0;
}

static uint32_t before_hash(const void *node)
{
	return xy_str_hash(((const struct run *)node)->worker);
}

/* ---------------------------------------------------------- fingerprint */

static void put_str(EVP_MD_CTX *c, const char *s)
{
	uint64_t n = s ? strlen(s) : UINT64_MAX; /* NULL differs from "" */
	EVP_DigestUpdate(c, &n, sizeof n);
	if (s)
		EVP_DigestUpdate(c, s, n);
}

static void put_id(EVP_MD_CTX *c, const struct xy_file *f)
{
	static const uint8_t none[XY_ID_LEN];
	EVP_DigestUpdate(c, f && f->obj ? f->obj->id : none, XY_ID_LEN);
}

/* The memo's SHA-256 context, started afresh (the algorithm fetched
 * once at open: a fetch each digest cost as much as the digest), or
 * NULL. */
static EVP_MD_CTX *digest_begin(struct xy_memo *memo)
{
	if (!memo->ctx || EVP_DigestInit_ex(memo->ctx, memo->sha256, NULL) != 1)
		return NULL;
	return memo->ctx;
}

static int digest_end(EVP_MD_CTX *c, uint8_t out[XY_ID_LEN])
{
	unsigned len = 0;
	return EVP_DigestFinal_ex(c, out, &len) == 1 && len == XY_ID_LEN ? 0
									 : -1;
}

/* t's fingerprint into fp: 0, or -1 if an input has no content yet or
 * the digest cannot be had. A library's own code is in it only through
 * the library's declared inputs (xy_manager_add_library_inputs). */
static int fingerprint(struct xy_memo *memo, const struct xy_task *t,
		       uint8_t fp[XY_ID_LEN])
{
	for (uint32_t i = 0; i < t->n_inputs; i++)
		if (!t->inputs[i].file->obj)
			return -1;
	EVP_MD_CTX *c = digest_begin(memo);
	if (!c)
		return -1;
	put_str(c, "xylem task 1");
	put_str(c, t->command);
	put_str(c, t->library);
	uint64_t n = t->payload_len;
	EVP_DigestUpdate(c, &n, sizeof n);
	if (n)
		EVP_DigestUpdate(c, t->payload, n);
	n = t->n_env;
	EVP_DigestUpdate(c, &n, sizeof n);
	for (uint32_t i = 0; i < t->n_env; i++) {
		put_str(c, t->env[i].name);
		put_str(c, t->env[i].value);
	}
	put_id(c, t->environment);
	n = t->n_inputs;
	EVP_DigestUpdate(c, &n, sizeof n);
	for (uint32_t i = 0; i < t->n_inputs; i++) {
		/* The kind too: an archive given whole or unpacked is the
		 * same object, but not the same input. */
		uint8_t kind = xy_input_kind(t, t->inputs[i].file);
		put_str(c, t->inputs[i].as);
		put_id(c, t->inputs[i].file);
		EVP_DigestUpdate(c, &kind, 1);
	}
	n = t->n_outputs;
	EVP_DigestUpdate(c, &n, sizeof n);
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		put_str(c, t->outputs[i].as);
		put_str(c, t->outputs[i].file->path);
	}
	return digest_end(c, fp);
}

/* The digest of t's outputs' paths into place: 0, or -1 if t has no
 * output (nothing of it is ever rewritten) or no digest. */
static int place_of(struct xy_memo *memo, const struct xy_task *t,
		    uint8_t place[XY_ID_LEN])
{
	EVP_MD_CTX *c;
	if (!t->n_outputs || !(c = digest_begin(memo)))
		return -1;
	for (uint32_t i = 0; i < t->n_outputs; i++)
		put_str(c, t->outputs[i].file->path);
	return digest_end(c, place);
}

/* ---------------------------------------------------------- the records */

/* A DONE record: fingerprint, place (a flag, then the digest), the
 * outputs' sizes and times. A DONE_TEMPS record (a task with temps among
 * its outputs: no place) has, for each output, a flag (1: a temp) and
 * then either the size and time or the temp's object id, kind and size,
 * and at the end the name of the worker that held the temps. Returns the
 * record's type. */
static unsigned encode(const struct entry *e, struct xy_buf *b)
{
	xy_buf_put_raw(b, e->fp, XY_ID_LEN);
	xy_buf_put_u8(b, e->has_place);
	if (e->has_place)
		xy_buf_put_raw(b, e->place, XY_ID_LEN);
	xy_buf_put_u32(b, e->n_out);
	for (uint32_t k = 0; k < e->n_out; k++) {
		int temp = e->outs[k].mtime_ns == TEMP_MTIME;
		if (e->temps)
			xy_buf_put_u8(b, (uint8_t)temp);
		if (temp) {
			xy_buf_put_raw(b, e->temps[k].id, XY_ID_LEN);
			xy_buf_put_u8(b, e->temps[k].kind);
		}
		xy_buf_put_u64(b, e->outs[k].size);
		if (!temp)
			xy_buf_put_i64(b, e->outs[k].mtime_ns);
	}
	if (e->temps)
		xy_buf_put_str(b, e->worker ? e->worker : "");
	return e->temps ? REC_DONE_TEMPS : REC_DONE;
}

/* Takes the DONE record in (data, len) into the tables, in place of an
 * older one of the same fingerprint or the same place. */
static int replay_done(struct xy_memo *memo, unsigned type,
		       const void *data, size_t len, char *err, size_t errlen)
{
	struct xy_reader r;
	xy_reader_init(&r, data, len);
	struct entry *e = calloc(1, sizeof *e);
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	xy_get_raw(&r, e->fp, XY_ID_LEN);
	e->has_place = xy_get_u8(&r);
	if (e->has_place)
		xy_get_raw(&r, e->place, XY_ID_LEN);
	e->n_out = xy_get_count(&r, OUTPUTS_MAX);
	int temps = type == REC_DONE_TEMPS;
	if (!r.err && e->n_out &&
	    (!(e->outs = calloc(e->n_out, sizeof *e->outs)) ||
	     (temps && !(e->temps = calloc(e->n_out, sizeof *e->temps))))) {
		entry_free(e);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (uint32_t i = 0; !r.err && i < e->n_out; i++) {
		int temp = temps ? xy_get_u8(&r) : 0;
		if (temp > 1)
			r.err = 1; /* a flag: 0 or 1 */
		if (temp == 1) {
			xy_get_raw(&r, e->temps[i].id, XY_ID_LEN);
			e->temps[i].kind = xy_get_u8(&r);
		}
		e->outs[i].size = xy_get_u64(&r);
		e->outs[i].mtime_ns = temp ? TEMP_MTIME : xy_get_i64(&r);
	}
	if (temps && !r.err)
		e->worker = xy_get_str(&r, XY_MAX_NAME);
	if (r.err || r.left || e->has_place > 1 ||
	    (temps && (!e->temps || !e->worker || e->has_place))) {
		entry_free(e);
		snprintf(err, errlen, "a malformed DONE record");
		return -1;
	}
	struct entry *old = find(memo, e->fp);
	if (old)
		drop(memo, old);
	if (e->has_place && (old = find_place(memo, e->place)))
		drop(memo, old);
	e->bytes = (uint32_t)len;
	memo->table_bytes += len;
	memo->n_temps += e->temps != NULL;
	xy_htab_insert(&memo->table, e, fp_hash(e->fp));
	if (e->has_place)
		xy_htab_insert(&memo->places, e, fp_hash(e->place));
	struct run *run = find_run(memo, e->fp);
	if (run)
		drop_run(memo, run);
	return 0;
}

/* A RUN record (fingerprint, worker name) or an UNRUN (fingerprint). */
static int replay_run(struct xy_memo *memo, unsigned type, uint32_t epoch,
		      const void *data, size_t len, char *err, size_t errlen)
{
	struct xy_reader r;
	uint8_t fp[XY_ID_LEN];
	char *worker = NULL;
	xy_reader_init(&r, data, len);
	xy_get_raw(&r, fp, XY_ID_LEN);
	if (type == REC_RUN)
		worker = xy_get_str(&r, XY_MAX_NAME);
	if (r.err || r.left || (type == REC_RUN && !worker)) {
		free(worker);
		snprintf(err, errlen, "a malformed %s record",
			 type == REC_RUN ? "RUN" : "UNRUN");
		return -1;
	}
	int rc = 0;
	if (type == REC_RUN) {
		rc = set_run(memo, fp, worker, epoch);
	} else {
		struct run *old = find_run(memo, fp);
		if (old)
			drop_run(memo, old);
	}
	free(worker);
	if (rc < 0)
		snprintf(err, errlen, "out of memory");
	return rc;
}

/* A client's job answered: its task runs no more, whatever UNRUN a torn
 * tail cut. */
static void drop_key_run(struct xy_memo *memo, const uint8_t *key)
{
	struct run *r = find_run(memo, key);
	if (r)
		drop_run(memo, r);
}

static int replay_one(void *arg, unsigned type, uint32_t epoch, uint64_t seq,
		      const void *data, size_t len, char *err, size_t errlen)
{
	struct xy_memo *memo = arg;
	(void)seq;
	switch (type) {
	case REC_DONE:
	case REC_DONE_TEMPS:
		return replay_done(memo, type, data, len, err, errlen);
	case REC_RUN:
	case REC_UNRUN:
		return replay_run(memo, type, epoch, data, len, err, errlen);
	case XY_MEMO_REC_RESULT:
		return xy_memo_results_replay(memo->results, data, len, err,
					      errlen);
	case XY_MEMO_REC_CLIENT:
		return xy_memo_results_client_replay(memo->results, data, len,
						     err, errlen);
	case XY_MEMO_REC_CTEMP:
		memo->client_temps = 1;
		/* fall through */
	case XY_MEMO_REC_SUBMIT:
	case XY_MEMO_REC_ANSWER:
	case XY_MEMO_REC_SESSION:
		if (type == XY_MEMO_REC_ANSWER && len >= 2 * XY_ID_LEN)
			drop_key_run(memo, (const uint8_t *)data + XY_ID_LEN);
		return xy_clients_replay(memo->m ? memo->m->clients : NULL,
					 type, data, len, err, errlen);
	}
	snprintf(err, errlen, "unknown record type %u (a newer xylem's "
		 "journal?)", type);
	return -1;
}

static int known(void *arg, const uint8_t *fp)
{
	return find(arg, fp) != NULL;
}

struct xy_memo *xy_memo_open(struct xy_manager *m, const char *dir, int sync,
			     char *err, size_t errlen)
{
	struct xy_memo *memo = calloc(1, sizeof *memo);
	if (!memo || xy_htab_init(&memo->table, offsetof(struct entry, next),
				  entry_hash) < 0 ||
	    xy_htab_init(&memo->runs, offsetof(struct run, next),
			 run_hash) < 0 ||
	    xy_htab_init(&memo->before, offsetof(struct run, wnext),
			 before_hash) < 0 ||
	    xy_htab_init(&memo->places, offsetof(struct entry, pnext),
			 place_hash) < 0 ||
	    xy_htab_init(&memo->restored, offsetof(struct restored, next),
			 restored_hash) < 0 ||
	    xy_htab_init(&memo->back, offsetof(struct back_name, next),
			 back_hash) < 0) {
		if (memo) {
			xy_htab_free(&memo->restored);
			xy_htab_free(&memo->table);
			xy_htab_free(&memo->runs);
			xy_htab_free(&memo->before);
			xy_htab_free(&memo->places);
		}
		free(memo);
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	memo->m = m;
	memo->sync = sync;
	memo->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	memo->ctx = EVP_MD_CTX_new();
	if (!memo->sha256 || !memo->ctx) {
		xy_memo_destroy(memo);
		xy_fail(err, errlen, ENOMEM, "no SHA-256 from OpenSSL");
		return NULL;
	}
	if (!(memo->results = xy_memo_results_create(dir, sync))) {
		xy_memo_destroy(memo);
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	const char *min = getenv("XYLEM_JOURNAL_COMPACT_BYTES");
	memo->compact_min = min ? strtoull(min, NULL, 10) : COMPACT_MIN;
	memo->j = xy_journal_open(dir, sync ? XY_JOURNAL_SYNC
					    : XY_JOURNAL_PROCESS,
				  replay_one, memo, err, errlen);
	if (!memo->j) {
		int e = errno;
		xy_memo_destroy(memo);
		errno = e;
		return NULL;
	}
	memo->temps_wait = memo->n_temps > 0 || memo->client_temps;
	xy_memo_results_prune(memo->results, known, memo);
	xy_memo_results_sweep(memo->results);
	const struct xy_journal_info *in = xy_journal_info(memo->j);
	XY_LOGI(WHO, "%s: epoch %u, %llu records replayed in %.3f s; %zu "
		"finished tasks known, %zu were running", dir, in->epoch,
		(unsigned long long)in->records, in->replay_seconds,
		memo->table.count, memo->runs_before);
	return memo;
}

void xy_memo_destroy(struct xy_memo *memo)
{
	if (!memo)
		return;
	xy_journal_close(memo->j);
	EVP_MD_CTX_free(memo->ctx);
	EVP_MD_free(memo->sha256);
	xy_memo_results_destroy(memo->results);
	for (size_t i = 0; i < memo->table.n_slots; i++)
		for (struct entry *e = xy_htab_slot(&memo->table, i), *n; e;
		     e = n) {
			n = e->next;
			entry_free(e);
		}
	for (size_t i = 0; i < memo->runs.n_slots; i++)
		for (struct run *r = xy_htab_slot(&memo->runs, i), *n; r;
		     r = n) {
			n = r->next;
			free(r->worker);
			free(r);
		}
	for (size_t i = 0; i < memo->restored.n_slots; i++)
		for (struct restored *r = xy_htab_slot(&memo->restored, i), *n;
		     r; r = n) {
			n = r->next;
			free(r->worker);
			free(r);
		}
	xy_htab_free(&memo->restored);
	free_back(memo);
	xy_htab_free(&memo->table);
	xy_htab_free(&memo->places);
	xy_htab_free(&memo->runs);
	xy_htab_free(&memo->before);
	free(memo);
}

static int stat_ns(const char *path, uint64_t *size, int64_t *mtime_ns)
{
	struct stat st;
	if (!path || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return -1;
	*size = (uint64_t)st.st_size;
	*mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
		    st.st_mtim.tv_nsec;
	return 0;
}

static struct restored *find_restored(struct xy_memo *memo,
				      const uint8_t id[XY_ID_LEN])
{
	for (struct restored *r = xy_htab_first(&memo->restored, fp_hash(id));
	     r; r = xy_htab_next(&memo->restored, r))
		if (!memcmp(r->id, id, XY_ID_LEN))
			return r;
	return NULL;
}

/* The objects of t's temps as e recorded them (known already if a
 * worker that came back holds them), set on the temps; they are made
 * ready with t's finish. -1 on ENOMEM: t runs. */
static int restore_temps(struct xy_memo *memo, const struct entry *e,
			 struct xy_task *t)
{
	for (uint32_t i = 0; e->temps && i < t->n_outputs; i++) {
		struct xy_file *f = t->outputs[i].file;
		if (!f->temp)
			continue;
		struct xy_object *o = xy_catalog_object(
			memo->m->catalog, e->temps[i].id, e->temps[i].kind,
			e->outs[i].size);
		if (!o)
			return -1;
		xy_catalog_file_set_object(memo->m->catalog, f, o);
		/* Where a copy may come from, while the wait lasts. */
		struct restored *r;
		if (find_restored(memo, o->id))
			continue;
		if (!(r = calloc(1, sizeof *r)) ||
		    !(r->worker = strdup(e->worker))) {
			free(r);
			continue; /* no wait for it: made again if need be */
		}
		memcpy(r->id, o->id, XY_ID_LEN);
		xy_htab_insert(&memo->restored, r, fp_hash(r->id));
	}
	return 0;
}

int xy_memo_restore_temp(struct xy_memo *memo, const uint8_t *id,
			 const char *worker)
{
	struct restored *r;
	if (!memo || find_restored(memo, id))
		return 0;
	if (!(r = calloc(1, sizeof *r)) ||
	    !(r->worker = strdup(worker ? worker : ""))) {
		free(r);
		return -1;
	}
	memcpy(r->id, id, XY_ID_LEN);
	xy_htab_insert(&memo->restored, r, fp_hash(r->id));
	return 0;
}

int xy_memo_temp_restored(struct xy_memo *memo, const struct xy_file *f)
{
	return memo && f->temp && f->obj && find_restored(memo, f->obj->id);
}

int xy_memo_temp_awaited(struct xy_memo *memo, const struct xy_file *f)
{
	const struct restored *r;
	if (!memo || !memo->temps_wait || !f->temp || !f->obj ||
	    !(r = find_restored(memo, f->obj->id)) || !*r->worker)
		return 0;
	/* Back: its inventory said what it holds. */
	return !find_back(memo, r->worker);
}

void xy_memo_worker_back(struct xy_memo *memo, const char *name)
{
	if (!memo || !memo->temps_wait || !name || find_back(memo, name))
		return;
	size_t n = strlen(name) + 1;
	struct back_name *b = malloc(sizeof *b + n);
	if (!b)
		return; /* its temps are waited for until the wait ends */
	memcpy(b->name, name, n);
	xy_htab_insert(&memo->back, b, xy_str_hash(name));
}

int xy_memo_temps_wait(const struct xy_memo *memo)
{
	return memo && memo->temps_wait;
}

void xy_memo_temps_wait_over(struct xy_memo *memo)
{
	if (!memo)
		return;
	memo->temps_wait = 0;
	free_back(memo);
	xy_htab_init(&memo->back, offsetof(struct back_name, next),
		     back_hash); /* empty; on failure, n_slots 0: unused */
}

int xy_memo_try(struct xy_memo *memo, struct xy_task *t)
{
	if (!memo || t->internal)
		return 0;
	if (!t->key && !(t->key = malloc(XY_ID_LEN)))
		return 0;
	if (fingerprint(memo, t, t->key) < 0) {
		free(t->key);
		t->key = NULL;
		return 0;
	}
	struct entry *e = find(memo, t->key);
	if (!e || e->n_out != t->n_outputs)
		return 0;
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		uint64_t size;
		int64_t mtime;
		struct xy_file *f = t->outputs[i].file;
		if (f->producer != t ||
		    f->temp != (e->outs[i].mtime_ns == TEMP_MTIME))
			return 0;
		if (f->temp)
			continue; /* its copies are the workers' to say */
		if (stat_ns(f->path, &size, &mtime) < 0 ||
		    size != e->outs[i].size || mtime != e->outs[i].mtime_ns)
			return 0; /* gone or changed: it runs again */
	}
	if (restore_temps(memo, e, t) < 0 ||
	    xy_memo_results_restore(memo->results, t->key, t) < 0)
		return 0;
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		struct xy_file *f = t->outputs[i].file;
		if (f->temp)
			xy_catalog_file_ready(memo->m->catalog, f, f->obj);
		else
			xy_catalog_file_rehash(memo->m->catalog, f);
	}
	memo->skipped++;
	xy_manager_task_skip(memo->m, t, "finished before (the journal)");
	return 1;
}

void xy_memo_finished(struct xy_memo *memo, struct xy_task *t)
{
	struct entry e = {.n_out = t->n_outputs};
	/* A client's task (internal, keyed) ends with its ANSWER record. */
	if (!memo || memo->broken || !t->key || t->internal ||
	    t->result != XY_RESULT_SUCCESS)
		return;
	memcpy(e.fp, t->key, XY_ID_LEN);
	int recorded = 0, temps = 0;
	for (uint32_t i = 0; i < t->n_outputs; i++)
		temps |= t->outputs[i].file->temp;
	/* Temps have no path: a task with one has no place. */
	e.has_place = !temps && place_of(memo, t, e.place) == 0;
	struct out_stat outs[16];
	e.outs = t->n_outputs <= 16 ? outs
				    : calloc(t->n_outputs, sizeof *e.outs);
	if (temps)
		e.temps = calloc(t->n_outputs, sizeof *e.temps);
	struct xy_buf b;
	xy_buf_init(&b);
	if (!e.outs || (temps && !e.temps))
		goto oom;
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		struct xy_file *f = t->outputs[i].file;
		if (f->temp && f->producer == t && f->obj &&
		    f->state == FILE_READY) {
			memcpy(e.temps[i].id, f->obj->id, XY_ID_LEN);
			e.temps[i].kind = f->obj->kind;
			e.outs[i].size = f->obj->size;
			e.outs[i].mtime_ns = TEMP_MTIME;
			struct xy_worker *w = xy_catalog_holder(f->obj);
			if (w && w->name && !e.worker)
				e.worker = w->name;
		} else if (f->temp || stat_ns(f->path, &e.outs[i].size,
					      &e.outs[i].mtime_ns) < 0) {
			goto done; /* nothing there to find again */
		}
	}
	unsigned type = encode(&e, &b);
	char err[256];
	if (b.oom ||
	    xy_memo_results_record(memo->results, memo->j, e.fp, t) < 0 ||
	    !xy_journal_append(memo->j, type, b.data, b.len) ||
	    replay_one(memo, type, 0, 0, b.data, b.len, err,
		       sizeof err) < 0)
		goto oom;
	recorded = 1;
	goto done;
oom:
	XY_LOGW(WHO, "task %llu: not recorded: %s", (unsigned long long)t->id,
		b.oom || !e.outs ? "out of memory" : strerror(errno));
done:
	/* Not recorded (an output gone, a temp not ready, out of memory or
	 * the journal failed): not running either. */
	if (!recorded)
		xy_memo_stopped(memo, t);
	if (e.outs != outs)
		free(e.outs);
	free(e.temps);
	xy_buf_free(&b);
}

/* ------------------------------------------------- running tasks */

static int append_run(struct xy_journal *j, unsigned type,
		      const uint8_t fp[XY_ID_LEN], const char *worker)
{
	struct xy_buf b;
	xy_buf_init(&b);
	xy_buf_put_raw(&b, fp, XY_ID_LEN);
	if (type == REC_RUN)
		xy_buf_put_str(&b, worker);
	int ok = !b.oom && xy_journal_append(j, type, b.data, b.len);
	xy_buf_free(&b);
	return ok ? 0 : -1;
}

int xy_memo_dispatched(struct xy_memo *memo, struct xy_task *t,
		       const char *worker)
{
	if (!memo || memo->broken || !t->key)
		return -1;
	if (append_run(memo->j, REC_RUN, t->key, worker) < 0 ||
	    set_run(memo, t->key, worker, current_epoch(memo)) < 0) {
		XY_LOGW(WHO, "task %llu: its dispatch not recorded: %s",
			(unsigned long long)t->id, strerror(errno));
		return -1;
	}
	return 0;
}

void xy_memo_write(struct xy_memo *memo)
{
	if (memo && !memo->broken && xy_journal_write(memo->j) < 0)
		memo->broken = 1; /* journal.c said why */
}

void xy_memo_stopped(struct xy_memo *memo, struct xy_task *t)
{
	struct run *r;
	if (!memo || memo->broken || !t->key || t->internal ||
	    !(r = find_run(memo, t->key)))
		return;
	if (append_run(memo->j, REC_UNRUN, t->key, NULL) < 0)
		XY_LOGW(WHO, "task %llu: its end not recorded: %s",
			(unsigned long long)t->id, strerror(errno));
	drop_run(memo, r);
}

const char *xy_memo_ran_before(struct xy_memo *memo,
			       const uint8_t key[XY_ID_LEN])
{
	struct run *r;
	if (!memo || !memo->runs_before || !(r = find_run(memo, key)) ||
	    r->epoch >= current_epoch(memo))
		return NULL;
	return r->worker;
}

size_t xy_memo_forget(struct xy_memo *memo,
		      int (*kept)(void *, const uint8_t *, const char *),
		      void *arg)
{
	size_t n = 0;
	if (!memo)
		return 0;
	uint32_t now = current_epoch(memo);
	for (size_t i = 0; memo->runs_before && i < memo->runs.n_slots; i++)
		for (struct run *r = xy_htab_slot(&memo->runs, i), *next; r;
		     r = next) {
			next = r->next;
			if (r->epoch >= now || kept(arg, r->fp, r->worker))
				continue;
			if (!memo->broken)
				append_run(memo->j, REC_UNRUN, r->fp, NULL);
			drop_run(memo, r);
			n++;
		}
	return n;
}

int64_t xy_memo_keys_before(struct xy_memo *memo, const char *worker,
			    uint8_t **keys)
{
	size_t n = 0, cap = 0;
	*keys = NULL;
	if (!memo || !memo->runs_before)
		return 0;
	for (struct run *r = xy_htab_first(&memo->before, xy_str_hash(worker));
	     r; r = xy_htab_next(&memo->before, r)) {
		if (strcmp(r->worker, worker))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			uint8_t *k = realloc(*keys, cap * XY_ID_LEN);
			if (!k) {
				free(*keys);
				*keys = NULL;
				return -1;
			}
			*keys = k;
		}
		memcpy(*keys + n++ * XY_ID_LEN, r->fp, XY_ID_LEN);
	}
	return (int64_t)n;
}

void xy_memo_forget_key(struct xy_memo *memo, const uint8_t key[XY_ID_LEN])
{
	struct run *r;
	if (!memo || !(r = find_run(memo, key)) ||
	    r->epoch >= current_epoch(memo))
		return;
	if (!memo->broken)
		append_run(memo->j, REC_UNRUN, r->fp, NULL);
	drop_run(memo, r);
}

size_t xy_memo_running_before(const struct xy_memo *memo)
{
	return memo ? memo->runs_before : 0;
}

/* The table as records, for a snapshot: results first, as in the log. */
static int dump(void *arg, struct xy_journal *snap)
{
	struct xy_memo *memo = arg;
	if (xy_memo_results_dump(memo->results, snap, known, memo) < 0 ||
	    (memo->m && xy_clients_dump(memo->m->clients, snap) < 0))
		return -1;
	for (size_t i = 0; i < memo->runs.n_slots; i++)
		for (struct run *r = xy_htab_slot(&memo->runs, i); r;
		     r = r->next)
			if (append_run(snap, REC_RUN, r->fp, r->worker) < 0) {
				errno = ENOMEM;
				return -1;
			}
	struct xy_buf b;
	xy_buf_init(&b);
	for (size_t i = 0; i < memo->table.n_slots; i++)
		for (struct entry *e = xy_htab_slot(&memo->table, i); e;
		     e = e->next) {
			xy_buf_reset(&b);
			unsigned type = encode(e, &b);
			if (b.oom || !xy_journal_append(snap, type, b.data,
							b.len)) {
				xy_buf_free(&b);
				errno = ENOMEM;
				return -1;
			}
		}
	xy_buf_free(&b);
	return 0;
}

void xy_memo_flush(struct xy_memo *memo)
{
	if (!memo || memo->broken || !xy_journal_pending(memo->j))
		return;
	if (xy_journal_flush(memo->j) < 0) {
		memo->broken = 1; /* journal.c said why */
		return;
	}
	/* Records of tasks recorded again (their outputs rewritten) pile
	 * up: a snapshot of the table replaces them. A failed compaction
	 * leaves the journal as it was. */
	uint64_t log = xy_journal_info(memo->j)->log_bytes;
	uint64_t snap = memo->table_bytes + 28 * memo->table.count +
			xy_memo_results_bytes(memo->results) +
			28 * xy_memo_results_count(memo->results);
	if (log <= memo->compact_min || log <= 2 * snap)
		return;
	char err[512];
	double t0 = xy_mono();
	if (xy_journal_compact(memo->j, dump, memo, err, sizeof err) < 0) {
		XY_LOGW(WHO, "compaction failed: %s", err);
		memo->compact_min = log * 2; /* not again at once */
		return;
	}
	memo->compactions++;
	xy_memo_results_sweep(memo->results);
	XY_LOGI(WHO, "compacted: %llu bytes of log into a snapshot of %zu "
		"tasks in %.3f s", (unsigned long long)log, memo->table.count,
		xy_mono() - t0);
}

int64_t xy_memo_skipped(const struct xy_memo *memo)
{
	return memo ? memo->skipped : 0;
}

int64_t xy_memo_known(const struct xy_memo *memo)
{
	return memo ? (int64_t)memo->table.count : 0;
}

uint32_t xy_memo_epoch(const struct xy_memo *memo)
{
	return memo ? xy_journal_info(memo->j)->epoch : 0;
}

/* ------------------------------------------------------------ clients */

const void *xy_memo_client_find(struct xy_memo *memo, const uint8_t *key,
				size_t *len)
{
	return memo ? xy_memo_results_client_find(memo->results, key, len)
		    : NULL;
}

int xy_memo_client_record(struct xy_memo *memo, const uint8_t *key,
			  const void *data, size_t len)
{
	if (!memo || memo->broken) {
		errno = EIO;
		return -1;
	}
	if (xy_memo_results_client_record(memo->results, memo->j, key, data,
					  len) < 0)
		return -1;
	xy_memo_flush(memo);
	if (memo->broken) {
		errno = EIO;
		return -1;
	}
	return 0;
}

int xy_memo_sync_mode(const struct xy_memo *memo)
{
	return memo && memo->sync;
}

int xy_memo_client_put(struct xy_memo *memo, unsigned type, const void *data,
		       size_t len, const uint8_t *unrun)
{
	struct run *r;
	if (!memo || memo->broken) {
		errno = EIO;
		return -1;
	}
	if (!xy_journal_append(memo->j, type, data, len))
		return -1;
	if (unrun && (r = find_run(memo, unrun))) {
		append_run(memo->j, REC_UNRUN, unrun, NULL);
		drop_run(memo, r);
	}
	xy_memo_flush(memo);
	if (memo->broken) {
		errno = EIO;
		return -1;
	}
	return 0;
}

const char *xy_memo_dir(const struct xy_memo *memo)
{
	return memo ? xy_memo_results_base(memo->results) : NULL;
}

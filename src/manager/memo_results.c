/*
 * memo_results.c: the results of finished tasks a journal remembers
 * (memo_results.h), for memo.c.
 *
 * A RESULT record is a task's fingerprint, where its output is (none:
 * forget an older one; in the record; in a file), its exit code, and
 * then either the output's bytes or the file's size and SHA-256. It goes
 * to the journal just before the task's DONE record, in the same flush.
 * A file, dir/results/<fingerprint in hex>, is written (and synced in
 * sync mode) and renamed into place before its record is appended, so a
 * record never names a file that is not whole; a file whose record was
 * lost, or whose result was forgotten, is removed by the next sweep (at
 * open and after each compaction). A file rewritten by a later run of
 * the same fingerprint is told from the one an older record names by its
 * digest: a result that does not match runs its task again.
 *
 * What bounds them: one result per fingerprint the memo's table holds
 * (a snapshot drops the others, and a sweep their files), so results
 * grow as the table does.
 */
#include "memo_results.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "htab.h"
#include "internal.h"
#include "journal.h"
#include "log.h"
#include "util.h"

#define WHO "journal"
/* Outputs up to this size stay in the record (and in memory); larger
 * ones go to a file. */
#define INLINE_MAX 4096
/* The largest output a file may hold back. */
#define FILE_MAX (1u << 30)

enum { WHERE_NONE = 0, WHERE_INLINE = 1, WHERE_FILE = 2 };

struct result {
	uint8_t fp[XY_ID_LEN];
	uint8_t where;
	int32_t exit_code;
	uint64_t size;		    /* the output's bytes */
	uint8_t digest[XY_ID_LEN];  /* a file's SHA-256 */
	char *data;		    /* an inline output */
	uint32_t bytes;		    /* its record's payload */
	struct result *next;
};

/* A client's finished task: its key and client.c's bytes. */
struct client_rec {
	uint8_t key[XY_ID_LEN];
	void *data;
	uint32_t len;
	struct client_rec *next;
};

struct xy_memo_results {
	char *base; /* the journal's directory */
	char *dir;  /* base/results */
	int sync;
	struct xy_htab table;
	uint64_t bytes;
	struct xy_htab clients; /* client_rec by key */
	uint64_t client_bytes;
};

static uint32_t fp_hash(const uint8_t *fp)
{
	uint32_t h;
	memcpy(&h, fp, sizeof h);
	return h;
}

static uint32_t result_hash(const void *node)
{
	return fp_hash(((const struct result *)node)->fp);
}

static uint32_t client_hash(const void *node)
{
	return fp_hash(((const struct client_rec *)node)->key);
}

static struct result *find(struct xy_memo_results *r, const uint8_t *fp)
{
	for (struct result *e = xy_htab_first(&r->table, fp_hash(fp)); e;
	     e = xy_htab_next(&r->table, e))
		if (!memcmp(e->fp, fp, XY_ID_LEN))
			return e;
	return NULL;
}

static void forget(struct xy_memo_results *r, struct result *e)
{
	r->bytes -= e->bytes;
	xy_htab_remove(&r->table, e, fp_hash(e->fp));
	free(e->data);
	free(e);
}

struct xy_memo_results *xy_memo_results_create(const char *dir, int sync)
{
	struct xy_memo_results *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->sync = sync;
	size_t n = strlen(dir) + sizeof "/results";
	if (!(r->base = strdup(dir)) || !(r->dir = malloc(n)) ||
	    xy_htab_init(&r->clients, offsetof(struct client_rec, next),
			 client_hash) < 0) {
		free(r->base);
		free(r->dir);
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	if (xy_htab_init(&r->table, offsetof(struct result, next),
			 result_hash) < 0) {
		xy_htab_free(&r->clients);
		free(r->base);
		free(r->dir);
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	snprintf(r->dir, n, "%s/results", dir);
	return r;
}

void xy_memo_results_destroy(struct xy_memo_results *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->table.n_slots; i++)
		for (struct result *e = xy_htab_slot(&r->table, i), *n; e;
		     e = n) {
			n = e->next;
			free(e->data);
			free(e);
		}
	xy_htab_free(&r->table);
	for (size_t i = 0; i < r->clients.n_slots; i++)
		for (struct client_rec *c = xy_htab_slot(&r->clients, i), *n;
		     c; c = n) {
			n = c->next;
			free(c->data);
			free(c);
		}
	xy_htab_free(&r->clients);
	free(r->base);
	free(r->dir);
	free(r);
}

/* ------------------------------------------------------------ records */

static void encode(const struct result *e, struct xy_buf *b)
{
	xy_buf_put_raw(b, e->fp, XY_ID_LEN);
	xy_buf_put_u8(b, e->where);
	xy_buf_put_u32(b, (uint32_t)e->exit_code);
	if (e->where == WHERE_INLINE) {
		xy_buf_put_bytes(b, e->data, e->size);
	} else if (e->where == WHERE_FILE) {
		xy_buf_put_u64(b, e->size);
		xy_buf_put_raw(b, e->digest, XY_ID_LEN);
	}
}

int xy_memo_results_replay(struct xy_memo_results *r, const void *data,
			   size_t len, char *err, size_t errlen)
{
	struct xy_reader rd;
	xy_reader_init(&rd, data, len);
	struct result *e = calloc(1, sizeof *e);
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	xy_get_raw(&rd, e->fp, XY_ID_LEN);
	e->where = xy_get_u8(&rd);
	e->exit_code = (int32_t)xy_get_u32(&rd);
	if (e->where == WHERE_INLINE) {
		size_t n = 0;
		e->data = xy_get_bytes(&rd, INLINE_MAX, &n);
		e->size = n;
	} else if (e->where == WHERE_FILE) {
		e->size = xy_get_u64(&rd);
		xy_get_raw(&rd, e->digest, XY_ID_LEN);
	}
	if (rd.err || rd.left || e->where > WHERE_FILE ||
	    e->size > FILE_MAX) {
		free(e->data);
		free(e);
		snprintf(err, errlen, "a malformed RESULT record");
		return -1;
	}
	struct result *old = find(r, e->fp);
	if (old)
		forget(r, old);
	if (e->where == WHERE_NONE) {
		free(e);
		return 0;
	}
	e->bytes = (uint32_t)len;
	r->bytes += len;
	xy_htab_insert(&r->table, e, fp_hash(e->fp));
	return 0;
}

static void file_path(const struct xy_memo_results *r, const uint8_t *fp,
		      const char *suffix, char *out, size_t outlen)
{
	char hex[2 * XY_ID_LEN + 1];
	xy_hex(fp, XY_ID_LEN, hex);
	snprintf(out, outlen, "%s/%s%s", r->dir, hex, suffix);
}

/* Writes the output to its file: to a temporary name, synced in sync
 * mode, renamed into place (and the directory synced). 0 or -1. */
static int write_file(struct xy_memo_results *r, const uint8_t *fp,
		      const void *data, size_t len)
{
	char tmp[4096], path[4096];
	file_path(r, fp, ".tmp", tmp, sizeof tmp);
	file_path(r, fp, "", path, sizeof path);
	if (xy_mkdir_p(r->dir) < 0)
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (xy_write_all(fd, data, len) < 0 ||
	    (r->sync && fdatasync(fd) < 0)) {
		int e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (r->sync) {
		int dfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int bad = dfd < 0 || fsync(dfd) < 0;
		if (dfd >= 0)
			close(dfd);
		if (bad)
			return -1;
	}
	return 0;
}

static int sha256(const void *data, size_t len, uint8_t out[XY_ID_LEN])
{
	unsigned n = 0;
	return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 &&
			       n == XY_ID_LEN
		       ? 0
		       : -1;
}

int xy_memo_results_record(struct xy_memo_results *r, struct xy_journal *j,
			   const uint8_t *fp, const struct xy_task *t)
{
	size_t len = t->output ? t->output_len : 0;
	struct result e = {.exit_code = t->exit_code, .size = len};
	memcpy(e.fp, fp, XY_ID_LEN);
	if (!len && t->exit_code == 0 && !find(r, fp))
		return 0; /* nothing to remember, nothing to forget */
	if (len > FILE_MAX) {
		errno = EFBIG;
		return -1;
	}
	if (len > INLINE_MAX) {
		e.where = WHERE_FILE;
		if (sha256(t->output, len, e.digest) < 0 ||
		    write_file(r, fp, t->output, len) < 0)
			return -1;
	} else {
		e.where = len || t->exit_code ? WHERE_INLINE : WHERE_NONE;
		e.data = t->output;
	}
	struct xy_buf b;
	xy_buf_init(&b);
	encode(&e, &b);
	char err[128];
	int ok = 0;
	if (b.oom)
		errno = ENOMEM;
	else if (xy_journal_append(j, XY_MEMO_REC_RESULT, b.data, b.len))
		ok = xy_memo_results_replay(r, b.data, b.len, err,
					    sizeof err) == 0;
	if (!ok && b.oom == 0 && errno == 0)
		errno = ENOMEM;
	xy_buf_free(&b);
	return ok ? 0 : -1;
}

int xy_memo_results_restore(struct xy_memo_results *r, const uint8_t *fp,
			    struct xy_task *t)
{
	struct result *e = find(r, fp);
	char *out = NULL;
	size_t len = 0;
	if (e && e->where == WHERE_INLINE && e->size) {
		if (!(out = malloc(e->size)))
			return -1;
		memcpy(out, e->data, e->size);
		len = e->size;
	} else if (e && e->where == WHERE_FILE) {
		char path[4096];
		uint8_t d[XY_ID_LEN];
		file_path(r, fp, "", path, sizeof path);
		out = xy_read_file(path, e->size, &len);
		if (!out || len != e->size || sha256(out, len, d) < 0 ||
		    memcmp(d, e->digest, XY_ID_LEN)) {
			XY_LOGI(WHO, "task %llu: its recorded result %s is "
				"gone or changed: it runs again",
				(unsigned long long)t->id, path);
			free(out);
			return -1;
		}
	}
	free(t->output);
	t->output = out;
	t->output_len = len;
	t->exit_code = e ? e->exit_code : 0;
	return 0;
}

void xy_memo_results_prune(struct xy_memo_results *r, xy_memo_known_fn known,
			   void *arg)
{
	for (size_t i = 0; i < r->table.n_slots; i++)
		for (struct result *e = xy_htab_slot(&r->table, i), *n; e;
		     e = n) {
			n = e->next;
			if (!known(arg, e->fp))
				forget(r, e);
		}
}

int xy_memo_results_dump(struct xy_memo_results *r, struct xy_journal *snap,
			 xy_memo_known_fn known, void *arg)
{
	struct xy_buf b;
	xy_buf_init(&b);
	xy_memo_results_prune(r, known, arg);
	for (size_t i = 0; i < r->table.n_slots; i++)
		for (struct result *e = xy_htab_slot(&r->table, i); e;
		     e = e->next) {
			xy_buf_reset(&b);
			encode(e, &b);
			if (b.oom || !xy_journal_append(snap, XY_MEMO_REC_RESULT,
							b.data, b.len)) {
				xy_buf_free(&b);
				errno = ENOMEM;
				return -1;
			}
		}
	for (size_t i = 0; i < r->clients.n_slots; i++)
		for (struct client_rec *c = xy_htab_slot(&r->clients, i); c;
		     c = c->next) {
			xy_buf_reset(&b);
			xy_buf_put_raw(&b, c->key, XY_ID_LEN);
			xy_buf_put_raw(&b, c->data, c->len);
			if (b.oom || !xy_journal_append(snap, XY_MEMO_REC_CLIENT,
							b.data, b.len)) {
				xy_buf_free(&b);
				errno = ENOMEM;
				return -1;
			}
		}
	xy_buf_free(&b);
	return 0;
}

/* ------------------------------------------------------------ clients */

static struct client_rec *client_find(struct xy_memo_results *r,
				      const uint8_t *key)
{
	for (struct client_rec *c = xy_htab_first(&r->clients, fp_hash(key));
	     c; c = xy_htab_next(&r->clients, c))
		if (!memcmp(c->key, key, XY_ID_LEN))
			return c;
	return NULL;
}

int xy_memo_results_client_replay(struct xy_memo_results *r,
				  const void *data, size_t len, char *err,
				  size_t errlen)
{
	if (len < XY_ID_LEN) {
		snprintf(err, errlen, "a malformed CLIENT record");
		return -1;
	}
	struct client_rec *c = calloc(1, sizeof *c);
	if (!c || !(c->data = malloc(len - XY_ID_LEN + 1))) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(c->key, data, XY_ID_LEN);
	c->len = (uint32_t)(len - XY_ID_LEN);
	memcpy(c->data, (const uint8_t *)data + XY_ID_LEN, c->len);
	struct client_rec *old = client_find(r, c->key);
	if (old) {
		r->client_bytes -= old->len + XY_ID_LEN;
		xy_htab_remove(&r->clients, old, fp_hash(old->key));
		free(old->data);
		free(old);
	}
	r->client_bytes += len;
	xy_htab_insert(&r->clients, c, fp_hash(c->key));
	return 0;
}

const void *xy_memo_results_client_find(struct xy_memo_results *r,
					const uint8_t *key, size_t *len)
{
	struct client_rec *c = client_find(r, key);
	if (!c)
		return NULL;
	*len = c->len;
	return c->data;
}

int xy_memo_results_client_record(struct xy_memo_results *r,
				  struct xy_journal *j, const uint8_t *key,
				  const void *data, size_t len)
{
	struct xy_buf b;
	char err[64];
	xy_buf_init(&b);
	xy_buf_put_raw(&b, key, XY_ID_LEN);
	xy_buf_put_raw(&b, data, len);
	int ok = !b.oom &&
		 xy_journal_append(j, XY_MEMO_REC_CLIENT, b.data, b.len) &&
		 xy_memo_results_client_replay(r, b.data, b.len, err,
					       sizeof err) == 0;
	if (!ok && b.oom)
		errno = ENOMEM;
	xy_buf_free(&b);
	return ok ? 0 : -1;
}

const char *xy_memo_results_base(const struct xy_memo_results *r)
{
	return r->base;
}

void xy_memo_results_sweep(struct xy_memo_results *r)
{
	DIR *d = opendir(r->dir);
	if (!d)
		return;
	struct dirent *de;
	uint64_t removed = 0;
	while ((de = readdir(d))) {
		uint8_t fp[XY_ID_LEN];
		if (de->d_name[0] == '.')
			continue;
		struct result *e = NULL;
		if (strlen(de->d_name) == 2 * XY_ID_LEN &&
		    xy_unhex(de->d_name, fp, XY_ID_LEN) == 0)
			e = find(r, fp);
		if (e && e->where == WHERE_FILE)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (removed)
		XY_LOGI(WHO, "%llu result files no record names removed from %s",
			(unsigned long long)removed, r->dir);
}

uint64_t xy_memo_results_bytes(const struct xy_memo_results *r)
{
	return r ? r->bytes + r->client_bytes : 0;
}

size_t xy_memo_results_count(const struct xy_memo_results *r)
{
	return r ? r->table.count + r->clients.count : 0;
}

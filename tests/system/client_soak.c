/*
 * client_soak: a client of a standing manager for the durability tests
 * (tests/system/test_client_sessions.py). It submits N tasks, a few at a
 * time, under one session and a key per task, and waits for their
 * RESULTs; whenever the connection is lost (the manager killed) it
 * connects again, ATTACHes with the last RESULT seq it saw, and submits
 * again every task it has no RESULT for. Task i appends "start i" to
 * MARKS and prints "value i". It prints one line per task answered,
 * "result ID SEQ RESULT", "dup ID" for a RESULT of a task already
 * answered, and at the end "done N reconnects R dups D"; exit 0 once
 * every task succeeded, 1 otherwise.
 *
 *   client_soak HOST PORT SECRET_FILE N MARKS [SECONDS]
 *
 * TLS as the CLI: XYLEM_TLS_CA names the CA, XYLEM_NO_TLS=1 turns it off.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "client.h"
#include "tls.h"
#include "util.h"

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: client_soak HOST PORT SECRET_FILE N "
			"MARKS [SECONDS]\n");
		return 2;
	}
	const char *host = argv[1], *marks = argv[5];
	int port = atoi(argv[2]), n = atoi(argv[4]);
	double limit = argc > 6 ? atof(argv[6]) : 300;
	size_t slen = 0;
	char err[1024];
	char *secret = xy_read_secret(argv[3], &slen, err, sizeof err);
	const char *ca = getenv("XYLEM_TLS_CA"), *off = getenv("XYLEM_NO_TLS");
	SSL_CTX *tls = NULL;
	uint8_t session[XY_ID_LEN];
	char *answered = calloc((size_t)n + 1, 1);
	char **cmds = calloc((size_t)n + 1, sizeof *cmds);
	static const char *const outs[] = {"out"};

	signal(SIGPIPE, SIG_IGN); /* a manager killed mid-write */
	if (!secret || !answered || !cmds || n <= 0 ||
	    RAND_bytes(session, sizeof session) != 1)
		return 2;
	if (!(off && !strcmp(off, "1")) && ca && *ca &&
	    !(tls = xy_tls_client_ctx(ca, err, sizeof err))) {
		fprintf(stderr, "client_soak: %s\n", err);
		return 2;
	}
	for (int i = 1; i <= n; i++)
		if (asprintf(&cmds[i], "echo start %d >> '%s'; sleep 0.%d; "
			     "echo value %d > out; echo value %d", i, marks,
			     i % 5 + 1, i, i) < 0)
			return 2;
	uint64_t last_seq = 0;
	int submitted = 0, done = 0, failed = 0, dups = 0, reconnects = -1;
	double deadline = xy_mono() + limit;
	while (done < n && xy_mono() < deadline) {
		struct xy_client *c = xy_client_connect(
			host, port, secret, slen, tls, 10, err, sizeof err);
		if (!c) {
			usleep(100000);
			continue;
		}
		reconnects++;
		int lost = xy_client_attach(c, session, last_seq, err,
					    sizeof err) < 0;
		for (int i = 1; !lost && i <= submitted; i++) {
			uint8_t key[XY_ID_LEN] = {0};
			struct xy_client_task t = {.command = cmds[i],
						   .outputs = outs,
						   .n_outputs = 1};
			memcpy(key, &i, sizeof i);
			if (!answered[i] &&
			    !xy_client_submit_keyed(c, &t, (uint64_t)i, key, err,
						    sizeof err))
				lost = 1;
		}
		while (!lost && done < n && xy_mono() < deadline) {
			struct xy_msg_result r;
			if (submitted < n) {
				int i = ++submitted;
				uint8_t key[XY_ID_LEN] = {0};
				struct xy_client_task t = {.command = cmds[i],
							   .outputs = outs,
							   .n_outputs = 1};
				memcpy(key, &i, sizeof i);
				if (!xy_client_submit_keyed(c, &t, (uint64_t)i,
							    key, err, sizeof err))
					break;
			}
			if (xy_client_wait(c, submitted < n ? 0.01 : 1, &r, err,
					   sizeof err) < 0) {
				if (errno == ETIMEDOUT)
					continue;
				break; /* lost: connect again */
			}
			uint64_t id = r.id;
			if (r.seq > last_seq)
				last_seq = r.seq;
			if (id == 0 || id > (uint64_t)n) {
				printf("bad id %llu\n", (unsigned long long)id);
				failed++;
			} else if (answered[id]) {
				printf("dup %llu\n", (unsigned long long)id);
				dups++;
			} else {
				char want[64];
				int len = snprintf(want, sizeof want,
						   "value %llu\n",
						   (unsigned long long)id);
				answered[id] = 1;
				done++;
				if (r.result != 0 || r.output_len != (size_t)len ||
				    memcmp(r.output, want, (size_t)len) ||
				    r.n_outputs != 1)
					failed++;
				printf("result %llu %llu %u\n",
				       (unsigned long long)id,
				       (unsigned long long)r.seq, r.result);
			}
			fflush(stdout);
			xy_client_result_free(&r);
		}
		xy_client_close(c);
	}
	printf("done %d reconnects %d dups %d failed %d\n", done, reconnects,
	       dups, failed);
	for (int i = 1; i <= n; i++)
		free(cmds[i]);
	free(cmds);
	free(answered);
	free(secret);
	SSL_CTX_free(tls);
	return done == n && !failed ? 0 : 1;
}

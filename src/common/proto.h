/*
 * proto.h: Xylem's wire protocol. Every message is a frame:
 *
 *     u32 payload length | u16 type | u16 flags (0) | payload
 *
 * integers little-endian, strings as u32 length + bytes. The payload of each
 * type is a fixed sequence of fields (docs/protocol.md), decoded here into a
 * struct with every size and count checked against the limits below. The
 * manager and the worker dispatch decoded messages from tables indexed by
 * type. Pairs with buf.h (encoding primitives) and conn.h (framing on
 * libuv streams).
 */
#ifndef XY_PROTO_H
#define XY_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define XY_PROTO_MAGIC 0x4d4c5958u /* "XYLM" */
#define XY_PROTO_VERSION 16
#define XY_FRAME_HEADER 8

/* Hard limits. A frame or field past one is a protocol error. */
#define XY_MAX_FRAME (16u << 20)      /* payload bytes */
#define XY_MAX_NAME 4096              /* sandbox names, env names, hosts */
#define XY_MAX_STR 65536              /* other strings */
#define XY_MAX_COMMAND (1u << 20)     /* a task's command line */
#define XY_MAX_OUTPUT (1u << 20)      /* captured output per task */
#define XY_MAX_PAYLOAD (8u << 20)     /* a call's payload, or its reply */
#define XY_MAX_ENV 4096               /* environment variables per task */
#define XY_MAX_FILES 65536            /* inputs or outputs per task */
#define XY_MAX_INVENTORY 1000000      /* cached objects in a hello */
#define XY_MAX_HELD 1000000           /* held tasks in a hello */
#define XY_MAX_STATUS (8u << 20)      /* status JSON */
#define XY_MAX_CHUNKS 4096            /* chunks in an object's chunk list */
#define XY_MAX_SOURCES 4              /* sources in a FETCH */
#define XY_MAX_URL 8192               /* a URL in FETCH_URL */
#define XY_URL_FETCHES 2              /* FETCH_URLs a worker runs at once */
#define XY_CHUNK_MIN (1u << 18)       /* the smallest standard chunk */
#define XY_MAX_TIME_LEFT_MS (UINT64_C(31536000) * 1000) /* a year, HELLO */

#define XY_ID_LEN 32    /* an object id: SHA-256 of its content */
#define XY_NONCE_LEN 32
#define XY_MAC_LEN 32   /* HMAC-SHA256 */
#define XY_TOKEN_LEN 40 /* u64 expiry + 32-byte MAC */

enum xy_msg_type {
	/* handshake, on every connection (auth.h) */
	XY_MSG_CHALLENGE = 1, /* server -> client */
	XY_MSG_AUTH = 2,      /* client -> server */
	XY_MSG_AUTH_OK = 3,   /* server -> client */
	XY_MSG_ERROR = 4,     /* either way, before closing */
	/* control: worker <-> manager */
	XY_MSG_HELLO = 10,        /* w -> m */
	XY_MSG_TASK = 11,         /* m -> w */
	XY_MSG_FETCH = 12,        /* m -> w: get an object from a source */
	XY_MSG_CACHE_UPDATE = 13, /* w -> m: an object arrived or failed */
	XY_MSG_TASK_DONE = 14,    /* w -> m */
	XY_MSG_CANCEL = 15,       /* m -> w */
	XY_MSG_KEEPALIVE = 16,    /* either way */
	XY_MSG_UNLINK = 17,       /* m -> w: drop an object */
	XY_MSG_SHUTDOWN = 18,     /* m -> w: exit */
	XY_MSG_BYE = 19,          /* w -> m: leaving, these tasks return */
	XY_MSG_STATUS_REQ = 20,   /* status client -> m */
	XY_MSG_STATUS_REPLY = 21, /* m -> status client */
	XY_MSG_LIBRARY = 22,      /* m -> w: a library's template (as TASK) */
	XY_MSG_FETCH_URL = 23,    /* m -> w: fetch a URL from its origin */
	XY_MSG_URL_DONE = 24,     /* w -> m: what the URL turned out to be */
	XY_MSG_RELEASE = 25,      /* m -> w: an output is back; may be evicted */
	XY_MSG_DRAIN = 26,        /* w -> m: no new tasks; SHUTDOWN once idle */
	XY_MSG_WELCOME = 27,      /* m -> w: epoch and lease, after HELLO */
	XY_MSG_ADOPT = 28,        /* m -> w: a held task is now this task */
	/* transfer connections (xfer.h) */
	XY_MSG_GET = 30,    /* client -> transfer server */
	XY_MSG_OBJECT = 31, /* reply header; the body follows unframed */
	/* client connections: a program submits to a standing manager */
	XY_MSG_SUBMIT = 40, /* client -> m: run this task */
	XY_MSG_RESULT = 41, /* m -> client: what became of it */
	XY_MSG_ATTACH = 42,   /* client -> m: its session, results seen */
	XY_MSG_ACCEPTED = 43, /* m -> client: a SUBMIT is recorded */
	XY_MSG_DROP = 44,     /* client -> m: temps it names no more */
	XY_MSG_MAX = 45
};

/* GET flags. PARTIAL: the server may answer from an object it is still
 * receiving, sending its verified chunks as they grow. */
enum { XY_GET_PARTIAL = 1 };

/* Roles a client claims in AUTH. */
enum {
	XY_ROLE_WORKER = 1,
	XY_ROLE_STATUS = 2,
	XY_ROLE_TRANSFER = 3,
	XY_ROLE_CLIENT = 4 /* submits tasks (SUBMIT, RESULT) */
};

/* Object kinds. */
enum { XY_KIND_FILE = 0, XY_KIND_DIR = 1 };

/* Further kinds a task input may carry (TASK, LIBRARY): the input is an
 * archive object that the worker mounts expanded (UNPACK), and that is
 * also the task's software environment (ENV). docs/dataplane.md. */
enum { XY_INPUT_UNPACK = 2, XY_INPUT_ENV = 3 };

/* CACHE_UPDATE and OBJECT status codes. */
enum {
	XY_OBJ_OK = 0,
	XY_OBJ_NOT_FOUND = 1,  /* the source does not have it */
	XY_OBJ_FAILED = 2,     /* connection or disk failure */
	XY_OBJ_CORRUPT = 3,    /* content did not match its id */
	XY_OBJ_DENIED = 4,     /* bad secret or token */
	XY_OBJ_NO_ROOM = 5     /* the receiver's disk is full (or its quota) */
};

/* What a receiver blames a FETCH source for (CACHE_UPDATE blame[i], for
 * the FETCH's sources[i]): nothing; its copy (it answered but the object
 * was missing, refused, corrupt, or its stream broke or stalled); or the
 * host (no connection, or the handshake failed). The manager rests such
 * a source for a while (docs/dataplane.md, "Source cooldown"). */
enum { XY_BLAME_NONE = 0, XY_BLAME_OBJECT = 1, XY_BLAME_HOST = 2 };

struct xy_msg_challenge {
	uint32_t magic;
	uint16_t version;
	uint8_t nonce[XY_NONCE_LEN];
};

struct xy_msg_auth {
	uint16_t version;
	uint8_t role;
	uint8_t nonce[XY_NONCE_LEN];
	uint8_t mac[XY_MAC_LEN];
};

struct xy_msg_auth_ok {
	uint8_t mac[XY_MAC_LEN];
};

/* ERROR codes. */
enum {
	XY_ERR_PROTOCOL = 1, /* malformed or unexpected frame */
	XY_ERR_AUTH = 2,     /* bad secret */
	XY_ERR_VERSION = 3,  /* protocol version mismatch */
	XY_ERR_TIMEOUT = 4   /* handshake took too long */
};

struct xy_msg_error {
	uint32_t code;
	char *text;
};

struct xy_inventory_item {
	uint8_t id[XY_ID_LEN];
	uint64_t size;
	uint8_t kind;
	uint8_t level;
};

/* A task a worker held while it had no manager (docs/durability.md,
 * "Workers outlive their manager"): running, or finished with its
 * TASK_DONE kept. id is the worker's own name for it (XY_HELD_BIT set),
 * key the fingerprint its TASK carried; a running one still takes the
 * resources below. */
#define XY_HELD_BIT (UINT64_C(1) << 63)
struct xy_held_task {
	uint64_t id;
	uint8_t key[XY_ID_LEN];
	uint8_t finished;
	uint32_t cores;
	uint64_t memory_mb;
	uint64_t disk_mb;
	uint32_t gpus;
};

struct xy_msg_hello {
	char *name;     /* unique worker name, e.g. host:pid */
	char *hostname;
	uint32_t cores;
	uint64_t memory_mb;
	uint64_t disk_mb;
	uint32_t gpus;
	char *xfer_host; /* "" means: the address this connection comes from */
	uint16_t xfer_port;
	/* Milliseconds from this HELLO until the worker stops running tasks
	 * (its walltime, docs/worker.md "Walltime"); 0: no end known. */
	uint64_t time_left_ms;
	uint32_t n_items;
	struct xy_inventory_item *items;
	uint32_t n_held;
	struct xy_held_task *held;
};

/* WELCOME: the manager's epoch (its journal's; 0 without one) and how
 * long the worker keeps its tasks and cache once it loses the manager,
 * waiting to reconnect (0: it stops at once, as before). */
struct xy_msg_welcome {
	uint32_t epoch;
	uint64_t lease_ms;
};

/* ADOPT: the held task held_id is now task_id of this manager; a
 * finished one sends its TASK_DONE under that id. */
struct xy_msg_adopt {
	uint64_t held_id;
	uint64_t task_id;
};

struct xy_task_input {
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint8_t level;
	char *name; /* sandbox name, validated by both sides */
};

struct xy_task_output {
	char *name;
	uint8_t level;
};

struct xy_env_var {
	char *name;
	char *value;
};

struct xy_msg_task {
	uint64_t task_id;
	char *command;
	uint32_t cores;
	uint64_t memory_mb; /* 0: not limited */
	uint64_t disk_mb;   /* 0: not limited */
	uint32_t gpus;
	uint64_t time_limit_ms; /* 0: none */
	uint32_t n_env;
	struct xy_env_var *env;
	uint32_t n_inputs;
	struct xy_task_input *inputs;
	uint32_t n_outputs;
	struct xy_task_output *outputs;
	/* A call: the library that serves it ("" for a command task) and the
	 * payload handed to the instance. In LIBRARY, library is the name
	 * being defined and payload is empty. */
	char *library;
	size_t payload_len;
	char *payload;
	/* The task's fingerprint when the manager keeps a journal (all
	 * zeros: none), on the wire after time_limit_ms: a worker that
	 * outlives its manager reports its tasks by it. */
	uint8_t key[XY_ID_LEN];
};

/* An object's chunk list: the SHA-256 of each chunk_size piece of its
 * stream (the last may be short). n == 0: no list; the object is checked
 * whole (every object of at most one chunk). Otherwise n is exactly
 * ceil(size / chunk_size) and at most XY_MAX_CHUNKS. */
struct xy_chunks {
	uint32_t chunk_size;
	uint32_t n;
	uint8_t *hash; /* n * XY_ID_LEN bytes */
};

/* A place to fetch from. partial: it may still be receiving the object,
 * so ask with XY_GET_PARTIAL. host "" means the manager's address. */
struct xy_source {
	char *host;
	uint16_t port;
	uint8_t partial;
};

struct xy_msg_fetch {
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint8_t level;
	uint64_t size;
	struct xy_chunks chunks;
	uint32_t n_sources; /* 1..XY_MAX_SOURCES, in order of preference */
	struct xy_source sources[XY_MAX_SOURCES];
	uint8_t token[XY_TOKEN_LEN];
};

struct xy_msg_cache_update {
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint8_t status; /* XY_OBJ_* */
	uint64_t size;
	uint64_t elapsed_us;
	uint64_t verified; /* stream bytes received and verified */
	char *text; /* reason when status != OK */
	/* XY_BLAME_* for each source of the FETCH answered, in its order;
	 * set on success too, when the fetch went on past a failed source. */
	uint8_t blame[XY_MAX_SOURCES];
};

struct xy_msg_fetch_url {
	uint64_t req_id; /* the manager's number for this fetch */
	uint8_t level;   /* the object's cache level */
	char *url;
};

/* The end of a FETCH_URL: on OK, the object now cached under id. */
struct xy_msg_url_done {
	uint64_t req_id;
	uint8_t status; /* XY_OBJ_* */
	uint8_t id[XY_ID_LEN];
	uint64_t size;
	uint64_t elapsed_us;
	struct xy_chunks chunks;
	char *text; /* why not ("HTTP 404 from URL"), when status != OK */
};

struct xy_done_output {
	char *name;
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint64_t size;
	struct xy_chunks chunks;
};

/* The last value of xy_failure (xylem.h) that TASK_DONE may carry. */
#define XY_FAILURE_MAX 2

struct xy_msg_task_done {
	uint64_t task_id;
	uint8_t result; /* xy_result */
	uint8_t failure; /* xy_failure; at most XY_FAILURE_MAX */
	int32_t exit_code;
	uint64_t start_us; /* worker wall clock, microseconds since epoch */
	uint64_t end_us;
	uint8_t output_truncated;
	size_t output_len;
	char *output; /* NUL-terminated, output_len bytes; a call's reply */
	char *message; /* why it failed, or "" */
	uint32_t n_outputs;
	struct xy_done_output *outputs;
};

struct xy_msg_cancel {
	uint64_t task_id;
};

struct xy_msg_unlink {
	uint8_t id[XY_ID_LEN];
};

struct xy_msg_bye {
	uint32_t n_tasks;
	uint64_t *task_ids; /* tasks the worker gives back unfinished */
};

struct xy_msg_status_reply {
	char *json;
};

struct xy_msg_get {
	uint8_t id[XY_ID_LEN];
	uint8_t token[XY_TOKEN_LEN];
	char *name;      /* the receiver, as the token names it */
	uint64_t offset; /* send the stream from here */
	uint8_t flags;   /* XY_GET_* */
};

struct xy_msg_object {
	uint8_t status; /* XY_OBJ_* */
	uint8_t kind;
	uint64_t size; /* the whole stream; size - offset bytes follow */
};

/* Where a client's task input comes from (SUBMIT, since version 16). */
enum {
	XY_FROM_CLIENT = 0, /* the client's transfer server serves id */
	XY_FROM_TEMP = 1,   /* ref names a temp of the client's (an output
			     * of one of its SUBMITs): it stays on workers */
	XY_FROM_URL = 2     /* ref is a URL that a worker fetches */
};

/* A client's task input, mounted at name: an object the client serves
 * from its own transfer server (kind FILE or DIR only), a temp of the
 * client's, or a URL; with unpack, the sandbox gets its expansion (an
 * archive). id, kind and size are the client's object's, else zeros. */
struct xy_submit_input {
	char *name;
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint64_t size; /* its stream's size */
	uint8_t from;  /* XY_FROM_* */
	char *ref;     /* the temp's name or the URL; "" from the client */
	uint8_t unpack;
};

/* SUBMIT: a client asks a manager to run a command task. id is the
 * client's own number for it, unique among its tasks not yet answered;
 * the manager fetches each input it lacks from the client's transfer
 * server (the connection's address, xfer_port) and answers with RESULT. */
struct xy_msg_submit {
	uint64_t id;
	char *tag; /* a label for logs and status, or "" */
	char *command;
	uint32_t cores;
	uint64_t memory_mb; /* 0: not limited */
	uint64_t disk_mb;   /* 0: not limited */
	uint32_t gpus;
	uint64_t time_limit_ms; /* 0: none */
	uint32_t n_env;
	struct xy_env_var *env;
	uint32_t n_inputs;
	struct xy_submit_input *inputs;
	uint32_t n_outputs;
	char **outputs; /* sandbox names */
	/* n_outputs names, one per output: "" brings it back to the client
	 * (RESULT lists it); else the temp of the client's it becomes,
	 * left on the worker, which later SUBMITs may read (XY_FROM_TEMP). */
	char **temps;
	uint16_t xfer_port;
	/* The client's idempotency key within its session (ATTACH); all
	 * zeros: none. The same key again names the same task. */
	uint8_t key[XY_ID_LEN];
};

/* An output of a finished client task, served by the manager's transfer
 * server under id. */
struct xy_result_output {
	char *name;
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint64_t size;
};

/* RESULT: the end of a client's task. Outputs are listed on success
 * only; the client gets them from the manager's transfer server at the
 * control connection's host and xfer_port. */
struct xy_msg_result {
	uint64_t id; /* the client's, from SUBMIT */
	uint8_t result; /* xy_result */
	int32_t exit_code;
	char *message; /* why it failed, or "" */
	size_t output_len;
	char *output; /* the last XY_MAX_OUTPUT bytes of its output */
	uint16_t xfer_port;
	uint32_t n_outputs;
	struct xy_result_output *outputs;
	uint64_t seq; /* its number among its session's results; 0: none */
};

/* ATTACH: the client's session (a random id it keeps), and the last
 * RESULT seq of that session it saw: the manager sends every RESULT of
 * the session after it, and those of its tasks still to end. */
struct xy_msg_attach {
	uint8_t session[XY_ID_LEN];
	uint64_t after;
};

/* DROP: the client will name these temps of its own no more; the
 * manager forgets them (workers delete them once no task needs them). */
struct xy_msg_drop {
	uint32_t n_temps;
	char **temps;
};

/* ACCEPTED: the SUBMIT of id is accepted (with a journal: recorded), so
 * it runs, and its RESULT comes, even if the manager is killed. */
struct xy_msg_accepted {
	uint64_t id;
};

/* Every decoded message. The member matches the type. */
union xy_msg {
	struct xy_msg_challenge challenge;
	struct xy_msg_auth auth;
	struct xy_msg_auth_ok auth_ok;
	struct xy_msg_error error;
	struct xy_msg_hello hello;
	struct xy_msg_welcome welcome;
	struct xy_msg_adopt adopt;
	struct xy_msg_task task;
	struct xy_msg_fetch fetch;
	struct xy_msg_cache_update cache_update;
	struct xy_msg_fetch_url fetch_url;
	struct xy_msg_url_done url_done;
	struct xy_msg_task_done task_done;
	struct xy_msg_cancel cancel;
	struct xy_msg_unlink unlink;
	struct xy_msg_unlink release; /* the same: an object id */
	struct xy_msg_bye bye;
	struct xy_msg_status_reply status_reply;
	struct xy_msg_get get;
	struct xy_msg_object object;
	struct xy_msg_submit submit;
	struct xy_msg_result result;
	struct xy_msg_attach attach;
	struct xy_msg_accepted accepted;
	struct xy_msg_drop drop;
};

/* The chunk size for an object of this size: XY_CHUNK_MIN, or a multiple
 * of it large enough for at most XY_MAX_CHUNKS chunks. */
uint32_t xy_chunk_size_for(uint64_t size);
/* ceil(size / chunk_size) if that is 2 or more, else 0 (no list). */
uint64_t xy_chunk_count(uint64_t size, uint32_t chunk_size);

/* 1 if a TASK's key is set (not all zeros). */
int xy_key_set(const uint8_t key[XY_ID_LEN]);

/* Name of a message type for logs ("TASK"), or "?" if unknown. */
const char *xy_msg_name(unsigned type);

/* Parses a frame header. Returns -1 if flags are non-zero, the type is
 * unknown, or the length exceeds XY_MAX_FRAME. */
int xy_frame_parse(const uint8_t hdr[XY_FRAME_HEADER], uint32_t *len,
		   uint16_t *type);

/* Decodes a payload of the given type into *m (zeroed first). Returns 0, or
 * -1 with a reason in err if the payload is short, long (trailing bytes),
 * or breaks a limit; on failure *m holds nothing to free. On success free
 * it with xy_msg_free. Sandbox names in TASK, TASK_DONE, SUBMIT and RESULT
 * are checked with xy_check_sandbox_name. */
int xy_msg_decode(unsigned type, const uint8_t *payload, size_t len,
		  union xy_msg *m, char *err, size_t errlen);
void xy_msg_free(unsigned type, union xy_msg *m);

/* Appends a whole frame (header and payload) for message m of the given
 * type to b. Returns -1 if b ran out of memory or the payload would exceed
 * XY_MAX_FRAME. KEEPALIVE, SHUTDOWN and STATUS_REQ take m == NULL. */
int xy_msg_encode(struct xy_buf *b, unsigned type, const union xy_msg *m);

#endif

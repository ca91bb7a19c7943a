/*
 * xylem.h: the public C API of Xylem, a data-aware workflow engine.
 *
 * A program embeds a manager, declares the files its tasks read and write,
 * submits tasks, and waits for them to complete. Workers (`xylem worker`)
 * connect to the manager over TCP, cache the declared files, and run the
 * tasks in sandboxes. This header is the only public interface: the CLI, the
 * Python extension and C programs all use it.
 *
 * Conventions (docs/errors.md): a function that fails returns -1 or NULL and
 * sets errno; where it takes `err`/`errlen`, it also writes a one-line
 * reason there. The manager is single-threaded: call every function of one
 * manager from one thread at a time. Several managers may live in one
 * process.
 */
#ifndef XYLEM_H
#define XYLEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(XY_BUILDING) && defined(__GNUC__)
#define XY_API __attribute__((visibility("default")))
#else
#define XY_API
#endif

#define XY_VERSION_MAJOR 0
#define XY_VERSION_MINOR 1
#define XY_VERSION_PATCH 0

struct xy_manager;
struct xy_task;
struct xy_file;

/* How long a worker keeps a cached object. */
typedef enum {
	XY_CACHE_TASK = 0,     /* deleted when the task that used it ends */
	XY_CACHE_WORKFLOW = 1, /* deleted when the manager goes away */
	XY_CACHE_WORKER = 2,   /* kept until the worker exits */
	XY_CACHE_FOREVER = 3,  /* kept in the worker's cache directory */
} xy_cache_level;

/* What became of a task, classed by blame (docs/errors.md). */
typedef enum {
	XY_RESULT_SUCCESS = 0,
	XY_RESULT_APP_FAILED = 1,          /* non-zero exit, or an output missing */
	XY_RESULT_WORKER_FAILED = 2,       /* lost or failed by its workers */
	XY_RESULT_RESOURCES_EXHAUSTED = 3, /* over memory, disk or time limit */
	XY_RESULT_INPUT_MISSING = 4,       /* an input could not be found or made */
	XY_RESULT_CANCELLED = 5,
	XY_RESULT_MANAGER_FAILED = 6,      /* the manager could not store it */
	XY_RESULT_UNSCHEDULABLE = 7,       /* fits no worker any pool brings */
} xy_result;

/*
 * What failed a call, where its result alone does not say: set by the
 * worker that ran it (docs/errors.md, "Calls"). NONE for a command, for a
 * call its library instance answered, and for one that never reached an
 * instance. A program classes a failure by this and by the exit code,
 * never by the error's text, which is for people.
 */
typedef enum {
	XY_FAILURE_NONE = 0,
	/* The instance started for the call ended (exited, crashed or was
	 * killed) before it said it was ready; the exit code is its status
	 * and the output the tail of its log. */
	XY_FAILURE_LIBRARY_START = 1,
	/* The instance serving the call ended during it; exit code and
	 * output as above. */
	XY_FAILURE_LIBRARY_EXIT = 2,
} xy_failure;

typedef enum {
	XY_TASK_WAITING = 0, /* submitted, some input not yet produced */
	XY_TASK_READY = 1,   /* all inputs exist, waiting for a worker */
	XY_TASK_RUNNING = 2, /* sent to a worker (staging, running, returning) */
	XY_TASK_DONE = 3,    /* completed, waiting to be returned by wait */
	XY_TASK_RETURNED = 4 /* handed back to the caller by xy_manager_wait */
} xy_task_state;

/* ---------------------------------------------------------------- manager */

struct xy_manager_options {
	const char *host;   /* address to listen on; NULL: all interfaces */
	int port;           /* 0: any free port, see xy_manager_port() */
	const void *secret; /* shared secret; required */
	size_t secret_len;
	const char *history; /* SQLite run history path; NULL: none */
	const char *name;    /* shown in logs and status; NULL: "xylem" */
	/* Calls each worker may hold per core beyond its free cores, handed
	 * to its next idle library instance without waiting for the manager
	 * (docs/architecture.md, "The call window"). 0: the default,
	 * XY_CALL_WINDOW; negative: none; at most 64. */
	int call_window;
	/* A journal directory (docs/durability.md): a manager started
	 * again on it finishes a task it finished before, with its
	 * outputs still where they were, without running it. NULL: none.
	 * journal_sync: also fdatasync each turn's records. */
	const char *journal;
	int journal_sync;
	/* TLS 1.3 on every connection (docs/security.md). tls_dir: the
	 * directory of the manager's CA and certificate (ca.crt, ca.key,
	 * server.crt, server.key; made if absent, 0600; a CA there is kept);
	 * NULL: a private one under TMPDIR, removed by destroy. Workers and
	 * clients verify the manager against its ca.crt
	 * (xy_manager_tls_ca). no_tls: plain TCP, with a warning. */
	const char *tls_dir;
	int no_tls;
	/* Seconds a worker keeps its tasks, their results and its cache
	 * once it loses this manager, trying to reconnect, so that a
	 * manager started again on the journal adopts them (docs/
	 * durability.md, "Workers outlive their manager"). 0: 300 with a
	 * journal, none without; negative: none. At most a day. */
	double lease;
	/* With a journal: seconds to wait for the workers of the manager
	 * before to bring back the tasks they kept. 0: 15. */
	double adopt_wait;
	/* Bytes of each task's stdout and stderr (the tail) that the
	 * history keeps (docs/history.md). 0: 4096; negative: none. */
	long history_output;
	/* The live dashboard and /metrics (docs/observability.md), served
	 * on "[HOST:]PORT" from the manager's own loop; HOST 127.0.0.1 if
	 * absent, PORT 0 any free one. A host that is not loopback
	 * requires the token in xy_manager_http_url. NULL: none. */
	const char *http;
};

#define XY_CALL_WINDOW 2

/* Creates a manager listening on opt->port. Returns NULL on failure with
 * errno set and a reason in err. The caller owns the manager. If SIGPIPE
 * has its default action, it is set to be ignored, so that a worker that
 * vanishes mid-write cannot kill the program. */
XY_API struct xy_manager *xy_manager_create(const struct xy_manager_options *opt,
					    char *err, size_t errlen);

/* Stops listening, tells every connected worker to exit (SHUTDOWN, as
 * xy_manager_shutdown_workers; such a worker exits 0, dropping all but
 * its FOREVER objects) and disconnects it, and frees every task, file and
 * library the manager still owns. Posts not yet run are dropped. No other
 * thread may use m from then on. xy_manager_destroy(NULL) does nothing. */
XY_API void xy_manager_destroy(struct xy_manager *m);

/* The TCP port the manager listens on (useful after port 0). */
XY_API int xy_manager_port(const struct xy_manager *m);
/* The dashboard's port, 0 without one (xy_manager_options.http). */
XY_API int xy_manager_http_port(const struct xy_manager *m);
/* The dashboard's address to open, with its token when one is required,
 * owned by m; NULL without a dashboard. */
XY_API const char *xy_manager_http_url(const struct xy_manager *m);

/* The path of the CA certificate that workers and clients verify the
 * manager against (`xylem worker --tls-ca`), or NULL without TLS. Valid
 * until destroy. */
XY_API const char *xy_manager_tls_ca(const struct xy_manager *m);

/* Tells connected workers to exit now, while the manager still runs (used
 * by `xylem run` for the workers it started, which it then waits for).
 * Returns the number of workers told; one told before is not told again. */
XY_API int xy_manager_shutdown_workers(struct xy_manager *m);

/* ------------------------------------------------------------------ pools */

/*
 * A pool is a batch system's target whose jobs each bring one worker of
 * the shape given here; the manager asks for as many as the queued tasks
 * need, within the pool's limits, and releases idle ones
 * (docs/scaling.md). Providers: "local" (worker processes on this host),
 * "slurm" (sbatch, squeue, scancel on PATH), "gridengine" (qsub, qstat,
 * qdel, qacct on PATH) and "external" (the application's own: the hooks
 * below, and xy_manager_pool_job).
 */
#define XY_POOL_BACKLOG_MAX 10000

struct xy_pool_options {
	const char *name;     /* 1 to 32 of [A-Za-z0-9_-]; unique */
	const char *provider; /* "local" (NULL), "slurm" or "gridengine" */
	int cores, gpus;      /* a worker's: cores at least 1 */
	int64_t memory_mb, disk_mb; /* 0: not stated */
	int min_workers, max_workers; /* max_workers 0: no limit */
	int backlog;          /* jobs pending at once, at most
			       * XY_POOL_BACKLOG_MAX; 0: 4 */
	int priority;         /* of pools that fit a task, highest first */
	double walltime_s;    /* a job's time limit (slurm --time, gridengine
			       * -l h_rt); 0: the default */
	double idle_timeout_s; /* a worker idle this long goes; 0: 60 */
	const char *partition; /* slurm: --partition; gridengine: -q */
	const char *const *extra_args; /* more sbatch or qsub arguments,
					* NULL-ended; NULL: none */
	const char *xylem;    /* the program workers run; NULL: "xylem" */
	const char *manager_host; /* where workers reach the manager; NULL:
				   * 127.0.0.1 (local), this host's name
				   * (slurm, gridengine) */
	const char *log_dir;  /* batch: each worker's log, NAME.log; NULL:
			       * none */
	/* external: the manager calls these on its loop thread, and they
	 * must return at once. submit asks for a job whose worker is
	 * started with `--name JOB`; cancel, for the end of one (id: as
	 * the application said it, "" if it has not yet). */
	void (*submit)(void *arg, const char *pool, const char *job);
	void (*cancel)(void *arg, const char *pool, const char *job,
		       const char *id);
	void *hook_arg;
};

/* Adds a pool to m: 0, or -1 with errno and the reason in err. A task no
 * pool's worker could ever run (more cores, GPUs or memory than any
 * pool's) fails at once with XY_RESULT_UNSCHEDULABLE, its error naming
 * the pools' shapes. */
XY_API int xy_manager_add_pool(struct xy_manager *m,
			       const struct xy_pool_options *o, char *err,
			       size_t errlen);

/* An external pool's answer for a job: submitted as id (why NULL), or
 * refused, or ended (why says how). On the loop thread only (from a
 * closure of xy_manager_post). 0, or -1 if m has no such job (gone: the
 * application should cancel what it submitted for it). */
XY_API int xy_manager_pool_job(struct xy_manager *m, const char *job,
			       const char *id, const char *why);

/* ------------------------------------------------------------------ files */

/*
 * A declared file belongs to the manager. Each declaration (of any kind:
 * file, buffer, temp, URL, expansion) gives the caller a handle on it,
 * which the caller gives back with xy_file_release; until then the
 * pointer stays valid (at the latest until xy_manager_destroy).
 * Declaring the same local path twice returns the same file, and two
 * handles on it. A local path is read (and hashed, off the event loop)
 * when a task that needs it becomes ready; a task that writes it makes
 * it instead.
 */
XY_API struct xy_file *xy_manager_declare_file(struct xy_manager *m,
					       const char *path,
					       xy_cache_level level, char *err,
					       size_t errlen);

/* An in-memory buffer; the manager copies data. */
XY_API struct xy_file *xy_manager_declare_buffer(struct xy_manager *m,
						 const void *data, size_t len,
						 xy_cache_level level,
						 char *err, size_t errlen);

/* The manager-side path of a local file, or NULL for a buffer or a temp. */
XY_API const char *xy_file_path(const struct xy_file *f);

/*
 * Gives back one handle on f, for a program that will not name f again
 * (docs/dataplane.md, "When a file is freed"). The manager frees f once
 * no handle is left and nothing of its own needs it: no task submitted
 * and not yet returned by wait lists it as an input or an output, no
 * expansion of it is declared, no recipe of a live temp reads it (so a
 * lost temp can still be made again), no hashing, URL download or
 * xy_manager_fetch of it is under way. Tasks submitted before the
 * release run as if it had not happened; a released temp that a queued
 * task reads survives until that task is done. The file's object goes
 * when no file has it any more; workers then delete their copies of
 * level task or workflow (their copies of level worker or forever stay,
 * as promised), after the manager has kept it known for a while in case
 * the same content is declared again.
 *
 * Returns 0, or -1 with errno EINVAL (and changes nothing) if f is NULL
 * or every handle on it was given back already: a double release is
 * harmless while the file exists. Using f after its last handle is given
 * back (in a task, a declare_unpack, a fetch, or a release) is the
 * caller's bug, as is using memory after free(). Call it from the
 * manager's thread (the Python package posts it there).
 */
XY_API int xy_file_release(struct xy_file *f);

/*
 * Temps (docs/dataplane.md, "Temps and lineage"). A temp is a file that
 * lives only on workers: the task that writes it (xy_task_add_output)
 * leaves it in its worker's cache, tasks that read it run there or get it
 * by peer transfer, and it comes back to the manager only through
 * xy_manager_fetch. It belongs to the manager like any declared file.
 * level says how long workers keep it; XY_CACHE_TASK is taken as
 * XY_CACHE_WORKFLOW, since a temp must outlive the task that wrote it.
 *
 * If every copy is lost (its workers vanished, or evicted it) while a
 * submitted task still needs it, the manager runs the task that wrote it
 * again, from a copy it kept at submit (so the caller may delete that
 * task after wait), and the writers of that task's own lost temp inputs
 * before it. Such a rerun is internal: wait never returns it, and tasks
 * that need the temp wait for it. If the rerun fails for good, they fail
 * with XY_RESULT_INPUT_MISSING and an error naming the temp. A temp is
 * assumed to be made the same way each time: a rerun that makes other
 * bytes gives later readers those bytes.
 */
XY_API struct xy_file *xy_manager_declare_temp(struct xy_manager *m,
					       xy_cache_level level,
					       char *err, size_t errlen);
/* Copies to keep of temp f (default 1): once its writer succeeds, the
 * manager copies it by peer transfer to n-1 more workers (as many as are
 * connected), so that losing one worker does not force a rerun. Lost
 * copies are not replaced. Returns -1 with EINVAL if f is not a temp or
 * n < 1. */
XY_API int xy_file_set_replicas(struct xy_file *f, int n);
/* 1 if f is a temp, else 0. */
XY_API int xy_file_is_temp(const struct xy_file *f);
/* Brings temp f back to the local path (a file or directory, replaced if
 * it exists), running the manager's loop meanwhile as wait does (tasks
 * that complete stay for wait). If f is being written, waits for it; if
 * its copies are lost, has it made again. Returns 0, or -1 with errno and
 * a reason in err: EINVAL (not a temp), ENOENT (no task writes it, or its
 * writer failed), ETIMEDOUT after timeout seconds (negative: no limit),
 * EIO (the transfer or the write failed). The manager does not serve the
 * copy at path to workers. Call it from the manager's thread. */
XY_API int xy_manager_fetch(struct xy_manager *m, struct xy_file *f,
			    const char *path, double timeout, char *err,
			    size_t errlen);
/* As xy_manager_fetch for n temps at once: files[i] to paths[i] (the
 * caller's arrays, not kept), their transfers run side by side (as many
 * as the manager's transfer threads take) instead of one after another.
 * Returns 0 once every one is there, or -1 with errno and a reason in err
 * at the first that cannot be had (EINVAL, ENOENT, EIO) or after timeout
 * seconds in all (ETIMEDOUT); those still coming are left to finish. */
XY_API int xy_manager_fetch_all(struct xy_manager *m,
				struct xy_file *const *files,
				const char *const *paths, size_t n,
				double timeout, char *err, size_t errlen);

/*
 * A URL (http, https, ftp, ftps) that workers fetch themselves: the
 * manager never reads it. The first time a task needs it, one worker
 * fetches it from the origin and caches it; every task that needs it
 * meanwhile waits, and every other worker then gets it from a worker
 * that holds it, never from the origin again (while a copy is left). An
 * HTTP error fails the tasks that need it with INPUT_MISSING and the
 * status in their error. Declaring the same URL again returns the same
 * file, owned by the manager. NULL with EINVAL, and the reason in err,
 * if url is not a URL or has another scheme (file:// among them).
 */
XY_API struct xy_file *xy_manager_declare_url(struct xy_manager *m,
					      const char *url,
					      xy_cache_level level, char *err,
					      size_t errlen);

/*
 * The expansion of an archive (a .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz
 * or .zip file, local, a buffer, a URL or a task's output): a task that
 * takes it as an input sees a directory holding the archive's contents
 * under its sandbox name. Each worker gets the archive itself, as any
 * input (from the manager or a peer, verified), and expands it once, at
 * `level`, for every task that uses it there; its expansion is read-only.
 * An archive that cannot be expanded fails the tasks with INPUT_MISSING
 * and the unpacker's message. Declaring the same archive again returns
 * the same file (its level raised to the higher). Owned by the manager.
 */
XY_API struct xy_file *xy_manager_declare_unpack(struct xy_manager *m,
						 struct xy_file *archive,
						 xy_cache_level level,
						 char *err, size_t errlen);

/* ------------------------------------------------------------------ tasks */

/* Creates a task running `command` with /bin/sh -c in its sandbox. The
 * caller owns it until xy_manager_submit; after xy_manager_wait returns it,
 * the caller owns it again and frees it with xy_task_delete. */
XY_API struct xy_task *xy_task_create(const char *command);
XY_API void xy_task_delete(struct xy_task *t);

/* Mounts f at sandbox name `as` (relative, no "..", no empty component).
 * Returns -1 with errno EINVAL and a reason naming `as` if it is refused. */
XY_API int xy_task_add_input(struct xy_task *t, struct xy_file *f,
			     const char *as, char *err, size_t errlen);
/* Brings sandbox name `as` back to the local file f when the task ends;
 * if f is a temp, leaves it in the worker's cache instead. A buffer
 * cannot be an output. */
XY_API int xy_task_add_output(struct xy_task *t, struct xy_file *f,
			      const char *as, char *err, size_t errlen);
XY_API int xy_task_set_env(struct xy_task *t, const char *name,
			   const char *value);
/* Runs t in a software environment: env (from xy_manager_declare_unpack,
 * a packed virtual environment or any tree with a bin/) is mounted at
 * sandbox name ".xylem/env" and activated: VIRTUAL_ENV and
 * XYLEM_ENVIRONMENT name it and its bin/ comes first on PATH; if it holds
 * an xylem-env.sh at its top, the command sources that first (bin/activate
 * is not sourced). On a library's template, every instance runs in it.
 * Returns -1 with EINVAL if env is not an expansion, EEXIST if t has one. */
XY_API int xy_task_set_environment(struct xy_task *t, struct xy_file *env,
				   char *err, size_t errlen);
XY_API void xy_task_set_cores(struct xy_task *t, int cores);
XY_API void xy_task_set_memory(struct xy_task *t, int64_t mb);
XY_API void xy_task_set_disk(struct xy_task *t, int64_t mb);
XY_API void xy_task_set_gpus(struct xy_task *t, int gpus);
XY_API void xy_task_set_retries(struct xy_task *t, int retries);
XY_API void xy_task_set_priority(struct xy_task *t, double priority);
XY_API void xy_task_set_time_limit(struct xy_task *t, double seconds);
/* A call that carries a batch of calls (the Python package's bursts and
 * map chunks) says how many: the scaler counts it as that many tasks of
 * its shape when it sizes pools (docs/scaling.md, "Batched calls"), so
 * that batching never changes how many workers a burst asks for. 1 by
 * default; values below 1 mean 1. Scheduling is unchanged: the task
 * still takes its own cores on one worker. */
XY_API void xy_task_set_calls(struct xy_task *t, int calls);
/* A free-form label kept with the task (the workflow's task id). */
XY_API int xy_task_set_tag(struct xy_task *t, const char *tag);

/* Hands t to the manager. Returns its id (> 0), or 0 on failure with a
 * reason in err (then the caller still owns t). A task that reads a file
 * another submitted task writes waits for it; the writer may be submitted
 * after the reader, as long as both are submitted before the next wait.
 * A file may have one writer at a time; a new writer of a file is refused
 * until the previous one is done, and readers not yet started then read
 * what the new writer makes. Resources and files of a submitted task are
 * fixed: the setters leave it unchanged until wait returns it. */
XY_API uint64_t xy_manager_submit(struct xy_manager *m, struct xy_task *t,
				  char *err, size_t errlen);

/* Makes a task for index i (0 <= i < n) of an array: the caller owns
 * nothing it returns. NULL skips the index, with a reason in err; NULL
 * with errno ECANCELED drops every index not yet made. */
typedef struct xy_task *(*xy_array_make_fn)(void *arg, uint64_t index,
					   char *err, size_t errlen);

/* Submits a task array: n tasks that the manager holds as one record and
 * makes with make(arg, index, ...), in index order, only while its
 * scheduler has room for more (about twice the connected cores); each
 * made task is then submitted, run, retried and returned by wait as any
 * task. Counts n tasks outstanding at once. release(arg), if not NULL,
 * runs when every index has been made, or at destroy. Returns 0, or -1
 * with a reason in err. Call it as xy_manager_submit is called. */
XY_API int xy_manager_submit_array(struct xy_manager *m, uint64_t n,
				   xy_array_make_fn make, void *arg,
				   void (*release)(void *arg), char *err,
				   size_t errlen);

/* Cancels a submitted task; it comes back from wait as CANCELLED.
 * Returns -1 with errno ENOENT if the id is unknown or already done. */
XY_API int xy_manager_cancel(struct xy_manager *m, uint64_t id);

/* Runs the manager until a task completes or `timeout` seconds pass
 * (negative: no limit). Returns a completed task, now owned by the caller,
 * or NULL on timeout (errno ETIMEDOUT) or when no task is outstanding
 * (errno ENOENT). */
XY_API struct xy_task *xy_manager_wait(struct xy_manager *m, double timeout);

/* Submitted tasks not yet returned by wait. */
XY_API int64_t xy_manager_outstanding(const struct xy_manager *m);

/*
 * Threads. A manager belongs to one thread, which calls wait or run; other
 * threads reach it only through these three calls, which are safe from any
 * thread (the Python extension's manager thread is built on them).
 */
/* Runs fn(m, arg) on the manager's thread at its next turn (inside wait or
 * run), in the order posted. Returns -1 with ENOMEM or ESHUTDOWN. arg
 * stays the caller's; a post not yet run when the manager is destroyed is
 * dropped without being run. */
XY_API int xy_manager_post(struct xy_manager *m,
			   void (*fn)(struct xy_manager *m, void *arg),
			   void *arg);
/* Makes a wait or run in progress (or the next one) return early: wait
 * returns NULL with errno EINTR, run returns -1 with errno EINTR. */
XY_API void xy_manager_interrupt(struct xy_manager *m);
/* Runs the manager, with or without outstanding tasks, until a completed
 * task is ready for wait (returns 1), timeout seconds pass (returns 0;
 * negative: no limit), or it is interrupted (returns -1, errno EINTR). */
XY_API int xy_manager_run(struct xy_manager *m, double timeout);

/*
 * Libraries: warm processes on workers that serve function calls. A
 * library is declared once from a template task: its command starts one
 * instance (e.g. `python3 -m xylem.library`), its inputs are staged to
 * every worker that serves it and linked into each instance's sandbox,
 * its env and resources apply to each instance. An instance talks to its
 * worker over file descriptor 3 (docs/protocol.md, "Library instances").
 * A call is a task made by xy_task_create_call: the worker hands its
 * payload to an idle instance of the library (starting one if none is
 * idle) instead of starting a process, and the instance's reply comes back
 * as the task's output (xy_task_output). On success the manager takes
 * ownership of tmpl; on failure (-1, reason in err) the caller keeps it.
 * Declaring a name again replaces it for workers that have not yet
 * started it.
 */
XY_API int xy_manager_declare_library(struct xy_manager *m, const char *name,
				      struct xy_task *tmpl, char *err,
				      size_t errlen);
/* A call to library `library` with an opaque payload (copied; at most
 * XY_PAYLOAD_MAX bytes). Inputs, outputs, env and resources are set as for
 * any task; the call runs with its sandbox as the instance's working
 * directory. */
XY_API struct xy_task *xy_task_create_call(const char *library,
					   const void *payload, size_t len);
#define XY_PAYLOAD_MAX (8 << 20)

/* A number the caller keeps with a task (the Python executor's key). */
XY_API void xy_task_set_user(struct xy_task *t, uint64_t value);
XY_API uint64_t xy_task_user(const struct xy_task *t);

XY_API uint64_t xy_task_id(const struct xy_task *t);
XY_API const char *xy_task_command(const struct xy_task *t);
XY_API const char *xy_task_tag(const struct xy_task *t);
XY_API xy_task_state xy_task_get_state(const struct xy_task *t);
XY_API xy_result xy_task_result(const struct xy_task *t);
XY_API const char *xy_result_string(xy_result r);
XY_API int xy_task_exit_code(const struct xy_task *t);
/* What failed a call, where the result alone does not say (xy_failure),
 * as its last attempt reported it; XY_FAILURE_NONE otherwise. */
XY_API xy_failure xy_task_failure(const struct xy_task *t);
/* Captured stdout and stderr, interleaved, at most XY_OUTPUT_MAX bytes (the
 * tail is kept); for a call, the library instance's reply (at most
 * XY_PAYLOAD_MAX bytes). NUL-terminated. len may be NULL. */
XY_API const char *xy_task_output(const struct xy_task *t, size_t *len);
/* Why the task failed, in one line, or "" on success. */
XY_API const char *xy_task_error(const struct xy_task *t);
/* Name of the worker that ran it last, or "". */
XY_API const char *xy_task_worker(const struct xy_task *t);
XY_API int xy_task_attempts(const struct xy_task *t);

#define XY_OUTPUT_MAX (1 << 20)

struct xy_task_times {
	double submitted; /* seconds since the epoch, on the manager's clock */
	double dispatched;
	double started; /* the worker's start and end, by its clock */
	double finished;
	double returned;
};
XY_API void xy_task_times(const struct xy_task *t, struct xy_task_times *out);

/* ------------------------------------------------------------------ stats */

struct xy_stats {
	int64_t tasks_waiting, tasks_ready, tasks_running, tasks_done;
	int64_t tasks_succeeded, tasks_failed; /* returned so far */
	int64_t workers_connected, workers_busy;
	int64_t cores_total, cores_used;
	int64_t bytes_sent, bytes_received; /* file bodies, both directions */
	int64_t transfers_active;
	int64_t decisions;       /* tasks placed by the scheduler so far */
	double decision_seconds; /* time spent choosing where */
	double send_seconds;     /* time spent sending them there */
	int64_t temps_remade;    /* reruns for temps whose copies were lost */
	int64_t files;   /* declared files the catalogue holds now */
	int64_t objects; /* objects it knows now (idle ones included) */
	int64_t tasks_skipped; /* finished from the journal, not run */
	int64_t tasks_adopted; /* taken back from workers that kept them */
	int64_t clients_connected; /* programs submitting to it (xylem cwl
				    * --manager), connected now */
};
XY_API void xy_manager_stats(const struct xy_manager *m, struct xy_stats *out);

/* A JSON document describing the manager's tasks and workers, as `xylem
 * status` prints it. The caller frees it with free(). */
XY_API char *xy_manager_status_json(const struct xy_manager *m);

#ifdef __cplusplus
}
#endif
#endif

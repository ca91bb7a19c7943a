/*
 * walltime.h: when a worker must end. A worker in a batch job ends at the
 * job's walltime; it learns when from `--end-time` or `--walltime`, else
 * from the Slurm job it runs in (walltime.c). worker.c drains itself a
 * lead before that end and tells the manager, in HELLO, how long it has
 * left (docs/worker.md, "Walltime").
 */
#ifndef XY_WALLTIME_H
#define XY_WALLTIME_H

#include <stddef.h>
#include <stdint.h>

#include "resources.h"

/* Parses a time since the epoch in whole seconds ("1796628331"): 0 and
 * the value in *out, or -1 for anything else (Slurm's "N/A", "Unknown",
 * an empty string, a number past the year 5000). */
int xy_walltime_parse_epoch(const char *s, double *out);

/* The end of the Slurm job this process runs in, in seconds since the
 * epoch: SLURM_JOB_END_TIME where Slurm sets it (23.02 and later), else
 * the answer of `squeue -h -j $SLURM_JOB_ID -o %e` with
 * SLURM_TIME_FORMAT=%s (Slurm 22.05 exports no end), run once, waited
 * for at most timeout_s seconds. Returns 1 with *end set, 0 when not in
 * a job or the job has no end (*from says why in either case, a static
 * string), -1 when squeue could not tell (why in err). Blocks: call it
 * before the worker's loop runs. */
int xy_walltime_slurm_end(xy_resources_getenv_fn get, double timeout_s,
			  double *end, const char **from, char *err,
			  size_t errlen);

/* Milliseconds from now during which a worker can still run a task to
 * its end, given the milliseconds left until its end, its drain lead
 * and its drain grace (seconds): a drain with a grace shorter than the
 * lead returns what still runs at end - lead + grace, before the end;
 * otherwise the tasks run until the end. Never 0 when there is an end
 * (0 in HELLO means none): at least 1. */
uint64_t xy_walltime_usable_ms(int64_t left_ms, double lead_s,
			       double grace_s);

#endif

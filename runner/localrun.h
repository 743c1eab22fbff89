/* localrun.h - `runner run`: a pipeline run on this machine, in the working tree, with the
 * engine, the console and the log directory. */
#ifndef RN_LOCALRUN_H
#define RN_LOCALRUN_H

#include <stddef.h>

typedef struct rn_local_opts {
	const char *file;               /* the workflow file */
	int parallel;                   /* -j; 0 = number of CPUs */
	const char *const *jobs;        /* --job IDs (the closure of what they need runs) */
	size_t njobs;
	const char *const *env;         /* --env K=V */
	size_t nenv;
	const char *const *secrets;     /* --secret K=V */
	size_t nsecrets;
	const char *const *secret_files; /* --secret-file FILE (dotenv) */
	size_t nsecret_files;
	const char *workdir;            /* --workdir; NULL = current directory */
	int clean;                      /* --clean */
	const char *log_dir;            /* --log-dir; NULL = WORKSPACE/.runner/logs/RUN_ID */
	int json;                       /* --json: events on stdout, console on stderr */
	const char *junit;              /* --junit FILE */
	int dry_run;
	int no_sandbox;
	int keep_going;
	int color;                      /* -1 auto (TTY and no NO_COLOR), 0 off */
	const char *const *plugin_dirs; /* --plugin-dir DIRs, searched first for step plugins */
	size_t nplugin_dirs;
} rn_local_opts;

/* Run the pipeline (setting the process-wide step plugin search path, plugin.h, from
 * plugin_dirs, with plugins required and checked); returns the process exit status of the contract: 0 success, 1 a job
 * failed, 2 usage/invalid workflow, 3 infrastructure error, 130/143 interrupted. Problems are
 * printed on stderr. */
int rn_local_run(const rn_local_opts *o);
/* `runner run --sandbox-info`: probe and print what the step sandbox can enforce here; exit status. */
int rn_local_sandbox_info(void);

#endif

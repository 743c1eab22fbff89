/* agent_job.h - `runner __job DIR`: one leased job run by the engine in a child process of the agent. */
#ifndef RN_AGENT_JOB_H
#define RN_AGENT_JOB_H

/* `runner __job` (argv[0] is "__job"): parses its options, returns the exit status. */
int rn_cmd_job(int argc, char **argv);
/* The option help of `runner __job` (static text). */
extern const char rn_cmd_job_help[];

#endif

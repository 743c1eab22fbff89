/* agent.h - `runner agent`: the self-hosted agent that polls the server and runs jobs. */
#ifndef RN_AGENT_H
#define RN_AGENT_H

/* `runner agent` (argv[0] is "agent"): parses its options, returns the exit status. */
int rn_cmd_agent(int argc, char **argv);
/* The option help of `runner agent` (static text). */
extern const char rn_cmd_agent_help[];

#endif

/* client.h - `runner submit|status|logs|cancel`: the user commands against a server. */
#ifndef RN_CLIENT_H
#define RN_CLIENT_H

/* `runner submit` (argv[0] is "submit"): parses its options, returns the exit status. */
int rn_cmd_submit(int argc, char **argv);
/* The option help of `runner submit` (static text). */
extern const char rn_cmd_submit_help[];
/* `runner status` (argv[0] is "status"): parses its options, returns the exit status. */
int rn_cmd_status(int argc, char **argv);
/* The option help of `runner status` (static text). */
extern const char rn_cmd_status_help[];
/* `runner logs` (argv[0] is "logs"): parses its options, returns the exit status. */
int rn_cmd_logs(int argc, char **argv);
/* The option help of `runner logs` (static text). */
extern const char rn_cmd_logs_help[];
/* `runner cancel` (argv[0] is "cancel"): parses its options, returns the exit status. */
int rn_cmd_cancel(int argc, char **argv);
/* The option help of `runner cancel` (static text). */
extern const char rn_cmd_cancel_help[];

#endif

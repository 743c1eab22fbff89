/* hook.h - `runner hook`: the git post-receive hook and its installer. */
#ifndef RN_HOOK_H
#define RN_HOOK_H

/* `runner hook` (argv[0] is "hook"): parses its options, returns the exit status. */
int rn_cmd_hook(int argc, char **argv);
/* The option help of `runner hook` (static text). */
extern const char rn_cmd_hook_help[];

#endif

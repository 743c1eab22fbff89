/* plugin.h - step plugins: `runner-step-NAME` executables, and `runner plugins`. */
#ifndef RN_PLUGIN_H
#define RN_PLUGIN_H

/* `runner plugins` (argv[0] is "plugins"): parses its options, returns the exit status. */
int rn_cmd_plugins(int argc, char **argv);
/* The option help of `runner plugins` (static text). */
extern const char rn_cmd_plugins_help[];

#endif

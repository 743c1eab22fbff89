/* hook.h - `runner hook`: the git post-receive hook and its installer.
 *
 *   runner hook install GIT_DIR [--server URL [--token T]] [--file F] [--jobs N]
 *   runner hook uninstall GIT_DIR
 *   runner hook post-receive [--git-dir DIR]      (what hooks/post-receive runs)
 *   runner hook status GIT_DIR [REF] [--json] [--limit N]
 *   runner hook run-queue GIT_DIR                  (the detached worker the hook starts)
 *
 * Settings live in the repository's git config: runner.server, runner.token, runner.file
 * (default .pipeline.yml), runner.jobs (concurrent local runs, default 1), runner.secrets (a
 * dotenv file of secrets for local runs). State lives under GIT_DIR/runner/: hook.log (one line
 * per decision), queue/ and running/ (local runs waiting and claimed), RUN_ID/ (run.json,
 * output.log, the step logs and summary.json of a run), latest/<ref> (a link to the newest run
 * of each ref), cache/ (the mirror the checkouts come from), work/ (checkouts of running runs).
 * See docs/hook.md. */
#ifndef RN_HOOK_H
#define RN_HOOK_H

/* `runner hook` (argv[0] is "hook"): parses its options, returns the exit status. */
int rn_cmd_hook(int argc, char **argv);
/* The option help of `runner hook` (static text). */
extern const char rn_cmd_hook_help[];

#endif

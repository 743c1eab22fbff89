/* main.c - the command line: parse arguments, call the library, map results to exit codes.
 * Exit codes (every command): 0 success, 1 a job failed, 2 usage or invalid workflow,
 * 3 infrastructure error, 130/143 interrupted by SIGINT/SIGTERM. */
#include "agent_job.h"
#include "diag.h"
#include "hook.h"
#include "plugin.h"
#include "error.h"
#include "ext.h"
#include "graph.h"
#include "localrun.h"
#include "step.h"
#include "util.h"
#include "workflow.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INFRA = 3 };

typedef struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;   /* one line */
	const char *summary; /* one line */
	const char *help;    /* the options, or NULL */
} command;

static const command *find_command(const char *name);

__attribute__((format(printf, 2, 3))) static int usage_error(const command *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "runner %s: ", c->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: runner %s\n", c->usage);
	return EXIT_USAGE;
}

/* The command's usage, summary and options; EXIT_OK, or EXIT_INFRA when its options are in
 * runner-ext.so and that cannot be loaded. */
static int print_help(FILE *out, const command *c)
{
	fprintf(out, "usage: runner %s\n\n%s\n", c->usage, c->summary);
	/* the commands in runner-ext.so have their help there */
	const char *help = c->fn == rn_ext_run_command ? rn_ext_command_help(c->name) : c->help;
	if (help && *help)
		fprintf(out, "\n%s", help);
	return c->fn == rn_ext_run_command && !help ? EXIT_INFRA : EXIT_OK;
}

/* Handles --help / -h for commands that take no other options; returns -1 to go on. */
static int wants_help(const command *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			return print_help(stdout, c);
		}
	}
	return -1;
}

static int cmd_version(int argc, char **argv)
{
	int rc = wants_help(find_command("version"), argc, argv);
	if (rc >= 0)
		return rc;
	printf("runner %s\n", RN_VERSION);
	return EXIT_OK;
}

static void print_commands(FILE *out);

static int cmd_help(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h")) {
		const command *c = find_command(argv[1]);
		if (!c) {
			fprintf(stderr, "runner help: unknown command '%s'\n", argv[1]);
			return EXIT_USAGE;
		}
		return print_help(stdout, c);
	}
	print_commands(stdout);
	return EXIT_OK;
}

static int cmd_validate(int argc, char **argv)
{
	const command *c = find_command("validate");
	enum { O_PLUGIN_DIR = 256, O_PLUGINS_OPTIONAL };
	static const struct option opts[] = {
		{ "plugin-dir", required_argument, NULL, O_PLUGIN_DIR },
		{ "plugins-optional", no_argument, NULL, O_PLUGINS_OPTIONAL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char **plugin_dirs = rn_xcalloc((size_t)argc + 1, sizeof(*plugin_dirs));
	size_t nplugin_dirs = 0;
	rn_plugin_checks checks = RN_PLUGINS_REQUIRED;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (ch == O_PLUGIN_DIR) {
			plugin_dirs[nplugin_dirs++] = optarg;
			continue;
		}
		if (ch == O_PLUGINS_OPTIONAL) {
			checks = RN_PLUGINS_OPTIONAL;
			continue;
		}
		free(plugin_dirs);
		if (ch == 'h') {
			return print_help(stdout, c);
		}
		return usage_error(c, "unknown option %s", argv[optind - 1]);
	}
	/* plugin steps: the plugin must be installed, its --describe schema checks the inputs */
	rn_plugin_setup(plugin_dirs, nplugin_dirs, checks);
	free(plugin_dirs);
	if (optind >= argc)
		return usage_error(c, "no workflow file given");
	int worst = EXIT_OK;
	for (int i = optind; i < argc; i++) {
		rn_diags d = RN_DIAGS_INIT(argv[i]);
		rn_pipeline *p = NULL;
		int rc = rn_workflow_load(&p, argv[i], &d);
		if (rc == 0) {
			rn_graph g;
			rc = rn_graph_build(&g, p, &d);
			rn_graph_free(&g);
		}
		rn_diags_print(&d, stderr);
		if (rc == 0) {
			printf("%s: OK (%zu job%s)\n", argv[i], p->njobs, p->njobs == 1 ? "" : "s");
			fflush(stdout);
		} else {
			/* a workflow that is missing, too large or invalid is the user's to fix (2);
			 * anything else (I/O) is infrastructure (3) */
			int code = rc == RN_EINVALID || rc == RN_ENOTFOUND || rc == RN_ETOOBIG ? EXIT_USAGE : EXIT_INFRA;
			if (worst != EXIT_USAGE)
				worst = code;
		}
		rn_diags_free(&d);
		rn_pipeline_free(p);
	}
	return worst;
}

static int cmd_graph(int argc, char **argv)
{
	const command *c = find_command("graph");
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "job", required_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	rn_graph_format fmt = RN_GRAPH_TEXT;
	const char **jobs = rn_xcalloc((size_t)argc + 1, sizeof(*jobs));
	size_t njobs = 0;
	int ch, rc = EXIT_OK;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+hf:", opts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			print_help(stdout, c);
			free(jobs);
			return EXIT_OK;
		case 'f':
			if (strcmp(optarg, "text") == 0)
				fmt = RN_GRAPH_TEXT;
			else if (strcmp(optarg, "dot") == 0)
				fmt = RN_GRAPH_DOT;
			else if (strcmp(optarg, "mermaid") == 0)
				fmt = RN_GRAPH_MERMAID;
			else {
				free(jobs);
				return usage_error(c, "unknown format '%s' (text, dot or mermaid)", optarg);
			}
			break;
		case 'J':
			jobs[njobs++] = optarg;
			break;
		default:
			free(jobs);
			return usage_error(c, "unknown option %s", argv[optind - 1]);
		}
	}
	if (optind != argc - 1) {
		free(jobs);
		return usage_error(c, "expected exactly one workflow file");
	}
	const char *file = argv[optind];
	rn_diags d = RN_DIAGS_INIT(file);
	rn_pipeline *p = NULL;
	rn_graph g = { NULL, 0 };
	int lr = rn_workflow_load(&p, file, &d);
	if (lr == 0)
		lr = rn_graph_build(&g, p, &d);
	rn_diags_print(&d, stderr);
	if (lr < 0) {
		rc = lr == RN_EINVALID || lr == RN_ENOTFOUND || lr == RN_ETOOBIG ? EXIT_USAGE : EXIT_INFRA;
	} else if (rn_graph_select(&g, jobs, njobs) < 0) {
		fprintf(stderr, "runner graph: %s\n", rn_error_last());
		rc = EXIT_USAGE;
	} else if (rn_graph_print(&g, fmt, stdout) < 0) {
		rc = EXIT_INFRA;
	}
	rn_graph_free(&g);
	rn_diags_free(&d);
	rn_pipeline_free(p);
	free(jobs);
	return rc;
}

static int cmd_run(int argc, char **argv)
{
	const command *c = find_command("run");
	enum { O_ENV = 256, O_SECRET, O_SECRET_FILE, O_WORKDIR, O_CLEAN, O_LOGDIR, O_JSON, O_JUNIT, O_DRY,
	       O_NOSANDBOX, O_KEEPGOING, O_NOCOLOR, O_JOB, O_SANDBOXINFO, O_PLUGIN_DIR };
	static const struct option opts[] = {
		{ "jobs", required_argument, NULL, 'j' },
		{ "job", required_argument, NULL, O_JOB },
		{ "env", required_argument, NULL, O_ENV },
		{ "secret", required_argument, NULL, O_SECRET },
		{ "secret-file", required_argument, NULL, O_SECRET_FILE },
		{ "workdir", required_argument, NULL, O_WORKDIR },
		{ "clean", no_argument, NULL, O_CLEAN },
		{ "log-dir", required_argument, NULL, O_LOGDIR },
		{ "json", no_argument, NULL, O_JSON },
		{ "junit", required_argument, NULL, O_JUNIT },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "no-sandbox", no_argument, NULL, O_NOSANDBOX },
		{ "sandbox-info", no_argument, NULL, O_SANDBOXINFO },
		{ "keep-going", no_argument, NULL, O_KEEPGOING },
		{ "no-color", no_argument, NULL, O_NOCOLOR },
		{ "plugin-dir", required_argument, NULL, O_PLUGIN_DIR },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	size_t cap = (size_t)argc + 1;
	const char **jobs = rn_xcalloc(cap, sizeof(char *)), **env = rn_xcalloc(cap, sizeof(char *));
	const char **secrets = rn_xcalloc(cap, sizeof(char *)), **files = rn_xcalloc(cap, sizeof(char *));
	const char **plugin_dirs = rn_xcalloc(cap, sizeof(char *));
	rn_local_opts o = { .jobs = jobs, .env = env, .secrets = secrets, .secret_files = files, .color = -1,
			    .plugin_dirs = plugin_dirs };
	int ch, rc = -1;
	char *end;
	optind = 1;
	while (rc < 0 && (ch = getopt_long(argc, argv, "+hj:", opts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			print_help(stdout, c);
			rc = EXIT_OK;
			break;
		case 'j':
			o.parallel = (int)strtol(optarg, &end, 10);
			if (*end || o.parallel < 1 || o.parallel > 4096)
				rc = usage_error(c, "-j wants a number from 1 to 4096, not '%s'", optarg);
			break;
		case O_JOB:
			jobs[o.njobs++] = optarg;
			break;
		case O_ENV:
			if (!strchr(optarg, '=') || optarg[0] == '=')
				rc = usage_error(c, "--env wants NAME=VALUE, not '%s'", optarg);
			env[o.nenv++] = optarg;
			break;
		case O_SECRET:
			secrets[o.nsecrets++] = optarg;
			break;
		case O_SECRET_FILE:
			files[o.nsecret_files++] = optarg;
			break;
		case O_WORKDIR:
			o.workdir = optarg;
			break;
		case O_CLEAN:
			o.clean = 1;
			break;
		case O_LOGDIR:
			o.log_dir = optarg;
			break;
		case O_JSON:
			o.json = 1;
			break;
		case O_JUNIT:
			o.junit = optarg;
			break;
		case O_DRY:
			o.dry_run = 1;
			break;
		case O_NOSANDBOX:
			o.no_sandbox = 1;
			break;
		case O_SANDBOXINFO:
			rc = rn_local_sandbox_info();
			break;
		case O_KEEPGOING:
			o.keep_going = 1;
			break;
		case O_NOCOLOR:
			o.color = 0;
			break;
		case O_PLUGIN_DIR:
			plugin_dirs[o.nplugin_dirs++] = optarg;
			break;
		default:
			rc = usage_error(c, "unknown option %s", argv[optind - 1]);
			break;
		}
	}
	if (rc < 0) {
		if (optind < argc - 1)
			rc = usage_error(c, "expected at most one workflow file");
		else {
			o.file = optind < argc ? argv[optind] : ".pipeline.yml";
			rc = rn_local_run(&o);
		}
	}
	free(jobs);
	free(env);
	free(secrets);
	free(files);
	free(plugin_dirs);
	return rc;
}

/* Hidden: `runner __step KIND FILE` runs a built-in step kind inside a step's process tree. */
static int cmd_step(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: runner __step KIND FILE\n");
		return EXIT_USAGE;
	}
	return rn_step_exec_main(argv[1], argv[2]);
}

static const command commands[] = {
	{ "run", cmd_run, "run [OPTIONS] [FILE]", "Run a pipeline locally (FILE defaults to .pipeline.yml).",
	  "options:\n"
	  "  -j, --jobs N         run at most N jobs at once (default: the number of CPUs)\n"
	  "      --job ID         run job ID (a job or a matrix instance) and what it needs; repeatable\n"
	  "      --env K=V        set an environment variable for every step; repeatable\n"
	  "      --secret K=V     a secret for ${{ secrets.K }}, masked in all output; repeatable\n"
	  "      --secret-file F  secrets from a dotenv file; also RUNNER_SECRET_<NAME> variables\n"
	  "      --workdir DIR    the workspace (default: the current directory)\n"
	  "      --clean          run in a fresh checkout of HEAD (the committed state), as an agent would\n"
	  "      --log-dir DIR    per-step logs and summary.json (default .runner/logs/RUN_ID)\n"
	  "      --json           one JSON event per line on stdout (the console goes to stderr)\n"
	  "      --junit FILE     write a JUnit XML report\n"
	  "      --dry-run        show what would run, run nothing\n"
	  "      --no-sandbox     run steps without the sandbox (also `sandbox: false` in the workflow)\n"
	  "      --sandbox-info   show what the step sandbox can enforce on this machine, and exit\n"
	  "      --keep-going     after a failure, still start jobs that do not depend on it\n"
	  "      --no-color       no colours (also when NO_COLOR is set)\n"
	  "      --plugin-dir D   search D first for step plugins (runner-step-NAME); repeatable\n" },
	{ "validate", cmd_validate, "validate FILE...",
	  "Parse and check workflow files without running anything; one line per problem.",
	  "options:\n"
	  "      --plugin-dir DIR    search DIR first for step plugins (runner-step-NAME); repeatable\n"
	  "      --plugins-optional  a step plugin that is not installed is a warning, not an error\n"
	  "                          (e.g. where the agents that run the workflow have it)\n" },
	{ "graph", cmd_graph, "graph [--format text|dot|mermaid] [--job ID]... FILE",
	  "Print the expanded job/step graph.",
	  "options:\n"
	  "  -f, --format FMT   text (default), dot (Graphviz) or mermaid\n"
	  "      --job ID       only ID (a job or a matrix instance) and what it needs; repeatable\n" },
	{ "serve", rn_ext_run_command, "serve [--listen ADDR:PORT] [--data DIR] [OPTIONS]",
	  "The coordinator: job queue, agents, logs, artifacts, status over HTTP.", NULL },
	{ "agent", rn_ext_run_command, "agent --server URL --token TOKEN [OPTIONS]",
	  "A self-hosted agent: polls the server, runs jobs, uploads logs and artifacts.", NULL },
	{ "submit", rn_ext_run_command, "submit [--server URL] [--token T] [--repo R] [--ref REF] [--file F] [--wait]",
	  "Queue a pipeline on a server; --wait follows it to the end.", NULL },
	{ "status", rn_ext_run_command, "status [--server URL] [--token T] [--json] [ID]",
	  "Show pipelines, or one pipeline or job, on a server.", NULL },
	{ "logs", rn_ext_run_command, "logs [--server URL] [--token T] [-f] JOB_OR_PIPELINE_ID",
	  "Print the logs of a job or of every job of a pipeline.", NULL },
	{ "cancel", rn_ext_run_command, "cancel [--server URL] [--token T] ID",
	  "Cancel a pipeline or a job on a server.", NULL },
	{ "hook", rn_cmd_hook, "hook post-receive | hook install GIT_DIR [OPTIONS] | hook status GIT_DIR [REF]",
	  "The git post-receive hook: run or queue the pipeline on push.", rn_cmd_hook_help },
	{ "plugins", rn_cmd_plugins, "plugins list [--plugin-dir DIR]...",
	  "Show the step plugins found (runner-step-NAME executables).", rn_cmd_plugins_help },
	{ "version", cmd_version, "version", "Print the version.", NULL },
	{ "help", cmd_help, "help [COMMAND]", "Show the commands, or one command's options.", NULL },
	{ "__step", cmd_step, "__step KIND FILE", "(internal) run a built-in step kind", NULL },
	{ "__job", rn_cmd_job, "__job DIR", "(internal) run one leased job of an agent", NULL },
};

static const command *find_command(const char *name)
{
	for (size_t i = 0; i < RN_ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void print_commands(FILE *out)
{
	fprintf(out, "usage: runner COMMAND [OPTIONS]\n\nA CI/CD pipeline runner.\n\ncommands:\n");
	for (size_t i = 0; i < RN_ARRAY_LEN(commands); i++)
		if (commands[i].name[0] != '_')
			fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'runner help COMMAND' or 'runner COMMAND --help' shows a command's options.\n"
		     "Exit status: 0 success, 1 a job failed, 2 usage error or invalid workflow,\n"
		     "3 infrastructure error, 130/143 interrupted.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_commands(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(1, argv);
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(1, argv);
	const command *c = find_command(argv[1]);
	if (!c || !c->fn) {
		fprintf(stderr, "runner: unknown command '%s' (see 'runner help')\n", argv[1]);
		return EXIT_USAGE;
	}
	/* --help of the commands that live in their own modules (the others parse it themselves) */
	if ((c->help || c->fn == rn_ext_run_command) && c->fn != cmd_run && c->fn != cmd_graph) {
		int rc = wants_help(c, argc - 1, argv + 1);
		if (rc >= 0)
			return rc;
	}
	return c->fn(argc - 1, argv + 1);
}

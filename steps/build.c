/* build.c - the build step: detect or use a build tool, configure when needed, build. The
 * command is a generated sh script, so detection happens in the step's own directory and the
 * build runs through the same process-tree, sandbox and log path as `run:`. */
#include "step.h"
#include "buf.h"
#include "error.h"
#include "schema.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const tools[] = { "auto", "meson", "make", "cmake", "ninja", "cargo", NULL };

static const rn_field fields[] = {
	{ "tool", RN_T_STR, 0, tools },
	{ "dir", RN_T_STR, 0, NULL },
	{ "target", RN_T_STR, 0, NULL },
	{ "args", RN_T_STRLIST, 0, NULL },
	{ "jobs", RN_T_INT, 0, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

static void check(const rn_node *key, const rn_node *with, rn_diags *d)
{
	if (rn_node_is_null(with))
		return; /* `build:` alone means all defaults */
	rn_schema_check(with, fields, "'build'", d);
}

/* Append s single-quoted for sh. */
static void quote(rn_buf *b, const char *s)
{
	rn_buf_putc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			rn_buf_puts(b, "'\\''");
		else
			rn_buf_putc(b, *s);
	}
	rn_buf_putc(b, '\'');
}

static const char *str_param(const json_t *with, const char *key, const char *dflt)
{
	const json_t *v = json_object_get(with, key);
	return json_is_string(v) ? json_string_value(v) : dflt;
}

static int command(char ***argv, const rn_step_ctx *ctx)
{
	const json_t *with = json_is_object(ctx->with) ? ctx->with : NULL;
	const char *tool = str_param(with, "tool", "auto");
	const char *dir = str_param(with, "dir", NULL);
	const char *target = str_param(with, "target", NULL);
	long jobs = json_integer_value(json_object_get(with, "jobs"));
	const json_t *jv = json_object_get(with, "jobs");
	if (json_is_string(jv))
		jobs = strtol(json_string_value(jv), NULL, 10);
	if (jobs <= 0)
		jobs = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
	rn_buf args = RN_BUF_INIT(64 * 1024), s = RN_BUF_INIT(256 * 1024);
	const json_t *a = json_object_get(with, "args");
	if (json_is_string(a)) {
		rn_buf_putc(&args, ' ');
		quote(&args, json_string_value(a));
	}
	size_t i;
	json_t *it;
	json_array_foreach(a, i, it) {
		rn_buf_putc(&args, ' ');
		quote(&args, json_is_string(it) ? json_string_value(it) : "");
	}
	rn_buf_puts(&s, "tool=");
	quote(&s, tool);
	rn_buf_puts(&s, "\ndir=");
	quote(&s, dir ? dir : "");
	rn_buf_puts(&s, "\ntarget=");
	quote(&s, target ? target : "");
	rn_buf_printf(&s, "\njobs=%ld\n", jobs);
	rn_buf_puts(&s,
		"if [ \"$tool\" = auto ]; then\n"
		"  if [ -f meson.build ]; then tool=meson\n"
		"  elif [ -f CMakeLists.txt ]; then tool=cmake\n"
		"  elif [ -f Cargo.toml ]; then tool=cargo\n"
		"  elif [ -f build.ninja ] || { [ -n \"$dir\" ] && [ -f \"$dir/build.ninja\" ]; }; then tool=ninja\n"
		"  elif [ -f Makefile ] || [ -f makefile ] || [ -f GNUmakefile ]; then tool=make\n"
		"  else echo 'build: no meson.build, CMakeLists.txt, Cargo.toml, build.ninja or Makefile here' >&2; exit 2\n"
		"  fi\n"
		"  echo \"build: detected $tool\"\n"
		"fi\n"
		"case $tool in\n"
		"meson)\n"
		"  d=${dir:-build}\n"
		"  [ -f \"$d/build.ninja\" ] || meson setup \"$d\"");
	rn_buf_puts(&s, rn_buf_cstr(&args));
	rn_buf_puts(&s,
		"\n"
		"  exec meson compile -C \"$d\" -j \"$jobs\" ${target:+\"$target\"} ;;\n"
		"cmake)\n"
		"  d=${dir:-build}\n"
		"  [ -f \"$d/CMakeCache.txt\" ] || cmake -S . -B \"$d\"");
	rn_buf_puts(&s, rn_buf_cstr(&args));
	rn_buf_puts(&s,
		"\n"
		"  exec cmake --build \"$d\" -j \"$jobs\" ${target:+--target \"$target\"} ;;\n"
		"make)\n"
		"  exec make ${dir:+-C \"$dir\"} -j \"$jobs\" ${target:+\"$target\"}");
	rn_buf_puts(&s, rn_buf_cstr(&args));
	rn_buf_puts(&s,
		" ;;\n"
		"ninja)\n"
		"  exec ninja ${dir:+-C \"$dir\"} -j \"$jobs\" ${target:+\"$target\"} ;;\n"
		"cargo)\n"
		"  exec cargo build --jobs \"$jobs\" ${dir:+--target-dir \"$dir\"}");
	rn_buf_puts(&s, rn_buf_cstr(&args));
	rn_buf_puts(&s, " ;;\nesac\n");
	int rc = rn_step_shell_command(argv, ctx, "sh", rn_buf_cstr(&s));
	rn_buf_free(&args);
	rn_buf_free(&s);
	return rc;
}

const rn_step_kind rn_step_build = { "build", "configure and build with meson, make, cmake, ninja or cargo", check,
				     command, NULL };

/* ext.c - the runner binary's side of runner-ext.so: the loader, and the functions of http.h,
 * archiver.h and the ext commands, each calling through the loaded table (see ext.h). Linked
 * into the runner executable only: the tests link the implementations themselves. */
#include "ext.h"
#include "error.h"
#include "util.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef RN_EXT_PATH
#define RN_EXT_PATH "/usr/local/lib/runner/runner-ext.so"
#endif

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const rn_ext_api *table;
static char load_error[512];

/* dlopen path and check the table; 0, or -1 with load_error set. */
static int try_load(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(load_error, sizeof(load_error), "%s", dlerror());
		return -1;
	}
	const rn_ext_api *t = dlsym(h, "rn_ext_table");
	if (!t || t->abi != RN_EXT_ABI || !t->version || strcmp(t->version, RN_VERSION) != 0) {
		snprintf(load_error, sizeof(load_error), "%s is not the runner-ext.so of runner %s%s%s", path,
			 RN_VERSION, t && t->version ? " (it is of " : "", t && t->version ? t->version : "");
		if (t && t->version)
			strncat(load_error, ")", sizeof(load_error) - strlen(load_error) - 1);
		dlclose(h);
		return -1;
	}
	table = t; /* never dlclose'd: the process keeps it */
	return 0;
}

static void load(void)
{
	const char *env = getenv("RUNNER_EXT");
	char *path = rn_ext_path(NULL);
	if (path && ((env && *env) || access(path, F_OK) == 0)) {
		try_load(path);
		free(path);
		return;
	}
	free(path);
	if (try_load(RN_EXT_PATH) < 0 && access(RN_EXT_PATH, F_OK) != 0)
		snprintf(load_error, sizeof(load_error),
			 "runner-ext.so is neither next to the runner nor at %s (set RUNNER_EXT to its path)",
			 RN_EXT_PATH);
}

const rn_ext_api *rn_ext(void)
{
	pthread_once(&load_once, load);
	if (!table)
		rn_error_set("cannot load the runner's extension: %s", load_error);
	return table;
}

/* ---- http.h -------------------------------------------------------------------------------- */

int rn_http_request(const rn_http_req *req, rn_http_resp *resp)
{
	const rn_ext_api *x = rn_ext();
	return x ? x->http_request(req, resp) : -1;
}

int rn_http_upload_file(const rn_http_req *req, rn_http_resp *resp)
{
	const rn_ext_api *x = rn_ext();
	return x ? x->http_upload_file(req, resp) : -1;
}

void rn_http_resp_free(rn_http_resp *resp)
{
	/* only runner-ext.so fills a response: nothing to free if it is not loaded */
	const rn_ext_api *x = rn_ext();
	if (x)
		x->http_resp_free(resp);
}

int rn_http_header_ok(const char *name, const char *value)
{
	const rn_ext_api *x = rn_ext();
	return x ? x->http_header_ok(name, value) : 0;
}

char *rn_http_url_redacted(const char *url)
{
	const rn_ext_api *x = rn_ext();
	return x ? x->http_url_redacted(url) : rn_xstrdup("(URL not shown)");
}

/* ---- archiver.h ---------------------------------------------------------------------------- */

int rn_archive_create(const char *out_path, const char *format, const char *root, const char *const *include,
		      size_t ninclude, const char *const *exclude, size_t nexclude, rn_archive_info *info)
{
	const rn_ext_api *x = rn_ext();
	return x ? x->archive_create(out_path, format, root, include, ninclude, exclude, nexclude, info) : -1;
}

int rn_archive_extract(const char *archive_path, const char *dest_dir)
{
	const rn_ext_api *x = rn_ext();
	return x ? x->archive_extract(archive_path, dest_dir) : -1;
}

int rn_archive_extract_limit(const char *archive_path, const char *dest_dir, uint64_t max_bytes,
			     uint64_t max_entries)
{
	const rn_ext_api *x = rn_ext();
	return x ? x->archive_extract_limit(archive_path, dest_dir, max_bytes, max_entries) : -1;
}

int rn_sha256_file(const char *path, char out[65])
{
	const rn_ext_api *x = rn_ext();
	return x ? x->sha256_file(path, out) : -1;
}

/* ---- commands ------------------------------------------------------------------------------ */

static const rn_ext_command *find(const rn_ext_api *x, const char *name)
{
	for (size_t i = 0; x && i < x->ncommands; i++)
		if (strcmp(x->commands[i].name, name) == 0)
			return &x->commands[i];
	return NULL;
}

int rn_ext_run_command(int argc, char **argv)
{
	const rn_ext_api *x = rn_ext();
	const rn_ext_command *c = x ? find(x, argv[0]) : NULL;
	if (!c) {
		fprintf(stderr, "runner %s: %s\n", argv[0], x ? "not in runner-ext.so" : rn_error_last());
		return 3;
	}
	return c->fn(argc, argv);
}

const char *rn_ext_command_help(const char *name)
{
	const rn_ext_api *x = rn_ext();
	const rn_ext_command *c = x ? find(x, name) : NULL;
	if (!c)
		fprintf(stderr, "runner %s: %s\n", name, x ? "not in runner-ext.so" : rn_error_last());
	return c ? c->help : NULL;
}

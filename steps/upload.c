/* upload.c - the upload step: an artifact to the store, or a file to a URL.
 *   upload: {path, url, method: PUT|POST, headers}  streams the file (PUT body, or the file part
 *     of a multipart/form-data POST); retries network errors and 5xx with backoff and jitter.
 *     Exit 0 on 2xx, 1 on a refusal (4xx: the server's answer is printed) or a missing file,
 *     2 on bad parameters, 3 when the server stayed unreachable or failing (infrastructure).
 *   upload: {artifact: NAME}  in local runs: checks that NAME is in $RUNNER_ARTIFACTS, intact,
 *     and says where it is (an agent sends it to its server).
 * Header values may hold secrets: they are never printed. */
#include "step.h"
#include "archiver.h"
#include "error.h"
#include "http.h"
#include "schema.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define UPLOAD_ATTEMPTS 4
#define UPLOAD_RETRY_MS 500L
#define UPLOAD_MAX_HEADERS 64

static const char *const methods[] = { "PUT", "POST", NULL };

static const rn_field fields[] = {
	{ "artifact", RN_T_STR, 0, NULL },
	{ "path", RN_T_STR, 0, NULL },
	{ "url", RN_T_STR, 0, NULL },
	{ "method", RN_T_STR, 0, methods },
	{ "headers", RN_T_STRMAP, 0, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

static void check(const rn_node *key, const rn_node *with, rn_diags *d)
{
	if (rn_schema_check(with, fields, "'upload'", d))
		return;
	const rn_node *artifact = rn_node_get(with, "artifact"), *path = rn_node_get(with, "path");
	const rn_node *url = rn_node_get(with, "url");
	if (!!artifact == !!path)
		rn_diag_error(d, with->line, with->col, "'upload' needs exactly one of 'artifact' or 'path'");
	else if (path && !url)
		rn_diag_error(d, with->line, with->col, "'upload' of a 'path' needs a 'url'");
}

static int command(char ***argv, const rn_step_ctx *ctx)
{
	return rn_step_self_command(argv, ctx, "upload");
}

/* Print the server's answer (capped by the http module), one log line per line, with control
 * characters other than tab shown as '?'. */
static void print_answer(const rn_http_resp *r)
{
	if (!r->body || !r->body_len)
		return;
	fprintf(stderr, "upload: the server answered (HTTP %ld%s):\n", r->status,
		r->truncated ? ", first 64 KiB" : "");
	int bol = 1;
	for (size_t i = 0; i < r->body_len; i++) {
		unsigned char c = (unsigned char)r->body[i];
		if (bol)
			fputs("  ", stderr);
		bol = c == '\n';
		if (c == '\r' && i + 1 < r->body_len && r->body[i + 1] == '\n')
			continue;
		fputc(c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f) ? c : '?', stderr);
	}
	if (!bol)
		fputc('\n', stderr);
}

static void on_retry(void *arg, int attempt, long delay_ms, const char *why)
{
	(void)arg;
	fprintf(stderr, "upload: attempt %d of %d failed: %s; retrying in %.1f s\n", attempt, UPLOAD_ATTEMPTS, why,
		(double)delay_ms / 1000.0);
}

/* The header map as name/value pairs (values borrowed from with, or formatted into *owned). */
static int collect_headers(const json_t *hv, rn_http_header *out, char **owned, size_t *n)
{
	*n = 0;
	if (!hv || json_is_null(hv))
		return 0;
	if (!json_is_object(hv))
		return rn_error_set("'headers' must be a mapping of names to strings");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)hv, k, v) {
		if (*n >= UPLOAD_MAX_HEADERS)
			return rn_error_set("more than %d headers", UPLOAD_MAX_HEADERS);
		const char *val;
		if (json_is_string(v))
			val = json_string_value(v);
		else if (json_is_integer(v))
			val = owned[*n] = rn_xasprintf("%lld", (long long)json_integer_value(v));
		else if (json_is_real(v))
			val = owned[*n] = rn_xasprintf("%g", json_real_value(v));
		else if (json_is_boolean(v))
			val = json_is_true(v) ? "true" : "false";
		else
			return rn_error_set("header '%s': the value must be a string", k);
		if (!rn_http_header_ok(k, val))
			return rn_error_set("header '%.100s': invalid name, or a line break in the value", k);
		out[*n].name = k;
		out[*n].value = val;
		(*n)++;
	}
	return 0;
}

static int upload_path(const json_t *with, const char *ws)
{
	const char *path = json_string_value(json_object_get(with, "path"));
	const char *url = json_string_value(json_object_get(with, "url"));
	const char *method = json_string_value(json_object_get(with, "method"));
	if (!method)
		method = "PUT";
	if (!path || !*path || !url || !*url) {
		fprintf(stderr, "upload: 'path' and 'url' must be non-empty strings\n");
		return 2;
	}
	if (strcmp(method, "PUT") != 0 && strcmp(method, "POST") != 0) {
		fprintf(stderr, "upload: method must be PUT or POST, not '%s'\n", method);
		return 2;
	}
	rn_http_header hdrs[UPLOAD_MAX_HEADERS];
	char *owned[UPLOAD_MAX_HEADERS] = { 0 };
	size_t nh = 0;
	int status = 0;
	char *file = path[0] == '/' ? rn_xstrdup(path) : rn_xasprintf("%s/%s", ws, path);
	char *where = rn_http_url_redacted(url);
	char sha[65];
	struct stat st;
	if (collect_headers(json_object_get(with, "headers"), hdrs, owned, &nh) < 0) {
		fprintf(stderr, "upload: %s\n", rn_error_last());
		status = 2;
		goto done;
	}
	if (stat(file, &st) < 0) {
		fprintf(stderr, "upload: %s: no such file\n", path);
		status = 1;
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "upload: %s: not a regular file\n", path);
		status = 1;
		goto done;
	}
	if (rn_sha256_file(file, sha) < 0) {
		fprintf(stderr, "upload: %s\n", rn_error_last());
		status = 1;
		goto done;
	}
	const char *slash = strrchr(file, '/');
	rn_http_req req = {
		.url = url,
		.method = method,
		.headers = hdrs,
		.nheaders = nh,
		.file = file,
		.multipart = strcmp(method, "POST") == 0,
		.field = "file",
		.filename = slash ? slash + 1 : file,
		.attempts = UPLOAD_ATTEMPTS,
		.retry_delay_ms = UPLOAD_RETRY_MS,
		.on_retry = on_retry,
	};
	rn_http_resp resp = { 0 };
	int rc = rn_http_upload_file(&req, &resp);
	if (rc == 0) {
		printf("upload: %s (%lld bytes, sha256 %s) -> %s %s: HTTP %ld", path, (long long)st.st_size, sha, method,
		       where, resp.status);
		if (resp.attempts > 1)
			printf(" (attempt %d of %d)", resp.attempts, UPLOAD_ATTEMPTS);
		putchar('\n');
	} else {
		fprintf(stderr, "upload: %s failed: %s\n", path, rn_error_last());
		if (resp.status >= 300)
			print_answer(&resp);
		if (rc == RN_EINVALID)
			status = 2;
		else if (resp.transient || resp.cancelled || rc == RN_EIO || (resp.status == 0 && rc != RN_ENOTFOUND))
			status = 3; /* the server stayed unreachable or failing, or the disk failed */
		else
			status = 1; /* refused: 4xx (or an unexpected 1xx/3xx), or the file went away */
	}
	rn_http_resp_free(&resp);
done:
	for (size_t i = 0; i < RN_ARRAY_LEN(owned); i++)
		free(owned[i]);
	free(where);
	free(file);
	fflush(stdout);
	return status;
}

/* Local runs: the artifact must be in the store and intact; say where it is. */
static int upload_artifact(const char *name)
{
	const char *store = getenv("RUNNER_ARTIFACTS");
	if (!rn_artifact_name_ok(name)) {
		fprintf(stderr, "upload: invalid artifact name '%s'\n", name ? name : "");
		return 2;
	}
	if (!store || !*store) {
		fprintf(stderr, "upload: RUNNER_ARTIFACTS is not set\n");
		return 3;
	}
	char *meta = rn_xasprintf("%s/%s.json", store, name);
	json_error_t err;
	json_t *m = json_load_file(meta, 0, &err);
	int status = 0;
	char *archive = NULL;
	if (!m) {
		fprintf(stderr, "upload: no artifact named '%s' in this run (package it first, in this job or one it needs)\n",
			name);
		status = 1;
		goto done;
	}
	const char *file = json_string_value(json_object_get(m, "file"));
	const char *sha = json_string_value(json_object_get(m, "sha256"));
	const char *format = json_string_value(json_object_get(m, "format"));
	char got[65];
	if (!file || !*file || strchr(file, '/') || !sha) {
		fprintf(stderr, "upload: artifact '%s': %s is damaged\n", name, meta);
		status = 1;
		goto done;
	}
	archive = rn_xasprintf("%s/%s", store, file);
	int rc = rn_sha256_file(archive, got);
	if (rc == RN_ENOTFOUND) {
		fprintf(stderr, "upload: artifact '%s': its archive %s is missing\n", name, archive);
		status = 1;
	} else if (rc < 0) {
		fprintf(stderr, "upload: artifact '%s': %s\n", name, rn_error_last());
		status = 1;
	} else if (strcmp(got, sha) != 0) {
		fprintf(stderr, "upload: artifact '%s' is damaged (sha256 %s, expected %s)\n", name, got, sha);
		status = 1;
	} else {
		json_int_t bytes = json_integer_value(json_object_get(m, "bytes"));
		printf("upload: artifact '%s' (%s, %lld bytes, sha256 %s) is in the local store: %s\n", name,
		       format ? format : "?", (long long)bytes, sha, archive);
	}
done:
	json_decref(m);
	free(archive);
	free(meta);
	fflush(stdout);
	return status;
}

static int exec_upload(const json_t *input)
{
	const json_t *with = json_object_get(input, "with");
	const json_t *artifact = json_object_get(with, "artifact");
	if (!json_is_object(with)) {
		fprintf(stderr, "upload: expected a mapping\n");
		return 2;
	}
	if (artifact)
		return upload_artifact(json_string_value(artifact));
	const char *ws = getenv("RUNNER_WORKSPACE");
	if (!ws || !*ws) {
		fprintf(stderr, "upload: RUNNER_WORKSPACE is not set\n");
		return 3;
	}
	return upload_path(with, ws);
}

const rn_step_kind rn_step_upload = { "upload", "upload an artifact or a file", check, command, exec_upload };

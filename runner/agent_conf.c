/* agent_conf.c - the agent's YAML config file and label checks (see agent_conf.h). */
#include "agent_conf.h"
#include "arena.h"
#include "error.h"
#include "node.h"
#include "units.h"
#include "util.h"
#include "yamldoc.h"

#include <stdlib.h>
#include <string.h>

#define CONF_MAX (1024 * 1024)

void rn_agent_conf_init(rn_agent_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->capacity = -1;
	c->shutdown_ms = -1;
	c->keep_workspace = -1;
}

static void free_labels(rn_agent_conf *c)
{
	for (size_t i = 0; i < c->nlabels; i++)
		free(c->labels[i]);
	free(c->labels);
	c->labels = NULL;
	c->nlabels = 0;
	c->labels_set = 0;
}

void rn_agent_conf_free(rn_agent_conf *c)
{
	free(c->server);
	if (c->token)
		memset(c->token, 0, strlen(c->token));
	free(c->token);
	free(c->name);
	free(c->work_dir);
	free(c->metrics);
	free_labels(c);
	rn_agent_conf_init(c);
}

int rn_agent_label_ok(const char *s)
{
	size_t n = 0;
	for (const char *p = s; *p; p++, n++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("_.-", *p)))
			return 0;
	return n >= 1 && n <= RN_AGENT_LABEL_LEN;
}

/* Add one label (copied); 0 or RN_EINVALID. */
static int add_label(rn_agent_conf *c, const char *s, size_t n)
{
	char *l = rn_xstrndup(s, n);
	int rc = 0;
	if (!rn_agent_label_ok(l))
		rc = rn_error_set("invalid label '%.80s' (letters, digits, '_', '.', '-'; at most %d)", l,
				  RN_AGENT_LABEL_LEN);
	for (size_t i = 0; rc == 0 && i < c->nlabels; i++)
		if (strcmp(c->labels[i], l) == 0)
			rc = rn_error_set("label '%s' given twice", l);
	if (rc == 0 && c->nlabels >= RN_AGENT_LABELS_MAX)
		rc = rn_error_set("more than %d labels", RN_AGENT_LABELS_MAX);
	if (rc < 0) {
		free(l);
		return RN_EINVALID;
	}
	c->labels = rn_xreallocarray(c->labels, c->nlabels + 1, sizeof(*c->labels));
	c->labels[c->nlabels++] = l;
	return 0;
}

int rn_agent_conf_labels(rn_agent_conf *c, const char *csv)
{
	free_labels(c);
	c->labels_set = 1;
	const char *p = csv;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = strcspn(p, ",");
		size_t m = n;
		while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
			m--;
		if (m > 0 && add_label(c, p, m) < 0)
			return RN_EINVALID;
		if (m == 0 && p[n] == ',')
			return rn_error_set("an empty label in '%.80s'", csv), RN_EINVALID;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

static void set_str(char **slot, const rn_node *v)
{
	free(*slot);
	*slot = rn_xstrdup(v->str);
}

/* 1 if text holds nothing but blanks and comments. */
static int blank(const char *text, size_t len)
{
	int comment = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = text[i];
		if (ch == '\n')
			comment = 0;
		else if (ch == '#')
			comment = 1;
		else if (!comment && ch != ' ' && ch != '\t' && ch != '\r')
			return 0;
	}
	return 1;
}

int rn_agent_conf_parse(rn_agent_conf *c, const char *text, size_t len, rn_diags *d)
{
	rn_arena arena = RN_ARENA_INIT;
	if (blank(text, len))
		return 0; /* an empty file: nothing set */
	rn_node *root = NULL;
	size_t errors = d->errors;
	if (rn_yaml_load(&root, text, len, &arena, d) < 0) {
		rn_arena_free(&arena);
		return RN_EINVALID;
	}
	if (!root || rn_node_is_null(root)) {
		rn_arena_free(&arena);
		return 0; /* an empty file: nothing set */
	}
	if (root->kind != RN_NODE_MAP) {
		rn_diag_error(d, root->line, root->col, "the agent config must be a mapping, not a %s",
			      rn_node_type_name(root));
		rn_arena_free(&arena);
		return RN_EINVALID;
	}
	for (size_t i = 0; i + 1 < 2 * root->n; i += 2) {
		const rn_node *k = root->items[i], *v = root->items[i + 1];
		const char *key = k->str ? k->str : "";
		int is_str = v->kind == RN_NODE_SCALAR && !rn_node_is_null(v);
		if (!strcmp(key, "server") || !strcmp(key, "token") || !strcmp(key, "name") || !strcmp(key, "work-dir") ||
		    !strcmp(key, "metrics")) {
			if (!is_str || !*v->str) {
				rn_diag_error(d, v->line, v->col, "'%s' must be a non-empty string", key);
				continue;
			}
			set_str(!strcmp(key, "server") ? &c->server
				: !strcmp(key, "token")  ? &c->token
				: !strcmp(key, "name")   ? &c->name
				: !strcmp(key, "metrics") ? &c->metrics
							  : &c->work_dir,
				v);
		} else if (!strcmp(key, "labels")) {
			if (v->kind == RN_NODE_SEQ) {
				free_labels(c);
				c->labels_set = 1;
				for (size_t n = 0; n < v->n; n++) {
					const rn_node *it = v->items[n];
					if (it->kind != RN_NODE_SCALAR || rn_node_is_null(it))
						rn_diag_error(d, it->line, it->col, "a label must be a string");
					else if (add_label(c, it->str, it->len) < 0)
						rn_diag_error(d, it->line, it->col, "%s", rn_error_last());
				}
			} else if (is_str) {
				if (rn_agent_conf_labels(c, v->str) < 0)
					rn_diag_error(d, v->line, v->col, "%s", rn_error_last());
			} else if (rn_node_is_null(v)) {
				free_labels(c);
				c->labels_set = 1;
			} else {
				rn_diag_error(d, v->line, v->col, "'labels' must be a list of strings");
			}
		} else if (!strcmp(key, "capacity")) {
			long long n = 0;
			if (!is_str || rn_node_int(v, &n) < 0 || n < 1 || n > RN_AGENT_CAPACITY_MAX)
				rn_diag_error(d, v->line, v->col, "'capacity' must be a whole number from 1 to %d",
					      RN_AGENT_CAPACITY_MAX);
			else
				c->capacity = (int)n;
		} else if (!strcmp(key, "shutdown-timeout")) {
			int64_t ms = 0;
			if (!is_str || rn_duration_parse(&ms, v->str) < 0)
				rn_diag_error(d, v->line, v->col, "'shutdown-timeout' must be a duration (e.g. 10m)");
			else
				c->shutdown_ms = ms;
		} else if (!strcmp(key, "keep-workspace")) {
			int b = 0;
			if (!is_str || rn_node_bool(v, &b) < 0)
				rn_diag_error(d, v->line, v->col, "'keep-workspace' must be true or false");
			else
				c->keep_workspace = b;
		} else {
			rn_diag_error(d, k->line, k->col,
				      "unknown key '%.80s' (server, token, name, labels, capacity, work-dir, "
				      "shutdown-timeout, keep-workspace, metrics)",
				      key);
		}
	}
	rn_arena_free(&arena);
	return d->errors > errors ? RN_EINVALID : 0;
}

int rn_agent_conf_load(rn_agent_conf *c, const char *path, rn_diags *d)
{
	char *text = NULL;
	size_t len = 0;
	int rc = rn_read_file(&text, &len, path, CONF_MAX);
	if (rc < 0) {
		rn_diag_error(d, 0, 0, "%s", rn_error_last());
		return rc;
	}
	rc = rn_agent_conf_parse(c, text, len, d);
	free(text);
	return rc;
}

/* diag.c - diagnostics list. */
#include "diag.h"
#include "util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 5, 0))) static void add(rn_diags *d, rn_diag_level level, int line, int col,
						  const char *fmt, va_list ap)
{
	char *msg;
	if (level == RN_DIAG_ERROR)
		d->errors++;
	if (d->n >= RN_DIAGS_MAX) {
		d->dropped++;
		return;
	}
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	rn_grow(&d->v, &d->cap, d->n + 1, sizeof(*d->v));
	d->v[d->n++] = (rn_diag){ level, line, col, msg };
}

void rn_diag_error(rn_diags *d, int line, int col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add(d, RN_DIAG_ERROR, line, col, fmt, ap);
	va_end(ap);
}

void rn_diag_warn(rn_diags *d, int line, int col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add(d, RN_DIAG_WARNING, line, col, fmt, ap);
	va_end(ap);
}


void rn_diags_print(rn_diags *d, FILE *out)
{
	for (size_t i = 1; i < d->n; i++) {
		rn_diag t = d->v[i];
		size_t j = i;
		while (j > 0 && (d->v[j - 1].line > t.line ||
				 (d->v[j - 1].line == t.line && d->v[j - 1].col > t.col))) {
			d->v[j] = d->v[j - 1];
			j--;
		}
		d->v[j] = t;
	}
	for (size_t i = 0; i < d->n; i++) {
		const rn_diag *g = &d->v[i];
		const char *lvl = g->level == RN_DIAG_ERROR ? "error" : "warning";
		if (g->line > 0)
			fprintf(out, "%s:%d:%d: %s: %s\n", d->file, g->line, g->col, lvl, g->msg);
		else
			fprintf(out, "%s: %s: %s\n", d->file, lvl, g->msg);
	}
	if (d->dropped)
		fprintf(out, "%s: error: %zu more problems not shown\n", d->file, d->dropped);
}

void rn_diags_free(rn_diags *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].msg);
	free(d->v);
	d->v = NULL;
	d->n = d->cap = d->errors = d->dropped = 0;
}

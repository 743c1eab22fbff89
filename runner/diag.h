/* diag.h - diagnostics: every problem found in a file, printed as FILE:LINE:COLUMN: error: msg. */
#ifndef RN_DIAG_H
#define RN_DIAG_H

#include <stddef.h>
#include <stdio.h>

typedef enum { RN_DIAG_ERROR, RN_DIAG_WARNING } rn_diag_level;

typedef struct rn_diag {
	rn_diag_level level;
	int line, col; /* 1-based; 0 when the problem has no position */
	char *msg;     /* owned by the list */
} rn_diag;

typedef struct rn_diags {
	const char *file; /* borrowed: the name printed before each problem */
	rn_diag *v;
	size_t n, cap;
	size_t errors;  /* how many are errors (not warnings), kept or not */
	size_t dropped; /* problems past RN_DIAGS_MAX, counted but not kept */
} rn_diags;

#define RN_DIAGS_MAX 1000
#define RN_DIAGS_INIT(f) { (f), NULL, 0, 0, 0, 0 }

/* Add an error at line:col (printf format). */
void rn_diag_error(rn_diags *d, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Add a warning at line:col (printf format). */
void rn_diag_warn(rn_diags *d, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Sort by position (stable) and print each as FILE:LINE:COLUMN: error: message. */
void rn_diags_print(rn_diags *d, FILE *out);
/* Free the messages; the list can be reused. */
void rn_diags_free(rn_diags *d);

#endif

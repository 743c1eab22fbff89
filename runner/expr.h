/* expr.h - the `${{ }}` expression language: lexer, parser, evaluator (values are jansson json_t).
 * Grammar: literals 'str' (quote doubled to escape), numbers (int, float, hex 0x..), true, false,
 * null; contexts and property access `a.b`, `a['b']`, `a.*.b` (object filter); operators
 * ! < <= > >= == != && || and parentheses (precedence as GitHub Actions); functions success()
 * failure() always() cancelled() contains() startsWith() endsWith() format() join() toJSON()
 * fromJSON() hashFiles(). Comparison and coercion rules follow GitHub Actions (strings compare
 * case-insensitively, loose equality coerces to numbers, && / || return an operand). */
#ifndef RN_EXPR_H
#define RN_EXPR_H

#include <jansson.h>
#include <stddef.h>

typedef struct rn_expr rn_expr; /* a parsed expression (opaque AST) */

/* Nesting cap: parentheses, `!`, brackets, call arguments and operator chains deeper than this
 * are a parse error ("expression nested too deeply") rather than a stack overflow. */
#define RN_EXPR_MAX_DEPTH 100
/* Size cap in bytes of any text an expression builds: format(), join(), toJSON(), the value of a
 * template, rn_expr_to_string(). Passing it is an RN_ETOOBIG error. */
#define RN_EXPR_MAX_RESULT ((size_t)4 << 20)

/* What evaluation may read. Everything is borrowed. */
typedef struct rn_expr_env {
	json_t *ctx;           /* object of contexts: env, matrix, secrets, steps, needs, job, runner, git, pipeline */
	int failed;            /* for failure()/success(): an earlier step (or a needed job) failed */
	int cancelled;         /* for cancelled()/success(): the run is being cancelled */
	const char *workspace; /* root for hashFiles(); NULL makes hashFiles() an error */
} rn_expr_env;

/* Parse src[0..len) (without the ${{ }}); on error returns RN_EINVALID, *err_off = byte offset
 * of the problem in src and the message in rn_error_last(). Caller frees *out with rn_expr_free. */
int rn_expr_parse(rn_expr **out, const char *src, size_t len, size_t *err_off);
/* Evaluate; a new reference the caller json_decref()s, or NULL with rn_error_last() set. */
json_t *rn_expr_eval(const rn_expr *e, const rn_expr_env *env);
/* Free a parsed expression (NULL is fine). */
void rn_expr_free(rn_expr *e);
/* Truthiness as GitHub Actions: false, 0, -0, "", null, NaN are false; the rest true. */
int rn_expr_truthy(const json_t *v);
/* A value as text for substitution: null→"", true/false, numbers without trailing ".0",
 * strings as-is, arrays/objects as JSON. Caller frees. NULL (rn_error_last() set) only if the
 * text would be longer than RN_EXPR_MAX_RESULT or the value is nested too deeply. */
char *rn_expr_to_string(const json_t *v);

/* 1 if s contains a `${{`. */
int rn_template_has(const char *s);
/* Check every ${{ }} in s parses; 0, or RN_EINVALID with *err_off = offset in s and rn_error_last(). */
int rn_template_check(const char *s, size_t *err_off);
/* Replace every ${{ expr }} in s by its value as text; *out malloc'd (caller frees). 0 or <0. */
int rn_template_expand(char **out, const char *s, const rn_expr_env *env);
/* Evaluate an `if:` condition: either a bare expression or one wrapped in ${{ }}.
 * NULL or "" means success(). *out = truthiness. 0 or <0 with rn_error_last(). */
int rn_expr_condition(int *out, const char *cond, const rn_expr_env *env);
/* Check an `if:` condition's syntax (bare or wrapped); 0 or RN_EINVALID with *err_off. */
int rn_expr_condition_check(const char *cond, size_t *err_off);
/* 1 if the condition calls one of success() failure() always() cancelled() (so the implicit
 * `success() &&` is not added, as GitHub Actions does). */
int rn_expr_condition_has_status(const char *cond);

#endif

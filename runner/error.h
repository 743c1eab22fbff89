/* error.h - return codes and the thread-local last-error slot (libgit2 style). */
#ifndef RN_ERROR_H
#define RN_ERROR_H

/* Return codes: 0 success, negative failure. The message is in rn_error_last(). */
enum {
	RN_OK = 0,
	RN_ERROR = -1,     /* generic failure */
	RN_ENOTFOUND = -2, /* a thing looked up does not exist */
	RN_EINVALID = -3,  /* invalid input (workflow, expression, argument) */
	RN_ETOOBIG = -4,   /* a size cap was reached */
	RN_EIO = -5        /* an operating-system call failed */
};

/* Set the last-error message (printf format); returns RN_ERROR for `return rn_error_set(...)`. */
int rn_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like rn_error_set, appending ": strerror(errno)"; returns RN_EIO. */
int rn_error_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last error message of this thread; static storage owned by the slot ("" if none). */
const char *rn_error_last(void);
/* Clear the last error of this thread. */
void rn_error_clear(void);

#endif

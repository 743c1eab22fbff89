/* error.c - thread-local last-error slot. */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last[1024];

int rn_error_set(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last, sizeof(last), fmt, ap);
	va_end(ap);
	return RN_ERROR;
}

int rn_error_errno(const char *fmt, ...)
{
	int err = errno;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(last, sizeof(last), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(last))
		snprintf(last + n, sizeof(last) - (size_t)n, ": %s", strerror(err));
	errno = err;
	return RN_EIO;
}

const char *rn_error_last(void)
{
	return last;
}

void rn_error_clear(void)
{
	last[0] = '\0';
}

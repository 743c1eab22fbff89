/* units.h - durations (500ms, 30s, 10m, 1h30m) and sizes (512M, 2G) as written in workflows. */
#ifndef RN_UNITS_H
#define RN_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Parse a duration: one or more <number><unit> with units ms, s, m, h, d, in decreasing order
 * (e.g. "1h30m", "1.5s"). *ms gets milliseconds. RN_EINVALID with rn_error_last() otherwise. */
int rn_duration_parse(int64_t *ms, const char *s);
/* Format milliseconds compactly ("1.234s", "2m03s", "1h02m") into buf (static-size caller buf). */
void rn_duration_format(char *buf, size_t size, int64_t ms);
/* Parse a size: a whole number with an optional K, M, G or T suffix (powers of 1024, optional
 * trailing "B" or "iB"); *bytes gets the value. RN_EINVALID with rn_error_last() otherwise. */
int rn_size_parse(int64_t *bytes, const char *s);

#endif

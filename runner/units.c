/* units.c - durations and sizes. */
#include "units.h"
#include "error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	int64_t ms;
} duration_units[] = { { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 } };

int rn_duration_parse(int64_t *ms, const char *s)
{
	const char *p = s;
	double total = 0;
	size_t last = 0; /* index after the previous unit: units must decrease */
	if (!*p)
		return rn_error_set("empty duration"), RN_EINVALID;
	while (*p) {
		if (!isdigit((unsigned char)*p) && *p != '.')
			goto bad;
		const char *end = p;
		while (isdigit((unsigned char)*end) || *end == '.')
			end++;
		char num[32];
		if ((size_t)(end - p) >= sizeof(num))
			goto bad;
		memcpy(num, p, (size_t)(end - p));
		num[end - p] = '\0';
		char *stop;
		double v = strtod(num, &stop);
		if (*stop || stop == num)
			goto bad;
		p = end;
		size_t ulen = 0;
		while (isalpha((unsigned char)p[ulen]))
			ulen++;
		if (ulen == 0 && *p == '\0') {
			rn_error_set("duration '%s' has no unit (use ms, s, m, h or d)", s);
			return RN_EINVALID;
		}
		if (ulen == 0)
			goto bad;
		size_t i;
		for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++)
			if (strlen(duration_units[i].name) == ulen && strncmp(p, duration_units[i].name, ulen) == 0)
				break;
		if (i == sizeof(duration_units) / sizeof(duration_units[0]) || i < last)
			goto bad;
		last = i + 1;
		total += v * (double)duration_units[i].ms;
		p += ulen;
	}
	if (total > 1e15)
		goto bad;
	*ms = (int64_t)(total + 0.5);
	return 0;
bad:
	rn_error_set("invalid duration '%s' (expected e.g. 500ms, 30s, 10m, 1h30m)", s);
	return RN_EINVALID;
}

void rn_duration_format(char *buf, size_t size, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	if (ms < 60000)
		snprintf(buf, size, "%.3fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, size, "%dm%02ds", (int)(ms / 60000), (int)(ms / 1000 % 60));
	else
		snprintf(buf, size, "%dh%02dm", (int)(ms / 3600000), (int)(ms / 60000 % 60));
}

int rn_size_parse(int64_t *bytes, const char *s)
{
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		goto bad;
	char *end;
	unsigned long long v = strtoull(p, &end, 10);
	int shift = 0;
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
		end += strlen(end);
	else if (!shift && (strcmp(end, "B") == 0))
		end++;
	if (*end || v > (UINT64_C(1) << 62) >> shift)
		goto bad;
	*bytes = (int64_t)(v << shift);
	return 0;
bad:
	rn_error_set("invalid size '%s' (expected e.g. 512M, 2G)", s);
	return RN_EINVALID;
}

/* fuzz_glob.c - libFuzzer target for glob.c: the input is "pattern\npath" (or NUL-separated).
 * Checks must never crash, invalid patterns never match, a valid pattern is checked and matched
 * in time linear in... well, at worst len(pattern) * len(path) (run with -timeout), and a path
 * with every special character escaped matches itself. */
#include "glob.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Escape every ASCII byte but '/' and '.' so that the pattern means the path literally. */
static char *escape(const char *path)
{
	size_t n = strlen(path);
	char *out = rn_xmalloc(2 * n + 1), *w = out;
	for (const char *p = path; *p; p++) {
		if ((unsigned char)*p < 0x80 && *p != '/' && *p != '.')
			*w++ = '\\';
		*w++ = *p;
	}
	*w = '\0';
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	size_t split = 0;
	while (split < size && data[split] != '\n' && data[split] != '\0')
		split++;
	char *pattern = rn_xstrndup((const char *)data, split);
	char *path = rn_xstrndup(split < size ? (const char *)data + split + 1 : "",
				 split < size ? size - split - 1 : 0);

	int valid = rn_glob_check(pattern) == 0;
	int m = rn_glob_match(pattern, path);
	if (!valid && m) {
		fprintf(stderr, "invalid pattern '%s' matched '%s'\n", pattern, path);
		abort();
	}
	(void)rn_glob_match(path, pattern);
	(void)rn_glob_match(pattern, pattern);

	char *lit = escape(path);
	if (rn_glob_check(lit) == 0 && !rn_glob_match(lit, path)) {
		fprintf(stderr, "escaped path '%s' does not match '%s'\n", lit, path);
		abort();
	}
	free(lit);
	free(pattern);
	free(path);
	return 0;
}
